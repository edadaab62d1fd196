"""Curves: a metric against the forward budget (:func:`plot_convergence`), and the insertion /
deletion curves of each method (:func:`plot_perturbation_curves`), one line per method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from captum_perturbmask.viz._draw import save
from captum_perturbmask.viz._style import GRID_ALPHA, SAVE_DPI, TITLE_SIZE, method_color

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_convergence", "plot_perturbation_curves"]

#: The curve panels of :func:`plot_perturbation_curves`: (key, label, higher is better).
PERTURBATION_CURVES = (("insertion", "insertion", True), ("deletion", "deletion", False))


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
                color=method_color(name, m),
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


def draw_perturbation_curves(
    ax: Axes,
    curves: Mapping[str, Sequence[float]],
    fractions: Sequence[float],
    label: str,
    higher_is_better: bool | None,
    *,
    scores: Mapping[str, float | None] | None = None,
    methods: Sequence[str] | None = None,
    prefix: str = "",
) -> None:
    """One panel: the ``label`` curve (``"insertion"``, ``"deletion"``) of every method (name
    -> values at ``fractions``) in the method's colour (its place in ``methods``, default the
    order of ``curves``), its AUC in the legend when ``scores`` has one."""
    order = list(curves) if methods is None else list(methods)
    for name, values in curves.items():
        score = None if scores is None else scores.get(name)
        legend = name if score is None else f"{name} ({score:.3f})"
        place = order.index(name) if name in order else len(order)
        ax.plot(list(fractions), list(values), label=legend, color=method_color(name, place))
    better = {True: " (higher is better)", False: " (lower is better)", None: ""}
    ax.set_title(f"{prefix}{label} curve{better[higher_is_better]}", fontsize=TITLE_SIZE + 1)
    verb = {"insertion": "inserted", "deletion": "deleted"}.get(label, "changed")
    ax.set_xlabel(f"fraction of the input {verb} (most salient first)", fontsize=TITLE_SIZE)
    ax.set_ylabel("confidence in the target", fontsize=TITLE_SIZE)
    ax.set_xlim(0, 1)
    ax.tick_params(labelsize=TITLE_SIZE - 1)
    ax.grid(True, alpha=GRID_ALPHA)


def plot_perturbation_curves(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    fractions: Sequence[float],
    *,
    scores: Mapping[str, Mapping[str, float | None]] | None = None,
    methods: Sequence[str] | None = None,
    title: str | None = None,
    size: tuple[float, float] = (4.2, 3.0),
    path: str | None = None,
    dpi: int = SAVE_DPI,
) -> Figure:
    """Insertion and deletion curves, one panel each, one line per method.

    Args:
        curves: Method -> curve key (``"insertion"``, ``"deletion"``) -> the model's
            confidence at ``fractions`` (e.g. an
            :class:`~captum_perturbmask.evaluation.EvaluationResult`'s ``curves``, or one
            example's curves from its records).
        fractions: The fractions of the input inserted or deleted, in :math:`[0, 1]`.
        scores: Method -> key -> area under the curve, shown in the legend.
        methods: Every method of the run, in order: each keeps its colour in every figure,
            present or not (default the order of ``curves``).
        title: Title of the figure.
        size: Width and height of one panel, in inches.
        path: Save the figure there if given.
        dpi: Resolution of the saved figure.

    Returns:
        The :class:`matplotlib.figure.Figure`, one panel per key that some method has.

    Raises:
        TypeError: If ``curves`` is not a mapping of mappings.
        ValueError: If no method has an insertion or deletion curve, or a curve's length
            differs from ``fractions``'.

    Example:
        >>> grid = [i / 4 for i in range(5)]
        >>> curves = {"RISE": {"insertion": [0.1, 0.5, 0.8, 0.9, 0.9],
        ...                    "deletion": [0.9, 0.3, 0.2, 0.1, 0.1]}}
        >>> fig = plot_perturbation_curves(curves, grid, scores={"RISE": {"insertion": 0.66}})
        >>> [ax.get_title() for ax in fig.axes]
        ['insertion curve (higher is better)', 'deletion curve (lower is better)']
    """
    if not isinstance(curves, Mapping) or not all(isinstance(c, Mapping) for c in curves.values()):
        raise TypeError(
            f"`curves` must be a mapping method -> key -> values, got {type(curves).__name__}."
        )
    fractions = [float(f) for f in fractions]
    panels = [p for p in PERTURBATION_CURVES if any(p[0] in c for c in curves.values())]
    if not panels:
        raise ValueError("`curves` holds no insertion or deletion curve.")
    for name, by_key in curves.items():
        for key, values in by_key.items():
            if len(values) != len(fractions):
                raise ValueError(
                    f"`curves[{name!r}][{key!r}]` has {len(values)} values, `fractions` "
                    f"{len(fractions)}."
                )

    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * len(panels), size[1] + (0.3 if title else 0)),
                 layout="constrained")  # fmt: skip
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    order = list(curves) if methods is None else list(methods)
    for ax, (key, label, higher) in zip(axes, panels, strict=True):
        of_key = {name: c[key] for name, c in curves.items() if key in c}
        keyed = None if scores is None else {n: scores.get(n, {}).get(key) for n in of_key}
        draw_perturbation_curves(ax, of_key, fractions, label, higher, scores=keyed,
                                 methods=order)  # fmt: skip
        ax.legend(fontsize=TITLE_SIZE - 1)
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE + 1)
    return save(fig, path, dpi)
