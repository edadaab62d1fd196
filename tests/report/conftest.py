"""Results to report on: a comparison of three methods on boxed images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_perturbmask.evaluation import EvaluationResult, compare

from ..evaluation.conftest import make_tiny_model, methods


@pytest.fixture(scope="package")
def tiny() -> nn.Module:
    return make_tiny_model()


@pytest.fixture(scope="package")
def compared(tiny: nn.Module) -> EvaluationResult:
    """PerturbMask, noise (stochastic) and pixels (deterministic) on three boxed 8 x 8 images,
    two seeds."""
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[1.0, 2.0, 5.0, 7.0], [0.0, 0.0, 4.0, 4.0], [2.0, 2.0, 8.0, 8.0]])
    return compare(tiny, x, methods(tiny), target=[0, 1, 2], boxes=boxes, seeds=(0, 1), n_steps=8)
