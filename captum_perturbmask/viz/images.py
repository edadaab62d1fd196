"""Maps on images :math:`(B, C, H, W)`: several methods side by side, or one explanation.

The axes of an image panel are pixel edges: the image spans ``[0, W] x [0, H]`` and boxes
``(x1, y1, x2, y2)`` (``x2``, ``y2`` exclusive) are drawn exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from captum_perturbmask._core.checks import check_class_names
from captum_perturbmask.viz._checks import (
    check_clip,
    check_image_batch,
    check_map_figure,
    check_real,
    check_regions_per_input,
    maps_of,
)
from captum_perturbmask.viz._draw import (
    class_label,
    downsample,
    draw_boxes,
    gray,
    image_np,
    map_np,
    overlay,
    save,
    show,
)
from captum_perturbmask.viz._style import DISPLAY_MAX_SIDE, SAVE_DPI
from captum_perturbmask.viz.series import plot_series_maps

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_explanation", "plot_maps"]


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
    table_maps = maps_of(maps)
    if isinstance(inputs, Tensor) and inputs.ndim == 3:
        return plot_series_maps(
            table_maps, inputs, spans=boxes, targets=targets, class_names=class_names,
            indices=indices, clip=clip, path=path, dpi=dpi,
        )  # fmt: skip
    inputs = check_image_batch(inputs, "inputs")
    batch, _, height, width = inputs.shape
    size = (height, width)
    boxes = check_regions_per_input(boxes, "boxes", size, batch)
    args = check_map_figure(
        table_maps,
        batch,
        clip=clip,
        indices=indices,
        class_names=class_names,
        targets=targets,
        fits=lambda a: a.ndim in (3, 4) and a.shape[0] == batch and tuple(a.shape[-2:]) == size,
        expected=f"({batch}, C, {height}, {width}) or ({batch}, {height}, {width}) like `inputs`",
    )

    from matplotlib.figure import Figure

    n_cols = 1 + len(args.maps)
    fig = Figure(figsize=(2.6 * n_cols, 2.5 * len(args.rows)), layout="constrained")
    axes = fig.subplots(len(args.rows), n_cols, squeeze=False)
    for row, idx in zip(axes, args.rows, strict=True):
        image = image_np(inputs[idx])
        label = class_label(args.targets[idx], args.class_names) if args.targets is not None else ""
        show(row[0], image, f"input {idx}" + (f"\n{label}" if label else ""), size)
        row_boxes = boxes[idx : idx + 1] if boxes is not None else None
        draw_boxes(row[0], row_boxes)
        gray_image = gray(image)
        for ax, (name, attr) in zip(row[1:], args.maps.items(), strict=True):
            saliency = map_np(attr[idx], f"maps[{name!r}]")
            overlay(fig, ax, gray_image, saliency, name, args.clip, size)
            draw_boxes(ax, row_boxes)
    return save(fig, path, dpi)


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
    check_real(saliency, "saliency")
    if target is not None and (isinstance(target, bool) or not isinstance(target, Integral)):
        raise TypeError(f"`target` must be an int or None, got {type(target).__name__}.")
    clip = check_clip(clip)
    names = check_class_names(class_names)
    boxes = check_regions_per_input(boxes, "boxes", size)
    label = class_label(int(target), names) if target is not None else ""
    parts = [p for p in (method, label) if p]
    title = ": ".join(parts) if parts else "saliency"
    if confidence is not None:
        title += f", p={float(confidence):.3f}"

    pixels = downsample(image.detach().cpu(), DISPLAY_MAX_SIDE)
    shown_image = image_np(pixels / 255 if image.dtype == torch.uint8 else pixels)
    flat = saliency.detach().cpu().reshape(-1, *size)
    shown_map = map_np(downsample(flat, DISPLAY_MAX_SIDE), "saliency")

    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 3.4), layout="constrained")
    ax_img, ax_map = fig.subplots(1, 2)
    show(ax_img, shown_image, f"input {size[0]}x{size[1]}", size)
    overlay(fig, ax_map, gray(shown_image), shown_map, title, clip, size)
    for ax in (ax_img, ax_map):
        draw_boxes(ax, boxes)
    return save(fig, path, dpi)
