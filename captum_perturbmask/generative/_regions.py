r"""The region :math:`B`: from a mask or a saliency map, and where the generator's window goes.

Images :math:`(N, C, H, W)` have masks :math:`(N, H, W)` and boxes; series :math:`(N, C, T)`
have masks :math:`(N, T)` and spans. Extents are returned as :math:`(N, S, 2)` half-open
intervals ``[start, stop)`` per spatial dimension (:math:`S` = 2 or 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from captum_perturbmask._core.checks import check_real_tensor

__all__ = ["fit_to_window", "mask_extents", "mask_from", "patch_origins"]


def mask_extents(mask: Tensor) -> Tensor:
    """Tight ``[start, stop)`` per spatial dim of non-empty masks, long :math:`(N, S, 2)`.

    Uses ``torchvision.ops.masks_to_boxes`` (a series is a one-row image).

    Example:
        >>> m = torch.zeros(1, 4, 5, dtype=torch.bool)
        >>> m[0, 1:3, 2] = True
        >>> mask_extents(m).tolist()  # rows 1:3, cols 2:3
        [[[1, 3], [2, 3]]]
    """
    from torchvision.ops import masks_to_boxes

    planes = mask[:, None, :] if mask.dim() == 2 else mask
    boxes = masks_to_boxes(planes).long()  # (N, 4): x1, y1, x2, y2 inclusive
    cols = torch.stack([boxes[:, 0], boxes[:, 2] + 1], dim=1)
    if mask.dim() == 2:
        return cols[:, None]
    rows = torch.stack([boxes[:, 1], boxes[:, 3] + 1], dim=1)
    return torch.stack([rows, cols], dim=1)


def mask_from(
    inputs: Tensor, saliency: Tensor | None, mask: Tensor | None, threshold: float, mode: str
) -> Tensor:
    """The region :math:`B` as a bool mask :math:`(N, *X)` (``X`` = ``(H, W)`` or ``(T,)``).

    Args:
        inputs: images :math:`(N, C, H, W)` or series :math:`(N, C, T)`.
        saliency: saliency maps (box or span of the salient positions), or ``None``.
        mask: a binary mask of one of the accepted shapes, or ``None``.
        threshold: threshold of ``saliency_mask``.
        mode: mode of ``saliency_mask``.

    Returns:
        bool :math:`(N, *X)`, every mask non-empty.

    Raises:
        TypeError: ``mask``/``saliency`` of the wrong type.
        ValueError: neither or both given, wrong shapes, NaN/inf saliency, a non-binary mask,
            or an empty mask.

    Example:
        >>> sal = torch.tensor([[0.0, 0.0, 5.0, 1.0, 4.0, 0.0]])
        >>> mask_from(torch.zeros(1, 2, 6), sal, None, 0.6, "quantile")
        tensor([[False, False,  True,  True,  True, False]])
    """
    n = inputs.shape[0]
    size = tuple(inputs.shape[2:])
    nd = len(size)
    if (saliency is None) == (mask is None):
        raise ValueError("pass exactly one of `saliency` and `mask`")
    if mask is not None:
        if not isinstance(mask, Tensor):
            raise TypeError(f"`mask` must be a torch.Tensor, got {type(mask).__name__}.")
        m = mask
        if m.dim() == nd:
            m = m.unsqueeze(0).expand(n, *size)
        elif m.dim() == nd + 2 and m.shape[1] == 1:
            m = m[:, 0]
        if tuple(m.shape) != (n, *size):
            forms = "(T,), (N, T) or (N, 1, T)" if nd == 1 else "(H, W), (N, H, W) or (N, 1, H, W)"
            raise ValueError(
                f"`mask` must have shape {forms} = {(n, *size)}, got {tuple(mask.shape)}."
            )
        if m.dtype != torch.bool:
            if m.is_complex() or not bool(((m == 0) | (m == 1)).all()):
                raise ValueError(
                    "`mask` must be binary (bool or values in {0, 1}), got other values "
                    "(NaN, fractions or other numbers)."
                )
            m = m != 0
    else:
        s = check_real_tensor(saliency, "saliency")
        if nd == 1:
            if s.dim() not in (2, 3) or (s.shape[0], s.shape[-1]) != (n, *size):
                raise ValueError(
                    f"`saliency` must have shape (N, T) or (N, C', T) with (N, T) = "
                    f"{(n, *size)}, got {tuple(s.shape)}."
                )
            from captum_perturbmask.metrics import saliency_span

            span = saliency_span(s.detach(), threshold=threshold, mode=mode).long()
            steps = torch.arange(size[0], device=span.device)
            m = (steps >= span[:, :1]) & (steps < span[:, 1:])
        else:
            if s.dim() not in (3, 4) or (s.shape[0], *s.shape[-2:]) != (n, *size):
                raise ValueError(
                    f"`saliency` must have shape (N, H, W) or (N, C', H, W) with (N, H, W) = "
                    f"{(n, *size)}, got {tuple(s.shape)}."
                )
            from captum_perturbmask.metrics import box_to_mask, saliency_box

            boxes = saliency_box(s.detach(), threshold=threshold, mode=mode)
            m = box_to_mask(boxes, size)  # type: ignore[arg-type]
    m = m.to(device=inputs.device, dtype=torch.bool)
    empty = (~m.flatten(1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"`mask` is empty for input(s) {empty}; nothing to vary.")
    return m.contiguous()


def _where(lo_hi: Sequence[Sequence[int]]) -> str:
    if len(lo_hi) == 1:
        ((a, c),) = lo_hi
        return f"steps {a}:{c}"
    (a, c), (b, d) = lo_hi
    return f"rows {a}:{c}, cols {b}:{d}"


def _parse_origin(patch_origin: Any, n: int, nd: int) -> Tensor:
    """``patch_origin`` as long :math:`(N, S)`."""
    expected = "an int or a Tensor (N,)" if nd == 1 else "(row, col) ints or a Tensor (N, 2)"
    if isinstance(patch_origin, Tensor):
        po = patch_origin.detach().cpu()
        if po.is_floating_point() or po.is_complex() or po.dtype == torch.bool:
            raise TypeError(f"`patch_origin` must hold ints, got dtype {po.dtype}.")
        po = po.long()
        if po.numel() == nd:
            po = po.reshape(1, nd)
        elif nd == 1 and po.dim() == 1:
            po = po[:, None]
    elif isinstance(patch_origin, int) and not isinstance(patch_origin, bool) and nd == 1:
        po = torch.tensor([[patch_origin]], dtype=torch.long)
    elif (
        isinstance(patch_origin, Sequence)
        and not isinstance(patch_origin, str)
        and len(patch_origin) == nd
        and all(isinstance(v, int) and not isinstance(v, bool) for v in patch_origin)
    ):
        po = torch.tensor([list(patch_origin)], dtype=torch.long)
    else:
        raise TypeError(f"`patch_origin` must be {expected}, got {patch_origin!r}.")
    if po.dim() == 2 and po.shape == (1, nd):
        po = po.expand(n, nd)
    if tuple(po.shape) != (n, nd):
        shapes = f"(), (1,), ({n},) or ({n}, 1)" if nd == 1 else f"(2,) or ({n}, 2)"
        raise ValueError(
            f"`patch_origin` must have shape {shapes}, got {tuple(patch_origin.shape)}."
        )
    return po.clone()


def patch_origins(mask: Tensor, patch: tuple[int, ...], patch_origin: Any) -> Tensor:
    """First position of the generator's window per input, long :math:`(N, S)`.

    Centred on the extent of :math:`B` (rounded half up) and clamped inside the input when
    ``patch_origin`` is ``None``; checked to contain :math:`B` otherwise.

    Args:
        mask: the regions :math:`B`, bool :math:`(N, *X)`, non-empty.
        patch: the generator's output size :math:`P` (:math:`S` ints).
        patch_origin: ``None``, or the first position(s) given to ``generate``.

    Returns:
        long :math:`(N, S)`.

    Raises:
        TypeError, ValueError: a malformed ``patch_origin``, a window outside the input, or a
            region :math:`B` that does not fit into the window.

    Example:
        >>> b = torch.zeros(2, 30, dtype=torch.bool)
        >>> b[0, 10:14] = True  # centred: (10 + 14 - 8 + 1) // 2 = 8
        >>> b[1, 27:30] = True  # clamped at the end: 30 - 8 = 22
        >>> patch_origins(b, (8,), None).tolist()
        [[8], [22]]
    """
    n = mask.shape[0]
    size = tuple(mask.shape[1:])
    nd = len(size)
    extents = mask_extents(mask).tolist()  # (N, S, 2)
    patch_str = "x".join(map(str, patch))
    size_str = "x".join(map(str, size))
    unit = "steps" if nd == 1 else "pixels"
    if patch_origin is None:
        origins = []
        for i, ext in enumerate(extents):
            lengths = [hi - lo for lo, hi in ext]
            if any(length > p for length, p in zip(lengths, patch, strict=True)):
                raise ValueError(
                    f"the extent of mask B of input {i} is {'x'.join(map(str, lengths))} "
                    f"{unit} ({_where(ext)}) and does not fit into the generator's {patch_str} "
                    "window; use a tighter saliency threshold or a smaller mask"
                )
            # centre rounded half up, as the digits-in-clutter patch boxes
            origins.append(
                [
                    min(max((lo + hi - p + 1) // 2, 0), s - p)
                    for (lo, hi), p, s in zip(ext, patch, size, strict=True)
                ]
            )
        return torch.tensor(origins, dtype=torch.long)
    po = _parse_origin(patch_origin, n, nd)
    for i, (start, ext) in enumerate(zip(po.tolist(), extents, strict=True)):
        where = tuple(start) if nd == 2 else start[0]
        if not all(0 <= o <= s - p for o, s, p in zip(start, size, patch, strict=True)):
            raise ValueError(
                f"`patch_origin` {where} of input {i} puts the {patch_str} window outside the "
                f"{size_str} input"
            )
        if not all(
            o <= lo and hi <= o + p for o, (lo, hi), p in zip(start, ext, patch, strict=True)
        ):
            raise ValueError(
                f"mask B of input {i} ({_where(ext)}) is not inside the window at "
                f"`patch_origin` {where} of size {patch_str}"
            )
    return po


def fit_to_window(mask: Tensor, patch: tuple[int, ...]) -> Tensor:
    """Cut each region :math:`B` whose extent exceeds the generator's window to the window.

    Along every spatial dim where the extent of :math:`B` is longer than the window
    :math:`P`, only the :math:`P` positions centred on the extent (rounded half up, as
    :func:`patch_origins`) are kept; regions that fit are returned unchanged.

    Args:
        mask: bool :math:`(N, *X)`, every mask non-empty.
        patch: the window size :math:`P` (:math:`S` ints, each :math:`\\le` the input size).

    Returns:
        bool :math:`(N, *X)`, every extent within :math:`P`.

    Example:
        >>> b = torch.zeros(1, 12, dtype=torch.bool)
        >>> b[0, 1:11] = True  # 10 steps into a window of 6: steps 3:9 are kept
        >>> fit_to_window(b, (6,)).nonzero()[:, 1].tolist()
        [3, 4, 5, 6, 7, 8]
    """
    extents = mask_extents(mask)  # (N, S, 2)
    out = mask.clone()
    size = tuple(mask.shape[1:])
    for dim, p in enumerate(patch):
        lo, hi = extents[:, dim, 0], extents[:, dim, 1]
        start = torch.where(hi - lo > p, (lo + hi - p + 1) // 2, lo)
        stop = torch.where(hi - lo > p, start + p, hi)
        pos = torch.arange(size[dim], device=mask.device)
        keep = (pos[None] >= start[:, None].to(mask.device)) & (
            pos[None] < stop[:, None].to(mask.device)
        )
        view = [mask.shape[0]] + [1] * len(size)
        view[1 + dim] = size[dim]
        out = out & keep.view(view)
    return out
