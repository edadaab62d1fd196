"""The distribution of the acceptable variations of one input: what changed inside B, and how
sure the classifier stays."""

from __future__ import annotations

from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from captum_perturbmask._core.checks import check_int
from captum_perturbmask.viz._draw import image_np, save
from captum_perturbmask.viz._style import SAVE_DPI, SPAN_ALPHA, STATUS_COLORS, TITLE_SIZE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_variation_distribution"]


def _extent(mask: Tensor, pad: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of a non-empty mask per spatial dim, widened by ``pad``."""
    out = []
    for dim in range(mask.dim()):
        other = [d for d in range(mask.dim()) if d != dim]
        hit = mask.any(dim=other[0]) if other else mask
        pos = hit.nonzero().flatten()
        lo, hi = int(pos.min()) - pad, int(pos.max()) + 1 + pad
        out.append((max(lo, 0), min(hi, mask.shape[dim])))
    return out


def _order(result: Any, i: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Variant order (accepted first, each group by falling confidence), confidences and
    accepted flags of input ``i``."""
    k = result.variants.shape[1]
    conf = getattr(result, "confidence", None)
    acc = getattr(result, "accepted", None)
    if conf is None or acc is None:
        return np.arange(k), None, None
    c = conf[i].detach().double().cpu().numpy()
    a = acc[i].detach().cpu().numpy().astype(bool)
    order = np.lexsort((-c, ~a))
    return order, c, a


def plot_variation_distribution(
    result: Any,
    images: Tensor,
    *,
    index: int = 0,
    max_variants: int = 12,
    pad: int = 2,
    path: str | None = None,
    dpi: int = SAVE_DPI,
) -> Figure:
    r"""The variants of one input as a distribution, not as near-copies of the input.

    Images: the top row shows the input with :math:`B` outlined, the crop around :math:`B`
    (``pad`` pixels of context) enlarged, the per-pixel standard deviation over the variants
    inside that crop, and the histogram of the classifier's confidence :math:`p(\text{target})`
    over the variants (accepted in green, flipped or too unsure in red) with the input's
    confidence as a dashed line. Then two rows per group of variants, sorted (accepted first,
    each by falling confidence): the enlarged crop of each variant, titled with its
    confidence and ``✓``/``✗``, and below it the difference :math:`X' - X` in the crop
    (red: brighter, blue: darker, summed over channels).

    Series: the input with :math:`B` shaded and every variant drawn over the crop around it
    (green accepted, red flipped), the differences :math:`X' - X` inside the crop, the
    per-step standard deviation, and the same histogram.

    Args:
        result: A :class:`~captum_perturbmask.generative.LatentVariations` (scored with a
            ``forward_func`` for the colours and the histogram).
        images: The original inputs :math:`(N, C, H, W)` or :math:`(N, C, T)`.
        index: The input to draw.
        max_variants: At most this many variants are drawn.
        pad: Context around :math:`B` in the crop (pixels or steps).
        path: Save the figure there if given.
        dpi: Resolution of the saved figure.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        TypeError: If ``result`` is not a ``LatentVariations``-like object or ``images`` not a
            tensor.
        ValueError: If ``index`` is out of range, ``images`` do not match the variants, or
            ``max_variants`` < 1 or ``pad`` < 0.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import torch
        >>> from torch import nn
        >>> from captum_perturbmask.generative import LatentVariationGenerator, VariationSettings
        >>> G = nn.Sequential(nn.Linear(4, 3 * 8 * 8), nn.Sigmoid(), nn.Unflatten(1, (3, 8, 8)))
        >>> clf = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
        >>> x, m = torch.rand(1, 3, 8, 8), torch.zeros(8, 8, dtype=torch.bool)
        >>> m[2:6, 2:6] = True
        >>> out = LatentVariationGenerator(G, forward_func=clf).generate(
        ...     x, mask=m, seed=0, settings=VariationSettings(n_restarts=4, n_keep=4, n_steps=2))
        >>> fig = plot_variation_distribution(out, x)
        >>> len(fig.axes) >= 4
        True
    """
    if not all(hasattr(result, a) for a in ("variants", "mask")):
        raise TypeError(f"`result` must be a LatentVariations, got {type(result).__name__}.")
    if not isinstance(images, Tensor):
        raise TypeError(f"`images` must be a torch.Tensor, got {type(images).__name__}.")
    variants = result.variants.detach().cpu()
    n = variants.shape[0]
    if tuple(images.shape) != (n, *variants.shape[2:]):
        raise ValueError(
            f"`images` must have shape {(n, *variants.shape[2:])} like the variants, got "
            f"{tuple(images.shape)}."
        )
    if isinstance(index, bool) or not isinstance(index, Integral) or not -n <= index < n:
        raise ValueError(f"`index` must be an int in [{-n}, {n}), got {index!r}.")
    i = int(index) % n
    check_int(max_variants, "max_variants")
    check_int(pad, "pad", 0)
    order, conf, acc = _order(result, i)
    order = order[:max_variants]
    x = images[i].detach().cpu()
    v = variants[i]
    mask = result.mask[i].detach().cpu()
    in_conf = getattr(result, "input_confidence", None)
    x_conf = None if in_conf is None else float(in_conf[i])
    if variants.ndim == 4:
        fig = _series(x, v, mask, order, conf, acc, x_conf, pad)
    else:
        fig = _images(x, v, mask, order, conf, acc, x_conf, pad)
    return save(fig, path, dpi)


def _histogram(
    ax: Axes, conf: np.ndarray | None, acc: np.ndarray | None, x_conf: float | None
) -> None:
    if conf is None or acc is None:
        ax.set_axis_off()
        ax.set_title("not scored", fontsize=TITLE_SIZE)
        return
    bins = np.linspace(0, 1, 21) if conf.min() >= 0 and conf.max() <= 1 else 20
    ax.hist(
        [conf[acc], conf[~acc]],
        bins=bins,
        stacked=True,
        color=[STATUS_COLORS["kept"], STATUS_COLORS["flipped"]],
        label=[f"accepted {int(acc.sum())}", f"flipped {int((~acc).sum())}"],
    )
    if x_conf is not None:
        ax.axvline(x_conf, color="black", linestyle="--", linewidth=1, label="input")
    ax.set_xlabel("p(target)", fontsize=TITLE_SIZE)
    ax.set_title("confidence over the variants", fontsize=TITLE_SIZE)
    ax.legend(fontsize=TITLE_SIZE - 2)


def _status(conf: np.ndarray | None, acc: np.ndarray | None, j: int) -> tuple[str, str]:
    if conf is None or acc is None:
        return f"#{j}", STATUS_COLORS["variant"]
    ok = bool(acc[j])
    mark = "\u2713" if ok else "\u2717"
    return f"{mark} {conf[j]:.2f}", STATUS_COLORS["kept" if ok else "flipped"]


def _images(
    x: Tensor,
    v: Tensor,
    mask: Tensor,
    order: np.ndarray,
    conf: np.ndarray | None,
    acc: np.ndarray | None,
    x_conf: float | None,
    pad: int,
) -> Figure:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    (r0, r1), (c0, c1) = _extent(mask, pad)
    crop = (slice(None), slice(r0, r1), slice(c0, c1))
    k = len(order)
    cols = max(4, min(k, 6))
    groups = -(-k // cols)
    fig = Figure(figsize=(1.6 * cols + 0.6, 1.7 * (1 + 2 * groups)), layout="constrained")
    grid = fig.add_gridspec(1 + 2 * groups, cols)
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(image_np(x), interpolation="nearest")
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, color="cyan"))
    title = "input" + ("" if x_conf is None else f" p={x_conf:.2f}")
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.set_axis_off()
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(image_np(x[crop]), interpolation="nearest")
    ax.set_title("B crop (input)", fontsize=TITLE_SIZE)
    ax.set_axis_off()
    ax = fig.add_subplot(grid[0, 2])
    std = v[:, :, r0:r1, c0:c1].std(0, unbiased=False).mean(0).numpy()
    im = ax.imshow(std, cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title("std over variants", fontsize=TITLE_SIZE)
    ax.set_axis_off()
    _histogram(fig.add_subplot(grid[0, 3:]), conf, acc, x_conf)
    diffs = (v[:, :, r0:r1, c0:c1] - x[crop][None]).sum(1).numpy()
    lim = max(float(np.abs(diffs).max()), 1e-6)
    for pos, j in enumerate(order):
        g, col = divmod(pos, cols)
        label, color = _status(conf, acc, int(j))
        ax = fig.add_subplot(grid[1 + 2 * g, col])
        ax.imshow(image_np(v[int(j)][crop]), interpolation="nearest")
        ax.set_title(label, fontsize=TITLE_SIZE, color=color)
        ax.set_axis_off()
        ax = fig.add_subplot(grid[2 + 2 * g, col])
        ax.imshow(diffs[int(j)], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title("X' - X", fontsize=TITLE_SIZE - 1)
        ax.set_axis_off()
    return fig


def _series(
    x: Tensor,
    v: Tensor,
    mask: Tensor,
    order: np.ndarray,
    conf: np.ndarray | None,
    acc: np.ndarray | None,
    x_conf: float | None,
    pad: int,
) -> Figure:
    from matplotlib.figure import Figure

    ((t0, t1),) = _extent(mask, pad)
    steps = np.arange(x.shape[-1])
    inside = np.nonzero(mask.numpy())[0]
    fig = Figure(figsize=(11, 5.2), layout="constrained")
    grid = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(grid[0, :2])
    ax.plot(steps, x[0].numpy(), color="black", linewidth=1.2, label="input")
    ax.axvspan(inside.min() - 0.5, inside.max() + 0.5, color="cyan", alpha=SPAN_ALPHA)
    for j in order:
        _, color = _status(conf, acc, int(j))
        ax.plot(steps[t0:t1], v[int(j), 0, t0:t1].numpy(), color=color, alpha=0.6, linewidth=1)
    title = "input and variants in B" + ("" if x_conf is None else f" (input p={x_conf:.2f})")
    ax.set_title(title, fontsize=TITLE_SIZE)
    _histogram(fig.add_subplot(grid[0, 2]), conf, acc, x_conf)
    ax = fig.add_subplot(grid[1, :2])
    for j in order:
        _, color = _status(conf, acc, int(j))
        ax.plot(steps[t0:t1], (v[int(j), :, t0:t1] - x[:, t0:t1]).sum(0).numpy(), color=color,
                alpha=0.6, linewidth=1)  # fmt: skip
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_title("X' - X in the crop (sorted: accepted, then flipped)", fontsize=TITLE_SIZE)
    ax = fig.add_subplot(grid[1, 2])
    ax.plot(steps[t0:t1], v[:, :, t0:t1].std(0, unbiased=False).mean(0).numpy(), color="tab:blue")
    ax.set_title("std over variants", fontsize=TITLE_SIZE)
    return fig
