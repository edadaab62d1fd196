"""Inputs of the figure tests: a small batch of images and one of series."""

import pytest
import torch


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 3, 12, 16, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def series() -> torch.Tensor:
    return torch.randn(3, 1, 40, generator=torch.Generator().manual_seed(0))
