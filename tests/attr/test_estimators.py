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


def _spd(f: int, cond: float, seed: int) -> torch.Tensor:
    """A random symmetric positive definite (1, f, f) float64 matrix of condition ``cond``."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(f, f, generator=g, dtype=torch.float64))
    eig = torch.logspace(0, torch.log10(torch.tensor(cond)).item(), f, dtype=torch.float64)
    return ((q * eig) @ q.T)[None]


def test_large_systems_solve_to_float64_accuracy() -> None:
    """The float32 factor with float64 refinement reaches the float64 solve's accuracy."""
    from captum_perturbmask.attr import estimators

    f = estimators.MIXED_PRECISION_FEATURES
    a = _spd(f, 1e4, seed=0)
    s_true = torch.randn(1, f, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    b = (a @ s_true[..., None])[..., 0]
    s = estimators._spd_solve(a, b)
    assert s.dtype == torch.float64 and s.shape == (1, f)
    # float64 accuracy: far beyond what a float32 solve gives (~1e-4 relative at this condition)
    assert (s - s_true).abs().max() / s_true.abs().max() < 1e-9
    plain = torch.cholesky_solve(b[..., None].float(), torch.linalg.cholesky(a.float()))
    assert (plain[..., 0].double() - s_true).abs().max() / s_true.abs().max() > 1e-7


def test_ill_conditioned_large_systems_fall_back_to_float64() -> None:
    """Where float32 refinement cannot converge (condition ~1e12) the float64 path answers."""
    from captum_perturbmask.attr import estimators

    f = estimators.MIXED_PRECISION_FEATURES
    a = _spd(f, 1e12, seed=2)
    b = torch.randn(1, f, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = torch.cholesky_solve(b[..., None], torch.linalg.cholesky(a))[..., 0]
    torch.testing.assert_close(estimators._spd_solve(a, b), expected, rtol=1e-8, atol=0)


def test_regression_solve_matches_the_closed_form_on_a_fine_grid() -> None:
    """PerturbMask's estimator on 32 x 32 = 1024 features (the mixed-precision path) equals the
    float64 closed form (C + vbar (eta L + ridge I)) s = c computed from the raw rows."""
    from captum_perturbmask.attr._masks import _grid_laplacian

    g = torch.Generator().manual_seed(4)
    f_side, n = 32, 300
    x = (torch.rand(1, n, f_side * f_side, generator=g) < 0.5).float()
    w = torch.randn(f_side * f_side, generator=g)
    y = x @ w / 30 + 0.1 * torch.randn(1, n, generator=g)
    lap = _grid_laplacian((f_side, f_side), torch.device("cpu"), torch.float32)
    est = RegressionEstimator(eta=10.0, ridge=1e-3)
    est.reset(1, f_side * f_side, torch.device("cpu"), torch.float32)
    for rows in (slice(0, 128), slice(128, n)):  # two updates, as the chunked loop does
        est.update(x[:, rows], torch.sigmoid(y[:, rows]), y[:, rows])
    s = est.solve(lap)

    xd, yd = x[0].double(), y[0].double()
    xc, yc = xd - xd.mean(0), yd - yd.mean()
    cov, cxy = xc.T @ xc / n, xc.T @ yc / n
    vbar = cov.diagonal().mean()
    eye = torch.eye(f_side * f_side, dtype=torch.float64)
    a = cov + vbar * (10.0 * lap.double() + 1e-3 * eye) + 1e-9 * eye
    expected = torch.linalg.solve(a, cxy)
    assert s.dtype == torch.float32
    torch.testing.assert_close(s[0].double(), expected, rtol=1e-4, atol=1e-5 * expected.abs().max())


def test_solve_leaves_the_statistics_as_they_were() -> None:
    """Solving twice (float64 state, where a cast would alias the buffer) gives the same map."""
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 50, 4, generator=g, dtype=torch.float64)
    est = RegressionEstimator(eta=1.0)
    est.reset(2, 4, torch.device("cpu"), torch.float64)
    est.update(x, torch.rand(2, 50, generator=g, dtype=torch.float64))
    before = est.sxx.clone()
    lap = torch.eye(4, dtype=torch.float64)
    first = est.solve(lap)
    torch.testing.assert_close(est.solve(lap), first, rtol=0, atol=0)
    assert torch.equal(est.sxx, before)
