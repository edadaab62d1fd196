"""The image figures, :mod:`captum_perturbmask.viz.images`: what they show, not only that they
draw."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from captum_perturbmask import viz

from ._util import NAMES, colorbars_of, panels_of, rectangles_of


# ------------------------------------------------------------------------------------ plot_maps
def test_plot_maps_content(images: torch.Tensor, tmp_path: Path) -> None:
    maps = {
        "a": torch.rand(3, 1, 12, 16),
        "b": torch.rand(3, 3, 12, 16) - 0.5,
        "zero": torch.zeros(3, 12, 16),
    }
    boxes = torch.tensor([[0, 0, 4, 4], [2, 1, 16, 12], [5, 5, 6, 6]])
    path = tmp_path / "maps.png"
    fig = viz.plot_maps(
        maps,
        images,
        indices=(0, 2),
        targets=torch.tensor([1, 2, 3]),
        class_names=NAMES,
        boxes=boxes,
        path=str(path),
    )
    assert path.stat().st_size > 0
    panels, bars = panels_of(fig), colorbars_of(fig)
    assert len(panels) == 2 * (1 + 3) and len(bars) == 2 * 3  # one colour bar per map
    titles = [ax.get_title() for ax in panels]
    assert titles[0] == "input 0\nclass 1 (one)" and titles[4] == "input 2\nclass 3 (three)"
    assert titles[1:4] == ["a", "b", "zero (constant 0)"]  # the all-zero map, said so
    for ax in panels:  # each panel of a row shows that row's box, at its pixel edges
        (rect,) = rectangles_of(ax)
        assert ax.get_xlim() == (0, 16) and ax.get_ylim() == (12, 0)
    rect = rectangles_of(panels[4])[0]
    assert rect.get_xy() == (5, 5) and (rect.get_width(), rect.get_height()) == (1, 1)
    overlay = panels[1].images[-1]
    assert overlay.get_cmap().name == viz.SALIENCY_CMAP
    low, high = overlay.norm.vmin, overlay.norm.vmax  # median .. max of the map
    assert low == pytest.approx(float(maps["a"][0].double().quantile(0.5)))
    assert high == pytest.approx(float(maps["a"][0].max()))


def test_plot_maps_clip_min_and_no_boxes(images: torch.Tensor) -> None:
    m = torch.rand(3, 12, 16)
    fig = viz.plot_maps({"m": m}, images, [1], clip="min")
    assert not any(rectangles_of(ax) for ax in fig.axes)
    assert panels_of(fig)[0].get_title() == "input 1"
    assert panels_of(fig)[1].images[-1].norm.vmin == pytest.approx(float(m[1].min()))


def test_plot_maps_takes_an_evaluation_result(images: torch.Tensor) -> None:
    from captum_perturbmask.evaluation import summarize

    table = summarize([])
    table.maps = {"x": torch.rand(3, 12, 16), "y": torch.rand(3, 12, 16)}
    fig = viz.plot_maps(table, images)
    assert [ax.get_title() for ax in panels_of(fig)] == ["input 0", "x", "y"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"inputs": torch.rand(3, 3, 12)}, ValueError, "series"),
        ({"inputs": torch.rand(12, 16)}, ValueError, "`inputs`"),
        ({"inputs": [[0.0]]}, TypeError, "`inputs`"),
        ({"maps": {"a": torch.rand(3, 12, 15)}}, ValueError, "maps\\['a'\\]"),
        ({"maps": {"a": torch.rand(2, 12, 16)}}, ValueError, "maps\\['a'\\]"),
        ({"maps": {"a": [1, 2]}}, TypeError, "maps\\['a'\\]"),
        ({"maps": {}}, TypeError, "`maps`"),
        ({"maps": {"a": torch.full((3, 12, 16), float("nan"))}}, ValueError, "finite"),
        ({"indices": (3,)}, ValueError, "`indices`"),
        ({"indices": ()}, ValueError, "`indices`"),
        ({"indices": "0"}, TypeError, "`indices`"),
        ({"clip": "max"}, ValueError, "`clip`"),
        ({"targets": [0, 1]}, ValueError, "`targets`"),
        ({"targets": torch.rand(3)}, TypeError, "`targets`"),
        ({"targets": 7, "class_names": NAMES}, ValueError, "class_names"),
        ({"class_names": "abc"}, TypeError, "`class_names`"),
        ({"boxes": torch.tensor([[0, 0, 17, 4]] * 3)}, ValueError, "`boxes`"),
        ({"boxes": torch.tensor([[0, 0, 4, 4]] * 2)}, ValueError, "`boxes`"),
        ({"boxes": torch.tensor([[4, 0, 4, 4]] * 3)}, ValueError, "`boxes`"),
    ],
)
def test_plot_maps_errors(images, kwargs, error, match) -> None:
    args = {"maps": {"a": torch.rand(3, 12, 16)}, "inputs": images, **kwargs}
    with pytest.raises(error, match=match):
        viz.plot_maps(args.pop("maps"), args.pop("inputs"), **args)


def test_plot_maps_draws_series(series: torch.Tensor) -> None:
    """``plot_maps`` hands series to ``plot_series_maps`` (boxes are spans)."""
    fig = viz.plot_maps(
        {"a": torch.rand(3, 40)}, series, [1], targets=0, class_names=NAMES,
        boxes=torch.tensor([[1, 2], [3, 9], [0, 5]]),
    )  # fmt: skip
    assert [ax.get_title() for ax in panels_of(fig)] == ["series 1, span 3–9\nclass 0 (zero)", "a"]


# ----------------------------------------------------------------------------- explanation
def test_plot_explanation_content() -> None:
    image = (torch.rand(3, 30, 50) * 255).to(torch.uint8)
    saliency = torch.zeros(30, 50)
    saliency[10:20, 30:40] = 1
    fig = viz.plot_explanation(
        image,
        saliency,
        target=2,
        class_names=NAMES,
        confidence=0.25,
        method="PerturbMask",
        boxes=torch.tensor([30, 10, 40, 20]),
    )
    panels, bars = panels_of(fig), colorbars_of(fig)
    assert len(panels) == 2 and len(bars) == 1
    assert [ax.get_title() for ax in panels] == [
        "input 30x50",
        "PerturbMask: class 2 (two), p=0.250",
    ]
    assert all(len(rectangles_of(ax)) == 1 for ax in panels)
    assert panels[1].images[-1].get_cmap().name == viz.SALIENCY_CMAP


def test_plot_explanation_large_image_keeps_its_coordinates() -> None:
    """A 1200x2400 image is drawn smaller, on axes that still span its own pixels."""
    fig = viz.plot_explanation(torch.rand(3, 1200, 2400), torch.rand(1200, 2400))
    for ax in panels_of(fig):
        assert ax.get_xlim() == (0, 2400) and ax.get_ylim() == (1200, 0)
        assert max(ax.images[-1].get_array().shape[:2]) <= viz.DISPLAY_MAX_SIDE


def test_plot_explanation_all_zero_map() -> None:
    fig = viz.plot_explanation(torch.rand(1, 8, 8), torch.zeros(8, 8), method="RISE")
    assert panels_of(fig)[1].get_title() == "RISE (constant 0)"


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((torch.rand(3, 8, 8), torch.rand(8, 9)), {}, ValueError, "`saliency`"),
        ((torch.rand(8, 8), torch.rand(8, 8)), {}, ValueError, "`image`"),
        (("img", torch.rand(8, 8)), {}, TypeError, "`image`"),
        ((torch.rand(3, 8, 8), "map"), {}, TypeError, "`saliency`"),
        ((torch.rand(3, 8, 8), torch.rand(8, 8)), {"target": 1.5}, TypeError, "`target`"),
        ((torch.rand(3, 8, 8), torch.rand(8, 8)), {"clip": "x"}, ValueError, "`clip`"),
        (
            (torch.rand(3, 8, 8), torch.rand(8, 8)),
            {"boxes": torch.tensor([0, 0, 9, 4])},
            ValueError,
            "`boxes`",
        ),
    ],
)
def test_plot_explanation_errors(args, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        viz.plot_explanation(*args, **kwargs)
