r"""Estimators: how the confidences ``p_i`` of evaluated masks become a saliency map.

Algorithm 1 credits the model's confidence to the mask. An estimator receives, block after
block, the regression features of the masks that were *actually evaluated* (the fraction of
each feature cell that a mask keeps) and their confidences, and at the end returns one score per
feature cell. Estimators keep sufficient statistics only, so memory does not grow with the budget.

Masks are usually shared by every example of a call (the random design draws one set of masks
for the whole batch): the features then arrive as one :math:`(R, F)` matrix, the statistics of
the masks are kept once, and the regression is solved with one factorisation and one right-hand
side per example. Designs that adapt to each example (the poster's chain, the sequential design)
send :math:`(B, R, F)`; both kinds can be mixed in one call.

Two estimators ship:

* :class:`RegressionEstimator` (default): a Laplacian-smoothed regression of ``logit(p_i)`` on
  the mask features. The Laplacian penalty :math:`s^\top L s = \sum_{a \sim b} (s_a - s_b)^2` is
  exactly the poster's total-variation term :math:`V`, used as a smoothness prior with weight
  :math:`\eta`. A regression stays unbiased under any mask design, including the correlated
  masks proposed by the on/off chain.
* :class:`AverageEstimator`: the RISE-style weighted average :math:`\sum_i p_i m_i / \sum_i m_i`.

Any object with the same three methods (``reset``, ``update``, ``solve``) can be passed as
``estimator=`` to :class:`captum_perturbmask.PerturbMask`. Unless it sets the class attribute
``shared_features = True`` it always receives :math:`(B, R, F)` features (a broadcast view).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["AverageEstimator", "Estimator", "RegressionEstimator"]


class Estimator:
    """Interface of a mask estimator (subclass it or duck-type it).

    Attributes:
        shared_features: ``True`` if :meth:`update` accepts features :math:`(R, F)` shared by
            every example of the batch; ``False`` (default) to always receive
            :math:`(B, R, F)`.
    """

    shared_features = False

    def reset(self, batch: int, n_features: int, device: torch.device, dtype: torch.dtype) -> None:
        """Start a new attribution call for ``batch`` examples and ``n_features`` cells."""
        raise NotImplementedError

    def update(self, features: Tensor, confidence: Tensor, log_odds: Tensor | None = None) -> None:
        """Add evaluated masks: ``features`` :math:`(R, F)` (shared) or :math:`(B, R, F)`,
        ``confidence`` :math:`(B, R)` and, when known, its non-saturating log-odds
        :math:`(B, R)`."""
        raise NotImplementedError

    def solve(self, laplacian: Tensor) -> Tensor:
        """Return scores :math:`(B, F)`; ``laplacian`` is :math:`(F, F)` or :math:`(B, F, F)`."""
        raise NotImplementedError


def _solve_dtype(device: torch.device, requested: torch.dtype | None) -> torch.dtype:
    """float64 on the CPU (as fast as float32 for these sizes), float32 on accelerators
    (consumer and inference GPUs run float64 at 1/32 to 1/64 of the float32 rate)."""
    if requested is not None:
        return requested
    return torch.float64 if device.type == "cpu" else torch.float32


class RegressionEstimator(Estimator):
    r"""Laplacian-smoothed least squares of the (logit) confidence on mask features.

    Solves, per example,

    .. math::
        \hat s = \arg\min_{b, s} \frac{1}{N}\sum_i (y_i - b - x_i^\top s)^2
                 + \eta\,\bar v\, s^\top L s + \lambda\,\bar v\,\lVert s\rVert^2,

    with :math:`y_i = \operatorname{clip}(\operatorname{logit}(p_i), -c, c)`, the log-odds of the
    target computed from the model's raw outputs (so a saturated softmax keeps its information),
    :math:`\bar v` the mean per-feature variance of :math:`x` (makes :math:`\eta` scale-free),
    in closed form on centred data: :math:`\hat s = (C + \eta \bar v L + \lambda \bar v I)^{-1} c`.
    When the masks are shared by the batch, :math:`C` and its factorisation are computed once
    and every example is one right-hand side.

    Precision: on the CPU the system is solved in float64 (from 1,024 features on, a float32
    factor refined with float64 residuals); on accelerators in float32 (``solve_dtype``
    overrides it).

    Args:
        eta: weight :math:`\eta` of the total-variation (Laplacian) prior.
        ridge: weight :math:`\lambda` of the ridge term.
        link: ``"logit"`` (default) or ``"identity"`` transform of the confidence.
        max_log_odds: :math:`c`, clipping of the log-odds; ``None`` keeps them unclipped.
        solve_dtype: dtype of the solve; ``None`` for float64 on the CPU, float32 elsewhere.

    Raises:
        ValueError: a negative ``eta`` or ``ridge``, an unknown ``link``, ``max_log_odds`` <= 0.

    Example:
        >>> est = RegressionEstimator(eta=0.0, ridge=1e-6)
        >>> est.reset(1, 2, torch.device("cpu"), torch.float64)
        >>> x = torch.tensor([[0., 0.], [1., 0.], [0., 1.], [1., 1.]], dtype=torch.float64)
        >>> p = torch.sigmoid(x @ torch.tensor([2., -1.], dtype=torch.float64))
        >>> est.update(x, p.unsqueeze(0))
        >>> est.solve(torch.zeros(2, 2, dtype=torch.float64)).round(decimals=3)
        tensor([[ 2., -1.]], dtype=torch.float64)
    """

    shared_features = True

    def __init__(
        self,
        eta: float = 3.0,
        ridge: float = 1e-3,
        link: str = "logit",
        max_log_odds: float | None = None,
        solve_dtype: torch.dtype | None = None,
    ) -> None:
        if eta < 0 or ridge < 0:
            raise ValueError(f"`eta` and `ridge` must be >= 0, got eta={eta}, ridge={ridge}")
        if link not in ("logit", "identity"):
            raise ValueError(f"`link` must be 'logit' or 'identity', got {link!r}")
        if max_log_odds is not None and max_log_odds <= 0:
            raise ValueError(f"`max_log_odds` must be > 0 or None, got {max_log_odds}")
        if solve_dtype is not None and solve_dtype not in (torch.float32, torch.float64):
            raise ValueError(f"`solve_dtype` must be torch.float32, torch.float64 or None, got "
                             f"{solve_dtype}")  # fmt: skip
        self.eta, self.ridge, self.link = float(eta), float(ridge), link
        self.max_log_odds = max_log_odds
        self.solve_dtype = solve_dtype

    def reset(self, batch: int, n_features: int, device: torch.device, dtype: torch.dtype) -> None:
        # statistics in the solve's dtype: float64 sums of float32 features are exact enough
        # that a degenerate design (all masks alike) gives a covariance of exactly zero
        self.out_dtype = dtype
        z = dict(device=device, dtype=_solve_dtype(device, self.solve_dtype))
        self.n = 0  # masks seen (a Python int: no device op per update)
        self.batch, self.n_features = batch, n_features
        self.sxx = torch.zeros(n_features, n_features, **z)  # shared masks
        self.sx = torch.zeros(n_features, **z)
        self.sxx_ex: Tensor | None = None  # per-example masks, allocated on first use
        self.sx_ex: Tensor | None = None
        self.sy = torch.zeros(batch, **z)
        self.syy = torch.zeros(batch, **z)
        self.sxy = torch.zeros(batch, n_features, **z)

    def _target(self, p: Tensor, log_odds: Tensor | None) -> Tensor:
        if self.link == "identity":
            return p
        if log_odds is None:
            log_odds = torch.logit(p, eps=1e-6)
        if self.max_log_odds is not None:
            log_odds = log_odds.clamp(-self.max_log_odds, self.max_log_odds)
        return log_odds

    def update(self, features: Tensor, confidence: Tensor, log_odds: Tensor | None = None) -> None:
        y = self._target(confidence, log_odds).to(self.sy.dtype)  # (B, R)
        x = features.to(self.sx.dtype)
        self.n += x.shape[-2]
        if x.dim() == 2:  # (R, F), shared by the batch
            self.sxx.addmm_(x.mT, x)
            self.sx.add_(x.sum(0))
            self.sxy.addmm_(y, x)
        else:  # (B, R, F)
            if self.sxx_ex is None:
                self.sxx_ex = torch.zeros(self.batch, self.n_features, self.n_features,
                                          device=x.device, dtype=x.dtype)  # fmt: skip
                self.sx_ex = torch.zeros(self.batch, self.n_features, device=x.device,
                                         dtype=x.dtype)  # fmt: skip
            self.sxx_ex.baddbmm_(x.mT, x)  # in place: no (B, F, F) temporary
            self.sx_ex.add_(x.sum(1))  # type: ignore[union-attr]
            self.sxy.add_(torch.bmm(y.unsqueeze(1), x).squeeze(1))
        self.sy.add_(y.sum(1))
        self.syy.add_(y.square().sum(1))

    def _moments(self, dtype: torch.dtype) -> tuple[float, Tensor, Tensor, Tensor]:
        """``n``, the feature covariance :math:`C` (:math:`(F, F)` when every mask was shared,
        else :math:`(B, F, F)`), the covariance with the target :math:`c` :math:`(B, F)` and
        the target mean :math:`(B,)`, all in ``dtype``."""
        n = float(max(self.n, 1))
        sx = self.sx.to(dtype)
        sxx = self.sxx.to(dtype, copy=True)
        if self.sxx_ex is not None:
            sx = sx + self.sx_ex.to(dtype)  # type: ignore[union-attr]
            sxx = self.sxx_ex.to(dtype) + sxx
        mu, ybar = sx / n, self.sy.to(dtype) / n
        cov = sxx.div_(n)
        self._scale = torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1)
        if cov.dim() == 2:
            cov.addr_(mu, mu, alpha=-1)
        else:
            cov.baddbmm_(mu.unsqueeze(2), mu.unsqueeze(1), alpha=-1)
        cxy = self.sxy.to(dtype) / n - (mu if mu.dim() == 2 else mu.unsqueeze(0)) * ybar[:, None]
        return n, cov, cxy, ybar

    def _penalise(self, cov: Tensor, laplacian: Tensor) -> Tensor:
        r""":math:`A = C + \bar v (\eta L + \lambda I)`, in place in ``cov`` (broadcast to the
        Laplacian's batch when the Laplacian is per example)."""
        lap = laplacian.to(device=cov.device)
        if lap.dim() == 3 and cov.dim() == 2:
            cov = cov.expand(lap.shape[0], -1, -1).clone()
        vbar = torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)  # () or (B,)
        cov.add_(lap.to(cov.dtype) * (self.eta * vbar)[..., None, None])
        # 1e-9 keeps a degenerate design (all masks equal) solvable: s = 0; float32 statistics
        # also need a jitter above their rounding error
        jitter = 1e-9
        if cov.dtype == torch.float32:
            jitter = jitter + 64 * torch.finfo(torch.float32).eps * self._scale
        torch.diagonal(cov, dim1=-2, dim2=-1).add_((self.ridge * vbar + jitter)[..., None])
        return cov

    def solve(self, laplacian: Tensor, exact: bool = False) -> Tensor:
        """Scores :math:`(B, F)`; ``exact`` skips the mixed-precision factorisation."""
        dtype = _solve_dtype(self.sxy.device, self.solve_dtype)
        _, cov, cxy, _ = self._moments(dtype)
        a = self._penalise(cov, laplacian)
        return spd_solve(a, cxy, mixed=not exact).to(self.out_dtype)

    def posterior(self, laplacian: Tensor) -> tuple[Tensor, Tensor]:
        r"""The scores :math:`\hat s` and their standard errors, both :math:`(B, F)`.

        The standard error of feature :math:`f` is
        :math:`\sqrt{\hat\sigma^2 [A^{-1}]_{ff} / N}` with :math:`A` the penalised normal
        matrix of :meth:`solve` and :math:`\hat\sigma^2` the mean squared residual: how much
        the score would move with other masks. Used by the sequential design.
        """
        dtype = _solve_dtype(self.sxy.device, self.solve_dtype)
        n, cov, cxy, ybar = self._moments(dtype)
        vy = self.syy.to(dtype) / n - ybar.square()
        a = self._penalise(cov.clone(), laplacian)
        chol, _ = torch.linalg.cholesky_ex(a)
        s = _cholesky_solve(chol, _as_rhs(cxy, a))
        s = s.mT if a.dim() == 2 else s.squeeze(-1)
        fit = (s * cxy).sum(1)
        cs = s @ cov if cov.dim() == 2 else torch.bmm(s.unsqueeze(1), cov).squeeze(1)
        resid = vy - 2 * fit + (cs * s).sum(1)
        inv_diag = torch.diagonal(torch.cholesky_inverse(chol), dim1=-2, dim2=-1)
        sd = (resid.clamp_min(1e-12)[:, None] * inv_diag / n).sqrt()
        return s.to(self.out_dtype), sd.to(self.out_dtype)


#: From this many features on, the CPU solve factorises in float32 and refines in float64.
MIXED_PRECISION_FEATURES = 1024
#: Refinement steps of the mixed-precision solve (fixed: no convergence test, no host sync).
REFINEMENTS = 3


def _as_rhs(cxy: Tensor, a: Tensor) -> Tensor:
    """Right-hand sides: :math:`(F, B)` for one shared matrix, :math:`(B, F, 1)` per example."""
    return cxy.mT if a.dim() == 2 else cxy.unsqueeze(-1)


def _cholesky_solve(chol: Tensor, rhs: Tensor) -> Tensor:
    """``chol @ chol.mT @ s = rhs`` as two triangular solves (faster than
    ``torch.cholesky_solve`` on the CPU, and no MAGMA stream syncs on CUDA)."""
    y = torch.linalg.solve_triangular(chol, rhs, upper=False)
    return torch.linalg.solve_triangular(chol.mT, y, upper=True)


def spd_solve(a: Tensor, b: Tensor, mixed: bool = True) -> Tensor:
    r"""Solve the symmetric positive definite systems of the regression.

    Args:
        a: one matrix :math:`(F, F)` shared by all right-hand sides, or :math:`(B, F, F)`.
        b: right-hand sides :math:`(B, F)`.
        mixed: allow the mixed-precision path.

    Returns:
        :math:`(B, F)` solutions in ``a``'s dtype. float64 systems of
        ``MIXED_PRECISION_FEATURES`` or more features use a float32 factor and
        ``REFINEMENTS`` steps of iterative refinement with float64 residuals (float64
        accuracy for the condition numbers the penalty keeps, at half the cost). Nothing is
        decided on the host: a failed factorisation gives NaN solutions, which the caller
        checks (with the attribution's finiteness) and answers with ``mixed=False``.

    Example:
        >>> a = torch.tensor([[2.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
        >>> b = torch.tensor([[2.0, 4.0], [4.0, 8.0]], dtype=torch.float64)  # one row per example
        >>> spd_solve(a, b).round(decimals=6)
        tensor([[1., 1.],
                [2., 2.]], dtype=torch.float64)
    """
    rhs = _as_rhs(b, a)
    if mixed and a.dtype == torch.float64 and a.shape[-1] >= MIXED_PRECISION_FEATURES:
        chol, info = torch.linalg.cholesky_ex(a.float())
        s = _cholesky_solve(chol, rhs.float()).double()
        for _ in range(REFINEMENTS):
            s = s + _cholesky_solve(chol, (rhs - a @ s).float()).double()
    else:
        chol, info = torch.linalg.cholesky_ex(a)
        s = _cholesky_solve(chol, rhs)
    s = torch.where((info == 0)[..., None, None], s, torch.nan)  # a failure is visible
    return s.mT if a.dim() == 2 else s.squeeze(-1)


class AverageEstimator(Estimator):
    r"""Weighted average :math:`\sum_i p_i x_i / \sum_i x_i` per feature cell (RISE with
    mask-sum normalisation; cells never kept score 0).

    Example:
        >>> est = AverageEstimator()
        >>> est.reset(1, 2, torch.device("cpu"), torch.float32)
        >>> est.update(torch.tensor([[1., 0.], [0., 1.]]), torch.tensor([[0.9, 0.1]]))
        >>> est.solve(torch.zeros(2, 2))
        tensor([[0.9000, 0.1000]])
    """

    shared_features = True

    def reset(self, batch: int, n_features: int, device: torch.device, dtype: torch.dtype) -> None:
        self.spx = torch.zeros(batch, n_features, device=device, dtype=dtype)
        self.sx = torch.zeros(batch, n_features, device=device, dtype=dtype)

    def update(self, features: Tensor, confidence: Tensor, log_odds: Tensor | None = None) -> None:
        x = features.to(self.sx.dtype)
        p = confidence.to(x.dtype)
        if x.dim() == 2:
            self.spx.addmm_(p, x)
            self.sx.add_(x.sum(0))
        else:
            self.spx.add_(torch.bmm(p.unsqueeze(1), x).squeeze(1))
            self.sx.add_(x.sum(1))

    def solve(self, laplacian: Tensor) -> Tensor:
        return torch.where(self.sx > 0, self.spx / self.sx.clamp_min(1e-12), 0.0)
