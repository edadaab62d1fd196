r"""ROAD: Remove And Debias (Rong et al., 2022, "A Consistent and Efficient Evaluation Strategy
for Attribution Methods", ICML).

Deleting pixels by setting them to a constant leaves the shape of the deleted region in the
image, and a model can read that shape: the score then says where the map pointed, not what
the model needed. ROAD removes a fraction of the pixels and fills them by *noisy linear
imputation*: every removed pixel takes the weighted mean of its neighbours (kept or removed),
so the filled region continues the image smoothly and carries little information about its
outline, and a little Gaussian noise is added to the filled values. The model's confidence in
the target is recorded at each fraction, removing the most relevant pixels first (MoRF, lower
is better) or the least relevant first (LeRF, higher is better).

The imputation is a sparse linear system, one per image, channel and removal mask: for a
removed pixel :math:`u` with in-image neighbours :math:`j` and weights :math:`w_{uj}`
(:math:`1/6` for the four direct neighbours of an image pixel and :math:`1/12` for the four
diagonal ones, :math:`1/2` for the two neighbours of a time step),

.. math:: \Big(\sum_j w_{uj}\Big)\, x_u - \sum_{j\ \mathrm{removed}} w_{uj}\, x_j
          = \sum_{j\ \mathrm{kept}} w_{uj}\, v_j ,

where :math:`v` are the kept values. The matrix is symmetric and positive definite whenever
each connected removed region touches a kept pixel; it is solved without forming it, by
conjugate gradients with a diagonal preconditioner, every system of a chunk at once on the
inputs' device (a convolution per iteration).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_perturbmask._core.captum_compat import TargetType
from captum_perturbmask._core.checks import (
    aggregate_saliency,
    check_batch_inputs,
    check_choice,
    check_float,
    check_int,
)
from captum_perturbmask._core.forward import ConfidenceType, TargetForward
from captum_perturbmask._core.ranking import rank_map

__all__ = ["ROAD", "ROAD_FRACTIONS", "noisy_linear_imputation", "road"]

#: Fractions of removed pixels at which :func:`~.road` scores the model (10% to 90%).
ROAD_FRACTIONS = tuple(round(0.1 * k, 1) for k in range(1, 10))
ORDERS = ("both", "morf", "lerf")
#: Relative residual at which the conjugate gradients stop early.
_RTOL = 1e-6
#: Iterations between two checks of the residual (each check is one host sync).
_CHECK_EVERY = 16


class ROAD(NamedTuple):
    """Result of :func:`road`.

    Attributes:
        morf: Normalised area under the MoRF curve (most relevant removed first), :math:`(B,)`;
            lower is better. ``None`` unless ``order`` is ``"morf"`` or ``"both"``.
        lerf: Normalised area under the LeRF curve (least relevant removed first),
            :math:`(B,)`; higher is better. ``None`` unless ``order`` is ``"lerf"`` or
            ``"both"``.
        morf_curve: Confidence at each fraction, :math:`(B, F)`, or ``None``.
        lerf_curve: Confidence at each fraction, :math:`(B, F)`, or ``None``.
        fractions: The fractions of removed pixels, :math:`(F,)`.
    """

    morf: Tensor | None
    lerf: Tensor | None
    morf_curve: Tensor | None
    lerf_curve: Tensor | None
    fractions: Tensor


def _neighbour_kernel(spatial_dims: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Weights of the neighbours (centre zero): 1/6 direct and 1/12 diagonal on images, 1/2 on
    series; shaped as a depthwise convolution kernel with one channel."""
    if spatial_dims == 2:
        kernel = torch.tensor(
            [[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]],
            dtype=dtype,
            device=device,
        )
    else:
        kernel = torch.tensor([0.5, 0.0, 0.5], dtype=dtype, device=device)
    return kernel[None, None]


def _neighbour_sum(x: Tensor, kernel: Tensor) -> Tensor:
    """:math:`\\sum_j w_{uj} x_j` at every position (neighbours outside the image count 0)."""
    n, c = x.shape[:2]
    flat = x.reshape(n * c, 1, *x.shape[2:])
    conv = F.conv2d if x.dim() == 4 else F.conv1d
    return conv(flat, kernel, padding=1).reshape(x.shape)


def noisy_linear_imputation(
    inputs: Tensor,
    removed: Tensor,
    *,
    noise: float = 0.01,
    n_iter: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill the ``removed`` pixels of ``inputs`` by noisy linear imputation (ROAD).

    ``filled = noisy_linear_imputation(x, removed)``: kept pixels are unchanged, every removed
    pixel is the weighted mean of its neighbours (see
    :mod:`captum_perturbmask.metrics.remove_and_debias`), plus Gaussian noise of standard
    deviation ``noise``. Channels are filled independently with the same mask. A removed
    region with no kept pixel anywhere in its image is filled with zeros (plus noise).

    Args:
        inputs: Images :math:`(N, C, H, W)` or series :math:`(N, C, T)`, floating point.
        removed: Boolean mask of the pixels to fill, :math:`(N, H, W)` or :math:`(N, T)`.
        noise: Standard deviation of the noise added to the filled pixels (0: none).
        n_iter: Most conjugate-gradient iterations; default ``2 * max(H, W) + 20`` (enough
            for the residual to drop below :math:`10^{-6}` of its start on smooth holes); the
            iterations stop earlier when every system has converged (checked every 16).
        generator: Random generator of the noise (on the inputs' device or the CPU); default
            a fixed seed, so results are deterministic.

    Returns:
        The filled inputs, the shape and dtype of ``inputs``.

    Raises:
        TypeError: ``inputs`` is not a floating-point tensor or ``removed`` not a boolean one.
        ValueError: a shape does not match, or ``noise`` is negative.

    Example:
        >>> import torch
        >>> x = torch.tensor([[[1.0, 0.0, 3.0]]])  # one series, one channel, three steps
        >>> removed = torch.tensor([[False, True, False]])
        >>> noisy_linear_imputation(x, removed, noise=0.0)  # the mean of its two neighbours
        tensor([[[1., 2., 3.]]])
    """
    inputs = check_batch_inputs(inputs)
    if not isinstance(removed, Tensor) or removed.dtype != torch.bool:
        what = f"a {removed.dtype} tensor" if isinstance(removed, Tensor) else type(removed)
        raise TypeError(f"`removed` must be a boolean tensor, got {what}.")
    expected = (inputs.shape[0], *inputs.shape[2:])
    if tuple(removed.shape) != expected:
        raise ValueError(
            f"`removed` must have shape {expected} for inputs {tuple(inputs.shape)}, got "
            f"{tuple(removed.shape)}."
        )
    noise = check_float(noise, "noise", 0.0)
    spatial = inputs.shape[2:]
    n_iter = 2 * max(spatial) + 20 if n_iter is None else check_int(n_iter, "n_iter")
    work = torch.float64 if inputs.dtype == torch.float64 else torch.float32
    x0 = inputs.to(work)
    kernel = _neighbour_kernel(len(spatial), work, inputs.device)
    unknown = removed.to(device=inputs.device, dtype=work).unsqueeze(1).expand_as(x0)
    known = 1.0 - unknown
    dims = tuple(range(2, x0.dim()))
    degree = _neighbour_sum(torch.ones_like(x0[:, :1]), kernel).expand_as(x0).clamp_min(1e-12)
    b = unknown * _neighbour_sum(known * x0, kernel)

    def apply(p: Tensor) -> Tensor:  # the matrix on the removed pixels (p is zero elsewhere)
        return unknown * (degree * p - _neighbour_sum(p, kernel))

    # start from each image-channel's mean kept value: large holes converge from there
    kept = known.sum(dims, keepdim=True)
    start = (known * x0).sum(dims, keepdim=True) / kept.clamp_min(1)
    x = unknown * start
    r = b - apply(x)
    z = r / degree
    p = z
    rz = (r * z).sum(dims, keepdim=True)
    stop = rz * _RTOL**2
    for it in range(n_iter):
        ap = apply(p)
        pap = (p * ap).sum(dims, keepdim=True)
        alpha = torch.where(pap > 0, rz / pap.clamp_min(1e-300), torch.zeros_like(pap))
        x = x + alpha * p
        r = r - alpha * ap
        z = r / degree
        rz_new = (r * z).sum(dims, keepdim=True)
        beta = torch.where(rz > 0, rz_new / rz.clamp_min(1e-300), torch.zeros_like(rz))
        p = z + beta * p
        rz = rz_new
        if (it + 1) % _CHECK_EVERY == 0 and not bool((rz > stop).any()):
            break
    filled = known * x0 + unknown * x
    if noise > 0:
        if generator is None:
            generator = torch.Generator(device=inputs.device).manual_seed(0)
        draw = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=work)
        filled = filled + unknown * noise * draw.to(inputs.device)
    return filled.to(inputs.dtype)


def _check_fractions(fractions: object) -> tuple[float, ...]:
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence):
        raise TypeError(
            f"`fractions` must be a sequence of floats in [0, 1], got {type(fractions).__name__}."
        )
    values = tuple(check_float(f, "fractions", 0.0, 1.0) for f in fractions)
    if not values or any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(
            f"`fractions` must be a non-empty increasing sequence in [0, 1], got {values}."
        )
    return values


def road(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    *,
    fractions: Sequence[float] = ROAD_FRACTIONS,
    order: str = "both",
    noise: float = 0.01,
    n_iter: int | None = None,
    batch_size: int = 64,
    confidence: ConfidenceType = "auto",
    generator: torch.Generator | None = None,
) -> ROAD:
    r"""ROAD curves and areas: the model's confidence as pixels are removed and imputed.

    ``res = road(model, x, attr, target=y)``: ``res.morf`` (lower is better) and ``res.lerf``
    (higher is better), one value per input, with the curves in ``res.morf_curve`` and
    ``res.lerf_curve``.

    At each fraction :math:`f` of ``fractions`` the :math:`\mathrm{round}(f N)` most salient
    (MoRF) or least salient (LeRF) of the :math:`N` pixels (time steps) are removed, filled
    by :func:`noisy_linear_imputation`, and the confidence in the target is recorded. The
    area is the trapezoid rule over the fractions divided by their span (the mean confidence
    along the curve; the value itself with one fraction). No retraining is involved (the
    paper's "ROAD without retraining").

    Args:
        forward_func: Model or function mapping a batch :math:`(N, C, *S)` (plus
            ``additional_forward_args``) to outputs :math:`(N, K)` (or :math:`(N,)`).
        inputs: Images :math:`(B, C, H, W)` or time series :math:`(B, C, T)`, floating point.
        attributions: Saliency with the shape of ``inputs``, or :math:`(B, 1, *S)` or
            :math:`(B, *S)`; channels are summed.
        target: Output index to score, in Captum's conventions; ``None`` uses the predicted
            class (or the single output).
        additional_forward_args: Extra arguments of ``forward_func``; tensors with batch size
            :math:`B` on dim 0 follow their input.
        fractions: Increasing fractions of removed pixels in :math:`[0, 1]` (default 10% to
            90% in steps of 10%, as in the paper).
        order: ``"morf"``, ``"lerf"`` or ``"both"``.
        noise: Standard deviation of the imputation noise, in input units.
        n_iter: Most conjugate-gradient iterations of the imputation (see
            :func:`noisy_linear_imputation`).
        batch_size: Rows (removed-and-imputed inputs) per imputation and forward pass.
        confidence: How outputs become the scored confidence (``"auto"``: softmax over dim 1
            for several classes, sigmoid for one logit; the rule of the other metrics).
        generator: Random generator of the imputation noise and of the tie-breaking of equal
            saliency values; default fixed seeds, so results are deterministic.

    Returns:
        A :class:`ROAD` named tuple ``(morf, lerf, morf_curve, lerf_curve, fractions)``.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: ``attributions`` that do not match ``inputs``, bad ``fractions`` or
            ``order``, or a ``target`` that does not fit the batch.

    Example:
        >>> import torch
        >>> def left(x):  # one score per input: the mean of the left half
        ...     return x[..., :2].mean(dim=(1, 2))
        >>> x = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
        >>> attr = torch.tensor([[[4.0, 3.0, 2.0, 1.0]]])  # the left half matters
        >>> res = road(left, x, attr, fractions=(0.5,), noise=0.0, confidence="identity")
        >>> print(f"MoRF {res.morf.item():.3f}, LeRF {res.lerf.item():.3f}")
        MoRF 0.000, LeRF 1.000
    """
    inputs = check_batch_inputs(inputs)
    saliency = aggregate_saliency(attributions, inputs.shape, "attributions")
    values = _check_fractions(fractions)
    order = check_choice(order, "order", ORDERS)
    batch_size = check_int(batch_size, "batch_size")
    noise = check_float(noise, "noise", 0.0)
    device = inputs.device
    batch, spatial = inputs.shape[0], inputs.shape[2:]
    n_pixels = math.prod(spatial)
    counts = torch.tensor([round(f * n_pixels) for f in values], device=device)
    ranks = rank_map(saliency.reshape(batch, n_pixels).to(device), generator)
    orders = [o for o in ("morf", "lerf") if order in (o, "both")]
    is_lerf = torch.tensor([o == "lerf" for o in orders], device=device)
    noise_gen = generator
    if noise_gen is None:
        noise_gen = torch.Generator(device=device).manual_seed(0)
    n_fracs = len(values)
    runner = TargetForward(forward_func, batch, target, additional_forward_args, confidence)
    with torch.no_grad():
        runner.resolve((inputs,))
        n_rows = len(orders) * batch * n_fracs
        scores = []
        for r0 in range(0, n_rows, batch_size):
            rows = torch.arange(r0, min(r0 + batch_size, n_rows), device=device)
            k = rows % n_fracs
            b = (rows // n_fracs) % batch
            lerf = is_lerf[rows // (n_fracs * batch)].unsqueeze(1)
            rank, count = ranks[b], counts[k].unsqueeze(1)
            removed = torch.where(lerf, rank >= n_pixels - count, rank < count)
            filled = noisy_linear_imputation(
                inputs[b],
                removed.reshape(-1, *spatial),
                noise=noise,
                n_iter=n_iter,
                generator=noise_gen,
            )
            scores.append(runner((filled,), b))
    curves = torch.cat(scores).reshape(len(orders), batch, n_fracs)
    if not bool(torch.isfinite(curves).all()):
        raise ValueError("`forward_func` returned NaN or infinite outputs on imputed inputs")
    grid = torch.tensor(values, dtype=curves.dtype, device=curves.device)
    if n_fracs > 1:
        areas = torch.trapezoid(curves, x=grid, dim=-1) / (values[-1] - values[0])
    else:
        areas = curves[..., 0]
    out: dict[str, Tensor | None] = {"morf": None, "lerf": None}
    curve: dict[str, Tensor | None] = {"morf": None, "lerf": None}
    for i, name in enumerate(orders):
        out[name], curve[name] = areas[i], curves[i]
    return ROAD(out["morf"], out["lerf"], curve["morf"], curve["lerf"], grid)
