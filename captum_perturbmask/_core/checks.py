"""Argument checks shared by every public callable.

Errors name the argument, say what was expected and what came (``TypeError`` for a wrong
type, ``ValueError`` for a wrong value), so a bad call fails at the door rather than deep in
torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import torch
from torch import Tensor

#: Most forward passes per input any method accepts: a larger budget is a typo (``1e12``),
#: refused before anything is allocated.
MAX_BUDGET = 10_000_000


def check_int(x: object, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``x`` as ``int`` if it is an integer in ``[minimum, maximum]``, else raise."""
    if isinstance(x, bool) or not isinstance(x, Integral):
        raise TypeError(f"`{name}` must be an int, got {type(x).__name__} ({x!r}).")
    x = int(x)
    if x < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {x}.")
    if maximum is not None and x > maximum:
        raise ValueError(f"`{name}` must be <= {maximum:,}, got {x:,}.")
    return x


def check_float(
    x: object,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``x`` as a finite ``float`` in the interval ``low .. high`` (ends closed unless
    ``*_open``); infinities are refused unless an end is infinite and closed."""
    if isinstance(x, bool) or not isinstance(x, Real):
        raise TypeError(f"`{name}` must be a float, got {type(x).__name__} ({x!r}).")
    x = float(x)
    bad = (
        math.isnan(x)
        or (x <= low if low_open else x < low)
        or (x >= high if high_open else x > high)
        or (math.isinf(x) and not (x == low == -math.inf or x == high == math.inf))
    )
    if bad:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must be a finite number in {interval}, got {x}.")
    return x


def check_fraction(
    x: object, name: str, low: float = 0.0, high: float = 1.0, low_open: bool = False
) -> float:
    """Return ``x`` as ``float`` if it is a real number in ``[low, high]`` (or ``(low, high]``)."""
    return check_float(x, name, low, high, low_open=low_open)


def check_bool(x: object, name: str) -> bool:
    """Return ``x`` if it is a ``bool`` (not a truthy string or number)."""
    if not isinstance(x, bool):
        raise TypeError(f"`{name}` must be a bool, got {type(x).__name__} ({x!r}).")
    return x


def check_choice(x: object, name: str, choices: Sequence[str]) -> str:
    """Return ``x`` if it is one of the strings ``choices``."""
    if not isinstance(x, str) or x not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {x!r}.")
    return x


def check_seed(seed: object, name: str = "seed") -> int | None:
    """``None`` or an int that ``torch.Generator.manual_seed`` accepts, ``[0, 2**64)``."""
    if seed is None:
        return None
    return check_int(seed, name, 0, 2**64 - 1)


def check_size(value: object, name: str, ndim: int | None = None) -> tuple[int, ...]:
    """An int or a sequence of 1-2 positive ints (``grid_size``-like knobs)."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"`{name}` must be an int or a pair of ints, got {value!r}.")
    if isinstance(value, Integral):
        vals: tuple[Any, ...] = (value,)
    elif isinstance(value, (tuple, list, torch.Size)):
        vals = tuple(value)
    else:
        raise TypeError(
            f"`{name}` must be an int or a pair of ints, got {type(value).__name__} ({value!r})."
        )
    if not 1 <= len(vals) <= (ndim or 2):
        raise ValueError(f"`{name}` must be an int or a pair of ints, got {value!r}.")
    return tuple(check_int(v, name) for v in vals)


def check_real_tensor(x: object, name: str) -> Tensor:
    """A tensor of a real floating dtype holding only finite values."""
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {x.dtype}.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"`{name}` must be finite, but it contains NaN or infinite values.")
    return x


def check_finite_scalar(x: object, name: str) -> float:
    """A real, finite Python number (not a bool or complex)."""
    if isinstance(x, bool) or not isinstance(x, Real):
        raise TypeError(f"`{name}` must be a real number, got {type(x).__name__} ({x!r}).")
    if not math.isfinite(float(x)):
        raise ValueError(f"`{name}` must be finite, got {x}.")
    return float(x)


def check_tensor(x: object, name: str) -> Tensor:
    """Raise ``TypeError`` unless ``x`` is a tensor; return it."""
    if isinstance(x, tuple) and len(x) == 1 and isinstance(x[0], Tensor):
        x = x[0]  # Captum returns 1-tuples for tuple inputs
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}.")
    return x


def check_float_tensor(x: object, name: str) -> Tensor:
    """Raise unless ``x`` is a floating-point tensor holding only finite values."""
    x = check_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {x.dtype}.")
    check_finite(x, name)
    return x


def check_batch_inputs(inputs: object, name: str = "inputs") -> Tensor:
    """A non-empty floating-point batch of images :math:`(B, C, H, W)` or series
    :math:`(B, C, T)`, else raise."""
    inputs = check_float_tensor(inputs, name)
    if inputs.ndim not in (3, 4) or inputs.shape[0] == 0:
        raise ValueError(
            f"`{name}` must be a non-empty batch of images (B, C, H, W) or series (B, C, T), "
            f"got shape {tuple(inputs.shape)}."
        )
    return inputs


def check_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinity (one host sync)."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"`{name}` must be finite, but it contains NaN or infinite values.")


def aggregate_saliency(attributions: object, input_shape: torch.Size | None, name: str) -> Tensor:
    """Reduce Captum-shaped attributions to one saliency value per pixel / time step.

    Args:
        attributions: Attributions of shape :math:`(B, C, *S)`, :math:`(B, 1, *S)` or
            :math:`(B, *S)` where :math:`S` is :math:`(H, W)` or :math:`(T,)`.
        input_shape: Shape :math:`(B, C, *S)` of the explained inputs, or ``None`` to accept
            :math:`(B, C, H, W)`, :math:`(B, 1, H, W)` or :math:`(B, H, W)` images.
        name: Argument name used in error messages.

    Returns:
        Saliency of shape :math:`(B, *S)`; channels are summed.
    """
    attr = check_float_tensor(attributions, name)
    if input_shape is None:
        if attr.ndim == 4:
            return attr.sum(dim=1)
        if attr.ndim == 3:
            return attr
        raise ValueError(
            f"`{name}` must have shape (B, C, H, W), (B, 1, H, W) or (B, H, W), "
            f"got {tuple(attr.shape)}."
        )
    batch, spatial = input_shape[0], tuple(input_shape[2:])
    shape = tuple(attr.shape)
    allowed = {(batch, input_shape[1], *spatial), (batch, 1, *spatial)}
    if shape in allowed:
        return attr.sum(dim=1)
    if shape == (batch, *spatial):
        return attr
    raise ValueError(
        f"`{name}` must have the input's shape {tuple(input_shape)}, or {(batch, 1, *spatial)} "
        f"or {(batch, *spatial)}, got {shape}."
    )
