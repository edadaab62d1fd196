"""Estimators: the regression's posterior standard errors."""

from __future__ import annotations

import torch

from captum_perturbmask.attr.estimators import RegressionEstimator


def test_regression_posterior_standard_errors() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 400, 3, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    y = y + 0.1 * torch.randn(1, 400, generator=g, dtype=torch.float64)
    est = RegressionEstimator(eta=0.0, ridge=1e-9)
    est.reset(1, 3, torch.device("cpu"), torch.float64)
    est.update(x, torch.sigmoid(y), y)
    lap = torch.zeros(3, 3, dtype=torch.float64)
    s, sd = est.posterior(lap)
    torch.testing.assert_close(s, est.solve(lap))
    # OLS standard error: sigma / sqrt(N var(x)) = 0.1 / sqrt(400 / 12) ~ 0.017
    assert ((sd > 0.012) & (sd < 0.024)).all(), sd
    est.update(x, torch.sigmoid(y), y)  # the same rows twice: same fit, sd / sqrt(2)
    s2, sd2 = est.posterior(lap)
    torch.testing.assert_close(s2, s)
    torch.testing.assert_close(sd2, sd / 2**0.5, rtol=1e-6, atol=1e-9)
