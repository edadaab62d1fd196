r"""What :meth:`LatentVariationGenerator.generate` returns, and the counterfactual knobs.

Shapes use :math:`N` inputs, :math:`K` kept variants per input, latent size :math:`d` and the
inputs' own layout: images :math:`(C, H, W)` or series :math:`(C, T)`; :math:`S` is the number
of spatial dimensions (2 for images, 1 for series).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_perturbmask._core.checks import check_float, check_int

__all__ = ["CounterfactualConfig", "CounterfactualVariations", "LatentVariations"]


@dataclass
class CounterfactualVariations:
    r"""Realistic variants of the important region that change the classifier's decision.

    Shapes use :math:`N` inputs, :math:`K_c` candidates per input and latent size :math:`d`.

    Attributes:
        variants: composed inputs :math:`X'`, shape :math:`(N, K_c, C, H, W)` for images or
            :math:`(N, K_c, C, T)` for series.
        latents: the latent codes :math:`z'`, shape :math:`(N, K_c, d)`.
        anchors: the best reconstruction :math:`z_0` the budget is centred on, :math:`(N, d)`.
        latent_distance: :math:`\|z' - z_0\|_2`, shape :math:`(N, K_c)`, at most ``epsilon``.
        losses: reconstruction + realism loss of each candidate, :math:`(N, K_c)`.
        predictions: the classifier's decision, :math:`(N, K_c)`: the arg-max class along
            dim 1 of the output, or for a model with one value per example 1 when the
            confidence reaches ``confidence_threshold`` and 0 otherwise.
        confidence: confidence in the original target, :math:`(N, K_c)`.
        flipped: the decision moved away from the target (or onto ``cf_target`` when
            targeted), bool :math:`(N, K_c)`.
        realism: sigmoid of the discriminator, :math:`(N, K_c)`, ``None`` without a
            discriminator.
        cf_target: the class pushed toward, :math:`(N,)`, ``None`` for the untargeted mode.
        epsilon: the latent budget.

    Example:
        >>> cf = CounterfactualVariations(
        ...     variants=torch.zeros(2, 3, 1, 4), latents=torch.zeros(2, 3, 5),
        ...     anchors=torch.zeros(2, 5), latent_distance=torch.zeros(2, 3),
        ...     losses=torch.zeros(2, 3), predictions=torch.zeros(2, 3, dtype=torch.long),
        ...     confidence=torch.zeros(2, 3),
        ...     flipped=torch.tensor([[False, True, False], [False, False, False]]),
        ...     realism=None, cf_target=None, epsilon=1.0)
        >>> cf.n_flipped_inputs
        1
    """

    variants: Tensor
    latents: Tensor
    anchors: Tensor
    latent_distance: Tensor
    losses: Tensor
    predictions: Tensor
    confidence: Tensor
    flipped: Tensor
    realism: Tensor | None
    cf_target: Tensor | None
    epsilon: float

    @property
    def n_flipped_inputs(self) -> int:
        """Number of inputs with at least one flipping variant."""
        return int(self.flipped.any(dim=1).sum())


@dataclass
class LatentVariations:
    r"""The acceptable variations found by :meth:`.LatentVariationGenerator.generate`.

    Shapes use :math:`N` inputs, :math:`K` kept restarts (``n_keep``) and latent size :math:`d`.
    Variants are sorted by loss, best first.

    Attributes:
        variants: composed inputs :math:`X'`, shape :math:`(N, K, C, H, W)` for images or
            :math:`(N, K, C, T)` for series; bitwise equal to the input outside ``mask``.
        latents: the latent codes :math:`z'`, shape :math:`(N, K, d)`.
        losses: final search loss (reconstruction + :math:`\lambda` contextual) per variant,
            :math:`(N, K)`.
        mask: the region :math:`B` that was replaced, bool :math:`(N, H, W)` or :math:`(N, T)`.
        context_weights: the weights :math:`R` of the reconstruction loss, same shape as
            ``mask``.
        patch_origin: first position of the generator's output in the input, :math:`(N, 2)`
            ``(row, col)`` for images, :math:`(N, 1)` (first time step) for series; zeros for
            generators of the full input size.
        diversity: mean pairwise :math:`L_2` distance between the variants of an input inside
            :math:`B`, in input space, :math:`(N,)` (0 when :math:`K = 1`).
        confidence: confidence of the classifier in ``target`` for every variant,
            :math:`(N, K)`; ``None`` without a classifier.
        accepted: variant keeps the decision *and* reaches the confidence threshold,
            bool :math:`(N, K)`; ``None`` without a classifier.
        predictions: the classifier's decision for every variant, :math:`(N, K)`: the arg-max
            class along dim 1, or for a model with one value per example 1 when the confidence
            reaches ``confidence_threshold`` and 0 otherwise; ``None`` without a classifier.
        target: the scored position of the classifier output per input, :math:`(N,)` (the
            class for :math:`(N, K)` logits, 0 for one value per example); ``None`` without a
            classifier.
        input_confidence: confidence in ``target`` on the unmodified input, :math:`(N,)`.
        realism: sigmoid of the discriminator on :math:`G(z')`, :math:`(N, K)`; ``None``
            without a discriminator.
        feature_diversity: as ``diversity`` in the space of ``feature_func``, :math:`(N,)`.
        n_steps: optimisation steps actually run (early stopping may end the search sooner).
        counterfactuals: the decision-flipping variants, or ``None`` outside counterfactual
            mode.

    Example:
        >>> out = LatentVariations(
        ...     variants=torch.zeros(1, 2, 1, 4), latents=torch.zeros(1, 2, 3),
        ...     losses=torch.zeros(1, 2), mask=torch.ones(1, 4, dtype=torch.bool),
        ...     context_weights=torch.zeros(1, 4), patch_origin=torch.zeros(1, 1),
        ...     diversity=torch.zeros(1), accepted=torch.tensor([[True, False]]))
        >>> out.accepted_fraction
        0.5
    """

    variants: Tensor
    latents: Tensor
    losses: Tensor
    mask: Tensor
    context_weights: Tensor
    patch_origin: Tensor
    diversity: Tensor
    confidence: Tensor | None = None
    accepted: Tensor | None = None
    predictions: Tensor | None = None
    target: Tensor | None = None
    input_confidence: Tensor | None = None
    realism: Tensor | None = None
    feature_diversity: Tensor | None = None
    n_steps: int = 0
    counterfactuals: CounterfactualVariations | None = None

    @property
    def accepted_fraction(self) -> float | None:
        """Share of all variants that were accepted, ``None`` without a classifier."""
        if self.accepted is None:
            return None
        return float(self.accepted.float().mean())

    def to_figure(self, index: int | Sequence[int] | None = None, max_variants: int = 8) -> Any:
        """Draw inputs, masks, variants (and counterfactuals) as a grid.

        See :func:`captum_perturbmask.viz.plot_variations`, which this calls.

        Args:
            index: input(s) to draw; all inputs (at most 8) when ``None``.
            max_variants: at most this many variants (and counterfactuals) per row.

        Returns:
            a :class:`matplotlib.figure.Figure`.
        """
        from captum_perturbmask.viz import plot_variations

        return plot_variations(self, index=index, max_variants=max_variants)

    def plot(self, path: str | None = None, **kwargs: Any) -> Any:
        """Draw the grid of :meth:`to_figure` and optionally save it to ``path``.

        Args:
            path: file to save to (any format matplotlib knows); not saved when ``None``.
            **kwargs: forwarded to :func:`captum_perturbmask.viz.plot_variations`.

        Returns:
            the :class:`matplotlib.figure.Figure`.
        """
        from captum_perturbmask.viz import plot_variations

        return plot_variations(self, path=path, **kwargs)


@dataclass(frozen=True)
class CounterfactualConfig:
    r"""Knobs of the counterfactual search (pass to ``generate(counterfactual=...)``).

    The search starts near the best reconstruction :math:`z_0` of each input and minimises the
    search loss plus ``weight`` times a margin loss on the classifier output, while :math:`z'`
    is projected onto :math:`\{\|z' - z_0\|_2 \le \epsilon\}` intersected with the prior's
    support. For logits :math:`f` with classes along dim 1 the margin loss is
    :math:`\max(f_t - \max_{j \ne t} f_j, -\kappa)` away from the target :math:`t` (or
    :math:`\max(\max_{j \ne c} f_j - f_c, -\kappa)` toward ``cf_target`` :math:`c`); for a
    model with one value per example (e.g. one logit scored with a sigmoid) it is
    :math:`\max(g(p) - g(\tau), -\kappa)` with :math:`p` the confidence, :math:`\tau` the
    ``confidence_threshold`` of ``generate`` and :math:`g` the log-odds (the identity for
    ``confidence="identity"``).

    Every field is checked when the config is built.

    Args:
        epsilon: latent budget :math:`\epsilon > 0`; ``None`` means :math:`0.25 \sqrt{d}` (a
            cap of about 14 degrees on the sphere of radius :math:`\sqrt{d}`).
        weight: weight of the classifier term, :math:`> 0`.
        cf_target: class(es) to push toward, an int, a list of :math:`N` ints or an integer tensor
            :math:`()`/:math:`(N,)`; ``None`` pushes away from the target. Needs a classifier
            with classes along dim 1.
        margin: :math:`\kappa \ge 0`; the classifier term stops pushing past this margin.
        n_candidates: candidates per input; ``None`` means ``n_keep``.
        n_steps: optimisation steps; ``None`` means the main search's ``n_steps``.
        lr: Adam step size :math:`> 0`; ``None`` means the main search's ``lr``.

    Raises:
        TypeError: a field of the wrong type (e.g. a bool or float where an int is expected).
        ValueError: a field out of range or not finite.

    Example:
        >>> CounterfactualConfig(epsilon=2.0, cf_target=3).margin
        1.0
        >>> CounterfactualConfig(n_steps=0)
        Traceback (most recent call last):
        ...
        ValueError: `CounterfactualConfig.n_steps` must be >= 1, got 0.
    """

    epsilon: float | None = None
    weight: float = 1.0
    cf_target: int | list[int] | Tensor | None = None
    margin: float = 1.0
    n_candidates: int | None = None
    n_steps: int | None = None
    lr: float | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.epsilon is not None:
            check_float(self.epsilon, f"{name}.epsilon", 0.0, math.inf, True, True)
        check_float(self.weight, f"{name}.weight", 0.0, math.inf, True, True)
        check_float(self.margin, f"{name}.margin", 0.0, math.inf, high_open=True)
        if self.n_candidates is not None:
            check_int(self.n_candidates, f"{name}.n_candidates", 1)
        if self.n_steps is not None:
            check_int(self.n_steps, f"{name}.n_steps", 1)
        if self.lr is not None:
            check_float(self.lr, f"{name}.lr", 0.0, math.inf, True, True)
        _check_cf_target(self.cf_target, f"{name}.cf_target")

    def resolved(
        self, latent_dim: int, n_keep: int, n_steps: int, lr: float
    ) -> CounterfactualConfig:
        """A copy with every ``None`` replaced by its default for this search."""
        return CounterfactualConfig(
            epsilon=0.25 * math.sqrt(latent_dim) if self.epsilon is None else float(self.epsilon),
            weight=float(self.weight),
            cf_target=self.cf_target,
            margin=float(self.margin),
            n_candidates=n_keep if self.n_candidates is None else int(self.n_candidates),
            n_steps=n_steps if self.n_steps is None else int(self.n_steps),
            lr=lr if self.lr is None else float(self.lr),
        )


def _check_cf_target(value: object, name: str) -> None:
    """Type of ``cf_target``: ``None``, a class int, a list/tuple of ints or an int tensor."""
    if value is None:
        return
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int, a list of ints or a Tensor, got a bool.")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"`{name}` must be a class index >= 0, got {value}.")
        return
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"`{name}` tensor must hold integer classes, got dtype {value.dtype}.")
        if value.dim() > 1 or value.numel() == 0:
            raise ValueError(
                f"`{name}` tensor must have shape () or (N,), got {tuple(value.shape)}."
            )
        if bool((value < 0).any()):
            raise ValueError(f"`{name}` must hold class indices >= 0, got {value.tolist()}.")
        return
    if isinstance(value, list):
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise TypeError(
                f"`{name}` as a list must hold ints (one class per input), got {value!r}."
            )
        if any(v < 0 for v in value):
            raise ValueError(f"`{name}` must hold class indices >= 0, got {list(value)}.")
        return
    raise TypeError(
        f"`{name}` must be None, an int, a list of ints or a Tensor, got {type(value).__name__}."
    )
