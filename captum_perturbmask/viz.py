"""Figures: saliency maps, one explanation, acceptable variations and convergence curves.

Every figure of the package (the demo, the ``explain`` command, the docs) is drawn here, in one
style:

* saliency in one perceptually uniform colour map, :data:`SALIENCY_CMAP`, over a grey copy of
  the image, with a colour bar in the map's own units;
* each map's colour scale runs from its median (``clip="median"``, the default: the upper half
  of the pixel ranking that the metrics use, free of offsets such as RISE's expected score) or
  its minimum (``clip="min"``) to its maximum; a constant map (e.g. all zero) is drawn and its
  title says so;
* boxes ``(x1, y1, x2, y2)`` in the pixel-edge convention of
  :mod:`captum_perturbmask.metrics.localization` (``x2``, ``y2`` exclusive) drawn exactly: the
  axes of an image panel are pixel edges, the image spans ``[0, W] x [0, H]``;
* time series :math:`(B, C, T)` as lines over step edges (step ``t`` covers ``[t, t + 1)``,
  drawn at its centre ``t + 0.5``; the axes span ``[0, T]``), the saliency as a colour-mapped
  band under the curve, spans ``(start, end)`` drawn exactly, one stacked panel per channel;
* class names in the titles when they are known.

Every function builds a :class:`matplotlib.figure.Figure` directly (no ``pyplot``: no global
state, any backend, no display needed), returns it, and saves it when ``path`` is given.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

__all__ = [
    "SALIENCY_CMAP",
    "plot_convergence",
    "plot_explanation",
    "plot_maps",
    "plot_series_maps",
    "plot_variations",
    "png_bytes",
]

#: The colour map of every saliency map and context-weight map. It is perceptually uniform and
#: readable in grey scale and by colour-blind readers.
SALIENCY_CMAP = "inferno"
#: Colour of annotated boxes and region outlines (stands out against ``inferno`` and grey).
BOX_COLOR = "#00e5ff"
#: Opacity of a saliency map drawn over its image.
OVERLAY_ALPHA = 0.6
#: Opacity of a shaded span (the ground-truth span on a series, the region B of variations).
SPAN_ALPHA = 0.3
#: Font size of panel titles, in points.
TITLE_SIZE = 9
#: Resolution of saved figures, dots per inch.
SAVE_DPI = 100
#: Longer image side drawn at most (larger images are downsampled for display only; the axes
#: keep the original pixel coordinates).
DISPLAY_MAX_SIDE = 1024

_CLIPS = ("median", "min")
_METHOD_COLORS = {"PerturbMask": "tab:red", "RISE": "tab:blue"}
#: Line colours of variants: accepted, flipped to another class, too unsure, not scored.
_STATUS_COLORS = {
    "kept": "tab:green",
    "flipped": "tab:red",
    "unsure": "tab:orange",
    "variant": "tab:blue",
}


# ------------------------------------------------------------------------------------------
# Checks and conversions
# ------------------------------------------------------------------------------------------
def _check_clip(clip: object) -> str:
    if clip not in _CLIPS:
        raise ValueError(f"`clip` must be one of {_CLIPS}, got {clip!r}.")
    return str(clip)


def _check_image_batch(inputs: object, name: str) -> Tensor:
    """Images :math:`(B, C, H, W)`."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(inputs).__name__}.")
    if inputs.ndim != 4:
        raise ValueError(
            f"`{name}` must be images (B, C, H, W) or series (B, C, T), got shape "
            f"{tuple(inputs.shape)}."
        )
    return inputs


def _check_indices(indices: object, n: int) -> list[int]:
    if isinstance(indices, Integral) and not isinstance(indices, bool):
        indices = [indices]
    if not isinstance(indices, (Sequence, range, Tensor)) or isinstance(indices, str):
        raise TypeError(f"`indices` must be a sequence of ints, got {type(indices).__name__}.")
    values = [int(i) for i in indices] if isinstance(indices, Tensor) else list(indices)
    if any(isinstance(i, bool) or not isinstance(i, Integral) for i in values):
        raise TypeError(f"`indices` must be a sequence of ints, got {values!r}.")
    if not values or any(not 0 <= i < n for i in values):
        raise ValueError(f"`indices` must be a non-empty list of ints in [0, {n}), got {values}.")
    return [int(i) for i in values]


def _check_class_names(class_names: object) -> list[str] | None:
    if class_names is None:
        return None
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(
            f"`class_names` must be a sequence of str, got {type(class_names).__name__}."
        )
    if not all(isinstance(c, str) for c in class_names):
        raise TypeError("`class_names` must hold only str.")
    return list(class_names)


def _check_targets(targets: object, n: int) -> list[int] | None:
    """``None``, one int for every input, or ``n`` ints (sequence or tensor)."""
    if targets is None:
        return None
    if isinstance(targets, Tensor):
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(f"`targets` must hold integers, got dtype {targets.dtype}.")
        if targets.numel() == 1:
            return [int(targets.reshape(()))] * n
        if targets.ndim != 1 or targets.numel() != n:
            raise ValueError(
                f"`targets` must be one int or {n} ints, got shape {tuple(targets.shape)}."
            )
        return [int(t) for t in targets.tolist()]
    if isinstance(targets, Integral) and not isinstance(targets, bool):
        return [int(targets)] * n
    if isinstance(targets, Sequence) and not isinstance(targets, str):
        if any(isinstance(t, bool) or not isinstance(t, Integral) for t in targets):
            raise TypeError(f"`targets` must be ints, got {list(targets)!r}.")
        if len(targets) != n:
            raise ValueError(f"`targets` must be one int or {n} ints, got {len(targets)}.")
        return [int(t) for t in targets]
    raise TypeError(
        f"`targets` must be an int, a sequence of ints or a tensor, got {type(targets).__name__}."
    )


def _class_label(target: int | None, class_names: list[str] | None) -> str:
    """``"class 3"``, or ``"class 3 (three)"`` when the name is known."""
    if target is None:
        return ""
    if class_names is None:
        return f"class {target}"
    if not 0 <= target < len(class_names):
        raise ValueError(
            f"class {target} has no name: `class_names` holds {len(class_names)} names."
        )
    return f"class {target} ({class_names[target]})"


def _check_boxes(boxes: object, size: tuple[int, int], n: int | None = None) -> Tensor | None:
    """Boxes :math:`(N, 4)` (or one box :math:`(4,)`) inside an image of ``size``."""
    if boxes is None:
        return None
    from captum_perturbmask.metrics.localization import _check_boxes as check

    if isinstance(boxes, Tensor) and boxes.ndim == 1:
        boxes = boxes.unsqueeze(0)
    boxes = check(boxes, "boxes", size).detach().cpu()
    if n is not None and boxes.shape[0] != n:
        raise ValueError(f"`boxes` must have one row per input, {n}, got {boxes.shape[0]}.")
    return boxes


def _image_np(image: Tensor) -> np.ndarray:
    """One image :math:`(C, H, W)` as an array for ``imshow``: RGB, or grey for other C.

    ``uint8`` images are divided by 255; float images outside :math:`[0, 1]` are min-max scaled.
    """
    x = image.detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float() / 255
    else:
        x = x.float()
        if not bool(torch.isfinite(x).all()):
            raise ValueError("the image must be finite, but it contains NaN or infinite values.")
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > 1:
            x = (x - low) / max(high - low, 1e-12)
    if x.shape[0] == 3:
        return x.permute(1, 2, 0).numpy()
    return x.mean(0).numpy()


def _gray(image: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R 601) of an RGB array, or the array itself if already grey."""
    if image.ndim == 2:
        return image
    return image @ np.array([0.299, 0.587, 0.114], dtype=image.dtype)


def _saliency_np(saliency: Tensor, name: str) -> np.ndarray:
    """A map :math:`(H, W)` or :math:`(C, H, W)` (channels summed) as a finite float array."""
    if not isinstance(saliency, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(saliency).__name__}.")
    s = saliency.detach().cpu()
    if s.is_complex() or s.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold real numbers, got dtype {s.dtype}.")
    s = s.double()
    if s.ndim == 3:
        s = s.sum(0)
    if s.ndim != 2:
        raise ValueError(
            f"`{name}` must be a map (H, W) or (C, H, W), got {tuple(saliency.shape)}."
        )
    if not bool(torch.isfinite(s).all()):
        raise ValueError(f"`{name}` must be finite, but it contains NaN or infinite values.")
    return s.numpy()


def _downsample(x: Tensor, max_side: int) -> Tensor:
    """``x`` :math:`(C, H, W)` as float, shrunk so its longer side is at most ``max_side``
    (display only): a strided view first (no full-size copy), then an antialiased resize."""
    h, w = x.shape[-2:]
    step = max(1, max(h, w) // max_side)  # leaves the longer side >= max_side
    x = x[..., ::step, ::step].float()
    h, w = x.shape[-2:]
    scale = max_side / max(h, w)
    if scale >= 1:
        return x
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x[None], size=size, mode="bilinear", antialias=True)[0]


# ------------------------------------------------------------------------------------------
# Drawing primitives
# ------------------------------------------------------------------------------------------
def _show(ax: Axes, image: np.ndarray, title: str, size: tuple[int, int], **kwargs: Any) -> None:
    """An image on pixel-edge axes: it spans ``[0, W] x [0, H]``, rows downwards."""
    height, width = size
    if image.ndim == 2:
        kwargs.setdefault("cmap", "gray")
        kwargs.setdefault("vmin", 0.0)
        kwargs.setdefault("vmax", 1.0)
    ax.imshow(image, extent=(0, width, height, 0), interpolation="nearest", **kwargs)
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.set_axis_off()


def _map_norm(saliency: np.ndarray, clip: str, title: str) -> tuple[Normalize, str]:
    """Colour scale of one map, median (or minimum) to maximum; a constant map says so."""
    from matplotlib.colors import Normalize

    low = float(np.median(saliency)) if clip == "median" else float(saliency.min())
    high = float(saliency.max())
    if high <= float(saliency.min()):
        title = f"{title} (constant {high:.3g})"
    return Normalize(vmin=low, vmax=high), title


def _overlay(
    fig: Figure,
    ax: Axes,
    gray: np.ndarray,
    saliency: np.ndarray,
    title: str,
    clip: str,
    size: tuple[int, int],
) -> None:
    """A saliency map over a grey image, with a colour bar in the map's units."""
    from matplotlib.cm import ScalarMappable

    norm, title = _map_norm(saliency, clip, title)
    _show(ax, gray, title, size, alpha=1.0)
    height, width = size
    ax.imshow(
        saliency,
        cmap=SALIENCY_CMAP,
        norm=norm,
        alpha=OVERLAY_ALPHA,
        extent=(0, width, height, 0),
        interpolation="bilinear",
    )
    shrink = 0.85 * min(1.0, height / width)  # about the image's height on equal-aspect axes
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=SALIENCY_CMAP), ax=ax, shrink=shrink)
    bar.ax.tick_params(labelsize=TITLE_SIZE - 2)


def _draw_boxes(ax: Axes, boxes: Tensor | None) -> None:
    """Rectangles for boxes ``(x1, y1, x2, y2)``, pixel-edge convention."""
    from matplotlib.patches import Rectangle

    if boxes is None:
        return
    for x1, y1, x2, y2 in boxes.tolist():
        ax.add_patch(
            Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=BOX_COLOR, linewidth=1.5)
        )


def _outline(ax: Axes, mask: Tensor) -> None:
    """Outline of a boolean region :math:`(H, W)` on pixel-edge axes."""
    m = mask.detach().float().cpu().numpy()
    if m.min() == m.max():  # empty or full region: no contour to draw
        return
    h, w = m.shape
    ax.contour(np.arange(w) + 0.5, np.arange(h) + 0.5, m, levels=[0.5], colors=BOX_COLOR)


# ------------------------------------------------------------------------------------------
# Series
# ------------------------------------------------------------------------------------------
def _maps_of(maps: object) -> Mapping[str, Any]:
    """The mapping name -> attributions of ``maps`` (a mapping or a ComparisonTable)."""
    table_maps = getattr(maps, "maps", maps)
    if not isinstance(table_maps, Mapping) or not table_maps:
        raise TypeError(
            "`maps` must be a non-empty mapping name -> attributions or a ComparisonTable, got "
            f"{type(maps).__name__}."
        )
    return table_maps


def _check_maps(
    table_maps: Mapping[str, Any], fits: Callable[[Tensor], bool], expected: str
) -> dict[str, Tensor]:
    """Every map a tensor whose shape ``fits``; ``expected`` says which shapes do."""
    checked: dict[str, Tensor] = {}
    for name, attr in table_maps.items():
        if not isinstance(attr, Tensor):
            raise TypeError(f"`maps[{name!r}]` must be a torch.Tensor, got {type(attr).__name__}.")
        if not fits(attr):
            raise ValueError(
                f"`maps[{name!r}]` must have shape {expected}, got {tuple(attr.shape)}."
            )
        checked[str(name)] = attr
    return checked


def _check_series_batch(inputs: object, name: str) -> Tensor:
    """Series :math:`(B, C, T)` of real, finite numbers."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(inputs).__name__}.")
    if inputs.ndim != 3 or 0 in inputs.shape:
        raise ValueError(f"`{name}` must be series (B, C, T), got shape {tuple(inputs.shape)}.")
    if inputs.is_complex() or inputs.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold real numbers, got dtype {inputs.dtype}.")
    if not bool(torch.isfinite(inputs).all()):
        raise ValueError(f"`{name}` must be finite, but it contains NaN or infinite values.")
    return inputs


def _check_spans(spans: object, length: int, n: int) -> Tensor | None:
    """Spans :math:`(N, 2)` ``(start, end)`` (or one span :math:`(2,)`) inside the series."""
    if spans is None:
        return None
    from captum_perturbmask.metrics.localization import _check_regions

    if isinstance(spans, Tensor) and spans.ndim == 1:
        spans = spans.unsqueeze(0)
    spans = _check_regions(spans, "spans", 1, (length,)).detach().double().cpu()
    if spans.shape[0] != n:
        raise ValueError(f"`spans` must have one row per series, {n}, got {spans.shape[0]}.")
    return spans


def _series_map_np(saliency: Tensor, name: str) -> np.ndarray:
    """One series map :math:`(C, T)` (channels summed) or :math:`(T,)` as a finite array."""
    s = saliency.detach().cpu()
    if s.is_complex() or s.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold real numbers, got dtype {s.dtype}.")
    s = s.double()
    if s.ndim == 2:
        s = s.sum(0)
    if not bool(torch.isfinite(s).all()):
        raise ValueError(f"`{name}` must be finite, but it contains NaN or infinite values.")
    return s.numpy()


def _series_limits(values: np.ndarray) -> tuple[float, float]:
    """y-limits of one channel (every panel of a row shares them): a margin above, and a
    wider one below, so the band under the curve stays visible at the series' minimum."""
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scale = high - low if high > low else max(abs(high), 1.0)
    return low - 0.25 * scale, high + 0.08 * scale


def _series_line(ax: Axes, values: np.ndarray, **kwargs: Any) -> None:
    """A series through its step centres ``t + 0.5``, with a white halo (readable over the
    band and over the background)."""
    from matplotlib import patheffects

    kwargs.setdefault("color", "black")
    kwargs.setdefault("linewidth", 1.2)
    kwargs.setdefault("zorder", 3)
    halo = [patheffects.withStroke(linewidth=kwargs["linewidth"] + 1.6, foreground="white")]
    ax.plot(np.arange(values.shape[0]) + 0.5, values, path_effects=halo, **kwargs)


def _series_axes(ax: Axes, length: int, limits: tuple[float, float], xlabel: bool) -> None:
    ax.set_xlim(0, length)
    ax.set_ylim(*limits)
    ax.tick_params(labelsize=TITLE_SIZE - 2)
    if xlabel:
        ax.set_xlabel("time step", fontsize=TITLE_SIZE - 1)


def _band(
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
    band = ax.imshow(
        saliency[None, :],
        cmap=SALIENCY_CMAP,
        norm=norm,
        extent=(0, length, limits[0], limits[1]),
        aspect="auto",
        interpolation="nearest",
        origin="lower",
    )
    band.set_clip_path(region)


def _span_patch(
    ax: Axes, start: float, end: float, limits: tuple[float, float], shaded: bool
) -> None:
    """A span ``[start, end)`` over the full height: shaded, or outlined (over a band)."""
    from matplotlib.patches import Rectangle

    xy, width, height = (start, limits[0]), end - start, limits[1] - limits[0]
    if shaded:
        patch = Rectangle(xy, width, height, facecolor=BOX_COLOR, edgecolor="none",
                          alpha=SPAN_ALPHA, zorder=1)  # fmt: skip
    else:
        patch = Rectangle(xy, width, height, fill=False, edgecolor=BOX_COLOR, linewidth=1.5,
                          zorder=4)  # fmt: skip
    ax.add_patch(patch)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs ``(start, end)`` of a boolean row, ``end`` exclusive."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    return list(zip(starts, ends, strict=True))


def _save(fig: Figure, path: str | None, dpi: int) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


def png_bytes(fig: Figure, dpi: int = SAVE_DPI) -> bytes:
    """The figure as an RGB PNG (no alpha channel, zlib-optimised: small files for docs).

    Example:
        >>> from matplotlib.figure import Figure
        >>> png_bytes(Figure(figsize=(1, 1)), dpi=10)[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'
    """
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    out = io.BytesIO()
    with Image.open(buffer) as img:
        img.convert("RGB").save(out, format="PNG", optimize=True)
    return out.getvalue()


# ------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------
def plot_maps(
    maps: Mapping[str, Tensor] | Any,
    inputs: Tensor,
    indices: Sequence[int] = (0,),
    *,
    targets: Tensor | Sequence[int] | int | None = None,
    class_names: Sequence[str] | None = None,
    boxes: Tensor | None = None,
    clip: str = "median",
    path: str | None = None,
    dpi: int = SAVE_DPI,
) -> Figure:
    """Maps of several methods side by side: one row per input, one column per method.

    The first column is the input (with its class when ``targets`` are given); every other
    panel is one method's map over a grey copy of the input, in :data:`SALIENCY_CMAP`, with a
    colour bar. Channels of a map are summed. Given ``boxes``, each panel of a row shows the
    input's box.

    Series :math:`(B, C, T)` are drawn by :func:`plot_series_maps` (``boxes`` are then the
    spans :math:`(B, 2)`).

    Args:
        maps: A mapping name -> attributions :math:`(B, C, H, W)`, :math:`(B, 1, H, W)` or
            :math:`(B, H, W)`, or a :class:`~captum_perturbmask.evaluation.EvaluationResult` (its
            ``maps``).
        inputs: Images :math:`(B, C, H, W)` the maps explain (``uint8`` or float; float
            images outside :math:`[0, 1]` are min-max scaled for display), or series
            :math:`(B, C, T)`.
        indices: Which inputs to draw, one row each.
        targets: Class of every input (one int, :math:`B` ints or a tensor :math:`(B,)`),
            shown in the input's title.
        class_names: Names of the classes, indexed by target.
        boxes: Object boxes :math:`(B, 4)` ``(x1, y1, x2, y2)``, pixel-edge convention (spans
            :math:`(B, 2)` for series).
        clip: Lower end of each map's colour scale: ``"median"`` or ``"min"``.
        path: Save the figure there if given.
        dpi: Resolution of the saved figure.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        TypeError: If ``maps``, ``inputs``, ``indices``, ``targets`` or ``class_names`` have
            the wrong type.
        ValueError: If ``inputs`` are neither images nor series, a map does not fit the
            inputs or is not finite, ``indices`` are out of range, ``boxes`` are not inside the
            images, or ``clip`` is unknown.

    Example:
        >>> import torch
        >>> x = torch.rand(2, 3, 8, 8)
        >>> fig = plot_maps({"a": torch.rand(2, 8, 8), "b": torch.zeros(2, 1, 8, 8)}, x,
        ...                 indices=[1], targets=[0, 1], class_names=["cat", "dog"],
        ...                 boxes=torch.tensor([[0, 0, 4, 4], [2, 2, 8, 8]]))
        >>> len(fig.axes)  # input, two maps, two colour bars
        5
        >>> fig.axes[0].get_title()
        'input 1\\nclass 1 (dog)'
    """
    table_maps = _maps_of(maps)
    if isinstance(inputs, Tensor) and inputs.ndim == 3:
        return plot_series_maps(
            table_maps, inputs, spans=boxes, targets=targets, class_names=class_names,
            indices=indices, clip=clip, path=path, dpi=dpi,
        )  # fmt: skip
    inputs = _check_image_batch(inputs, "inputs")
    batch, _, height, width = inputs.shape
    size = (height, width)
    clip = _check_clip(clip)
    rows = _check_indices(indices, batch)
    names = _check_class_names(class_names)
    labels = _check_targets(targets, batch)
    boxes = _check_boxes(boxes, size, batch)
    checked = _check_maps(
        table_maps,
        lambda a: a.ndim in (3, 4) and a.shape[0] == batch and tuple(a.shape[-2:]) == size,
        f"({batch}, C, {height}, {width}) or ({batch}, {height}, {width}) like `inputs`",
    )

    from matplotlib.figure import Figure

    n_cols = 1 + len(checked)
    fig = Figure(figsize=(2.6 * n_cols, 2.5 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for row, idx in zip(axes, rows, strict=True):
        image = _image_np(inputs[idx])
        label = _class_label(labels[idx], names) if labels is not None else ""
        _show(row[0], image, f"input {idx}" + (f"\n{label}" if label else ""), size)
        row_boxes = boxes[idx : idx + 1] if boxes is not None else None
        _draw_boxes(row[0], row_boxes)
        gray = _gray(image)
        for ax, (name, attr) in zip(row[1:], checked.items(), strict=True):
            saliency = _saliency_np(attr[idx], f"maps[{name!r}]")
            _overlay(fig, ax, gray, saliency, name, clip, size)
            _draw_boxes(ax, row_boxes)
    return _save(fig, path, dpi)


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
    table_maps = _maps_of(maps)
    series = _check_series_batch(series, "series")
    batch, channels, length = series.shape
    clip = _check_clip(clip)
    rows = _check_indices(indices, batch)
    names = _check_class_names(class_names)
    labels = _check_targets(targets, batch)
    spans = _check_spans(spans, length, batch)
    checked = _check_maps(
        table_maps,
        lambda a: (
            a.ndim in (2, 3)
            and a.shape[0] == batch
            and a.shape[-1] == length
            and (a.ndim == 2 or a.shape[1] in (1, channels))
        ),
        f"({batch}, {channels}, {length}), ({batch}, 1, {length}) or ({batch}, {length}) "
        "like the series",
    )
    values = series.detach().cpu().double().numpy()

    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

    n_cols = 1 + len(checked)
    panel_height = 1.5 if channels > 1 else 2.1
    fig = Figure(
        figsize=(3.3 * n_cols, panel_height * channels * len(rows) + 0.3), layout="constrained"
    )
    axes = fig.subplots(channels * len(rows), n_cols, squeeze=False)
    for r, idx in enumerate(rows):
        block = axes[r * channels : (r + 1) * channels]  # (C, n_cols)
        limits = [_series_limits(values[idx, c]) for c in range(channels)]
        span = None if spans is None else spans[idx].tolist()
        bottom = r == len(rows) - 1
        for c in range(channels):
            ax = block[c, 0]
            if span is not None:
                _span_patch(ax, *span, limits[c], shaded=True)
            _series_line(ax, values[idx, c])
            _series_axes(ax, length, limits[c], bottom and c == channels - 1)
            if channels > 1:
                ax.set_ylabel(f"channel {c}", fontsize=TITLE_SIZE - 1)
        title = f"series {idx}"
        if span is not None:
            title += f", span {span[0]:g}–{span[1]:g}"
        if labels is not None:
            title += f"\n{_class_label(labels[idx], names)}"
        block[0, 0].set_title(title, fontsize=TITLE_SIZE)
        for j, (name, attr) in enumerate(checked.items(), start=1):
            saliency = _series_map_np(attr[idx], f"maps[{name!r}]")
            norm, title = _map_norm(saliency, clip, name)
            for c in range(channels):
                ax = block[c, j]
                _band(ax, values[idx, c], saliency, norm, limits[c])
                _series_line(ax, values[idx, c])
                if span is not None:
                    _span_patch(ax, *span, limits[c], shaded=False)
                _series_axes(ax, length, limits[c], bottom and c == channels - 1)
            block[0, j].set_title(title, fontsize=TITLE_SIZE)
            bar = fig.colorbar(
                ScalarMappable(norm=norm, cmap=SALIENCY_CMAP), ax=list(block[:, j]), aspect=15
            )
            bar.ax.tick_params(labelsize=TITLE_SIZE - 2)
    return _save(fig, path, dpi)


def plot_explanation(
    image: Tensor,
    saliency: Tensor,
    *,
    target: int | None = None,
    class_names: Sequence[str] | None = None,
    confidence: float | None = None,
    method: str | None = None,
    boxes: Tensor | None = None,
    clip: str = "median",
    path: str | None = None,
    dpi: int = SAVE_DPI,
) -> Figure:
    """One image and its saliency map: the input, and the map over it with a colour bar.

    Images larger than ``DISPLAY_MAX_SIDE`` pixels are downsampled for display only; the axes stay
    in the image's pixel coordinates.

    Args:
        image: The image :math:`(C, H, W)`, ``uint8`` or float.
        saliency: Its map :math:`(H, W)` or :math:`(C', H, W)` (channels summed), same
            :math:`H, W` as the image.
        target: The explained class, shown in the title.
        class_names: Names of the classes, indexed by ``target``.
        confidence: The model's confidence in ``target``, shown in the title.
        method: Name of the method, shown in the title.
        boxes: Boxes :math:`(N, 4)` to draw on both panels, pixel-edge convention.
        clip: Lower end of the colour scale: ``"median"`` or ``"min"``.
        path: Save the figure there if given.
        dpi: Resolution of the saved figure.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        TypeError: If ``image`` or ``saliency`` is not a tensor, or ``target`` not an int.
        ValueError: If their sizes differ, the map is not finite, ``target`` has no name in
            ``class_names``, ``boxes`` lie outside the image or ``clip`` is unknown.

    Example:
        >>> import torch
        >>> fig = plot_explanation(torch.rand(3, 10, 12), torch.rand(10, 12), target=1,
        ...                        class_names=["cat", "dog"], confidence=0.9, method="rise")
        >>> [ax.get_title() for ax in fig.axes[:2]]
        ['input 10x12', 'rise: class 1 (dog), p=0.900']
    """
    if not isinstance(image, Tensor) or image.ndim != 3:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise (ValueError if isinstance(image, Tensor) else TypeError)(
            f"`image` must be a tensor (C, H, W), got {got}."
        )
    size = (int(image.shape[1]), int(image.shape[2]))
    if not isinstance(saliency, Tensor):
        raise TypeError(f"`saliency` must be a torch.Tensor, got {type(saliency).__name__}.")
    if saliency.ndim not in (2, 3) or tuple(saliency.shape[-2:]) != size:
        raise ValueError(
            f"`saliency` must be a map (H, W) or (C, H, W) of the image's size {size}, got "
            f"{tuple(saliency.shape)}."
        )
    if saliency.is_complex() or saliency.dtype == torch.bool:
        raise TypeError(f"`saliency` must hold real numbers, got dtype {saliency.dtype}.")
    if not bool(torch.isfinite(saliency).all()):
        raise ValueError("`saliency` must be finite, but it contains NaN or infinite values.")
    if target is not None and (isinstance(target, bool) or not isinstance(target, Integral)):
        raise TypeError(f"`target` must be an int or None, got {type(target).__name__}.")
    clip = _check_clip(clip)
    names = _check_class_names(class_names)
    boxes = _check_boxes(boxes, size)
    label = _class_label(int(target), names) if target is not None else ""
    parts = [p for p in (method, label) if p]
    title = ": ".join(parts) if parts else "saliency"
    if confidence is not None:
        title += f", p={float(confidence):.3f}"

    pixels = _downsample(image.detach().cpu(), DISPLAY_MAX_SIDE)
    image_np = _image_np(pixels / 255 if image.dtype == torch.uint8 else pixels)
    flat = saliency.detach().cpu().reshape(-1, *size)
    shown_map = _saliency_np(_downsample(flat, DISPLAY_MAX_SIDE), "saliency")

    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 3.4), layout="constrained")
    ax_img, ax_map = fig.subplots(1, 2)
    _show(ax_img, image_np, f"input {size[0]}x{size[1]}", size)
    _overlay(fig, ax_map, _gray(image_np), shown_map, title, clip, size)
    for ax in (ax_img, ax_map):
        _draw_boxes(ax, boxes)
    return _save(fig, path, dpi)


def plot_variations(
    result: Any,
    images: Tensor | None = None,
    *,
    index: int | Sequence[int] | None = None,
    max_variants: int = 8,
    class_names: Sequence[str] | None = None,
    path: str | None = None,
    dpi: int = SAVE_DPI,
) -> Figure:
    r"""Acceptable variations as a grid: one row per input.

    Images: columns are the input (``images`` given: the original, with its class and
    confidence; otherwise the input with :math:`B` blanked), the context weights :math:`R`
    with a colour bar, the kept variants (``✓`` accepted in green, ``✗`` flipped to another
    class in red, ``✗`` too unsure in orange; the loss without a classifier) and, in
    counterfactual mode, the counterfactual candidates. The region :math:`B` is outlined in
    every input panel.

    Series (variants :math:`(N, K, C, T)`): one panel per input (:math:`C` stacked panels for
    :math:`C` channels) with the original in black (without ``images``: the input outside
    :math:`B`), :math:`B` shaded and the kept variants drawn over it in the same colours
    (green kept, red flipped, orange too unsure); its title gives the class and confidence of
    the original and how many variants were kept or flipped, with their confidences. In
    counterfactual mode a second panel draws the candidates (red where they flip the class).

    Args:
        result: A :class:`~captum_perturbmask.generative.LatentVariations`.
        images: The original inputs :math:`(N, C, H, W)` or :math:`(N, C, T)`, optional.
        index: Input(s) to draw; all inputs (at most 8) when ``None``.
        max_variants: At most this many variants (and counterfactuals) per row.
        class_names: Names of the classes, indexed by class.
        path: Save the figure there if given.
        dpi: Resolution of the saved figure.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        TypeError: If ``result`` is not a ``LatentVariations``-like object or ``images`` not a
            tensor.
        ValueError: If ``index`` is out of range, ``max_variants`` < 1 or ``images`` do not
            match the variants.
    """
    if not all(hasattr(result, a) for a in ("variants", "mask", "context_weights", "losses")):
        raise TypeError(f"`result` must be a LatentVariations, got {type(result).__name__}.")
    variants = result.variants
    n, n_kept = variants.shape[:2]
    size = (int(variants.shape[-2]), int(variants.shape[-1]))
    if index is None:
        rows = list(range(min(n, 8)))
    else:
        idx = [index] if isinstance(index, Integral) and not isinstance(index, bool) else index
        if not isinstance(idx, Sequence) or any(
            isinstance(i, bool) or not isinstance(i, Integral) for i in idx
        ):
            raise TypeError(f"`index` must be an int or a sequence of ints, got {index!r}.")
        rows = [int(i) for i in idx]
        for i in rows:
            if not -n <= i < n:
                raise ValueError(f"`index` must be in [{-n}, {n}), got {i}.")
    if isinstance(max_variants, bool) or not isinstance(max_variants, Integral):
        raise TypeError(f"`max_variants` must be an int, got {type(max_variants).__name__}.")
    if max_variants < 1:
        raise ValueError(f"`max_variants` must be >= 1, got {max_variants}.")
    if images is not None:
        if not isinstance(images, Tensor):
            raise TypeError(f"`images` must be a torch.Tensor, got {type(images).__name__}.")
        if tuple(images.shape) != (n, *variants.shape[2:]):
            raise ValueError(
                f"`images` must have shape {(n, *variants.shape[2:])} like the variants, got "
                f"{tuple(images.shape)}."
            )
    names = _check_class_names(class_names)
    k = min(n_kept, max_variants)
    cf = getattr(result, "counterfactuals", None)
    kc = 0 if cf is None else min(cf.variants.shape[1], max_variants)
    if variants.ndim == 4:
        fig = _series_variations(result, images, [i % n for i in rows], k, kc, names)
        return _save(fig, path, dpi)
    target = getattr(result, "target", None)
    confidence = getattr(result, "confidence", None)
    accepted = getattr(result, "accepted", None)
    predictions = getattr(result, "predictions", None)
    input_confidence = getattr(result, "input_confidence", None)

    def name_of(cls: int) -> str:
        return f"{cls} ({names[cls]})" if names is not None and 0 <= cls < len(names) else f"{cls}"

    from matplotlib.figure import Figure

    cols = 2 + k + kc
    fig = Figure(figsize=(1.7 * cols + 0.4, 1.8 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, i in enumerate(rows):
        mask = result.mask[i].cpu()
        if images is not None:
            title = "original"
            if target is not None:
                title = f"class {name_of(int(target[i]))}"
                if input_confidence is not None:
                    title += f"\np={float(input_confidence[i]):.2f}"
            _show(axes[r, 0], _image_np(images[i].clamp(0, 1)), title, size)
        else:
            blanked = torch.where(mask, torch.zeros_like(variants[i, 0]), variants[i, 0].cpu())
            _show(axes[r, 0], _image_np(blanked.clamp(0, 1)), "input \u2212 B", size)
        _outline(axes[r, 0], mask)
        weights = result.context_weights[i].detach().double().cpu().numpy()
        _show(axes[r, 1], weights, "B and R", size, cmap=SALIENCY_CMAP, vmin=None, vmax=None)
        bar = fig.colorbar(axes[r, 1].images[0], ax=axes[r, 1], shrink=0.8)
        bar.ax.tick_params(labelsize=TITLE_SIZE - 3)
        _outline(axes[r, 1], mask)
        for j in range(k):
            color = "black"
            title = f"loss {float(result.losses[i, j]):.3g}"
            if confidence is not None and accepted is not None:
                p = float(confidence[i, j])
                pred = int(predictions[i, j]) if predictions is not None else None
                wanted = int(target[i]) if target is not None else None
                if bool(accepted[i, j]):
                    title, color = f"\u2713 p={p:.2f}", "tab:green"
                elif pred is not None and wanted is not None and pred != wanted:
                    title, color = f"\u2717 \u2192{name_of(pred)}", "tab:red"
                else:
                    title, color = f"\u2717 p={p:.2f}", "tab:orange"
            _show(axes[r, 2 + j], _image_np(variants[i, j].clamp(0, 1)), title, size)
            axes[r, 2 + j].title.set_color(color)
        for j in range(kc):
            flipped = bool(cf.flipped[i, j])
            title = f"{'flip' if flipped else 'kept'} \u2192{name_of(int(cf.predictions[i, j]))}"
            ax = axes[r, 2 + k + j]
            _show(ax, _image_np(cf.variants[i, j].clamp(0, 1)), title, size)
            ax.title.set_color("tab:red" if flipped else "dimgray")
    for ax in axes.flat:
        ax.title.set_fontsize(TITLE_SIZE - 1)
    return _save(fig, path, dpi)


def _variant_status(result: Any, i: int, j: int) -> str:
    """``"kept"``, ``"flipped"``, ``"unsure"`` or ``"variant"`` (no classifier)."""
    accepted, predictions, target = result.accepted, result.predictions, result.target
    if accepted is None:
        return "variant"
    if bool(accepted[i, j]):
        return "kept"
    if predictions is not None and target is not None:
        if int(predictions[i, j]) != int(target[i]):
            return "flipped"
    return "unsure"


def _series_variations(
    result: Any,
    images: Tensor | None,
    rows: list[int],
    k: int,
    kc: int,
    names: list[str] | None,
) -> Figure:
    """The series branch of :func:`plot_variations`."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    variants = result.variants.detach().cpu().double()
    channels, length = variants.shape[-2:]
    cf = result.counterfactuals if kc else None
    target, confidence = result.target, result.confidence
    input_confidence = result.input_confidence

    def name_of(cls: int) -> str:
        return _class_label(cls, names if names is not None and cls < len(names) else None)

    cols = 1 + (cf is not None)
    fig = Figure(figsize=(4.6 * cols, 2.1 * channels * len(rows) + 0.3), layout="constrained")
    axes = fig.subplots(channels * len(rows), cols, squeeze=False)
    for r, i in enumerate(rows):
        mask = result.mask[i].detach().cpu().numpy().astype(bool)
        runs = _runs(mask)
        if images is not None:
            original = images[i].detach().cpu().double().numpy()
        else:  # the input is known outside B only
            original = np.where(mask, np.nan, variants[i, 0].numpy())
        statuses = [_variant_status(result, i, j) for j in range(k)]
        title = f"series {i}"
        if target is not None:
            title += f": {name_of(int(target[i]))}"
            if input_confidence is not None and images is not None:
                title += f", p={float(input_confidence[i]):.2f}"
        if confidence is not None:
            parts = []
            for status in ("kept", "flipped", "unsure"):
                ps = [float(confidence[i, j]) for j in range(k) if statuses[j] == status]
                if ps:
                    mark = "\u2713" if status == "kept" else "\u2717"
                    parts.append(f"{mark} {len(ps)} {status} (p {min(ps):.2f}\u2013{max(ps):.2f})")
            title += "\n" + ", ".join(parts)
        else:
            losses = [float(result.losses[i, j]) for j in range(k)]
            title += f"\n{k} variants, loss {min(losses):.3g}\u2013{max(losses):.3g}"
        bottom = r == len(rows) - 1
        for c in range(channels):
            ax = axes[r * channels + c, 0]
            limits = _series_limits(np.concatenate([original[c], variants[i, :k, c].flatten()]))
            for start, end in runs:
                _span_patch(ax, start, end, limits, shaded=True)
            _series_line(ax, original[c], zorder=2)
            for j in range(k):
                _variant_lines(ax, variants[i, j, c].numpy(), runs, _STATUS_COLORS[statuses[j]])
            _series_axes(ax, length, limits, bottom and c == channels - 1)
            if channels > 1:
                ax.set_ylabel(f"channel {c}", fontsize=TITLE_SIZE - 1)
            if cf is None:
                continue
            ax = axes[r * channels + c, 1]
            cf_values = cf.variants[i, :kc, c].detach().cpu().double()
            for start, end in runs:
                _span_patch(ax, start, end, limits, shaded=True)
            _series_line(ax, original[c], zorder=2)
            for j in range(kc):
                color = _STATUS_COLORS["flipped"] if bool(cf.flipped[i, j]) else "dimgray"
                _variant_lines(ax, cf_values[j].numpy(), runs, color)
            _series_axes(ax, length, limits, bottom and c == channels - 1)
        axes[r * channels, 0].set_title(title, fontsize=TITLE_SIZE)
        if cf is not None:
            flips = [j for j in range(kc) if bool(cf.flipped[i, j])]
            cf_title = f"counterfactuals: {len(flips)}/{kc} flipped"
            if flips:
                classes = sorted({int(cf.predictions[i, j]) for j in flips})
                cf_title += "\n\u2192 " + ", ".join(name_of(c) for c in classes)
            axes[r * channels, 1].set_title(cf_title, fontsize=TITLE_SIZE)
    present = [s for s in _STATUS_COLORS if any(
        _variant_status(result, i, j) == s for i in rows for j in range(k))]  # fmt: skip
    handles = [Line2D([], [], color="black", label="original")] + [
        Line2D([], [], color=_STATUS_COLORS[s], label=s) for s in present
    ]
    axes[0, 0].legend(handles=handles, fontsize=TITLE_SIZE - 2, loc="best")
    return fig


def _variant_lines(ax: Axes, values: np.ndarray, runs: list[tuple[int, int]], color: str) -> None:
    """A variant inside each run of B (one step of context on each side joins it to the
    original, which it equals outside B)."""
    steps = np.arange(values.shape[0]) + 0.5
    for start, end in runs:
        lo, hi = max(start - 1, 0), min(end + 1, values.shape[0])
        ax.plot(steps[lo:hi], values[lo:hi], color=color, linewidth=1.0, alpha=0.85, zorder=3)


def plot_convergence(
    rows: Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[tuple[str, str]] = (
        ("insertion", "insertion AUC \u2191"),
        ("deletion", "deletion AUC \u2193"),
    ),
    error: str = "sem",
    xlabel: str = "forward passes per input",
    path: str | None = None,
    dpi: int = SAVE_DPI,
) -> Figure:
    """Metrics against the forward budget, one line per method, one panel per metric.

    Args:
        rows: One mapping per (method, budget) with keys ``method``, ``budget`` and each metric
            key; ``f"{key}_{error}"`` (e.g. ``insertion_sem``), when present, is drawn as an
            error bar.
        metrics: ``(key, panel title)`` pairs.
        error: Suffix of the error-bar keys.
        xlabel: Label of the (logarithmic) budget axis.
        path: Save the figure there if given.
        dpi: Resolution of the saved figure.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        TypeError: If ``rows`` is not a sequence of mappings.
        ValueError: If ``rows`` or ``metrics`` is empty, a row lacks a key, or a budget is not
            positive.

    Example:
        >>> rows = [{"method": "RISE", "budget": b, "insertion": 0.5, "deletion": 0.2}
        ...         for b in (10, 100)]
        >>> [ax.get_title() for ax in plot_convergence(rows).axes]
        ['insertion AUC ↑', 'deletion AUC ↓']
    """
    if isinstance(rows, (str, Mapping)) or not isinstance(rows, Sequence):
        raise TypeError(f"`rows` must be a sequence of mappings, got {type(rows).__name__}.")
    if not rows:
        raise ValueError("`rows` must not be empty.")
    if not metrics:
        raise ValueError("`metrics` must name at least one (key, title) pair.")
    for r, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"`rows[{r}]` must be a mapping, got {type(row).__name__}.")
        missing = [k for k in ("method", "budget", *(m for m, _ in metrics)) if k not in row]
        if missing:
            raise ValueError(f"`rows[{r}]` lacks the keys {missing}.")
        budget = row["budget"]
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
            raise ValueError(f"`rows[{r}]['budget']` must be a positive number, got {budget!r}.")

    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    budgets = sorted({r["budget"] for r in rows})
    fig = Figure(figsize=(4.0 * len(metrics), 3.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    markers = "os^Dv<>"
    for ax, (key, title) in zip(axes, metrics, strict=True):
        for m, name in enumerate(methods):
            points = sorted(
                (r for r in rows if str(r["method"]) == name), key=lambda r: r["budget"]
            )
            err_key = f"{key}_{error}"
            yerr = [r[err_key] for r in points] if all(err_key in r for r in points) else None
            ax.errorbar(
                [r["budget"] for r in points],
                [r[key] for r in points],
                yerr=yerr,
                label=name,
                color=_METHOD_COLORS.get(name, f"C{(m + 2) % 10}"),
                marker=markers[m % len(markers)],
                capsize=3,
            )
        ax.set_xscale("log")
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=TITLE_SIZE + 1)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=TITLE_SIZE)
    return _save(fig, path, dpi)
