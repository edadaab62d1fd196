"""Acceptable variations (and counterfactual candidates) of images and series."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from captum_perturbmask._core.checks import check_class_names, check_int
from captum_perturbmask.viz._draw import class_label, image_np, outline, save, show
from captum_perturbmask.viz._style import (
    NEUTRAL_COLOR,
    SALIENCY_CMAP,
    SAVE_DPI,
    STATUS_COLORS,
    TITLE_SIZE,
    VARIANT_ALPHA,
)
from captum_perturbmask.viz.series import (
    mask_runs,
    series_axes,
    series_limits,
    series_line,
    span_patch,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_variations"]


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
    max_variants = check_int(max_variants, "max_variants")
    if images is not None:
        if not isinstance(images, Tensor):
            raise TypeError(f"`images` must be a torch.Tensor, got {type(images).__name__}.")
        if tuple(images.shape) != (n, *variants.shape[2:]):
            raise ValueError(
                f"`images` must have shape {(n, *variants.shape[2:])} like the variants, got "
                f"{tuple(images.shape)}."
            )
    names = check_class_names(class_names)
    k = min(n_kept, max_variants)
    cf = getattr(result, "counterfactuals", None)
    kc = 0 if cf is None else min(cf.variants.shape[1], max_variants)
    if variants.ndim == 4:
        fig = _series_variations(result, images, _Shown([i % n for i in rows], k, kc, names))
    else:
        fig = _image_variations(result, images, _Shown(rows, k, kc, names))
    return save(fig, path, dpi)


class _Shown(NamedTuple):
    """What a variations figure shows: its rows (inputs), at most ``k`` variants and ``kc``
    counterfactuals per row, the class names."""

    rows: list[int]
    k: int
    kc: int
    names: list[str] | None


def _variant_status(result: Any, i: int, j: int) -> str:
    """``"kept"``, ``"flipped"``, ``"unsure"`` or ``"variant"`` (not scored by a classifier)."""
    accepted = getattr(result, "accepted", None)
    if accepted is None:
        return "variant"
    if bool(accepted[i, j]):
        return "kept"
    predictions, target = getattr(result, "predictions", None), getattr(result, "target", None)
    if predictions is not None and target is not None:
        if int(predictions[i, j]) != int(target[i]):
            return "flipped"
    return "unsure"


def _image_variations(result: Any, images: Tensor | None, shown: _Shown) -> Figure:
    """The image branch of :func:`plot_variations`."""
    from matplotlib.figure import Figure

    rows, k, kc, names = shown
    variants = result.variants
    size = (int(variants.shape[-2]), int(variants.shape[-1]))
    cf = result.counterfactuals if kc else None
    target = getattr(result, "target", None)
    confidence = getattr(result, "confidence", None)
    input_confidence = getattr(result, "input_confidence", None)

    def name_of(cls: int) -> str:
        return f"{cls} ({names[cls]})" if names is not None and 0 <= cls < len(names) else f"{cls}"

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
            show(axes[r, 0], image_np(images[i].clamp(0, 1)), title, size)
        else:
            blanked = torch.where(mask, torch.zeros_like(variants[i, 0]), variants[i, 0].cpu())
            show(axes[r, 0], image_np(blanked.clamp(0, 1)), "input \u2212 B", size)
        outline(axes[r, 0], mask)
        weights = result.context_weights[i].detach().double().cpu().numpy()
        show(axes[r, 1], weights, "B and R", size, cmap=SALIENCY_CMAP, vmin=None, vmax=None)
        bar = fig.colorbar(axes[r, 1].images[0], ax=axes[r, 1], shrink=0.8)
        bar.ax.tick_params(labelsize=TITLE_SIZE - 3)
        outline(axes[r, 1], mask)
        for j in range(k):
            status = "variant" if confidence is None else _variant_status(result, i, j)
            color = STATUS_COLORS[status] if status != "variant" else "black"
            if status == "variant":
                title = f"loss {float(result.losses[i, j]):.3g}"
            elif status == "flipped":
                title = f"\u2717 \u2192{name_of(int(result.predictions[i, j]))}"
            else:
                mark = "\u2713" if status == "kept" else "\u2717"
                title = f"{mark} p={float(confidence[i, j]):.2f}"
            show(axes[r, 2 + j], image_np(variants[i, j].clamp(0, 1)), title, size)
            axes[r, 2 + j].title.set_color(color)
        for j in range(kc):
            flipped = bool(cf.flipped[i, j])
            title = f"{'flip' if flipped else 'kept'} \u2192{name_of(int(cf.predictions[i, j]))}"
            ax = axes[r, 2 + k + j]
            show(ax, image_np(cf.variants[i, j].clamp(0, 1)), title, size)
            ax.title.set_color(STATUS_COLORS["flipped"] if flipped else NEUTRAL_COLOR)
    for ax in axes.flat:
        ax.title.set_fontsize(TITLE_SIZE - 1)
    return fig


def _series_variations(result: Any, images: Tensor | None, shown: _Shown) -> Figure:
    """The series branch of :func:`plot_variations`."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    rows, k, kc, names = shown
    variants = result.variants.detach().cpu().double()
    channels, length = variants.shape[-2:]
    cf = result.counterfactuals if kc else None
    target, confidence = result.target, result.confidence
    input_confidence = result.input_confidence

    def name_of(cls: int) -> str:
        return class_label(cls, names if names is not None and cls < len(names) else None)

    cols = 1 + (cf is not None)
    fig = Figure(figsize=(4.6 * cols, 2.1 * channels * len(rows) + 0.3), layout="constrained")
    axes = fig.subplots(channels * len(rows), cols, squeeze=False)
    for r, i in enumerate(rows):
        mask = result.mask[i].detach().cpu().numpy().astype(bool)
        runs = mask_runs(mask)
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
            limits = series_limits(np.concatenate([original[c], variants[i, :k, c].flatten()]))
            for start, end in runs:
                span_patch(ax, start, end, limits, shaded=True)
            series_line(ax, original[c], zorder=2)
            for j in range(k):
                _variant_lines(ax, variants[i, j, c].numpy(), runs, STATUS_COLORS[statuses[j]])
            series_axes(ax, length, limits, bottom and c == channels - 1)
            if channels > 1:
                ax.set_ylabel(f"channel {c}", fontsize=TITLE_SIZE - 1)
            if cf is None:
                continue
            ax = axes[r * channels + c, 1]
            cf_values = cf.variants[i, :kc, c].detach().cpu().double()
            for start, end in runs:
                span_patch(ax, start, end, limits, shaded=True)
            series_line(ax, original[c], zorder=2)
            for j in range(kc):
                color = STATUS_COLORS["flipped"] if bool(cf.flipped[i, j]) else NEUTRAL_COLOR
                _variant_lines(ax, cf_values[j].numpy(), runs, color)
            series_axes(ax, length, limits, bottom and c == channels - 1)
        axes[r * channels, 0].set_title(title, fontsize=TITLE_SIZE)
        if cf is not None:
            flips = [j for j in range(kc) if bool(cf.flipped[i, j])]
            cf_title = f"counterfactuals: {len(flips)}/{kc} flipped"
            if flips:
                classes = sorted({int(cf.predictions[i, j]) for j in flips})
                cf_title += "\n\u2192 " + ", ".join(name_of(c) for c in classes)
            axes[r * channels, 1].set_title(cf_title, fontsize=TITLE_SIZE)
    present = [s for s in STATUS_COLORS if any(
        _variant_status(result, i, j) == s for i in rows for j in range(k))]  # fmt: skip
    handles = [Line2D([], [], color="black", label="original")] + [
        Line2D([], [], color=STATUS_COLORS[s], label=s) for s in present
    ]
    axes[0, 0].legend(handles=handles, fontsize=TITLE_SIZE - 2, loc="best")
    return fig


def _variant_lines(ax: Axes, values: np.ndarray, runs: list[tuple[int, int]], color: str) -> None:
    """A variant inside each run of B (one step of context on each side joins it to the
    original, which it equals outside B)."""
    steps = np.arange(values.shape[0]) + 0.5
    for start, end in runs:
        lo, hi = max(start - 1, 0), min(end + 1, values.shape[0])
        ax.plot(
            steps[lo:hi], values[lo:hi], color=color, linewidth=1.0, alpha=VARIANT_ALPHA, zorder=3
        )
