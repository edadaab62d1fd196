"""Drawing primitives: images and maps as arrays, image panels, overlays, boxes, outlines, and
saving a figure."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from captum_perturbmask.viz._checks import check_real
from captum_perturbmask.viz._style import (
    BOX_COLOR,
    BOX_LINEWIDTH,
    OVERLAY_ALPHA,
    SALIENCY_CMAP,
    SAVE_DPI,
    TITLE_SIZE,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure


# ------------------------------------------------------------------------------------------
# Tensors as arrays
# ------------------------------------------------------------------------------------------
def image_np(image: Tensor) -> np.ndarray:
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


def gray(image: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R 601) of an RGB array, or the array itself if already grey."""
    if image.ndim == 2:
        return image
    return image @ np.array([0.299, 0.587, 0.114], dtype=image.dtype)


def map_np(saliency: Tensor, name: str, ndim: int = 2) -> np.ndarray:
    """A map of ``ndim`` axes (:math:`(H, W)` for images, :math:`(T,)` for series), or one with
    a leading channel axis (summed), as a finite float64 array."""
    if not isinstance(saliency, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(saliency).__name__}.")
    if saliency.ndim not in (ndim, ndim + 1):
        axes = "(H, W)" if ndim == 2 else "(T,)"
        raise ValueError(
            f"`{name}` must be a map {axes} or (C, {axes.strip('(,)')}), got "
            f"{tuple(saliency.shape)}."
        )
    s = check_real(saliency.detach().cpu(), name).double()
    if s.ndim == ndim + 1:
        s = s.sum(0)
    return s.numpy()


def downsample(x: Tensor, max_side: int) -> Tensor:
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


def class_label(target: int | None, class_names: list[str] | None) -> str:
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


# ------------------------------------------------------------------------------------------
# Panels
# ------------------------------------------------------------------------------------------
def show(ax: Axes, image: np.ndarray, title: str, size: tuple[int, int], **kwargs: Any) -> None:
    """An image on pixel-edge axes: it spans ``[0, W] x [0, H]``, rows downwards."""
    height, width = size
    if image.ndim == 2:
        kwargs.setdefault("cmap", "gray")
        kwargs.setdefault("vmin", 0.0)
        kwargs.setdefault("vmax", 1.0)
    ax.imshow(image, extent=(0, width, height, 0), interpolation="nearest", **kwargs)
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.set_axis_off()


def map_norm(saliency: np.ndarray, clip: str, title: str) -> tuple[Normalize, str]:
    """Colour scale of one map, median (or minimum) to maximum; a constant map says so."""
    from matplotlib.colors import Normalize

    low = float(np.median(saliency)) if clip == "median" else float(saliency.min())
    high = float(saliency.max())
    if high <= float(saliency.min()):
        title = f"{title} (constant {high:.3g})"
    return Normalize(vmin=low, vmax=high), title


def colorbar(fig: Figure, norm: Normalize, ax: Axes | list[Axes], **kwargs: Any) -> None:
    """A colour bar of :data:`SALIENCY_CMAP` in ``norm``'s units next to ``ax``."""
    from matplotlib.cm import ScalarMappable

    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=SALIENCY_CMAP), ax=ax, **kwargs)
    bar.ax.tick_params(labelsize=TITLE_SIZE - 2)


def overlay(
    fig: Figure,
    ax: Axes,
    gray_image: np.ndarray,
    saliency: np.ndarray,
    title: str,
    clip: str,
    size: tuple[int, int],
) -> None:
    """A saliency map over a grey image, with a colour bar in the map's units."""
    norm, title = map_norm(saliency, clip, title)
    show(ax, gray_image, title, size, alpha=1.0)
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
    colorbar(fig, norm, ax, shrink=shrink)


def draw_boxes(ax: Axes, boxes: Tensor | None) -> None:
    """Rectangles for boxes ``(x1, y1, x2, y2)``, pixel-edge convention."""
    from matplotlib.patches import Rectangle

    if boxes is None:
        return
    for x1, y1, x2, y2 in boxes.tolist():
        ax.add_patch(
            Rectangle(
                (x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=BOX_COLOR, linewidth=BOX_LINEWIDTH
            )
        )


def outline(ax: Axes, mask: Tensor) -> None:
    """Outline of a boolean region :math:`(H, W)` on pixel-edge axes."""
    m = mask.detach().float().cpu().numpy()
    if m.min() == m.max():  # empty or full region: no contour to draw
        return
    h, w = m.shape
    ax.contour(np.arange(w) + 0.5, np.arange(h) + 0.5, m, levels=[0.5], colors=BOX_COLOR)


# ------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------
def save(fig: Figure, path: str | None, dpi: int) -> Figure:
    """Save ``fig`` to ``path`` if it is given; return ``fig``."""
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
