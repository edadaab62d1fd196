"""The series recipes and the shipped series classifiers' held-out accuracy."""

from __future__ import annotations

import pytest
import torch

from captum_perturbmask.data import (
    SeriesCNN,
    load_gunpoint,
    load_series_classifier,
    make_planted_series,
)
from captum_perturbmask.data.series import GUNPOINT_1NN_DTW_ACCURACY
from tools.train_weights.check import state_digest
from tools.train_weights.series import (
    evaluate_series_classifier,
    one_nn_dtw_accuracy,
    train_series_classifier,
    train_series_generator,
)
from tools.train_weights.settings import recipe_settings


@pytest.fixture(scope="module")
def series_classifiers() -> dict[str, SeriesCNN]:
    return {kind: load_series_classifier(kind) for kind in ("gunpoint", "planted")}


def test_gunpoint_classifier_beats_the_dtw_reference(
    series_classifiers: dict[str, SeriesCNN],
) -> None:
    """Live on the 150 held-out GunPoint test series (shipped: 1.000; 1-NN DTW: 0.907)."""
    acc = evaluate_series_classifier(series_classifiers["gunpoint"], "gunpoint")
    assert acc >= GUNPOINT_1NN_DTW_ACCURACY, acc


def test_planted_classifier_accuracy_and_evidence(series_classifiers: dict[str, SeriesCNN]) -> None:
    """>= 0.97 on planted test series (two placements); without the motif it says ~50/50."""
    model = series_classifiers["planted"]
    for seed in (0, 1):
        assert evaluate_series_classifier(model, "planted", seed=seed) >= 0.97
    ds = make_planted_series("test", seed=0)
    real = load_gunpoint("test").series[ds.index]  # the same series with the span restored
    with torch.no_grad():
        p_planted = model(ds.series).softmax(1)
        p_restored = model(torch.where(ds.span_masks()[:, None], real, ds.series)).softmax(1)
    assert float(p_planted.max(1).values.mean()) > 0.9
    assert float((p_restored[:, 1] - 0.5).abs().mean()) < 0.15  # both classes need the motif
    # The GunPoint classifier does not read the planted label (it never saw motifs).
    with torch.no_grad():
        gp = series_classifiers["gunpoint"](ds.series).argmax(1)
    assert float((gp == ds.labels).double().mean()) < 0.8


def test_evaluate_series_classifier_rejects_an_unknown_kind(
    series_classifiers: dict[str, SeriesCNN],
) -> None:
    with pytest.raises(ValueError, match="kind"):
        evaluate_series_classifier(series_classifiers["gunpoint"], "digits")
    with pytest.raises(ValueError, match="kind"):
        train_series_classifier("digits")


def test_series_training_smoke() -> None:
    state = torch.random.get_rng_state()
    model, log = train_series_classifier("gunpoint", epochs=1)
    assert not model.training and 0.0 <= log["test_accuracy"] <= 1.0
    model, log = train_series_classifier("planted", epochs=1, n_per_epoch=32, batch_size=16)
    assert not model.training and "motif_free_mean_abs_deviation_from_half" in log
    g, glog = train_series_generator(steps=2, batch_size=8)
    assert not g.training and glog["steps"] == 2 and float(g.noise_std) > 0
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched


#: SHA-256 (check.state_digest) of the first steps of each shipped recipe, seed 0, one thread:
#: the same code run to the end reproduces the shipped files bit for bit
#: (``python -m tools.train_weights --check``), so these prefixes catch a change to a recipe
#: in a second instead of minutes.
PREFIXES = {
    "series-gunpoint, 40 steps": (
        lambda: train_series_classifier("gunpoint", max_steps=40)[0],
        "cd4fb9488169253f5ec3b5437a6bd343ed5986d7d240b44d2f1faad497e3bda0",
    ),
    "series-planted, 16 steps": (
        lambda: train_series_classifier("planted", max_steps=16)[0],
        "3ec5d43e2b85dab2c88b49e84289db9fc612714eda47b624ce926604977c36f5",
    ),
    "series-generator, 50 steps": (
        lambda: train_series_generator(max_steps=50)[0],
        "ebafbe0f4b3659c163fb5e58846c3adc025501ee00909305a73fe91338ed9c7d",
    ),
}


@pytest.mark.parametrize("name", list(PREFIXES))
def test_recipe_prefix_is_reproduced(name: str) -> None:
    train, expected = PREFIXES[name]
    with recipe_settings(1):
        model = train()
    assert state_digest(model.state_dict()) == expected


def test_dtw_reference_reproduced() -> None:
    """The published 1-NN DTW reference (error 0.093) is what aeon measures on this data."""
    assert one_nn_dtw_accuracy() == pytest.approx(1 - 0.093, abs=5e-4)
