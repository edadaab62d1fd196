"""Device and dtype fixtures for the metric tests (CUDA is added when available)."""

import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


@pytest.fixture
def tol(dtype: torch.dtype) -> dict[str, float]:
    """``torch.testing.assert_close`` tolerances for the current dtype."""
    if dtype == torch.float32:
        return {"atol": 1e-5, "rtol": 1e-4}
    return {"atol": 1e-10, "rtol": 1e-9}
