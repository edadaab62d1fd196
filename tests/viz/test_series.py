"""The series figures, :mod:`captum_perturbmask.viz.series`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from captum_perturbmask import viz

from ._util import NAMES, colorbars_of, panels_of, rectangles_of


# ------------------------------------------------------------------------------ series maps
def test_plot_series_maps_content(series: torch.Tensor, tmp_path: Path) -> None:
    maps = {"a": torch.rand(3, 1, 40), "b": torch.rand(3, 40) - 0.5, "zero": torch.zeros(3, 40)}
    spans = torch.tensor([[5, 15], [0, 40], [30, 33]])
    path = tmp_path / "series.png"
    fig = viz.plot_series_maps(
        maps, series, spans, targets=[1, 2, 3], class_names=NAMES, indices=(0, 2), path=str(path)
    )
    assert path.stat().st_size > 0
    panels, bars = panels_of(fig), colorbars_of(fig)
    assert len(panels) == 2 * (1 + 3) and len(bars) == 2 * 3  # one colour bar per map
    titles = [ax.get_title() for ax in panels]
    assert titles[0] == "series 0, span 5–15\nclass 1 (one)"
    assert titles[4] == "series 2, span 30–33\nclass 3 (three)"
    assert titles[1:4] == ["a", "b", "zero (constant 0)"]
    steps = torch.arange(40) + 0.5
    for ax in panels:
        assert ax.get_xlim() == (0, 40)
        (line,) = ax.lines  # the series through its step centres
        assert line.get_xdata().tolist() == steps.tolist()
    row = 2
    for ax in panels[4:]:
        assert ax.lines[0].get_ydata().tolist() == pytest.approx(series[row, 0].tolist())
    # the input panel shades the span, the map panels outline it, at its exact edges
    (shade,) = rectangles_of(panels[4])
    assert shade.get_fill() and shade.get_x() == 30 and shade.get_width() == 3
    for ax in panels[5:]:
        (outline,) = rectangles_of(ax)
        assert not outline.get_fill() and (outline.get_x(), outline.get_width()) == (30, 3)
    # the map is a band under the curve: one colour per step, clipped to the area below it
    band = panels[1].images[-1]
    assert band.get_cmap().name == viz.SALIENCY_CMAP
    assert band.get_clip_path() is not None
    assert band.get_array().shape == (1, 40)
    assert band.get_array()[0].tolist() == pytest.approx(maps["a"][0, 0].tolist())
    low, high = band.norm.vmin, band.norm.vmax  # median .. max of the map
    assert low == pytest.approx(float(maps["a"][0].double().quantile(0.5)))
    assert high == pytest.approx(float(maps["a"][0].max()))
    assert not panels[0].images  # the input panel has no band


def test_plot_series_maps_channels_share_the_map() -> None:
    x = torch.randn(2, 3, 20)
    attr = torch.rand(2, 3, 20)
    fig = viz.plot_series_maps({"m": attr}, x, indices=[1], clip="min")
    panels, bars = panels_of(fig), colorbars_of(fig)
    assert len(panels) == 3 * 2 and len(bars) == 1  # channels stacked, one bar per map
    assert [panels[2 * c].get_ylabel() for c in range(3)] == [f"channel {c}" for c in range(3)]
    summed = attr[1].sum(0)
    for c in range(3):
        band = panels[2 * c + 1].images[-1]
        assert band.get_array()[0].tolist() == pytest.approx(summed.tolist())
        assert band.norm.vmin == pytest.approx(float(summed.min()))
        assert panels[2 * c + 1].lines[0].get_ydata().tolist() == pytest.approx(x[1, c].tolist())
    assert panels[0].get_title() == "series 1" and not any(rectangles_of(ax) for ax in panels)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"series": torch.rand(3, 40)}, ValueError, "`series`"),
        ({"series": [[0.0]]}, TypeError, "`series`"),
        ({"series": torch.full((3, 1, 40), float("nan"))}, ValueError, "finite"),
        ({"maps": {"a": torch.rand(3, 39)}}, ValueError, "maps\\['a'\\]"),
        ({"maps": {"a": torch.rand(3, 2, 40)}}, ValueError, "maps\\['a'\\]"),
        ({"maps": {"a": torch.rand(2, 40)}}, ValueError, "maps\\['a'\\]"),
        ({"maps": {"a": torch.full((3, 40), float("inf"))}}, ValueError, "finite"),
        ({"maps": {}}, TypeError, "`maps`"),
        ({"spans": torch.tensor([[0, 41]] * 3)}, ValueError, "`spans`"),
        ({"spans": torch.tensor([[4, 4]] * 3)}, ValueError, "`spans`"),
        ({"spans": torch.tensor([[0, 4]] * 2)}, ValueError, "`spans`"),
        ({"indices": (3,)}, ValueError, "`indices`"),
        ({"targets": 9, "class_names": NAMES}, ValueError, "class_names"),
        ({"clip": "max"}, ValueError, "`clip`"),
    ],
)
def test_plot_series_maps_errors(series, kwargs, error, match) -> None:
    args = {"maps": {"a": torch.rand(3, 40)}, "series": series, **kwargs}
    with pytest.raises(error, match=match):
        viz.plot_series_maps(args.pop("maps"), args.pop("series"), **args)
