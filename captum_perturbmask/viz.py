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
* class names in the titles when they are known.

Every function builds a :class:`matplotlib.figure.Figure` directly (no ``pyplot``: no global
state, any backend, no display needed), returns it, and saves it when ``path`` is given.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "SALIENCY_CMAP",
    "plot_convergence",
    "plot_explanation",
    "plot_maps",
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
#: Font size of panel titles, in points.
TITLE_SIZE = 9
#: Resolution of saved figures, dots per inch.
SAVE_DPI = 100
#: Longer image side drawn at most (larger images are downsampled for display only; the axes
#: keep the original pixel coordinates).
DISPLAY_MAX_SIDE = 1024

_CLIPS = ("median", "min")
_METHOD_COLORS = {"PerturbMask": "tab:red", "RISE": "tab:blue"}


# ------------------------------------------------------------------------------------------
# Checks and conversions
# ------------------------------------------------------------------------------------------
def _check_clip(clip: object) -> str:
    if clip not in _CLIPS:
        raise ValueError(f"`clip` must be one of {_CLIPS}, got {clip!r}.")
    return str(clip)


def _check_image_batch(inputs: object, name: str) -> Tensor:
    """Images :math:`(B, C, H, W)`; series :math:`(B, C, T)` are refused (no figure yet)."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(inputs).__name__}.")
    if inputs.ndim == 3:
        raise ValueError(
            f"`{name}` of shape {tuple(inputs.shape)} look like series (B, C, T), which have no "
            "figure yet; this function draws images (B, C, H, W)."
        )
    if inputs.ndim != 4:
        raise ValueError(f"`{name}` must be images (B, C, H, W), got shape {tuple(inputs.shape)}.")
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
    from matplotlib.colors import Normalize

    low = float(np.median(saliency)) if clip == "median" else float(saliency.min())
    high = float(saliency.max())
    if high <= float(saliency.min()):
        title = f"{title} (constant {high:.3g})"
    norm = Normalize(vmin=low, vmax=high)
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

    Only images are drawn for now; a series variant :math:`(B, C, T)` will dispatch on
    ``inputs.ndim``.

    Args:
        maps: A mapping name -> attributions :math:`(B, C, H, W)`, :math:`(B, 1, H, W)` or
            :math:`(B, H, W)`, or a :class:`~captum_perturbmask.compare.ComparisonTable` (its
            ``maps``).
        inputs: Images :math:`(B, C, H, W)` the maps explain (``uint8`` or float; float
            images outside :math:`[0, 1]` are min-max scaled for display).
        indices: Which inputs to draw, one row each.
        targets: Class of every input (one int, :math:`B` ints or a tensor :math:`(B,)`),
            shown in the input's title.
        class_names: Names of the classes, indexed by target.
        boxes: Object boxes :math:`(B, 4)` ``(x1, y1, x2, y2)``, pixel-edge convention.
        clip: Lower end of each map's colour scale: ``"median"`` or ``"min"``.
        path: Save the figure there if given.
        dpi: Resolution of the saved figure.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        TypeError: If ``maps``, ``inputs``, ``indices``, ``targets`` or ``class_names`` have
            the wrong type.
        ValueError: If ``inputs`` are not images (series are refused for now), a map does not
            fit the inputs or is not finite, ``indices`` are out of range, ``boxes`` are not
            inside the images, or ``clip`` is unknown.

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
    table_maps = getattr(maps, "maps", maps)
    if not isinstance(table_maps, Mapping) or not table_maps:
        raise TypeError(
            "`maps` must be a non-empty mapping name -> attributions or a ComparisonTable, got "
            f"{type(maps).__name__}."
        )
    inputs = _check_image_batch(inputs, "inputs")
    batch, _, height, width = inputs.shape
    size = (height, width)
    clip = _check_clip(clip)
    rows = _check_indices(indices, batch)
    names = _check_class_names(class_names)
    labels = _check_targets(targets, batch)
    boxes = _check_boxes(boxes, size, batch)
    checked: dict[str, Tensor] = {}
    for name, attr in table_maps.items():
        if not isinstance(attr, Tensor):
            raise TypeError(f"`maps[{name!r}]` must be a torch.Tensor, got {type(attr).__name__}.")
        if attr.ndim not in (3, 4) or attr.shape[0] != batch or tuple(attr.shape[-2:]) != size:
            raise ValueError(
                f"`maps[{name!r}]` must have shape ({batch}, C, {height}, {width}) or "
                f"({batch}, {height}, {width}) like `inputs`, got {tuple(attr.shape)}."
            )
        checked[str(name)] = attr

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

    Columns: the input (``images`` given: the original, with its class and confidence;
    otherwise the input with :math:`B` blanked), the context weights :math:`R` with a colour
    bar, the kept variants (``✓`` accepted in green, ``✗`` flipped to another class in red,
    ``✗`` too unsure in orange; the loss without a classifier) and, in counterfactual mode,
    the counterfactual candidates. The region :math:`B` is outlined in every input panel.

    Args:
        result: A :class:`~captum_perturbmask.generative.LatentVariations`.
        images: The original inputs :math:`(N, C, H, W)`, optional.
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
