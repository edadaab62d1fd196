"""Localisation metrics: saliency boxes and spans, their IoU and the pointing game.

Boxes are ``(x1, y1, x2, y2)`` in the **pixel-edge convention**: ``x2`` and ``y2`` are
exclusive, so the single pixel at row ``r``, column ``c`` is the box ``(c, r, c + 1, r + 1)``
and the area of an integer box is its pixel count. A pixel belongs to a box when its centre
``(c + 0.5, r + 0.5)`` lies in ``[x1, x2) x [y1, y2)``.

Spans are the 1-D analogue for time series: ``(start, end)`` with ``end`` exclusive, so step
``t`` is the span ``(t, t + 1)``. Series maps are :math:`(B, C, T)` (channels summed) or
:math:`(B, T)`. Boxes and spans share one implementation: a box is a region along two axes,
a span along one.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from captum_perturbmask._core.checks import (
    aggregate_saliency,
    check_boxes,
    check_float_tensor,
    check_fraction,
    check_int,
    check_spans,
    check_tensor,
)
from captum_perturbmask._core.ranking import descending_order

__all__ = [
    "box_iou",
    "box_to_mask",
    "pointing_game",
    "saliency_box",
    "saliency_mask",
    "saliency_span",
    "span_iou",
    "span_to_mask",
]

_MODES = ("value", "quantile", "energy")


def _check_size(size: object) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list, torch.Size))
        or len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, int) for s in size)
    ):
        raise TypeError(f"`size` must be a pair of ints (H, W), got {size!r}.")
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"`size` must be positive (H, W), got {tuple(size)}.")
    return int(size[0]), int(size[1])


def _salient(flat: Tensor, threshold: float, mode: str) -> Tensor:
    """Boolean mask ``(B, N)`` of the salient elements of each row (see saliency_mask)."""
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"`mode` must be one of {_MODES}, got {mode!r}.")
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()  # sums and normalisations overflow or round in half precision
    n = flat.shape[1]
    if mode == "value":
        threshold = check_fraction(threshold, "threshold")
        low = flat.min(dim=1, keepdim=True).values
        span = flat.max(dim=1, keepdim=True).values - low
        normalised = torch.where(span > 0, (flat - low) / span.clamp_min(1e-30), 1.0)
        keep = normalised >= threshold
        # guard against rounding at threshold == 1: the maximum is always kept
        keep |= flat == flat.max(dim=1, keepdim=True).values
    elif mode == "quantile":
        threshold = check_fraction(threshold, "threshold")
        k = max(1, math.ceil((1.0 - threshold) * n))
        kth = torch.topk(flat, k, dim=1).values[:, -1:]
        keep = flat >= kth
    else:
        threshold = check_fraction(threshold, "threshold", low_open=True)
        positive = flat.clamp(min=0)
        values = torch.sort(positive, dim=1, descending=True).values
        total = values.sum(dim=1, keepdim=True)
        if not bool((total > 0).all()):
            rows = torch.nonzero(total.flatten() <= 0).flatten().tolist()
            raise ValueError(
                "`attributions` must have positive saliency in every map for mode='energy', "
                f"maps {rows} have none."
            )
        cumulative = values.cumsum(dim=1)
        # number of elements needed: first index where the cumulative share reaches threshold
        needed = (cumulative < threshold * total * (1 - 1e-6)).sum(dim=1, keepdim=True) + 1
        kth = values.gather(1, needed.clamp(max=n) - 1)
        keep = (positive >= kth) & (positive > 0)
    return keep


def _series_saliency(attributions: object, name: str) -> Tensor:
    """A series map :math:`(B, C, T)` (channels summed) or :math:`(B, T)` as :math:`(B, T)`."""
    attr = check_float_tensor(attributions, name)
    if attr.ndim == 3:
        return attr.sum(dim=1)
    if attr.ndim == 2:
        return attr
    raise ValueError(f"`{name}` must have shape (B, C, T) or (B, T), got {tuple(attr.shape)}.")


def saliency_mask(attributions: Tensor, threshold: float = 0.5, mode: str = "quantile") -> Tensor:
    """Binary mask of the salient pixels of each map.

    ``saliency_mask(attr, threshold=0.9)`` keeps the top 10% of the pixels of each map,
    bool :math:`(B, H, W)`.

    Channels are summed first. With ``s`` the map of one image and ``N = H * W``:

    * ``"value"``: pixels with ``(s - min) / (max - min) >= threshold``, ``threshold`` in
      :math:`[0, 1]` (a constant map selects every pixel).
    * ``"quantile"``: pixels at least as salient as the ``k``-th most salient one,
      ``k = max(1, ceil((1 - threshold) * N))``: the top ``1 - threshold`` fraction of the
      pixels (more when values tie at the cut), ``threshold`` in :math:`[0, 1]`.
    * ``"energy"``: the smallest set of most salient pixels whose positive saliency
      ``clamp(s, min=0)`` sums to at least ``threshold`` of the map's total, plus pixels tied
      with the last one, ``threshold`` in :math:`(0, 1]`. Each map needs positive saliency.

    The mask always holds the most salient pixel, so it is never empty.

    Args:
        attributions: Saliency :math:`(B, C, H, W)`, :math:`(B, 1, H, W)` or :math:`(B, H, W)`.
        threshold: Cut-off, meaning set by ``mode``.
        mode: ``"value"``, ``"quantile"`` or ``"energy"``.

    Returns:
        Boolean mask of shape :math:`(B, H, W)`.

    Raises:
        TypeError: If ``attributions`` is not a floating-point tensor.
        ValueError: If ``attributions`` has a wrong shape or holds NaN/inf, ``threshold`` is
            outside its interval, ``mode`` is unknown, or an ``"energy"`` map has no positive
            saliency.

    Example:
        >>> import torch
        >>> attr = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]])
        >>> saliency_mask(attr, threshold=0.5, mode="quantile")
        tensor([[[False, False, False],
                 [ True,  True,  True]]])
        >>> saliency_mask(attr, threshold=0.5, mode="energy")
        tensor([[[False, False, False],
                 [False,  True,  True]]])
    """
    saliency = aggregate_saliency(attributions, None, "attributions")
    return _salient(saliency.flatten(1), threshold, mode).reshape(saliency.shape)


def saliency_box(attributions: Tensor, threshold: float = 0.5, mode: str = "quantile") -> Tensor:
    """Bounding box of the salient pixels of each map (see :func:`saliency_mask`).

    ``saliency_box(attr, threshold=0.9)`` gives the box around the top 10% of each map,
    :math:`(B, 4)`; compare it with annotated boxes with :func:`box_iou`.

    Boxes are ``(x1, y1, x2, y2)`` with exclusive ``x2, y2`` (pixel-edge convention: a single
    pixel ``(r, c)`` gives ``(c, r, c + 1, r + 1)``), computed with
    ``torchvision.ops.masks_to_boxes`` plus one on ``x2, y2``.

    Args:
        attributions: Saliency :math:`(B, C, H, W)`, :math:`(B, 1, H, W)` or :math:`(B, H, W)`.
        threshold: Cut-off, meaning set by ``mode``.
        mode: ``"value"``, ``"quantile"`` or ``"energy"``.

    Returns:
        Boxes of shape :math:`(B, 4)`, float32.

    Raises:
        TypeError: If ``attributions`` is not a floating-point tensor.
        ValueError: As :func:`saliency_mask`.

    Example:
        >>> import torch
        >>> attr = torch.zeros(1, 4, 5)
        >>> attr[0, 1, 2] = 1.0
        >>> saliency_box(attr, threshold=0.5, mode="value")
        tensor([[2., 1., 3., 2.]])
    """
    from torchvision.ops import masks_to_boxes  # here: torchvision takes ~1 s to import

    mask = saliency_mask(attributions, threshold=threshold, mode=mode)
    boxes = masks_to_boxes(mask)
    return boxes + boxes.new_tensor([0.0, 0.0, 1.0, 1.0])


def saliency_span(attributions: Tensor, threshold: float = 0.5, mode: str = "quantile") -> Tensor:
    """Tight span of the salient steps of each series map, the 1-D :func:`saliency_box`.

    ``saliency_span(attr, threshold=0.9)`` gives the span of the top 10% of the steps of each
    series map, :math:`(B, 2)`; compare it with known spans with :func:`span_iou`.

    The salient steps are chosen exactly as :func:`saliency_mask` chooses pixels (channels
    summed first); the span runs from the first to one past the last of them.

    Args:
        attributions: Saliency :math:`(B, C, T)` or :math:`(B, T)`.
        threshold: Cut-off, meaning set by ``mode``.
        mode: ``"value"``, ``"quantile"`` or ``"energy"``.

    Returns:
        Spans ``(start, end)``, ``end`` exclusive, shape :math:`(B, 2)`, float32.

    Raises:
        TypeError: If ``attributions`` is not a floating-point tensor.
        ValueError: As :func:`saliency_mask`, or a map of the wrong shape.

    Example:
        >>> import torch
        >>> attr = torch.tensor([[0.0, 0.1, 0.9, 0.2, 1.0, 0.0]])
        >>> saliency_span(attr, threshold=0.5, mode="value")
        tensor([[2., 5.]])
    """
    keep = _salient(_series_saliency(attributions, "attributions"), threshold, mode)
    steps = torch.arange(keep.shape[1], device=keep.device)
    start = torch.where(keep, steps, keep.shape[1]).amin(1)
    end = torch.where(keep, steps, -1).amax(1) + 1
    return torch.stack([start, end], 1).float()


def span_to_mask(spans: Tensor, length: int) -> Tensor:
    """Rasterise spans: steps ``t`` with ``start <= t + 0.5 < end``, the 1-D :func:`box_to_mask`.

    ``span_to_mask(spans, T)`` gives a bool mask :math:`(B, T)`.

    Args:
        spans: Spans :math:`(B, 2)` ``(start, end)``, ``end`` exclusive, inside the series.
        length: Series length :math:`T`.

    Returns:
        Boolean mask of shape :math:`(B, T)`.

    Raises:
        TypeError: If ``spans`` is not a real tensor or ``length`` not an int.
        ValueError: If a span is empty, not finite, or outside the series.

    Example:
        >>> import torch
        >>> span_to_mask(torch.tensor([[1, 3]]), 5)
        tensor([[False,  True,  True, False, False]])
    """
    length = check_int(length, "length")
    spans = check_spans(spans, "spans", length)
    steps = torch.arange(length, device=spans.device, dtype=spans.dtype).reshape(1, -1) + 0.5
    return (steps >= spans[:, :1]) & (steps < spans[:, 1:])


def box_to_mask(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Rasterise boxes: pixels whose centre lies in ``[x1, x2) x [y1, y2)``.

    ``box_to_mask(boxes, (H, W))`` gives a bool mask :math:`(B, H, W)`.

    Args:
        boxes: Boxes :math:`(B, 4)` ``(x1, y1, x2, y2)``, pixel-edge convention, inside the
            image.
        size: Image size ``(H, W)``.

    Returns:
        Boolean mask of shape :math:`(B, H, W)`.

    Raises:
        TypeError: If ``boxes`` is not a real tensor or ``size`` not a pair of ints.
        ValueError: If a box is empty (``x1 >= x2`` or ``y1 >= y2``), not finite, or outside
            the image.

    Example:
        >>> import torch
        >>> box_to_mask(torch.tensor([[1, 0, 3, 2]]), (3, 4))
        tensor([[[False,  True,  True, False],
                 [False,  True,  True, False],
                 [False, False, False, False]]])
    """
    height, width = _check_size(size)
    boxes = check_boxes(boxes, "boxes", (height, width))
    x1, y1, x2, y2 = (v.reshape(-1, 1, 1) for v in boxes.unbind(dim=1))
    rows = torch.arange(height, device=boxes.device, dtype=boxes.dtype).reshape(1, -1, 1) + 0.5
    cols = torch.arange(width, device=boxes.device, dtype=boxes.dtype).reshape(1, 1, -1) + 0.5
    return (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)


def box_iou(boxes1: Tensor, boxes2: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """Intersection over union of matching rows of two box sets.

    ``box_iou(saliency_box(attr, threshold=0.9), boxes)`` gives one IoU per row,
    :math:`(B,)`.

    Equal to the diagonal of ``torchvision.ops.box_iou(boxes1, boxes2)``; areas are
    ``(x2 - x1) * (y2 - y1)`` (pixel counts for integer boxes in the pixel-edge convention).

    Args:
        boxes1: Boxes :math:`(B, 4)` ``(x1, y1, x2, y2)``.
        boxes2: Boxes :math:`(B, 4)`.
        size: Optional image size ``(H, W)``; when given, boxes must lie inside the image.

    Returns:
        IoU of shape :math:`(B,)`, in :math:`[0, 1]`.

    Raises:
        TypeError: If a box tensor is not a real tensor.
        ValueError: If shapes differ, a box is empty, not finite, or outside the image.

    Example:
        >>> import torch
        >>> box_iou(torch.tensor([[0, 0, 2, 2]]), torch.tensor([[1, 0, 3, 2]]))
        tensor([0.3333])
    """
    image_size = None if size is None else _check_size(size)
    boxes1 = check_boxes(boxes1, "boxes1", image_size)
    boxes2 = check_boxes(boxes2, "boxes2", image_size)
    return _region_iou(boxes1, boxes2, 2, ("boxes1", "boxes2"))


def span_iou(spans1: Tensor, spans2: Tensor, length: int | None = None) -> Tensor:
    """Intersection over union of matching rows of two span sets, the 1-D :func:`box_iou`.

    ``span_iou(saliency_span(attr, threshold=0.9), spans)`` gives one IoU per row,
    :math:`(B,)`.

    Args:
        spans1: Spans :math:`(B, 2)` ``(start, end)``, ``end`` exclusive.
        spans2: Spans :math:`(B, 2)`.
        length: Optional series length; when given, spans must lie inside the series.

    Returns:
        IoU of shape :math:`(B,)`, in :math:`[0, 1]`.

    Raises:
        TypeError: If a span tensor is not a real tensor.
        ValueError: If shapes differ, a span is empty, not finite, or outside the series.

    Example:
        >>> import torch
        >>> span_iou(torch.tensor([[0, 4]]), torch.tensor([[2, 6]]))
        tensor([0.3333])
    """
    length = None if length is None else check_int(length, "length")
    spans1 = check_spans(spans1, "spans1", length)
    spans2 = check_spans(spans2, "spans2", length)
    return _region_iou(spans1, spans2, 1, ("spans1", "spans2"))


def _region_iou(r1: Tensor, r2: Tensor, ndim: int, names: tuple[str, str]) -> Tensor:
    """IoU of axis-aligned regions ``(lo..., hi...)`` along ``ndim`` axes, row by row."""
    if r1.shape != r2.shape:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must have the same shape (B, {2 * ndim}), got "
            f"{tuple(r1.shape)} and {tuple(r2.shape)}."
        )
    # at least float32: areas of 300-pixel boxes overflow float16
    dtype = torch.promote_types(torch.promote_types(r1.dtype, r2.dtype), torch.float32)
    r1, r2 = r1.to(dtype), r2.to(dtype=dtype, device=r1.device)
    lo = torch.maximum(r1[:, :ndim], r2[:, :ndim])
    hi = torch.minimum(r1[:, ndim:], r2[:, ndim:])
    inter = (hi - lo).clamp(min=0).prod(dim=1)
    area1 = (r1[:, ndim:] - r1[:, :ndim]).prod(dim=1)
    area2 = (r2[:, ndim:] - r2[:, :ndim]).prod(dim=1)
    return inter / (area1 + area2 - inter)


def pointing_game(
    attributions: Tensor,
    boxes: Tensor,
    tolerance: float = 0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pointing game (Zhang et al., 2016): is the most salient pixel (step) on the object?

    ``pointing_game(attr, boxes)`` gives one bool per map (spans :math:`(B, 2)` for series);
    ``.float().mean()`` is the pointing accuracy.

    A hit is scored when the pixel of maximum saliency (channels summed) is within
    ``tolerance`` pixels (Euclidean distance between pixel centres) of a pixel of the box.
    ``tolerance=0`` (the default, as in Quantus) requires the maximum inside the box;
    TorchRay uses 15. Ties for the maximum are broken by the same fixed pseudo-random
    permutation as :func:`insertion_auc`, so a constant map does not always point at the
    top-left corner. Series work the same way with spans: ``boxes`` of shape :math:`(B, 2)`
    are spans and the maps are :math:`(B, C, T)` or :math:`(B, T)`.

    Args:
        attributions: Saliency :math:`(B, C, H, W)`, :math:`(B, 1, H, W)` or :math:`(B, H, W)`
            with boxes; :math:`(B, C, T)` or :math:`(B, T)` with spans.
        boxes: Object boxes :math:`(B, 4)` ``(x1, y1, x2, y2)``, pixel-edge convention,
            inside the image; or evidence spans :math:`(B, 2)` ``(start, end)``.
        tolerance: Non-negative distance in pixels (steps).
        generator: Random generator for the tie-break permutation; a fixed seed by default.

    Returns:
        Boolean hits of shape :math:`(B,)`; ``.float().mean()`` is the pointing accuracy.

    Raises:
        TypeError: If ``attributions`` or ``boxes`` have the wrong type or dtype.
        ValueError: If shapes do not match, a box is empty or outside the image, the
            saliency holds NaN/inf, or ``tolerance`` is negative.

    Example:
        >>> import torch
        >>> attr = torch.zeros(2, 4, 4)
        >>> attr[0, 1, 1] = 1.0  # inside the box
        >>> attr[1, 3, 3] = 1.0  # outside, two pixels away
        >>> boxes = torch.tensor([[0, 0, 2, 2], [0, 0, 2, 2]])
        >>> pointing_game(attr, boxes)
        tensor([ True, False])
        >>> pointing_game(attr, boxes, tolerance=3)
        tensor([True, True])
        >>> series = torch.zeros(1, 6, 10)  # 6 channels: the peak is found after summing them
        >>> series[0, 4, 7] = 1.0
        >>> pointing_game(series, torch.tensor([[6, 9]]))
        tensor([True])
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
        raise TypeError(f"`tolerance` must be a float, got {type(tolerance).__name__}.")
    if not tolerance >= 0 or not math.isfinite(tolerance):
        raise ValueError(f"`tolerance` must be a non-negative finite number, got {tolerance}.")
    regions = check_tensor(boxes, "boxes")
    if regions.ndim == 2 and regions.shape[1] == 2:  # spans: a series map
        saliency = _series_saliency(attributions, "attributions")
        mask = span_to_mask(regions, saliency.shape[1])
    else:
        saliency = aggregate_saliency(attributions, None, "attributions")
        mask = box_to_mask(regions, tuple(saliency.shape[1:]))
    mask = mask.to(saliency.device)
    batch, spatial = saliency.shape[0], saliency.shape[1:]
    if mask.shape[0] != batch:
        raise ValueError(
            f"`boxes` must have one box per map (one span per series), "
            f"({batch}, {regions.shape[-1]}), got {tuple(regions.shape)}."
        )
    top = descending_order(saliency.flatten(1), generator)[:, 0]
    grids = torch.meshgrid(
        *(torch.arange(n, device=saliency.device) for n in spatial), indexing="ij"
    )
    peak = torch.unravel_index(top, tuple(spatial))
    distance2 = sum(
        (g.unsqueeze(0) - p.reshape(-1, *([1] * len(spatial)))) ** 2
        for g, p in zip(grids, peak, strict=True)
    )
    return ((distance2 <= tolerance**2) & mask).flatten(1).any(dim=1)
