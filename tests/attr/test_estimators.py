"""Estimators: the regression's posterior standard errors."""

from __future__ import annotations

import torch

from captum_perturbmask.attr._masks import grid_laplacian
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
    s = estimators.spd_solve(a, b)
    assert s.dtype == torch.float64 and s.shape == (1, f)
    # float64 accuracy: far beyond what a float32 solve gives (~1e-4 relative at this condition)
    assert (s - s_true).abs().max() / s_true.abs().max() < 1e-9
    plain = torch.cholesky_solve(b[..., None].float(), torch.linalg.cholesky(a.float()))
    assert (plain[..., 0].double() - s_true).abs().max() / s_true.abs().max() > 1e-7


def test_ill_conditioned_large_systems_fail_visibly_then_solve_in_float64() -> None:
    """Where the float32 factor fails (condition ~1e12) the solution is NaN - no host decision
    inside the solve - and the exact path (what PerturbMask retries with) answers."""
    from captum_perturbmask.attr import estimators

    f = estimators.MIXED_PRECISION_FEATURES
    a = _spd(f, 1e12, seed=2)
    b = torch.randn(1, f, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = torch.cholesky_solve(b[..., None], torch.linalg.cholesky(a))[..., 0]
    assert torch.isnan(estimators.spd_solve(a, b)).all()
    torch.testing.assert_close(estimators.spd_solve(a, b, mixed=False), expected, rtol=1e-8, atol=0)


def test_regression_solve_matches_the_closed_form_on_a_fine_grid() -> None:
    """PerturbMask's estimator on 32 x 32 = 1024 features (the mixed-precision path) equals the
    float64 closed form (C + vbar (eta L + ridge I)) s = c computed from the raw rows."""
    g = torch.Generator().manual_seed(4)
    f_side, n = 32, 300
    x = (torch.rand(n, f_side * f_side, generator=g) < 0.5).float()
    w = torch.randn(f_side * f_side, generator=g)
    y = (x @ w / 30 + 0.1 * torch.randn(n, generator=g))[None]
    lap = grid_laplacian((f_side, f_side), torch.device("cpu"), torch.float32)
    est = RegressionEstimator(eta=10.0, ridge=1e-3)
    est.reset(1, f_side * f_side, torch.device("cpu"), torch.float32)
    for rows in (slice(0, 128), slice(128, n)):  # two updates, as the chunked loop does
        est.update(x[rows], torch.sigmoid(y[:, rows]), y[:, rows])
    s = est.solve(lap)

    xd, yd = x.double(), y[0].double()
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
    before = est.sxx_ex.clone()
    lap = torch.eye(4, dtype=torch.float64)
    first = est.solve(lap)
    torch.testing.assert_close(est.solve(lap), first, rtol=0, atol=0)
    assert torch.equal(est.sxx_ex, before)


def test_shared_masks_give_the_per_example_solution() -> None:
    """Features (R, F) shared by the batch: one covariance, one factorisation, one right-hand
    side per example - the same scores as the per-example statistics of the same masks, and
    mixing both kinds of update in one call is the sum of their statistics."""
    g = torch.Generator().manual_seed(6)
    x = torch.rand(60, 5, generator=g, dtype=torch.float64)
    y = torch.randn(3, 60, generator=g, dtype=torch.float64)
    lap = torch.eye(5, dtype=torch.float64) - 0.2
    shared, per = RegressionEstimator(eta=2.0), RegressionEstimator(eta=2.0)
    for est in (shared, per):
        est.reset(3, 5, torch.device("cpu"), torch.float64)
    shared.update(x, torch.sigmoid(y), y)
    per.update(x.expand(3, -1, -1), torch.sigmoid(y), y)
    torch.testing.assert_close(shared.solve(lap), per.solve(lap))
    s1, sd1 = shared.posterior(lap)
    s2, sd2 = per.posterior(lap)
    torch.testing.assert_close(s1, s2)
    torch.testing.assert_close(sd1, sd2)
    mixed = RegressionEstimator(eta=2.0)
    mixed.reset(3, 5, torch.device("cpu"), torch.float64)
    mixed.update(x[:30], torch.sigmoid(y[:, :30]), y[:, :30])
    mixed.update(x[30:].expand(3, -1, -1), torch.sigmoid(y[:, 30:]), y[:, 30:])
    torch.testing.assert_close(mixed.solve(lap), shared.solve(lap))


def test_solve_dtype_float32_is_close_to_float64() -> None:
    """The accelerator default (float32 solve) agrees with the float64 solve to float32
    accuracy on a realistic system."""
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(400, 144, generator=g) < 0.7).float()
    y = x @ torch.randn(144, generator=g) / 10 + 0.05 * torch.randn(2, 400, generator=g)
    lap = grid_laplacian((12, 12), torch.device("cpu"), torch.float32)
    out = {}
    for dtype in (torch.float32, torch.float64):
        est = RegressionEstimator(eta=10.0, solve_dtype=dtype)
        est.reset(2, 144, torch.device("cpu"), torch.float32)
        est.update(x, torch.sigmoid(y), y)
        out[dtype] = est.solve(lap)
    scale = out[torch.float64].abs().max()
    assert (out[torch.float32] - out[torch.float64]).abs().max() < 1e-4 * scale
