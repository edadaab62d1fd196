"""The digits classifier recipe and the shipped classifier's held-out accuracy."""

from __future__ import annotations

import pytest
import torch

from captum_perturbmask.data import DigitsCNN, load_default_classifier
from tools.train_weights.digits import evaluate_classifier, train_classifier


@pytest.fixture(scope="module")
def classifier() -> DigitsCNN:
    return load_default_classifier()


def test_shipped_classifier_accuracy_on_held_out_digits(classifier: DigitsCNN) -> None:
    """Computed live on the default test split (540 images, one per held-out digit)."""
    acc = evaluate_classifier(classifier, seed=0)
    assert acc >= 0.95, acc
    # Another placement/clutter seed of the same held-out digits.
    assert evaluate_classifier(classifier, seed=123) >= 0.95


def test_training_smoke() -> None:
    state = torch.random.get_rng_state()
    model, log = train_classifier(seed=0, epochs=1, n_per_epoch=64, batch_size=32)
    assert not model.training and 0.0 <= log["test_accuracy"] <= 1.0
    assert log["epochs"] == 1 and log["parameters"] == sum(p.numel() for p in model.parameters())
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched
