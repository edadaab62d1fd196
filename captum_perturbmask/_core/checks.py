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


def check_regions(
    regions: object, name: str, ndim: int, size: tuple[int, ...] | None = None
) -> Tensor:
    """Boxes :math:`(N, 4)` ``(x1, y1, x2, y2)`` (``ndim=2``) or spans :math:`(N, 2)`
    ``(start, end)`` (``ndim=1``): real, finite and non-empty (``lo < hi`` on every axis), and
    inside ``size`` (``(H, W)`` or ``(T,)``) when it is given. Returned as floating point.

    Regions follow the pixel-edge convention of :mod:`captum_perturbmask.metrics.localization`:
    the upper ends are exclusive, a region may reach ``W``, ``H`` or ``T``.
    """
    regions = check_tensor(regions, name)
    what = "boxes (B, 4) x1, y1, x2, y2" if ndim == 2 else "spans (B, 2) start, end"
    if regions.dtype == torch.bool or regions.is_complex():
        raise TypeError(f"`{name}` must hold real numbers, got dtype {regions.dtype}.")
    if regions.ndim != 2 or regions.shape[1] != 2 * ndim:
        raise ValueError(f"`{name}` must be {what}, got shape {tuple(regions.shape)}.")
    if not regions.is_floating_point():
        regions = regions.to(torch.get_default_dtype())
    if not bool(torch.isfinite(regions).all()):
        raise ValueError(f"`{name}` must be finite, but it contains NaN or infinite values.")
    lo, hi = regions[:, :ndim], regions[:, ndim:]
    empty = (hi <= lo).any(1)
    if bool(empty.any()):
        rows = torch.nonzero(empty).flatten().tolist()
        rule = "x1 < x2 and y1 < y2" if ndim == 2 else "start < end"
        raise ValueError(
            f"`{name}` must satisfy {rule} (non-empty), rows {rows} do not: "
            f"{regions[empty].tolist()}."
        )
    if size is not None:
        extent = regions.new_tensor(list(reversed(size)))  # (W, H) for xyxy, (T,) for spans
        outside = (lo < 0).any(1) | (hi > extent).any(1)
        if bool(outside.any()):
            rows = torch.nonzero(outside).flatten().tolist()
            bounds = (
                f"0 <= x1 < x2 <= {size[1]} and 0 <= y1 < y2 <= {size[0]}"
                if ndim == 2
                else f"0 <= start < end <= {size[0]}"
            )
            raise ValueError(
                f"`{name}` must lie inside the {'image' if ndim == 2 else 'series'}, {bounds}, "
                f"rows {rows} do not: {regions[outside].tolist()}."
            )
    return regions


def check_boxes(boxes: object, name: str = "boxes", size: tuple[int, int] | None = None) -> Tensor:
    """Boxes :math:`(N, 4)` ``(x1, y1, x2, y2)``, inside an image of ``size`` ``(H, W)`` if
    given (see :func:`check_regions`)."""
    return check_regions(boxes, name, 2, size)


def check_spans(spans: object, name: str = "spans", length: int | None = None) -> Tensor:
    """Spans :math:`(N, 2)` ``(start, end)``, inside a series of ``length`` steps if given (see
    :func:`check_regions`)."""
    return check_regions(spans, name, 1, None if length is None else (length,))


def check_indices(indices: object, n: int, name: str = "indices") -> list[int]:
    """One int or a non-empty sequence (or integer tensor) of ints in ``[0, n)``, as a list."""
    if isinstance(indices, Integral) and not isinstance(indices, bool):
        indices = [indices]
    if not isinstance(indices, (Sequence, range, Tensor)) or isinstance(indices, str):
        raise TypeError(f"`{name}` must be a sequence of ints, got {type(indices).__name__}.")
    values = [int(i) for i in indices] if isinstance(indices, Tensor) else list(indices)
    if any(isinstance(i, bool) or not isinstance(i, Integral) for i in values):
        raise TypeError(f"`{name}` must be a sequence of ints, got {values!r}.")
    if not values or any(not 0 <= i < n for i in values):
        raise ValueError(f"`{name}` must be a non-empty list of ints in [0, {n}), got {values}.")
    return [int(i) for i in values]


def check_targets(targets: object, n: int, name: str = "targets") -> list[int] | None:
    """``None``, one int for all ``n`` inputs, or ``n`` ints (a sequence or a tensor), as a
    list of ``n`` ints (``None`` stays ``None``)."""
    if targets is None:
        return None
    if isinstance(targets, Tensor):
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(f"`{name}` must hold integers, got dtype {targets.dtype}.")
        if targets.numel() == 1:
            return [int(targets.reshape(()))] * n
        if targets.ndim != 1 or targets.numel() != n:
            raise ValueError(
                f"`{name}` must be one int or {n} ints, got shape {tuple(targets.shape)}."
            )
        return [int(t) for t in targets.tolist()]
    if isinstance(targets, Integral) and not isinstance(targets, bool):
        return [int(targets)] * n
    if isinstance(targets, Sequence) and not isinstance(targets, str):
        if any(isinstance(t, bool) or not isinstance(t, Integral) for t in targets):
            raise TypeError(f"`{name}` must be ints, got {list(targets)!r}.")
        if len(targets) != n:
            raise ValueError(f"`{name}` must be one int or {n} ints, got {len(targets)}.")
        return [int(t) for t in targets]
    raise TypeError(
        f"`{name}` must be an int, a sequence of ints or a tensor, got {type(targets).__name__}."
    )


def check_class_names(class_names: object, name: str = "class_names") -> list[str] | None:
    """``None`` or a sequence of ``str`` (not one ``str``), as a list."""
    if class_names is None:
        return None
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"`{name}` must be a sequence of str, got {type(class_names).__name__}.")
    if not all(isinstance(c, str) for c in class_names):
        raise TypeError(f"`{name}` must hold only str.")
    return list(class_names)


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
