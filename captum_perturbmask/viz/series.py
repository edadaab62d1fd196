"""Maps on time series :math:`(B, C, T)`, and the series primitives every series figure uses.

Step ``t`` covers ``[t, t + 1)`` on the time axis and is drawn at its centre ``t + 0.5``; the
axes span ``[0, T]`` and spans ``(start, end)`` are drawn exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from captum_perturbmask.viz._checks import (
    check_map_figure,
    check_regions_per_input,
    check_series_batch,
    maps_of,
)
from captum_perturbmask.viz._draw import class_label, colorbar, map_norm, map_np, save
from captum_perturbmask.viz._style import (
    BOX_COLOR,
    BOX_LINEWIDTH,
    SALIENCY_CMAP,
    SAVE_DPI,
    SPAN_ALPHA,
    TITLE_SIZE,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

__all__ = ["plot_series_maps"]


def plot_series_maps(
    maps: Mapping[str, Tensor] | Any,
    series: Tensor,
    spans: Tensor | None = None,
    targets: Tensor | Sequence[int] | int | None = None,
    class_names: Sequence[str] | None = None,
    indices: Sequence[int] = (0,),
    *,
    clip: str = "median",
    path: str | None = None,
    dpi: int = SAVE_DPI,
) -> Figure:
    """Maps of several methods on time series: one row per series, one column per method.

    The first column is the series itself (its class in the title when ``targets`` are given,
    the ground-truth span shaded when ``spans`` are given); every other panel is the series
    with one method's map as a colour-mapped band under the curve (one colour per time step,
    :data:`SALIENCY_CMAP`, the colour scale from the map's median or minimum to its maximum),
    the span outlined, and a colour bar. A series of :math:`C` channels is drawn as :math:`C`
    stacked panels that share the map (channels summed, as the metrics do). Step ``t`` covers
    ``[t, t + 1)`` on the time axis and is drawn at ``t + 0.5``; spans ``(start, end)`` are
    drawn exactly.

    Args:
        maps: A mapping name -> attributions :math:`(B, C, T)`, :math:`(B, 1, T)` or
            :math:`(B, T)`, or a :class:`~captum_perturbmask.evaluation.EvaluationResult` (its
            ``maps``).
        series: The series :math:`(B, C, T)` the maps explain.
        spans: Ground-truth evidence spans :math:`(B, 2)` ``(start, end)``, ``end`` exclusive
            (see :mod:`captum_perturbmask.metrics.localization`).
        targets: Class of every series (one int, :math:`B` ints or a tensor :math:`(B,)`).
        class_names: Names of the classes, indexed by target.
        indices: Which series to draw, one row (of :math:`C` panels) each.
        clip: Lower end of each map's colour scale: ``"median"`` or ``"min"``.
        path: Save the figure there if given.
        dpi: Resolution of the saved figure.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        TypeError: If ``maps``, ``series``, ``spans``, ``indices``, ``targets`` or
            ``class_names`` have the wrong type.
        ValueError: If ``series`` are not :math:`(B, C, T)` or not finite, a map does not fit
            them or is not finite, ``indices`` are out of range, a span is empty or outside
            the series, ``targets`` have no name, or ``clip`` is unknown.

    Example:
        >>> import torch
        >>> x = torch.randn(2, 1, 50)
        >>> fig = plot_series_maps({"a": torch.rand(2, 1, 50), "b": torch.rand(2, 50)}, x,
        ...                        spans=torch.tensor([[10, 20], [30, 45]]), targets=[0, 1],
        ...                        class_names=["Gun", "Point"], indices=[1])
        >>> len(fig.axes)  # the series, two maps, two colour bars
        5
        >>> [ax.get_title() for ax in fig.axes[:3]]
        ['series 1, span 30–45\\nclass 1 (Point)', 'a', 'b']
    """
    table_maps = maps_of(maps)
    series = check_series_batch(series, "series")
    batch, channels, length = series.shape
    spans = check_regions_per_input(spans, "spans", (length,), batch)
    args = check_map_figure(
        table_maps,
        batch,
        clip=clip,
        indices=indices,
        class_names=class_names,
        targets=targets,
        fits=lambda a: (
            a.ndim in (2, 3)
            and a.shape[0] == batch
            and a.shape[-1] == length
            and (a.ndim == 2 or a.shape[1] in (1, channels))
        ),
        expected=f"({batch}, {channels}, {length}), ({batch}, 1, {length}) or ({batch}, {length}) "
        "like the series",
    )
    values = series.detach().cpu().double().numpy()

    from matplotlib.figure import Figure

    n_cols = 1 + len(args.maps)
    panel_height = 1.5 if channels > 1 else 2.1
    fig = Figure(
        figsize=(3.3 * n_cols, panel_height * channels * len(args.rows) + 0.3),
        layout="constrained",
    )
    axes = fig.subplots(channels * len(args.rows), n_cols, squeeze=False)
    for r, idx in enumerate(args.rows):
        block = axes[r * channels : (r + 1) * channels]  # (C, n_cols)
        limits = [series_limits(values[idx, c]) for c in range(channels)]
        span = None if spans is None else spans[idx].tolist()
        bottom = r == len(args.rows) - 1
        for c in range(channels):
            ax = block[c, 0]
            if span is not None:
                span_patch(ax, *span, limits[c], shaded=True)
            series_line(ax, values[idx, c])
            series_axes(ax, length, limits[c], bottom and c == channels - 1)
            if channels > 1:
                ax.set_ylabel(f"channel {c}", fontsize=TITLE_SIZE - 1)
        title = f"series {idx}"
        if span is not None:
            title += f", span {span[0]:g}–{span[1]:g}"
        if args.targets is not None:
            title += f"\n{class_label(args.targets[idx], args.class_names)}"
        block[0, 0].set_title(title, fontsize=TITLE_SIZE)
        for j, (name, attr) in enumerate(args.maps.items(), start=1):
            saliency = map_np(attr[idx], f"maps[{name!r}]", ndim=1)
            norm, title = map_norm(saliency, args.clip, name)
            for c in range(channels):
                ax = block[c, j]
                band(ax, values[idx, c], saliency, norm, limits[c])
                series_line(ax, values[idx, c])
                if span is not None:
                    span_patch(ax, *span, limits[c], shaded=False)
                series_axes(ax, length, limits[c], bottom and c == channels - 1)
            block[0, j].set_title(title, fontsize=TITLE_SIZE)
            colorbar(fig, norm, list(block[:, j]), aspect=15)
    return save(fig, path, dpi)


# ------------------------------------------------------------------------------------------
# Series primitives (shared with viz.variations; not in __all__, not public API)
# ------------------------------------------------------------------------------------------
def series_limits(values: np.ndarray) -> tuple[float, float]:
    """y-limits of one channel (every panel of a row shares them): a margin above, and a
    wider one below, so the band under the curve stays visible at the series' minimum."""
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scale = high - low if high > low else max(abs(high), 1.0)
    return low - 0.25 * scale, high + 0.08 * scale


def series_line(ax: Axes, values: np.ndarray, **kwargs: Any) -> None:
    """A series through its step centres ``t + 0.5``, with a white halo (readable over the
    band and over the background)."""
    from matplotlib import patheffects

    kwargs.setdefault("color", "black")
    kwargs.setdefault("linewidth", 1.2)
    kwargs.setdefault("zorder", 3)
    halo = [patheffects.withStroke(linewidth=kwargs["linewidth"] + 1.6, foreground="white")]
    ax.plot(np.arange(values.shape[0]) + 0.5, values, path_effects=halo, **kwargs)


def series_axes(ax: Axes, length: int, limits: tuple[float, float], xlabel: bool) -> None:
    """Axes of one channel: the time axis ``[0, T]``, the shared y-limits, the time label on
    the bottom panel only."""
    ax.set_xlim(0, length)
    ax.set_ylim(*limits)
    ax.tick_params(labelsize=TITLE_SIZE - 2)
    if xlabel:
        ax.set_xlabel("time step", fontsize=TITLE_SIZE - 1)


def band(
    ax: Axes, values: np.ndarray, saliency: np.ndarray, norm: Normalize, limits: tuple
) -> None:
    """The saliency as a colour-mapped band between the bottom of the axes and the curve: one
    colour per step, clipped to the area under the curve."""
    from matplotlib.patches import Polygon

    length = values.shape[0]
    xs = np.concatenate([[0.0], np.arange(length) + 0.5, [float(length)]])
    ys = np.concatenate([values[:1], values, values[-1:]])
    outline = np.concatenate([np.stack([xs, ys], 1), [[length, limits[0]], [0.0, limits[0]]]])
    region = Polygon(outline, closed=True, facecolor="none", edgecolor="none")
    ax.add_patch(region)
    image = ax.imshow(
        saliency[None, :],
        cmap=SALIENCY_CMAP,
        norm=norm,
        extent=(0, length, limits[0], limits[1]),
        aspect="auto",
        interpolation="nearest",
        origin="lower",
    )
    image.set_clip_path(region)


def span_patch(
    ax: Axes, start: float, end: float, limits: tuple[float, float], shaded: bool
) -> None:
    """A span ``[start, end)`` over the full height: shaded, or outlined (over a band)."""
    from matplotlib.patches import Rectangle

    xy, width, height = (start, limits[0]), end - start, limits[1] - limits[0]
    if shaded:
        patch = Rectangle(xy, width, height, facecolor=BOX_COLOR, edgecolor="none",
                          alpha=SPAN_ALPHA, zorder=1)  # fmt: skip
    else:
        patch = Rectangle(xy, width, height, fill=False, edgecolor=BOX_COLOR,
                          linewidth=BOX_LINEWIDTH, zorder=4)  # fmt: skip
    ax.add_patch(patch)


def mask_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs ``(start, end)`` of a boolean row, ``end`` exclusive."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    return list(zip(starts, ends, strict=True))
