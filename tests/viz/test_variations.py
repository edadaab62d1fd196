"""The variations figures, :mod:`captum_perturbmask.viz.variations`."""

from __future__ import annotations

import io

import pytest
import torch

from captum_perturbmask import viz
from captum_perturbmask.generative import LatentVariations

from ._util import NAMES, colorbars_of, panels_of, rectangles_of


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
    panels, bars = panels_of(fig), colorbars_of(fig)
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
    assert [ax.get_title() for ax in panels_of(fig)][:2] == ["input − B", "B and R"]
    assert len(panels_of(fig)) == 2 + 2
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
    panels = panels_of(fig)
    assert len(panels) == 2 * 2 and not colorbars_of(fig)  # variations and counterfactuals
    titles = [ax.get_title() for ax in panels]
    assert titles[0] == (
        "series 0: class 1 (one), p=0.95\n"
        "✓ 1 kept (p 0.90–0.90), ✗ 1 flipped (p 0.20–0.20), ✗ 1 unsure (p 0.30–0.30)"
    )
    assert titles[1] == "counterfactuals: 1/2 flipped\n→ class 0 (zero)"
    assert titles[2].startswith("series 1: class 2 (two), p=0.85\n✓ 3 kept (p 0.60–0.80)")
    assert titles[3] == "counterfactuals: 0/2 flipped"
    # B shaded run by run, at its exact edges
    shades = sorted((r.get_x(), r.get_width()) for r in rectangles_of(panels[0]))
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
    (panel,) = panels_of(fig)
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
