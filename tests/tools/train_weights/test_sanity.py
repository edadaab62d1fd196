"""The generators' checks, on the shipped generators."""

from __future__ import annotations

import pytest
import torch

from captum_perturbmask.data import (
    DigitsCNN,
    Discriminator,
    Generator,
    SeriesGenerator,
    load_default_classifier,
    load_default_gan,
    load_series_classifier,
    load_series_generator,
    make_digits_clutter,
    paste_patches,
)
from tools.train_weights.sanity import gan_sanity, series_generator_sanity


@pytest.fixture(scope="module")
def classifier() -> DigitsCNN:
    return load_default_classifier()


@pytest.fixture(scope="module")
def gan() -> tuple[Generator, Discriminator]:
    return load_default_gan()


def test_gan_sanity(classifier: DigitsCNN, gan: tuple[Generator, Discriminator]) -> None:
    """Generated patches, pasted into held-out canvases, are often read as confident digits.

    Shipped weights measure 0.40 (real patches: 0.95; uniform-noise patches: 0.00) with
    3.2 bits of class entropy over the confident samples (uniform over 10 classes: 3.32).
    """
    g, d = gan
    s = gan_sanity(g, d, classifier, n=256, seed=0)
    assert s["real_confident_fraction"] >= 0.9, s
    assert s["confident_fraction"] >= 0.3, s
    assert s["class_entropy_bits"] >= 2.5, s  # not collapsed onto a few classes
    assert s["d_real_minus_noise"] > 0.0, s
    # Control: noise pasted into the same canvases is never read as a confident digit.
    ds = make_digits_clutter("test", n=256, seed=0)
    noise = torch.rand(256, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p = classifier(paste_patches(ds.images, noise, ds.patch_boxes)).softmax(1)
    assert float((p.max(1).values >= 0.9).float().mean()) <= 0.05


@pytest.mark.slow  # ~1 s on a quiet machine; many small ops suffer from thread contention
def test_series_generator_sanity() -> None:
    """Generated series look like GunPoint to the classifier, of both classes; a latent search
    on the context of a hidden span fills it far better than a straight line and keeps the
    class. Shipped (150 series, 400 steps; training_log.json): confident 0.63 (real 0.89),
    Point 0.38, span RMSE 0.095 against 0.295 for a straight line, class kept 0.993."""
    generator: SeriesGenerator = load_series_generator()
    s = series_generator_sanity(
        generator, load_series_classifier("gunpoint"), n=256, seed=0, n_series=40, steps=200
    )
    assert s["confident_fraction"] >= 0.5, s
    assert 0.15 <= s["point_fraction"] <= 0.85, s
    assert abs(s["sample_std"] - 1.0) < 0.15, s
    assert s["heldout_rmse"] < 0.25 * s["mean_rmse"], s
    assert s["span_rmse"] < 0.5 * s["span_rmse_linear"], s
    assert s["span_fill_agreement"] >= 0.95, s
