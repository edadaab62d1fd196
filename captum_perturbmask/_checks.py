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
