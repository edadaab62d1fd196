r"""The knobs of a latent variation search, in one checked, frozen object."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from captum_perturbmask._core.checks import (
    MAX_BUDGET,
    check_choice,
    check_float,
    check_fraction,
    check_int,
)
from captum_perturbmask.generative._search import SearchSettings

#: ``threshold_mode`` values (those of ``captum_perturbmask.metrics.saliency_mask``).
THRESHOLD_MODES = ("value", "quantile", "energy")


@dataclass(frozen=True)
class VariationSettings:
    r"""How :class:`~captum_perturbmask.generative.LatentVariationGenerator` searches.

    ``LatentVariationGenerator(G, D, forward_func=model, settings=VariationSettings(n_steps=10,
    lr=0.01))`` configures every call; ``generate(..., settings=...)`` overrides it for one.
    Every value is checked when the object is made.

    Attributes:
        n_restarts: latent codes optimised per input (on the batch axis).
        n_keep: restarts kept per input, best loss first (at most ``n_restarts``).
        n_steps: maximum Adam steps.
        lr: Adam step size on :math:`z'`.
        lam: :math:`\lambda`, weight of the contextual (realism or prior) term.
        loss: ``"mse"`` (squared error, the poster) or ``"l1"`` (Yeh et al.).
        reduction: ``"sum"`` over channels and positions of the :math:`R`-weighted error
            (Yeh et al.; the scale :math:`\lambda = 0.003` was tuned for) or ``"mean"``, the
            :math:`R`-weighted mean (divided by :math:`C \sum R`). Restarts are summed, so
            every restart's gradient is independent of the others.
        realism: ``"yeh"`` for :math:`\log(1 - D(G(z')))` or ``"nonsaturating"`` for
            :math:`-\log D(G(z'))`; ignored without a discriminator.
        context_kernel: odd window size :math:`s` of the context weights :math:`R` (a
            :math:`s \times s` box for images, :math:`s` steps for series).
        projection: prior support, ``"sphere"`` (radius :math:`\sqrt{d}`) or ``"clip"``
            (cube :math:`[-c, c]^d`).
        clip_value: :math:`c` of ``projection="clip"``.
        tol: early stop once no restart's loss changed by more than ``tol`` (relative)
            between two checks; 0 disables early stopping.
        check_every: steps between convergence and finiteness checks (the only host syncs
            of the loop).
        threshold: threshold of ``saliency_box``/``saliency_mask``; the default 0.94 with
            ``threshold_mode="quantile"`` takes the box (span) of the top 6% of the map. A box
            or span from a saliency map that is larger than a window generator's output is
            cut to the window, centred on it (an explicit ``mask`` that does not fit raises).
        threshold_mode: ``"value"``, ``"quantile"`` or ``"energy"``, as in ``saliency_mask``.
        feather: blend width in positions inside :math:`B` (0: the exact equation (1));
            positions outside :math:`B` always stay exactly :math:`X`.
        confidence_threshold: minimum confidence of an accepted variant (the decision itself
            for classifiers with one value per example); in :math:`[0, 1]` unless the
            generator's ``confidence`` is ``"identity"`` or a callable (checked per call).

    Raises:
        TypeError, ValueError: a knob of the wrong type or out of range, named in the message.

    Example:
        >>> s = VariationSettings(n_restarts=8, n_keep=4, n_steps=10, lr=0.01)
        >>> s.replace(n_keep=2).n_keep, s.n_steps
        (2, 10)
        >>> VariationSettings(n_keep=9, n_restarts=8)
        Traceback (most recent call last):
        ...
        ValueError: `n_keep` must be <= n_restarts (8), got 9.
    """

    n_restarts: int = 64
    n_keep: int = 8
    n_steps: int = 300
    lr: float = 0.05
    lam: float = 0.003
    loss: str = "mse"
    reduction: str = "sum"
    realism: str = "yeh"
    context_kernel: int = 7
    projection: str = "sphere"
    clip_value: float = 1.0
    tol: float = 1e-4
    check_every: int = 25
    threshold: float = 0.94
    threshold_mode: str = "quantile"
    feather: int = 0
    confidence_threshold: float = 0.5

    def __post_init__(self) -> None:
        check_int(self.n_restarts, "n_restarts", 1, MAX_BUDGET)
        check_int(self.n_keep, "n_keep", 1)
        if self.n_keep > self.n_restarts:
            raise ValueError(
                f"`n_keep` must be <= n_restarts ({self.n_restarts}), got {self.n_keep}."
            )
        check_int(self.n_steps, "n_steps", 1, MAX_BUDGET)
        check_float(self.lr, "lr", 0.0, math.inf, low_open=True, high_open=True)
        check_float(self.lam, "lam", 0.0, math.inf, high_open=True)
        check_choice(self.loss, "loss", ("mse", "l1"))
        check_choice(self.reduction, "reduction", ("sum", "mean"))
        check_choice(self.realism, "realism", ("yeh", "nonsaturating"))
        check_int(self.context_kernel, "context_kernel", 1)
        if self.context_kernel % 2 == 0:
            raise ValueError(f"`context_kernel` must be odd, got {self.context_kernel}.")
        check_choice(self.projection, "projection", ("sphere", "clip"))
        check_float(self.clip_value, "clip_value", 0.0, math.inf, low_open=True, high_open=True)
        check_float(self.tol, "tol", 0.0, math.inf, high_open=True)
        check_int(self.check_every, "check_every", 1)
        check_fraction(self.threshold, "threshold")
        check_choice(self.threshold_mode, "threshold_mode", THRESHOLD_MODES)
        check_int(self.feather, "feather", 0)
        check_float(self.confidence_threshold, "confidence_threshold", -math.inf, math.inf,
                    low_open=True, high_open=True)  # fmt: skip

    def replace(self, **changes: Any) -> VariationSettings:
        """A checked copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def search(self, show_progress: bool = False) -> SearchSettings:
        """The settings of the latent search loop."""
        return SearchSettings(
            loss=self.loss,
            reduction=self.reduction,
            realism=self.realism,
            lam=float(self.lam),
            n_steps=self.n_steps,
            lr=float(self.lr),
            tol=float(self.tol),
            check_every=self.check_every,
            projection=self.projection,
            clip_value=float(self.clip_value),
            show_progress=show_progress,
        )
