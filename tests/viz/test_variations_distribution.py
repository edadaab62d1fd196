"""The distribution figure of the variations renders (Agg) for images and series."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from captum_perturbmask.generative import (
    ContextInpainter,
    LatentVariationGenerator,
    VariationSettings,
)
from captum_perturbmask.viz.variation_distribution import plot_variation_distribution


def _image_result():
    torch.manual_seed(0)
    g = ContextInpainter(3, (16, 16), latent_dim=4, width=4).eval()
    clf = nn.Sequential(nn.Flatten(), nn.Linear(3 * 24 * 24, 3)).eval()
    x = torch.rand(2, 3, 24, 24)
    mask = torch.zeros(24, 24, dtype=torch.bool)
    mask[5:12, 6:15] = True
    out = LatentVariationGenerator(g, forward_func=clf).generate(
        x, mask=mask, seed=0, settings=VariationSettings(n_restarts=8, n_keep=7, n_steps=2)
    )
    return out, x


def test_images_render(tmp_path) -> None:  # noqa: ANN001
    out, x = _image_result()
    path = tmp_path / "dist.png"
    fig = plot_variation_distribution(out, x, index=1, max_variants=7, path=str(path))
    assert path.stat().st_size > 1000
    titles = [a.get_title() for a in fig.axes]
    assert "B crop (input)" in titles and "confidence over the variants" in titles
    assert sum(t == "X' - X" for t in titles) == 7
    # variants are sorted: accepted first, each group by falling confidence
    conf, acc = out.confidence[1], out.accepted[1]
    shown = [t for t in titles if t[:1] in ("\u2713", "\u2717")]
    marks = [t[0] == "\u2713" for t in shown]
    assert marks == sorted(marks, reverse=True) and sum(marks) == int(acc.sum())
    values = [float(t.split()[1]) for t in shown]
    kept = values[: sum(marks)]
    assert kept == sorted(kept, reverse=True)
    assert conf.shape == (7,)


def test_series_render(tmp_path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    g = ContextInpainter(1, 40, latent_dim=3, width=4, output="linear").eval()
    clf = nn.Sequential(nn.Flatten(), nn.Linear(40, 2)).eval()
    x = torch.randn(2, 1, 40)
    span = torch.zeros(40, dtype=torch.bool)
    span[10:22] = True
    out = LatentVariationGenerator(g, forward_func=clf).generate(
        x, mask=span, seed=0, settings=VariationSettings(n_restarts=6, n_keep=5, n_steps=2)
    )
    path = tmp_path / "series.png"
    fig = plot_variation_distribution(out, x, path=str(path))
    assert path.stat().st_size > 1000
    assert any("std" in a.get_title() for a in fig.axes)


def test_checks() -> None:
    out, x = _image_result()
    with pytest.raises(TypeError, match="LatentVariations"):
        plot_variation_distribution(object(), x)
    with pytest.raises(ValueError, match="shape"):
        plot_variation_distribution(out, x[:1])
    with pytest.raises(ValueError, match="index"):
        plot_variation_distribution(out, x, index=5)
