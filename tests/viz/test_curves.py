"""The curve figures, :mod:`captum_perturbmask.viz.curves`."""

from __future__ import annotations

import pytest

from captum_perturbmask import viz


def _rows(with_sem: bool = True) -> list[dict]:
    rows = []
    for method in ("PerturbMask", "RISE"):
        for budget in (16, 50, 100):
            row = {"method": method, "budget": budget, "insertion": 0.5, "deletion": 0.2}
            if with_sem:
                row |= {"insertion_sem": 0.01, "deletion_sem": 0.02}
            rows.append(row)
    return rows


def test_plot_convergence_content() -> None:
    fig = viz.plot_convergence(_rows())
    assert [ax.get_title() for ax in fig.axes] == ["insertion AUC ↑", "deletion AUC ↓"]
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["PerturbMask", "RISE"]
    assert len(fig.axes[0].containers) == 2  # one error-bar series per method
    assert all(c.has_yerr for c in fig.axes[0].containers)
    assert not any(c.has_yerr for c in viz.plot_convergence(_rows(False)).axes[0].containers)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["16", "50", "100"]


def test_plot_convergence_shapes(tmp_path) -> None:
    """One panel per metric, one line per method through its budgets in order, the error key
    named by ``error``; the methods keep their colours, others take the next ones."""
    rows = [
        {"method": m, "budget": b, "iou": b / 100, "iou_std": 0.1}
        for m in ("RISE", "Other", "PerturbMask")
        for b in (100, 10)  # out of order: drawn sorted
    ]
    path = tmp_path / "conv.png"
    fig = viz.plot_convergence(
        rows, metrics=[("iou", "IoU")], error="std", xlabel="passes", path=str(path)
    )
    assert path.stat().st_size > 0
    (ax,) = fig.axes
    assert ax.get_title() == "IoU" and ax.get_xlabel() == "passes" and ax.get_xscale() == "log"
    assert len(ax.containers) == 3 and all(c.has_yerr for c in ax.containers)
    lines = [c.lines[0] for c in ax.containers]
    assert [ln.get_xdata().tolist() for ln in lines] == [[10, 100]] * 3
    assert lines[0].get_ydata().tolist() == [0.1, 1.0]
    assert [ln.get_color() for ln in lines] == ["tab:blue", "C3", "tab:red"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["RISE", "Other", "PerturbMask"]


@pytest.mark.parametrize(
    ("rows", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, "`rows`"),
        ({"method": "x"}, {}, TypeError, "`rows`"),
        ([{"method": "x", "budget": 1}], {}, ValueError, r"rows\[0\].*insertion"),
        ([{"method": "x", "budget": 0, "insertion": 1, "deletion": 0}], {}, ValueError, "budget"),
        ([1], {}, TypeError, r"rows\[0\]"),
        ([{"method": "x", "budget": 1}], {"metrics": ()}, ValueError, "`metrics`"),
    ],
)
def test_plot_convergence_errors(rows, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        viz.plot_convergence(rows, **kwargs)


def test_plot_perturbation_curves_panels_legend_and_colours(tmp_path) -> None:
    grid = [i / 4 for i in range(5)]
    curves = {
        "RISE": {"insertion": [0.1, 0.4, 0.6, 0.8, 0.9]},
        "Other": {"insertion": [0.2] * 5, "deletion": [0.9, 0.5, 0.3, 0.2, 0.1]},
    }
    path = tmp_path / "curves.png"
    order = ["PerturbMask", "RISE", "Other"]
    fig = viz.plot_perturbation_curves(
        curves,
        grid,
        scores={"Other": {"insertion": 0.2}},
        methods=order,
        title="example 3",
        path=str(path),
    )
    assert path.stat().st_size > 0 and fig._suptitle.get_text() == "example 3"
    ins, dele = fig.axes
    assert ins.get_title() == "insertion curve (higher is better)"
    assert dele.get_title() == "deletion curve (lower is better)"
    assert [t.get_text() for t in ins.get_legend().get_texts()] == ["RISE", "Other (0.200)"]
    assert [t.get_text() for t in dele.get_legend().get_texts()] == ["Other"]
    # a method keeps its colour whatever else is drawn: RISE its own, Other the third default
    assert ins.lines[0].get_color() == "tab:blue"
    assert ins.lines[1].get_color() == dele.lines[0].get_color() == "C4"
    assert ins.lines[0].get_xdata().tolist() == grid


@pytest.mark.parametrize(
    "curves, error, match",
    [
        ([1, 2], TypeError, "mapping method"),
        ({"a": {"iou": [1.0] * 5}}, ValueError, "no insertion or deletion"),
        ({"a": {"insertion": [1.0] * 4}}, ValueError, r"curves\['a'\]\['insertion'\]"),
    ],
)
def test_plot_perturbation_curves_refuses(curves, error, match) -> None:
    with pytest.raises(error, match=match):
        viz.plot_perturbation_curves(curves, [i / 4 for i in range(5)])
