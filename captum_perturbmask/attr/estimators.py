r"""Estimators: how the confidences ``p_i`` of evaluated masks become a saliency map.

Algorithm 1 credits the model's confidence to the mask. An estimator receives, after every
iteration, the regression features of the masks that were *actually evaluated* (the fraction of
each feature cell that a mask keeps) and their confidences, and at the end returns one score per
feature cell. Estimators keep sufficient statistics only, so memory does not grow with the budget.

Two estimators ship:

* :class:`RegressionEstimator` (default): a Laplacian-smoothed regression of ``logit(p_i)`` on
  the mask features. The Laplacian penalty :math:`s^\top L s = \sum_{a \sim b} (s_a - s_b)^2` is
  exactly the poster's total-variation term :math:`V`, used as a smoothness prior with weight
  :math:`\eta`. A regression stays unbiased under any mask design, including the correlated
  masks proposed by the on/off chain.
* :class:`AverageEstimator`: the RISE-style weighted average :math:`\sum_i p_i m_i / \sum_i m_i`.

Any object with the same three methods (``reset``, ``update``, ``solve``) can be passed as
``estimator=`` to :meth:`captum_perturbmask.PerturbMask.attribute`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["AverageEstimator", "Estimator", "RegressionEstimator"]


class Estimator:
    """Interface of a mask estimator (subclass it or duck-type it)."""

    def reset(self, batch: int, n_features: int, device: torch.device, dtype: torch.dtype) -> None:
        """Start a new attribution call for ``batch`` examples and ``n_features`` cells."""
        raise NotImplementedError

    def update(self, features: Tensor, confidence: Tensor, log_odds: Tensor | None = None) -> None:
        """Add one iteration: ``features`` :math:`(B, R, F)`, ``confidence`` :math:`(B, R)` and,
        when known, its non-saturating log-odds :math:`(B, R)`."""
        raise NotImplementedError

    def solve(self, laplacian: Tensor) -> Tensor:
        """Return scores :math:`(B, F)`; ``laplacian`` is :math:`(F, F)` or :math:`(B, F, F)`."""
        raise NotImplementedError


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

    The solve runs once per call, to float64 accuracy; from 1,024 features on (large grids or
    feature masks) it factorises in float32 and refines with float64 residuals, which halves
    the cost of the :math:`O(F^3)` factorisation.

    Args:
        eta: weight :math:`\eta` of the total-variation (Laplacian) prior.
        ridge: weight :math:`\lambda` of the ridge term.
        link: ``"logit"`` (default) or ``"identity"`` transform of the confidence.
        max_log_odds: :math:`c`, clipping of the log-odds; ``None`` keeps them unclipped.

    Example:
        >>> est = RegressionEstimator(eta=0.0, ridge=1e-6)
        >>> est.reset(1, 2, torch.device("cpu"), torch.float64)
        >>> x = torch.tensor([[[0., 0.], [1., 0.], [0., 1.], [1., 1.]]], dtype=torch.float64)
        >>> est.update(x, torch.sigmoid(x @ torch.tensor([2., -1.], dtype=torch.float64)))
        >>> est.solve(torch.zeros(2, 2, dtype=torch.float64)).round(decimals=3)
        tensor([[ 2., -1.]], dtype=torch.float64)
    """

    def __init__(
        self,
        eta: float = 3.0,
        ridge: float = 1e-3,
        link: str = "logit",
        max_log_odds: float | None = None,
    ) -> None:
        if eta < 0 or ridge < 0:
            raise ValueError(f"`eta` and `ridge` must be >= 0, got eta={eta}, ridge={ridge}")
        if link not in ("logit", "identity"):
            raise ValueError(f"`link` must be 'logit' or 'identity', got {link!r}")
        if max_log_odds is not None and max_log_odds <= 0:
            raise ValueError(f"`max_log_odds` must be > 0 or None, got {max_log_odds}")
        self.eta, self.ridge, self.link = float(eta), float(ridge), link
        self.max_log_odds = max_log_odds

    def reset(self, batch: int, n_features: int, device: torch.device, dtype: torch.dtype) -> None:
        z = dict(device=device, dtype=dtype)
        self.n = torch.zeros((), **z)
        self.sx = torch.zeros(batch, n_features, **z)
        self.sy = torch.zeros(batch, **z)
        self.syy = torch.zeros(batch, **z)
        self.sxx = torch.zeros(batch, n_features, n_features, **z)
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
        y = self._target(confidence.to(self.sy.dtype), log_odds)
        x = features.to(self.sx.dtype)
        self.n += x.shape[1]
        self.sx += x.sum(1)
        self.sy += y.sum(1)
        self.syy += (y * y).sum(1)
        self.sxx.baddbmm_(x.transpose(1, 2), x)  # in place: no (B, F, F) temporary
        self.sxy += (x * y.unsqueeze(-1)).sum(1)

    def _moments(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``n``, the feature covariance :math:`C` (float64, :math:`(B, F, F)`), the
        covariance with the target :math:`c` (float64, :math:`(B, F)`) and the target mean."""
        n = self.n.clamp_min(1).double()
        mu, ybar = self.sx.double() / n, self.sy.double() / n
        cov = self.sxx.to(torch.float64, copy=True).div_(n)  # one float64 buffer, in place
        cov.baddbmm_(mu.unsqueeze(2), mu.unsqueeze(1), alpha=-1)
        cxy = self.sxy.double() / n - mu * ybar.unsqueeze(1)
        return n, cov, cxy, ybar

    def _penalise(self, cov: Tensor, laplacian: Tensor) -> Tensor:
        r""":math:`A = C + \bar v (\eta L + \lambda I)`, in place in ``cov``."""
        vbar = torch.diagonal(cov, dim1=1, dim2=2).mean(1).clamp_min(1e-12)  # (B,)
        # float32 L into the float64 buffer: promoted element by element, no float64 copy of L
        cov.addcmul_(laplacian.to(cov.device), (self.eta * vbar)[:, None, None])
        # 1e-9 keeps a degenerate design (all masks equal) solvable: s = 0
        torch.diagonal(cov, dim1=1, dim2=2).add_((self.ridge * vbar + 1e-9)[:, None])
        return cov

    def solve(self, laplacian: Tensor) -> Tensor:
        _, cov, cxy, _ = self._moments()
        a = self._penalise(cov, laplacian)
        return _spd_solve(a, cxy).to(self.sx.dtype)

    def posterior(self, laplacian: Tensor) -> tuple[Tensor, Tensor]:
        r"""The scores :math:`\hat s` and their standard errors, both :math:`(B, F)`.

        The standard error of feature :math:`f` is
        :math:`\sqrt{\hat\sigma^2 [A^{-1}]_{ff} / N}` with :math:`A` the penalised normal
        matrix of :meth:`solve` and :math:`\hat\sigma^2` the mean squared residual: how much
        the score would move with other masks. Used by the sequential design.
        """
        n, cov, cxy, ybar = self._moments()
        vy = self.syy.double() / n - ybar**2
        a = self._penalise(cov.clone(), laplacian)
        chol, _ = torch.linalg.cholesky_ex(a)
        s = torch.cholesky_solve(cxy.unsqueeze(-1), chol).squeeze(-1)
        fit = (s * cxy).sum(1)
        resid = vy - 2 * fit + (s.unsqueeze(1) @ cov @ s.unsqueeze(2))[:, 0, 0]
        inv_diag = torch.diagonal(torch.cholesky_inverse(chol), dim1=1, dim2=2)
        sd = (resid.clamp_min(1e-12)[:, None] * inv_diag / n).sqrt()
        return s.to(self.sx.dtype), sd.to(self.sx.dtype)


#: From this many features on, :func:`_spd_solve` factorises in float32 and refines in float64.
MIXED_PRECISION_FEATURES = 1024


def _cholesky_solve(chol: Tensor, rhs: Tensor) -> Tensor:
    """``torch.cholesky_solve(rhs, chol)`` as two triangular solves (several times faster on
    CPU for one right-hand side)."""
    y = torch.linalg.solve_triangular(chol, rhs, upper=False)
    return torch.linalg.solve_triangular(chol.mT, y, upper=True)


def _spd_solve(a: Tensor, b: Tensor, refinements: int = 6) -> Tensor:
    r"""Solve the symmetric positive definite systems ``a @ s = b`` to float64 accuracy.

    Small systems: a float64 Cholesky solve. Large ones (``F >= MIXED_PRECISION_FEATURES``,
    where the :math:`O(F^3)` factorisation dominates): a float32 Cholesky factor, then iterative
    refinement with float64 residuals, which reaches float64 accuracy for the condition numbers
    the penalty keeps (:math:`\lesssim 10^6`) at half the cost; a float64 factorisation is
    used whenever the float32 one fails or the refinement does not converge.

    Args:
        a: Matrices :math:`(B, F, F)`, float64.
        b: Right-hand sides :math:`(B, F)`, float64.
        refinements: Most refinement steps of the mixed-precision path.

    Returns:
        :math:`(B, F)` float64.
    """
    rhs = b.unsqueeze(-1)
    if a.shape[-1] >= MIXED_PRECISION_FEATURES:
        chol32, info = torch.linalg.cholesky_ex(a.float())
        s = _cholesky_solve(chol32, rhs.float()).double()
        scale = rhs.abs().amax(dim=(1, 2)).clamp_min(1e-300)
        ok = bool((info == 0).all())  # a few host decisions per call, none per iteration
        for _ in range(refinements + 1):
            r = rhs - a @ s
            err = float(((r.abs().amax(dim=(1, 2)) / scale).nan_to_num(float("inf"))).max())
            if not ok or err < 1e-12:
                break
            s = s + _cholesky_solve(chol32, r.float()).double()
        if ok and err < 1e-10:
            return s.squeeze(-1)
    chol, _ = torch.linalg.cholesky_ex(a)
    return torch.cholesky_solve(rhs, chol).squeeze(-1)


class AverageEstimator(Estimator):
    r"""Weighted average :math:`\sum_i p_i x_i / \sum_i x_i` per feature cell (RISE with
    mask-sum normalisation; cells never kept score 0).

    Example:
        >>> est = AverageEstimator()
        >>> est.reset(1, 2, torch.device("cpu"), torch.float32)
        >>> est.update(torch.tensor([[[1., 0.], [0., 1.]]]), torch.tensor([[0.9, 0.1]]))
        >>> est.solve(torch.zeros(2, 2))
        tensor([[0.9000, 0.1000]])
    """

    def reset(self, batch: int, n_features: int, device: torch.device, dtype: torch.dtype) -> None:
        self.spx = torch.zeros(batch, n_features, device=device, dtype=dtype)
        self.sx = torch.zeros(batch, n_features, device=device, dtype=dtype)

    def update(self, features: Tensor, confidence: Tensor, log_odds: Tensor | None = None) -> None:
        x = features.to(self.sx.dtype)
        self.spx += (x * confidence.to(x.dtype).unsqueeze(-1)).sum(1)
        self.sx += x.sum(1)

    def solve(self, laplacian: Tensor) -> Tensor:
        return torch.where(self.sx > 0, self.spx / self.sx.clamp_min(1e-12), 0.0)
