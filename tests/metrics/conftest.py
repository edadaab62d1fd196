"""Tolerances for the metric tests (``device`` and ``dtype`` come from ``tests/conftest.py``)."""

import pytest
import torch


@pytest.fixture
def tol(dtype: torch.dtype) -> dict[str, float]:
    """``torch.testing.assert_close`` tolerances for the current dtype."""
    if dtype == torch.float32:
        return {"atol": 1e-5, "rtol": 1e-4}
    return {"atol": 1e-10, "rtol": 1e-9}
