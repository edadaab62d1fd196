"""Plumbing shared by the perturbation methods: inputs, baselines, feature masks, mixing.

Everything here is private. Inputs arrive as Captum does it (tensor or tuple of tensors) and
leave as tuples of checked tensors; the model itself is only ever called through
:mod:`captum_perturbmask._core.forward`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from captum_perturbmask._core.captum_compat import _format_tensor_into_tuples
from captum_perturbmask._core.ops import blur

CHANNELS_LAST = torch.channels_last


def check_inputs(inputs: tuple[Tensor, ...]) -> list[tuple[Tensor, BaseException]]:
    """Validate a formatted tuple of input tensors (type, dtype, shape, batch, device).

    Returns:
        ``(flag, error)`` pairs for the finiteness of each input, decided on the device with
        the other checks of the clean pass (one host synchronisation per call).
    """
    if len(inputs) == 0:
        raise ValueError("`inputs` must contain at least one tensor, got an empty tuple")
    batch = None
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"`inputs[{i}]` must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(
                f"`inputs[{i}]` must be a floating-point tensor (half, bfloat16, float or "
                f"double), got {x.dtype}"
            )
        if x.dim() < 2:
            raise ValueError(
                f"`inputs[{i}]` must have a batch dimension and at least one feature "
                f"dimension, e.g. (B, C, H, W), (B, C, T) or (B, F); got shape {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"`inputs[{i}]` is an empty batch (shape {tuple(x.shape)})")
        if batch is None:
            batch = x.shape[0]
        elif x.shape[0] != batch:
            raise ValueError(
                f"all `inputs` must share the batch size; inputs[0] has {batch}, "
                f"inputs[{i}] has {x.shape[0]}"
            )
    if len({x.device for x in inputs}) > 1:
        raise ValueError("all `inputs` must be on the same device")
    return [
        (~torch.isfinite(x).all(), ValueError(f"`inputs[{i}]` contains NaN or infinite values"))
        for i, x in enumerate(inputs)
    ]


def format_baselines(
    baselines: Any,
    inputs: tuple[Tensor, ...],
    blur_kernel_size: int = 11,
    blur_sigma: float = 5.0,
    checks: list[tuple[Tensor, BaseException]] | None = None,
) -> tuple[Tensor, ...]:
    """Turn Captum-style ``baselines`` into tensors that broadcast to each input.

    Accepts ``None`` (zeros), a real finite scalar, a tensor of the input's shape, of its shape
    without the batch dimension or with batch size 1 (any shape that broadcasts to it), the
    string ``"blur"`` (a Gaussian blur of the input, the insertion metric's substrate), or a
    tuple of those, one per input tensor. Returns one tensor of shape ``(1 or B, *sample)`` per
    input, in the input's dtype and device. Tensor baselines are checked to be finite on the
    device: the ``(flag, error)`` pair is appended to ``checks`` when given (decided later
    with the other checks), else decided at once.
    """
    n = len(inputs)
    if baselines is None or not isinstance(baselines, tuple):
        baselines = (baselines,) * n
    if len(baselines) != n:
        raise ValueError(
            f"`baselines` must have one entry per input tensor ({n}), got {len(baselines)}"
        )
    return tuple(
        _one_baseline(b, x, i, blur_kernel_size, blur_sigma, checks)
        for i, (b, x) in enumerate(zip(baselines, inputs, strict=True))
    )


def _one_baseline(
    b: Any,
    x: Tensor,
    i: int,
    kernel_size: int,
    sigma: float,
    checks: list[tuple[Tensor, BaseException]] | None,
) -> Tensor:
    name = f"baselines[{i}]" if i else "baselines"
    if b is None:
        return torch.zeros((1,) + x.shape[1:], dtype=x.dtype, device=x.device)
    if isinstance(b, str):
        if b != "blur":
            raise ValueError(f"`{name}` as a string must be 'blur', got {b!r}")
        if x.dim() not in (3, 4):
            raise ValueError(
                f"'blur' baselines need (B, C, H, W) or (B, C, T) inputs, got shape "
                f"{tuple(x.shape)}"
            )
        return blur(x, kernel_size, sigma)
    if isinstance(b, bool) or (isinstance(b, Tensor) and (b.dtype == torch.bool or b.is_complex())):
        raise TypeError(
            f"`{name}` must be real numbers, got {b if isinstance(b, bool) else b.dtype}"
        )
    if isinstance(b, Real):
        if not math.isfinite(float(b)):
            raise ValueError(f"`{name}` must be finite, got {b}")
        return torch.full((1,) + x.shape[1:], float(b), dtype=x.dtype, device=x.device)
    if not isinstance(b, Tensor):
        raise TypeError(
            f"`{name}` must be None, a number, a tensor or 'blur', got {type(b).__name__}"
        )
    shaped = _leading_ones(b, x)
    if shaped is None:
        raise ValueError(
            f"`{name}` of shape {tuple(b.shape)} does not broadcast to the input shape "
            f"{tuple(x.shape)} (expected the input's shape, batch size 1 or no batch dim)"
        )
    b = shaped.to(device=x.device, dtype=x.dtype)
    error = ValueError(f"`{name}` contains NaN or infinite values")
    if checks is not None:
        checks.append((~torch.isfinite(b).all(), error))
    elif not bool(torch.isfinite(b).all()):
        raise error
    return b.expand(b.shape[0], *x.shape[1:])


def format_feature_mask(feature_mask: Any, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
    """Integer groups per input, checked to broadcast to it (batch size 1 or ``B``)."""
    if feature_mask is None:
        return None
    masks = _format_tensor_into_tuples(feature_mask)
    if len(masks) != len(inputs):
        raise ValueError(
            f"`feature_mask` must have one tensor per input ({len(inputs)}), got {len(masks)}"
        )
    out = []
    for i, (m, x) in enumerate(zip(masks, inputs, strict=True)):
        if not isinstance(m, Tensor) or m.is_floating_point() or m.is_complex():
            kind = m.dtype if isinstance(m, Tensor) else type(m).__name__
            raise TypeError(f"`feature_mask[{i}]` must be an integer tensor, got {kind}")
        if m.dtype == torch.bool:
            m = m.long()
        shaped = _leading_ones(m, x)
        if shaped is None:
            raise ValueError(
                f"`feature_mask[{i}]` of shape {tuple(m.shape)} does not broadcast to the input "
                f"shape {tuple(x.shape)} (batch size 1 or {x.shape[0]}, then the input's dims "
                "or 1)"
            )
        out.append(shaped.to(x.device))
    return tuple(out)


def _leading_ones(t: Tensor, x: Tensor) -> Tensor | None:
    """``t`` with leading dims of size 1 up to ``x.dim()``, or ``None`` unless it broadcasts
    to ``x`` exactly."""
    if t.dim() > x.dim():
        return None
    t = t.reshape((1,) * (x.dim() - t.dim()) + tuple(t.shape))
    try:
        return t if torch.broadcast_shapes(t.shape, x.shape) == x.shape else None
    except RuntimeError:
        return None


def mix_rows(x: Tensor, base: Tensor, mask: Tensor) -> Tensor:
    r"""Rows :math:`I \odot M + b \odot (1 - M)` of ``r`` masks for every example, mask-major.

    Args:
        x: the inputs with a leading 1, :math:`(1, B, *S)`.
        base: the baselines, :math:`(1, 1 \text{ or } B, *S)`.
        mask: :math:`(r, 1 \text{ or } B, \ldots)`, broadcastable to :math:`(r, B, *S)`, in
            ``x``'s dtype.

    Returns:
        :math:`(r B, *S)`: row ``i * B + b`` is example ``b`` under mask ``i`` (one fused lerp,
        the caller's ``channels_last`` layout kept).
    """
    rows = torch.lerp(base, x, mask)
    rows = rows.reshape(-1, *x.shape[2:])
    if rows.dim() == 4 and x.dim() == 5 and _channels_last(x[0]):
        rows = rows.contiguous(memory_format=CHANNELS_LAST)
    return rows


def _channels_last(x: Tensor) -> bool:
    return not x.is_contiguous() and x.is_contiguous(memory_format=CHANNELS_LAST)


def spans(total: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` pieces of at most ``size`` covering ``range(total)``, lazily."""
    for start in range(0, total, size):
        yield start, min(start + size, total)


def warn_if_training(forward_func: Callable[..., Any], stacklevel: int = 4) -> None:
    """Warn when a module has BatchNorm or Dropout layers in training mode (left unchanged)."""
    if not isinstance(forward_func, torch.nn.Module):
        return
    kinds = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd)
    if any(m.training and isinstance(m, kinds) for m in forward_func.modules()):
        warnings.warn(
            "forward_func is in training mode: BatchNorm/Dropout couple or randomise the "
            "perturbed rows; call model.eval() first (the mode is left unchanged).",
            UserWarning,
            stacklevel=stacklevel,
        )


def compute_dtype(x: Tensor) -> torch.dtype:
    """Masks, features and estimators run in float32 for half inputs, else the input dtype."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
