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
    from captum_perturbmask.evaluation import summarize

    table = summarize([])
    table.maps = {"x": torch.rand(3, 12, 16), "y": torch.rand(3, 12, 16)}
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


# ------------------------------------------------------------------------------ series maps
@pytest.fixture
def series() -> torch.Tensor:
    return torch.randn(3, 1, 40, generator=torch.Generator().manual_seed(0))


def test_plot_series_maps_content(series: torch.Tensor, tmp_path: Path) -> None:
    maps = {"a": torch.rand(3, 1, 40), "b": torch.rand(3, 40) - 0.5, "zero": torch.zeros(3, 40)}
    spans = torch.tensor([[5, 15], [0, 40], [30, 33]])
    path = tmp_path / "series.png"
    fig = viz.plot_series_maps(
        maps, series, spans, targets=[1, 2, 3], class_names=NAMES, indices=(0, 2), path=str(path)
    )
    assert path.stat().st_size > 0
    panels, bars = _panels(fig), _colorbars(fig)
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
    (shade,) = _rectangles(panels[4])
    assert shade.get_fill() and shade.get_x() == 30 and shade.get_width() == 3
    for ax in panels[5:]:
        (outline,) = _rectangles(ax)
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
    panels, bars = _panels(fig), _colorbars(fig)
    assert len(panels) == 3 * 2 and len(bars) == 1  # channels stacked, one bar per map
    assert [panels[2 * c].get_ylabel() for c in range(3)] == [f"channel {c}" for c in range(3)]
    summed = attr[1].sum(0)
    for c in range(3):
        band = panels[2 * c + 1].images[-1]
        assert band.get_array()[0].tolist() == pytest.approx(summed.tolist())
        assert band.norm.vmin == pytest.approx(float(summed.min()))
        assert panels[2 * c + 1].lines[0].get_ydata().tolist() == pytest.approx(x[1, c].tolist())
    assert panels[0].get_title() == "series 1" and not any(_rectangles(ax) for ax in panels)


def test_plot_maps_draws_series(series: torch.Tensor) -> None:
    """``plot_maps`` hands series to ``plot_series_maps`` (boxes are spans)."""
    fig = viz.plot_maps(
        {"a": torch.rand(3, 40)}, series, [1], targets=0, class_names=NAMES,
        boxes=torch.tensor([[1, 2], [3, 9], [0, 5]]),
    )  # fmt: skip
    assert [ax.get_title() for ax in _panels(fig)] == ["series 1, span 3–9\nclass 0 (zero)", "a"]


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


def _series_variations(counterfactuals: bool = True, scored: bool = True) -> LatentVariations:
    from captum_perturbmask.generative import CounterfactualVariations

    n, k, t = 2, 3, 20
    mask = torch.zeros(n, t, dtype=torch.bool)
    mask[0, 4:8] = True
    mask[0, 12:15] = True  # B of two runs
    mask[1, 10:18] = True
    base = torch.randn(n, 1, 1, t, generator=torch.Generator().manual_seed(1))
    variants = base.expand(n, k, 1, t) + mask[:, None, None] * torch.rand(n, k, 1, t)
    cf = None
    if counterfactuals:
        cf = CounterfactualVariations(
            variants=variants[:, :2], latents=torch.zeros(n, 2, 4), anchors=torch.zeros(n, 4),
            latent_distance=torch.zeros(n, 2), losses=torch.zeros(n, 2),
            predictions=torch.tensor([[0, 1], [2, 2]]), confidence=torch.zeros(n, 2),
            flipped=torch.tensor([[True, False], [False, False]]), realism=None,
            cf_target=None, epsilon=1.0,
        )  # fmt: skip
    scores = {}
    if scored:
        scores = {
            "confidence": torch.tensor([[0.9, 0.2, 0.3], [0.8, 0.7, 0.6]]),
            "accepted": torch.tensor([[True, False, False], [True, True, True]]),
            "predictions": torch.tensor([[1, 0, 1], [2, 2, 2]]),
            "target": torch.tensor([1, 2]),
            "input_confidence": torch.tensor([0.95, 0.85]),
        }
    return LatentVariations(
        variants=variants, latents=torch.zeros(n, k, 4), losses=torch.rand(n, k), mask=mask,
        context_weights=torch.rand(n, t), patch_origin=torch.zeros(n, 1, dtype=torch.long),
        diversity=torch.zeros(n), counterfactuals=cf, **scores,
    )  # fmt: skip


def test_plot_variations_series_content() -> None:
    out = _series_variations()
    original = out.variants[:, 0, :, :].clone()
    original[:, :, out.mask[0]] = 0.0  # any original: it is drawn where the variants are not
    fig = viz.plot_variations(out, original, class_names=NAMES)
    panels = _panels(fig)
    assert len(panels) == 2 * 2 and not _colorbars(fig)  # variations and counterfactuals
    titles = [ax.get_title() for ax in panels]
    assert titles[0] == (
        "series 0: class 1 (one), p=0.95\n"
        "✓ 1 kept (p 0.90–0.90), ✗ 1 flipped (p 0.20–0.20), ✗ 1 unsure (p 0.30–0.30)"
    )
    assert titles[1] == "counterfactuals: 1/2 flipped\n→ class 0 (zero)"
    assert titles[2].startswith("series 1: class 2 (two), p=0.85\n✓ 3 kept (p 0.60–0.80)")
    assert titles[3] == "counterfactuals: 0/2 flipped"
    # B shaded run by run, at its exact edges
    shades = sorted((r.get_x(), r.get_width()) for r in _rectangles(panels[0]))
    assert shades == [(4, 4), (12, 3)]
    # the original in black over the whole series, each variant inside each run of B
    lines = panels[0].lines
    assert lines[0].get_color() == "black" and len(lines[0].get_xdata()) == 20
    colors = [ln.get_color() for ln in lines[1:]]
    assert colors == ["tab:green"] * 2 + ["tab:red"] * 2 + ["tab:orange"] * 2
    assert lines[1].get_xdata().tolist() == [3.5, 4.5, 5.5, 6.5, 7.5, 8.5]  # run 4..8, +1 each
    cf_colors = [ln.get_color() for ln in panels[1].lines[1:]]
    assert cf_colors == ["tab:red"] * 2 + ["dimgray"] * 2
    legend = [t.get_text() for t in panels[0].get_legend().get_texts()]
    assert legend == ["original", "kept", "flipped", "unsure"]


def test_plot_variations_series_without_images_or_classifier() -> None:
    out = _series_variations(counterfactuals=False, scored=False)
    fig = out.to_figure(index=-1, max_variants=2)
    (panel,) = _panels(fig)
    assert panel.get_title().startswith("series 1\n2 variants, loss ")
    original = panel.lines[0].get_ydata()
    assert bool(torch.isnan(torch.tensor(original[10:18])).all())  # unknown inside B
    assert [ln.get_color() for ln in panel.lines[1:]] == ["tab:blue"] * 2


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
