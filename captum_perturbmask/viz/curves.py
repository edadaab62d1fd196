"""Curves of metrics: a metric against the forward budget, one line per method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from captum_perturbmask.viz._draw import save
from captum_perturbmask.viz._style import GRID_ALPHA, METHOD_COLORS, SAVE_DPI, TITLE_SIZE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_convergence"]


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
                color=METHOD_COLORS.get(name, f"C{(m + 2) % 10}"),
                marker=markers[m % len(markers)],
                capsize=3,
            )
        ax.set_xscale("log")
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=TITLE_SIZE + 1)
        ax.grid(True, alpha=GRID_ALPHA)
    axes[0].legend(fontsize=TITLE_SIZE)
    return save(fig, path, dpi)
