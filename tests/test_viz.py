"""The figures of :mod:`captum_perturbmask.viz`: what they show, not only that they draw."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from matplotlib.patches import Rectangle

from captum_perturbmask import viz
from captum_perturbmask.generative import LatentVariations

NAMES = ["zero", "one", "two", "three"]


def _colorbars(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def _panels(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _rectangles(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 3, 12, 16, generator=torch.Generator().manual_seed(0))


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
    panels, bars = _panels(fig), _colorbars(fig)
    assert len(panels) == 2 * (1 + 3) and len(bars) == 2 * 3  # one colour bar per map
    titles = [ax.get_title() for ax in panels]
    assert titles[0] == "input 0\nclass 1 (one)" and titles[4] == "input 2\nclass 3 (three)"
    assert titles[1:4] == ["a", "b", "zero (constant 0)"]  # the all-zero map, said so
    for ax in panels:  # each panel of a row shows that row's box, at its pixel edges
        (rect,) = _rectangles(ax)
        assert ax.get_xlim() == (0, 16) and ax.get_ylim() == (12, 0)
    rect = _rectangles(panels[4])[0]
    assert rect.get_xy() == (5, 5) and (rect.get_width(), rect.get_height()) == (1, 1)
    overlay = panels[1].images[-1]
    assert overlay.get_cmap().name == viz.SALIENCY_CMAP
    low, high = overlay.norm.vmin, overlay.norm.vmax  # median .. max of the map
    assert low == pytest.approx(float(maps["a"][0].double().quantile(0.5)))
    assert high == pytest.approx(float(maps["a"][0].max()))


def test_plot_maps_clip_min_and_no_boxes(images: torch.Tensor) -> None:
    m = torch.rand(3, 12, 16)
    fig = viz.plot_maps({"m": m}, images, [1], clip="min")
    assert not any(_rectangles(ax) for ax in fig.axes)
    assert _panels(fig)[0].get_title() == "input 1"
    assert _panels(fig)[1].images[-1].norm.vmin == pytest.approx(float(m[1].min()))


def test_plot_maps_takes_a_comparison_table(images: torch.Tensor) -> None:
    from captum_perturbmask.compare import ComparisonTable

    table = ComparisonTable(rows=[], maps={"x": torch.rand(3, 12, 16), "y": torch.rand(3, 12, 16)})
    assert [ax.get_title() for ax in _panels(viz.plot_maps(table, images))] == ["input 0", "x", "y"]


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
    panels, bars = _panels(fig), _colorbars(fig)
    assert len(panels) == 2 and len(bars) == 1
    assert [ax.get_title() for ax in panels] == [
        "input 30x50",
        "PerturbMask: class 2 (two), p=0.250",
    ]
    assert all(len(_rectangles(ax)) == 1 for ax in panels)
    assert panels[1].images[-1].get_cmap().name == viz.SALIENCY_CMAP


def test_plot_explanation_large_image_keeps_its_coordinates() -> None:
    """A 1200x2400 image is drawn smaller, on axes that still span its own pixels."""
    fig = viz.plot_explanation(torch.rand(3, 1200, 2400), torch.rand(1200, 2400))
    for ax in _panels(fig):
        assert ax.get_xlim() == (0, 2400) and ax.get_ylim() == (1200, 0)
        assert max(ax.images[-1].get_array().shape[:2]) <= viz.DISPLAY_MAX_SIDE


def test_plot_explanation_all_zero_map() -> None:
    fig = viz.plot_explanation(torch.rand(1, 8, 8), torch.zeros(8, 8), method="RISE")
    assert _panels(fig)[1].get_title() == "RISE (constant 0)"


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


# ------------------------------------------------------------------------------ variations
def _variations(counterfactuals: bool = False) -> LatentVariations:
    n, k, c, h, w = 2, 3, 3, 8, 8
    mask = torch.zeros(n, h, w, dtype=torch.bool)
    mask[:, 2:6, 2:6] = True
    return LatentVariations(
        variants=torch.rand(n, k, c, h, w),
        latents=torch.zeros(n, k, 4),
        losses=torch.rand(n, k),
        mask=mask,
        context_weights=torch.rand(n, h, w),
        patch_origin=torch.zeros(n, 2, dtype=torch.long),
        diversity=torch.zeros(n),
        confidence=torch.tensor([[0.9, 0.3, 0.2], [0.8, 0.7, 0.6]]),
        accepted=torch.tensor([[True, False, False], [True, True, True]]),
        predictions=torch.tensor([[1, 1, 2], [3, 3, 3]]),
        target=torch.tensor([1, 3]),
        input_confidence=torch.tensor([0.95, 0.85]),
    )


def test_plot_variations_content() -> None:
    out = _variations()
    fig = viz.plot_variations(out, torch.rand(2, 3, 8, 8), class_names=NAMES)
    panels, bars = _panels(fig), _colorbars(fig)
    assert len(panels) == 2 * (2 + 3) and len(bars) == 2  # a colour bar of R per row
    titles = [ax.get_title() for ax in panels]
    assert titles[0] == "class 1 (one)\np=0.95" and titles[1] == "B and R"
    assert titles[2:5] == ["✓ p=0.90", "✗ p=0.30", "✗ →2 (two)"]
    colors = [ax.title.get_color() for ax in panels[2:5]]
    assert colors == ["tab:green", "tab:orange", "tab:red"]
    assert panels[1].images[0].get_cmap().name == viz.SALIENCY_CMAP
    assert panels[0].collections  # B is outlined on the input


def test_plot_variations_without_images_and_delegates() -> None:
    out = _variations()
    fig = out.to_figure(index=1, max_variants=2)
    assert [ax.get_title() for ax in _panels(fig)][:2] == ["input − B", "B and R"]
    assert len(_panels(fig)) == 2 + 2
    buffer = io.BytesIO()
    assert out.plot(buffer, index=[0]) is not None and buffer.getvalue()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"index": 2}, ValueError, "`index`"),
        ({"index": "0"}, TypeError, "`index`"),
        ({"max_variants": 0}, ValueError, "`max_variants`"),
        ({"max_variants": 1.5}, TypeError, "`max_variants`"),
        ({"images": torch.rand(2, 1, 8, 8)}, ValueError, "`images`"),
        ({"images": "x"}, TypeError, "`images`"),
    ],
)
def test_plot_variations_errors(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        viz.plot_variations(_variations(), **kwargs)
    with pytest.raises(TypeError, match="`result`"):
        viz.plot_variations(object())


# ----------------------------------------------------------------------------- convergence
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


def test_png_bytes_is_rgb() -> None:
    from PIL import Image

    data = viz.png_bytes(viz.plot_convergence(_rows()), dpi=40)
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "RGB" and img.size == (320, 128)
