"""Argument checks of the figures (the generic ones are in `captum_perturbmask._core.checks`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from captum_perturbmask._core.checks import (
    check_class_names,
    check_indices,
    check_regions,
    check_targets,
)

#: Lower ends of a map's colour scale.
CLIPS = ("median", "min")


def check_clip(clip: object) -> str:
    """``clip`` if it is one of :data:`CLIPS`."""
    if clip not in CLIPS:
        raise ValueError(f"`clip` must be one of {CLIPS}, got {clip!r}.")
    return str(clip)


def check_real(x: Tensor, name: str) -> Tensor:
    """Raise unless the tensor ``x`` holds real (not bool or complex), finite numbers."""
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold real numbers, got dtype {x.dtype}.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"`{name}` must be finite, but it contains NaN or infinite values.")
    return x


def check_image_batch(inputs: object, name: str) -> Tensor:
    """Images :math:`(B, C, H, W)`."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(inputs).__name__}.")
    if inputs.ndim != 4:
        raise ValueError(
            f"`{name}` must be images (B, C, H, W) or series (B, C, T), got shape "
            f"{tuple(inputs.shape)}."
        )
    return inputs


def check_series_batch(inputs: object, name: str) -> Tensor:
    """Series :math:`(B, C, T)` of real, finite numbers."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(inputs).__name__}.")
    if inputs.ndim != 3 or 0 in inputs.shape:
        raise ValueError(f"`{name}` must be series (B, C, T), got shape {tuple(inputs.shape)}.")
    return check_real(inputs, name)


def maps_of(maps: object) -> Mapping[str, Any]:
    """The mapping name -> attributions of ``maps`` (a mapping or an EvaluationResult)."""
    table_maps = getattr(maps, "maps", maps)
    if not isinstance(table_maps, Mapping) or not table_maps:
        raise TypeError(
            "`maps` must be a non-empty mapping name -> attributions or an EvaluationResult, got "
            f"{type(maps).__name__}."
        )
    return table_maps


def check_regions_per_input(
    regions: object, name: str, size: tuple[int, ...], n: int | None = None
) -> Tensor | None:
    """Boxes :math:`(N, 4)` inside an image of ``size`` ``(H, W)``, or spans :math:`(N, 2)`
    inside a series of ``size`` ``(T,)``; one region :math:`(4,)` or :math:`(2,)` is one row.
    ``n`` rows when it is given. On the CPU, for drawing; ``None`` stays ``None``."""
    if regions is None:
        return None
    if isinstance(regions, Tensor) and regions.ndim == 1:
        regions = regions.unsqueeze(0)
    checked = check_regions(regions, name, len(size), size).detach().cpu()
    if n is not None and checked.shape[0] != n:
        per = "input" if len(size) == 2 else "series"
        raise ValueError(f"`{name}` must have one row per {per}, {n}, got {checked.shape[0]}.")
    return checked


class MapFigure(NamedTuple):
    """The checked arguments of a figure of maps (:func:`check_map_figure`)."""

    clip: str
    rows: list[int]
    class_names: list[str] | None
    targets: list[int] | None
    maps: dict[str, Tensor]


def check_map_figure(
    table_maps: Mapping[str, Any],
    batch: int,
    *,
    clip: object,
    indices: object,
    class_names: object,
    targets: object,
    fits: Callable[[Tensor], bool],
    expected: str,
) -> MapFigure:
    """The arguments every figure of maps shares, for inputs of ``batch`` rows: every map a
    tensor whose shape ``fits`` (``expected`` says which shapes do)."""
    clip = check_clip(clip)
    rows = check_indices(indices, batch)
    names = check_class_names(class_names)
    labels = check_targets(targets, batch)
    checked: dict[str, Tensor] = {}
    for name, attr in table_maps.items():
        if not isinstance(attr, Tensor):
            raise TypeError(f"`maps[{name!r}]` must be a torch.Tensor, got {type(attr).__name__}.")
        if not fits(attr):
            raise ValueError(
                f"`maps[{name!r}]` must have shape {expected}, got {tuple(attr.shape)}."
            )
        checked[str(name)] = attr
    return MapFigure(clip, rows, names, labels, checked)
