"""Insertion and deletion AUC (Petsiuk et al., 2018, "RISE", BMVC).

Every step of every image is built on the fly from one rank map (``rank < pixels_at_step``)
and sent through the model in chunks of ``batch_size`` rows; nothing loops over pixels and
nothing waits on the device between chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any, NamedTuple

import torch
from torch import Tensor

from captum_perturbmask._core.captum_compat import TargetType
from captum_perturbmask._core.checks import (
    aggregate_saliency,
    check_batch_inputs,
    check_finite,
    check_finite_scalar,
    check_int,
)
from captum_perturbmask._core.forward import ConfidenceType, TargetForward
from captum_perturbmask._core.ops import blur
from captum_perturbmask._core.ranking import rank_map

__all__ = ["InsertionDeletion", "deletion_auc", "insertion_auc", "insertion_deletion"]


class InsertionDeletion(NamedTuple):
    """Result of :func:`insertion_deletion`.

    Attributes:
        insertion: Insertion AUC of each input, shape :math:`(B,)` (higher is better).
        deletion: Deletion AUC of each input, shape :math:`(B,)` (lower is better).
        insertion_curve: Scores along the insertion path, :math:`(B, n\\_steps + 1)`, or
            ``None`` unless ``return_curves=True``.
        deletion_curve: Scores along the deletion path, :math:`(B, n\\_steps + 1)`, or ``None``.
        fractions: Fraction of pixels inserted / deleted at each point,
            :math:`(n\\_steps + 1,)`, from 0 to 1 (the x-axis of the curves).
    """

    insertion: Tensor
    deletion: Tensor
    insertion_curve: Tensor | None
    deletion_curve: Tensor | None
    fractions: Tensor


def _reference(value: object, inputs: Tensor, name: str) -> Tensor:
    """Broadcast a scalar / tensor baseline (or substrate) to the shape of ``inputs``."""
    if isinstance(value, Real) and not isinstance(value, bool):
        return torch.full_like(inputs, check_finite_scalar(value, name))
    if not isinstance(value, Tensor):
        raise TypeError(
            f"`{name}` must be None, a float or a torch.Tensor, got {type(value).__name__}."
        )
    if value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"`{name}` must be a real-valued tensor, got dtype {value.dtype}.")
    try:
        shape = torch.broadcast_shapes(value.shape, inputs.shape)
    except RuntimeError:
        shape = None
    if shape != inputs.shape:
        raise ValueError(
            f"`{name}` must broadcast to the inputs' shape {tuple(inputs.shape)}, "
            f"got shape {tuple(value.shape)}."
        )
    value = value.to(device=inputs.device, dtype=inputs.dtype)
    check_finite(value, name)
    return value.expand_as(inputs)


def _substrate(substrate: object, inputs: Tensor, kernel_size: object, sigma: object) -> Tensor:
    """The start of the insertion path (see ``insertion_auc``'s ``substrate``)."""
    if substrate is None:
        substrate = "blur" if inputs.ndim == 4 else 0.0
    if isinstance(substrate, str):
        if substrate != "blur":
            raise ValueError(f"`substrate` as a string must be 'blur', got {substrate!r}.")
        return blur(inputs, kernel_size, sigma)
    return _reference(substrate, inputs, "substrate")


def _pixel_counts(
    n_pixels: int, n_steps: object, step_size: object, device: torch.device, series: bool
) -> Tensor:
    """Number of pixels moved after each step, :math:`(n\\_steps + 1,)`, from 0 to ``n_pixels``."""
    if n_steps is not None and step_size is not None:
        raise ValueError(
            f"Give at most one of `n_steps` and `step_size`, got n_steps={n_steps} and "
            f"step_size={step_size}."
        )
    if n_steps is not None:
        n_steps = check_int(n_steps, "n_steps")
        if n_steps > n_pixels:
            raise ValueError(
                f"`n_steps` must be at most the number of pixels per input ({n_pixels}), "
                f"got {n_steps}."
            )
        return torch.arange(n_steps + 1, device=device) * n_pixels // n_steps
    if step_size is None:
        # images: the RISE reference, sqrt(N) pixels per step; series: about 100 steps
        step_size = math.ceil(n_pixels / 100) if series else math.ceil(math.sqrt(n_pixels))
    step_size = check_int(step_size, "step_size")
    steps = math.ceil(n_pixels / step_size)
    return (torch.arange(steps + 1, device=device) * step_size).clamp_(max=n_pixels)


def _perturbation_curves(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    saliency: Tensor,
    starts: Tensor,
    ends: Tensor,
    target: TargetType,
    additional_forward_args: Any,
    n_steps: object,
    step_size: object,
    batch_size: object,
    confidence: ConfidenceType,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Scores along ``M`` pixel-moving paths.

    Row ``(m, b, k)`` takes the ``counts[k]`` most salient pixels of input ``b`` from
    ``ends[m, b]`` and the rest from ``starts[m, b]``.

    Returns:
        AUCs :math:`(M, B)`, curves :math:`(M, B, K)` and fractions :math:`(K,)`.
    """
    batch_size = check_int(batch_size, "batch_size")
    device = inputs.device
    batch, spatial = inputs.shape[0], inputs.shape[2:]
    n_pixels = math.prod(spatial)
    counts = _pixel_counts(n_pixels, n_steps, step_size, device, inputs.ndim == 3)
    n_points = counts.numel()
    ranks = rank_map(saliency.reshape(batch, n_pixels), generator).reshape(batch, *spatial)
    thresholds = counts.reshape(-1, *([1] * len(spatial)))

    runner = TargetForward(forward_func, batch, target, additional_forward_args, confidence)
    with torch.no_grad():
        runner.resolve((inputs,))
        n_modes = starts.shape[0]
        n_rows = n_modes * batch * n_points
        scores = []
        for r0 in range(0, n_rows, batch_size):
            r1 = min(r0 + batch_size, n_rows)
            rows = torch.arange(r0, r1, device=device)
            k = rows % n_points
            b = (rows // n_points) % batch
            m = rows // (n_points * batch)
            mask = (ranks[b] < thresholds[k]).unsqueeze(1)
            x = torch.where(mask, ends[m, b], starts[m, b])
            scores.append(runner((x,), b))
    curves = torch.cat(scores).reshape(n_modes, batch, n_points)
    if not bool(torch.isfinite(curves).all()):
        raise ValueError(
            "`forward_func` returned NaN or infinite outputs on some inserted/deleted inputs"
        )
    fractions = counts.to(curves.dtype) / n_pixels
    return torch.trapezoid(curves, x=fractions, dim=-1), curves, fractions


_SHARED_DOC = """
        forward_func: Model or function mapping a batch :math:`(N, C, *S)` (plus
            ``additional_forward_args``) to outputs :math:`(N, K)` (or :math:`(N,)`).
        inputs: Images :math:`(B, C, H, W)` or time series :math:`(B, C, T)`, floating point.
        attributions: Saliency with the shape of ``inputs``, or :math:`(B, 1, *S)` or
            :math:`(B, *S)`. Channels are summed, so all channels of a pixel move together.
        target: Output index to score, in Captum's conventions (int, tuple, tensor of shape
            :math:`(B,)`, list of length :math:`B`). ``None`` uses the class the model
            predicts for each clean input (one extra forward pass of the :math:`B` inputs); for
            a model with one output per input, ``None`` scores that output.
        additional_forward_args: Extra arguments of ``forward_func``; tensors with batch size
            :math:`B` on dim 0 are repeated for every step of their input.
        n_steps: Number of steps; the curve has ``n_steps + 1`` points, both ends included,
            with ``floor(k * N / n_steps)`` pixels moved after step ``k``.
        step_size: Pixels (time steps) moved per step, the last step may be partial.
            Give at most one of ``n_steps`` and ``step_size``; the default is
            ``ceil(sqrt(N))`` pixels per step on images (224 on 224 x 224 images, the RISE
            reference) and ``ceil(T / 100)`` steps per step on series (about 100 points).
        batch_size: Rows per forward pass.
        confidence: How outputs become the scored confidence: ``"auto"`` (softmax over dim 1
            for several classes, sigmoid for one logit per input), ``"softmax"``,
            ``"sigmoid"``, ``"identity"`` (the raw output) or a callable; the same rule as the
            attribution methods.
        return_curves: Also return the scores at every step.
        generator: Random generator for the permutation that breaks saliency ties; by
            default a fixed seed, so results are deterministic and a constant map gets a
            chance-level score rather than one set by pixel order."""


def _paths(
    kinds: tuple[str, ...],
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType,
    additional_forward_args: Any,
    n_steps: int | None,
    step_size: int | None,
    batch_size: int,
    confidence: ConfidenceType,
    generator: torch.Generator | None,
    *,
    baselines: float | Tensor | None = None,
    substrate: float | str | Tensor | None = None,
    blur: tuple[int, float] = (11, 5.0),
) -> tuple[Tensor, Tensor, Tensor]:
    """AUCs, curves and fractions of the ``kinds`` paths ("insertion": substrate -> input,
    "deletion": input -> baselines), sharing ranks and forward batches."""
    inputs = check_batch_inputs(inputs)
    saliency = aggregate_saliency(attributions, inputs.shape, "attributions")
    starts, ends = [], []
    if "insertion" in kinds:
        starts.append(_substrate(substrate, inputs, *blur))
        ends.append(inputs)
    if "deletion" in kinds:
        reference = torch.zeros_like(inputs) if baselines is None else baselines
        starts.append(inputs)
        ends.append(_reference(reference, inputs, "baselines"))
    return _perturbation_curves(
        forward_func, inputs, saliency, torch.stack(starts), torch.stack(ends), target,
        additional_forward_args, n_steps, step_size, batch_size, confidence, generator,
    )  # fmt: skip


def deletion_auc(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    baselines: float | Tensor | None = None,
    n_steps: int | None = None,
    step_size: int | None = None,
    batch_size: int = 64,
    confidence: ConfidenceType = "auto",
    return_curves: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Deletion AUC: the area under the target score as the most salient pixels are removed.

    ``deletion_auc(model, x, attr, target=y)`` gives one AUC per input, shape :math:`(B,)`;
    lower is better.

    Starting from the input, pixels are replaced by ``baselines`` in order of descending
    saliency, ``N = H * W`` (or ``T``) pixels in total; the score after each step is
    integrated with the trapezoid rule over the fraction of pixels deleted, :math:`[0, 1]`.
    Lower is better.

    Args:{shared}
        baselines: Value that replaces deleted pixels: ``None`` (zeros), a float, or a
            tensor broadcastable to ``inputs`` (e.g. a per-channel mean :math:`(C, 1, 1)`).

    Returns:
        AUC per input, shape :math:`(B,)`; with ``return_curves=True`` the tuple
        ``(auc, curves)`` with curves of shape :math:`(B, n\\_steps + 1)`.

    Raises:
        TypeError: If an argument has the wrong type or dtype.
        ValueError: If ``attributions`` do not match ``inputs``, hold NaN/inf, a step
            argument is not positive, or ``target`` does not fit the batch.

    Example:
        >>> import torch
        >>> def mean_model(x):  # one score per input: the mean pixel value
        ...     return x.mean(dim=(1, 2, 3))
        >>> x = torch.ones(1, 1, 2, 2)
        >>> attr = torch.tensor([[[[4.0, 3.0], [2.0, 1.0]]]])
        >>> auc, curve = deletion_auc(mean_model, x, attr, n_steps=4, confidence="identity",
        ...                           return_curves=True)
        >>> curve
        tensor([[1.0000, 0.7500, 0.5000, 0.2500, 0.0000]])
        >>> auc
        tensor([0.5000])
    """
    auc, curves, _ = _paths(
        ("deletion",), forward_func, inputs, attributions, target, additional_forward_args,
        n_steps, step_size, batch_size, confidence, generator, baselines=baselines,
    )  # fmt: skip
    return (auc[0], curves[0]) if return_curves else auc[0]


def insertion_auc(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    substrate: float | str | Tensor | None = None,
    blur_kernel_size: int = 11,
    blur_sigma: float = 5.0,
    n_steps: int | None = None,
    step_size: int | None = None,
    batch_size: int = 64,
    confidence: ConfidenceType = "auto",
    return_curves: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Insertion AUC: the area under the target score as the most salient pixels are restored.

    ``insertion_auc(model, x, attr, target=y)`` gives one AUC per input, shape :math:`(B,)`;
    higher is better.

    Starting from ``substrate`` (by default a Gaussian blur of the input, as in the RISE
    reference evaluation), original pixels are restored in order of descending saliency; the
    score after each step is integrated with the trapezoid rule over the fraction of pixels
    inserted, :math:`[0, 1]`. Higher is better.

    Args:{shared}
        substrate: Start of the insertion path: ``None`` for the default — a Gaussian blur
            of images (the RISE reference) and zeros for series (a blur keeps a smooth
            series' shape, so every map, a random one included, would score the same; zero is
            the mean of a standardised series) —, ``"blur"`` for a Gaussian blur
            (``torchvision`` ``gaussian_blur``, reflect padding; 1-D along time for series),
            a float, or a tensor broadcastable to ``inputs``.
        blur_kernel_size: Odd size of the blur kernel; shrunk to ``2 * min(H, W) - 1`` on
            tiny inputs.
        blur_sigma: Standard deviation of the blur, in pixels.

    Returns:
        AUC per input, shape :math:`(B,)`; with ``return_curves=True`` the tuple
        ``(auc, curves)`` with curves of shape :math:`(B, n\\_steps + 1)`.

    Raises:
        TypeError: If an argument has the wrong type or dtype.
        ValueError: If ``attributions`` do not match ``inputs``, hold NaN/inf, a step
            argument is not positive, or ``target`` does not fit the batch.

    Example:
        >>> import torch
        >>> def mean_model(x):
        ...     return x.mean(dim=(1, 2, 3))
        >>> x = torch.ones(1, 1, 2, 2)
        >>> attr = torch.tensor([[[[4.0, 3.0], [2.0, 1.0]]]])
        >>> insertion_auc(mean_model, x, attr, substrate=0.0, n_steps=2, confidence="identity")
        tensor([0.5000])
    """
    auc, curves, _ = _paths(
        ("insertion",), forward_func, inputs, attributions, target, additional_forward_args,
        n_steps, step_size, batch_size, confidence, generator, substrate=substrate,
        blur=(blur_kernel_size, blur_sigma),
    )  # fmt: skip
    return (auc[0], curves[0]) if return_curves else auc[0]


def insertion_deletion(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    baselines: float | Tensor | None = None,
    substrate: float | str | Tensor | None = None,
    blur_kernel_size: int = 11,
    blur_sigma: float = 5.0,
    n_steps: int | None = None,
    step_size: int | None = None,
    batch_size: int = 64,
    confidence: ConfidenceType = "auto",
    return_curves: bool = False,
    generator: torch.Generator | None = None,
) -> InsertionDeletion:
    """Insertion and deletion AUC in one pass over the model (shared ranks and batches).

    ``res = insertion_deletion(model, x, attr, target=y)``: ``res.insertion`` (higher is
    better) and ``res.deletion`` (lower is better), each of shape :math:`(B,)`.

    Same as :func:`insertion_auc` and :func:`deletion_auc` with the same arguments, but the
    rows of both paths share forward batches, so the last batch is less often short.

    Args:{shared}
        baselines: Deletion value, see :func:`deletion_auc`.
        substrate: Insertion start image, see :func:`insertion_auc`.
        blur_kernel_size: Odd size of the insertion blur kernel.
        blur_sigma: Standard deviation of the insertion blur, in pixels.

    Returns:
        An :class:`InsertionDeletion` named tuple ``(insertion, deletion, insertion_curve,
        deletion_curve, fractions)``; AUCs have shape :math:`(B,)`, curves
        :math:`(B, n\\_steps + 1)` (``None`` unless ``return_curves=True``).

    Raises:
        TypeError: If an argument has the wrong type or dtype.
        ValueError: If ``attributions`` do not match ``inputs``, hold NaN/inf, a step
            argument is not positive, or ``target`` does not fit the batch.

    Example:
        >>> import torch
        >>> def mean_model(x):
        ...     return x.mean(dim=(1, 2, 3))
        >>> x = torch.ones(1, 1, 2, 2)
        >>> attr = torch.tensor([[[[4.0, 3.0], [2.0, 1.0]]]])
        >>> res = insertion_deletion(mean_model, x, attr, substrate=0.0, n_steps=4,
        ...                          confidence="identity")
        >>> res.insertion, res.deletion, res.fractions
        (tensor([0.5000]), tensor([0.5000]), tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000]))
    """
    auc, curves, fractions = _paths(
        ("insertion", "deletion"), forward_func, inputs, attributions, target,
        additional_forward_args, n_steps, step_size, batch_size, confidence, generator,
        baselines=baselines, substrate=substrate, blur=(blur_kernel_size, blur_sigma),
    )  # fmt: skip
    return InsertionDeletion(
        insertion=auc[0],
        deletion=auc[1],
        insertion_curve=curves[0] if return_curves else None,
        deletion_curve=curves[1] if return_curves else None,
        fractions=fractions,
    )


for _fn in (deletion_auc, insertion_auc, insertion_deletion):
    if _fn.__doc__:  # None under python -OO
        _fn.__doc__ = _fn.__doc__.replace("{shared}", _SHARED_DOC)
del _fn
