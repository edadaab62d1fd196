r"""PerturbMask: Algorithm 1 of Thakur & Fischmeister as a Captum perturbation attribution."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from captum.attr import PerturbationAttribution
from torch import Tensor
from tqdm.auto import tqdm

from captum_perturbmask._core.captum_compat import (
    TargetType,
    TensorOrTupleOfTensorsGeneric,
    _format_output,
    _format_tensor_into_tuples,
    _is_tuple,
)
from captum_perturbmask._core.checks import (
    MAX_BUDGET,
    check_bool,
    check_choice,
    check_float,
    check_fraction,
    check_int,
    check_size,
)
from captum_perturbmask._core.forward import ConfidenceType, TargetForward, check_confidence
from captum_perturbmask._core.random import make_generator, resolve_seed
from captum_perturbmask.attr._inputs import (
    check_inputs,
    compute_dtype,
    format_baselines,
    format_feature_mask,
    legacy_order,
    mix,
    spans,
    warn_if_training,
)
from captum_perturbmask.attr._masks import MaskDesign
from captum_perturbmask.attr.estimators import AverageEstimator, Estimator, RegressionEstimator

VARIANTS = ("adaptive", "literal")
INITIAL_MASKS = ("random", "ones")
#: Mask designs of the adaptive variant (see :meth:`PerturbMask.attribute`).
DESIGNS = ("sequential", "random", "chain")
DEFAULT_BUDGET = 400
#: Chain steps of ``design="chain"`` when ``n_iter`` is not given.
DEFAULT_CHAIN_STEPS = 2
#: Default cells per side of the mask grid on images, and the regression's smoothness weight.
DEFAULT_IMAGE_GRID = 6
DEFAULT_ETA = 10.0
#: Sequential design: the share of the budget drawn before the refit, the top set whose border
#: the second half resolves (a fraction of the features), and the keep-probability range.
SEQ_FIRST = 0.5
SEQ_TOP = 0.1
SEQ_KEEP = (0.5, 0.9)
#: Chains advanced together; fixed, so results never depend on ``perturbations_per_eval``
#: or on the batch, and memory never grows with ``n_chains``.
CHAIN_BLOCK = 256
#: Working memory per example group: features of one chain block, and the estimator.
_FEATURE_BYTES = 64 * 2**20
_ESTIMATOR_BYTES = 256 * 2**20


def chain_step(on: Tensor, p: Tensor, keys: Tensor, n1: float, n2: float) -> Tensor:
    r"""Lines 4-8 of Algorithm 1: resample the preserved set :math:`\Lambda_{on}`.

    :math:`\Lambda_1` = ``round(n1 * p * K)`` random cells of :math:`\Lambda_{on}`,
    :math:`\Lambda_2` = ``round(n2 * (1 - p) * K)`` random cells of :math:`\Lambda_{off}`
    (each capped by the size of its set), :math:`\Lambda_{on} = \Lambda_1 \cup \Lambda_2`.

    Args:
        on: current preserved set, bool :math:`(..., K)`.
        p: confidence of the mask just evaluated, :math:`(...)`.
        keys: uniform random keys broadcastable to ``on``; the smallest keys are selected.
        n1: fraction of the grid drawn from :math:`\Lambda_{on}` at :math:`p = 1`.
        n2: fraction of the grid drawn from :math:`\Lambda_{off}` at :math:`p = 0`.

    Returns:
        The new preserved set, bool :math:`(..., K)`.

    Example:
        >>> on = torch.tensor([True, True, False, False])
        >>> keys = torch.tensor([0.1, 0.9, 0.2, 0.8])
        >>> chain_step(on, torch.tensor(0.5), keys, n1=0.5, n2=0.5)
        tensor([ True, False,  True, False])
    """
    k = on.shape[-1]
    keys = keys.expand_as(on)
    n_on = on.sum(-1)
    k1 = torch.minimum(torch.round(n1 * p * k).long(), n_on)
    k2 = torch.minimum(torch.round(n2 * (1 - p) * k).long(), k - n_on)
    rank_on = torch.where(on, keys, 2.0).argsort(-1).argsort(-1)
    rank_off = torch.where(on, 2.0, keys).argsort(-1).argsort(-1)
    return (on & (rank_on < k1.unsqueeze(-1))) | (~on & (rank_off < k2.unsqueeze(-1)))


def resolve_budget(
    budget: object, n_iter: object, n_chains: object, default_n_iter: int = 1
) -> tuple[int, int]:
    """``(n_iter, n_chains)`` from the ``budget`` knob and/or the expert knobs.

    ``budget`` (forward passes per input, besides the one clean pass) is split into
    ``n_iter = default_n_iter`` steps of ``budget // n_iter`` chains unless ``n_iter`` or
    ``n_chains`` is given; giving all three requires ``budget == n_iter * n_chains``.
    """
    if budget is not None:
        budget = check_int(budget, "budget", 1, MAX_BUDGET)
    if n_iter is not None:
        n_iter = check_int(n_iter, "n_iter")
    if n_chains is not None:
        n_chains = check_int(n_chains, "n_chains")
    if n_iter is not None and n_chains is not None:
        if budget is not None and budget != n_iter * n_chains:
            raise ValueError(
                f"`budget`={budget} disagrees with n_iter * n_chains = {n_iter} * {n_chains}; "
                "give the budget or the two knobs"
            )
    else:
        budget = DEFAULT_BUDGET if budget is None else budget
        if n_iter is None and n_chains is None:
            n_iter = min(default_n_iter, budget)
        if n_chains is None:
            n_chains = max(1, budget // n_iter)  # type: ignore[operator]
        else:
            n_iter = max(1, budget // n_chains)
    total = n_iter * n_chains  # type: ignore[operator]
    if total > MAX_BUDGET:
        raise ValueError(
            f"n_iter * n_chains = {total:,} forward passes per input is more than the "
            f"{MAX_BUDGET:,} this method accepts"
        )
    return int(n_iter), int(n_chains)  # type: ignore[arg-type]


class PerturbMask(PerturbationAttribution):
    r"""Perturbation-mask saliency (Thakur & Fischmeister, Algorithm 1) for any classifier.

    ``PerturbMask(model).attribute(x, target=y)`` returns a map of ``x``'s shape saying how much
    keeping each region keeps the model's confidence in ``y``. The model is only queried (a
    black box), with about ``budget`` = 400 masked copies of each input by default. Works for
    images :math:`(B, C, H, W)` (a 2-D grid of cells), time series :math:`(B, C, T)` (a 1-D grid
    along time, shared by the channels), any other tensor :math:`(B, *)` (each element a cell)
    and user groupings (``feature_mask``, e.g. superpixels or one segment per channel).

    Example:
        >>> import torch
        >>> from captum_perturbmask import PerturbMask
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> attr = PerturbMask(model).attribute(x, target=1, budget=64, seed=0)
        >>> attr.shape
        torch.Size([2, 3, 16, 16])

    How it works. Masks are binary grids of cells, upsampled smoothly with a random sub-cell
    shift; each masked input :math:`I \odot M + b \odot (1 - M)` is scored by the model, and an
    estimator turns the confidences of all evaluated masks into one score per region. The
    default estimator is a regression of the target's log-odds on how much of each region a mask
    keeps, with the poster's total-variation term :math:`V` as a smoothness prior.

    Which masks (``design=``). By default every mask is random (``design="random"``). The
    poster's adaptive idea is available in two forms: ``design="sequential"`` spends half the
    budget on random masks, fits, and draws the other half where that fit's top set is unsure,
    then refits on all masks (a regression stays valid under any design); ``design="chain"``
    runs the poster's on/off chains. Neither beat random masks on the held-out benchmark bed, so
    neither is the default (``docs/algorithm.rst``, "Which design, and why"): the sequential
    design raised run-to-run consistency on some beds and tied elsewhere; the chain tied or
    lost.

    Algorithm 1, line by line (default ``variant="adaptive"``):

    * Init M_0: each of ``n_chains`` chains starts from a random on-set (each cell on with
      probability ``keep_prob``; ``initial_mask="ones"`` keeps all). With the default random
      design every chain is one mask (``n_iter = 1``); with ``design="sequential"`` the second
      half's cells are on with the probabilities of
      :func:`~captum_perturbmask.attr.perturb_mask.sequential_keep`.
    * ``for i = 1 to N``: ``n_iter`` iterations; the chains of all inputs advance together.
    * M <- upsample(M_{i-1}): the binary on-set of a ``grid_size`` grid upsampled bilinearly
      (linearly for series) with a random sub-cell shift, as in RISE.
    * p_i = f(I * M): one batched forward of the masked inputs; ``confidence`` maps the output
      to [0, 1] (softmax over classes by default) and the log-odds come from the raw logits,
      so they never saturate.
    * dp = abs(p_i - p_{i-1}): used by ``variant="literal"`` only; crediting it rewards cells
      present when the confidence *changes* and is no better than a random map.
    * Lambda_1, Lambda_2, Lambda_on, Lambda_off: ``chain_step`` draws ``n1 * p_i`` (a fraction
      of the grid) cells of Lambda_on and ``n2 * (1 - p_i)`` cells of Lambda_off as the next
      on-set.
    * M_i(l) <- M_{i-1}(l) dp on Lambda_on, 0 on Lambda_off: the confidence p_i is credited to
      the mask that was evaluated: the ``estimator`` receives the features of every evaluated
      mask with its p_i.
    * V and M_i <- M_i + eta V M_{i-1}: the total variation is the smoothness prior
      ``eta * s^T L s`` of the default ``RegressionEstimator`` (``s^T L s`` = V(s) on the
      feature grid).
    * return M: the estimator's map, upsampled to the input shape, repeated over channels.

    ``variant="literal"`` runs the text as written (M_i = M_{i-1} dp on Lambda_on, 0 on
    Lambda_off, M_i += eta V M_{i-1} with V the scalar total variation of M_{i-1}, masks
    upsampled without shift, the map is the mean of the chains' M_N; each M_i is divided by its
    maximum to stay finite). It degenerates (zeroed cells stay zero; V only rescales the map)
    and is kept so that users can measure why it is not the default.

    Forward passes per input: ``n_iter * n_chains + 1`` (one clean pass validates the target,
    resolves ``target=None`` and gives p_0).

    Args:
        forward_func: the model or any callable; its output may be ``(B, K)`` logits, one
            logit per example ``(B,)``/``(B, 1)``, or any N-d tensor with a target that selects
            one value per example.
        estimator: ``"regression"`` (default,
            :class:`~captum_perturbmask.attr.estimators.RegressionEstimator`), ``"average"``
            (:class:`~captum_perturbmask.attr.estimators.AverageEstimator`) or an estimator
            object (a template: it is copied for every call, so one object can serve
            concurrent calls).
        variant: ``"adaptive"`` (default, the reading that works) or ``"literal"``.
        confidence: how outputs become confidences: ``"auto"`` (softmax over dim 1 for
            several classes, sigmoid for one logit), ``"softmax"``, ``"sigmoid"``,
            ``"identity"`` or a callable ``fn(output) -> Tensor``.

    Raises:
        TypeError, ValueError: for an unknown ``estimator``, ``variant`` or ``confidence``.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        estimator: str | Estimator = "regression",
        variant: str = "adaptive",
        confidence: ConfidenceType = "auto",
    ) -> None:
        super().__init__(forward_func)
        self.estimator = _check_estimator(estimator)
        self.variant = check_choice(variant, "variant", VARIANTS)
        self.confidence = check_confidence(confidence)

    @property
    def multiplies_by_inputs(self) -> bool:
        """The map is not multiplied by the inputs (a mask importance, not a contribution)."""
        return False

    @torch.no_grad()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        *,
        budget: int | None = None,
        design: str | None = None,
        n_iter: int | None = None,
        n_chains: int | None = None,
        grid_size: int | Sequence[int] | None = None,
        fine_grid_size: int | Sequence[int] | None = None,
        n1: float = 0.5,
        n2: float = 0.5,
        eta: float | None = None,
        keep_prob: float = 0.7,
        initial_mask: str = "random",
        random_shift: bool = True,
        perturbations_per_eval: int = 16,
        show_progress: bool = False,
        seed: int | None = None,
        estimator: str | Estimator | None = None,
        variant: str | None = None,
        confidence: ConfidenceType | None = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""Estimate the saliency map of ``inputs`` for ``target``.

        The first five arguments are Captum's, in Captum's order (as ``FeatureAblation``);
        everything after them is keyword-only.

        Args:
            inputs: tensor or tuple of tensors: :math:`(B, C, H, W)` images,
                :math:`(B, C, T)` series, or any :math:`(B, *)` tensor (one cell per element).
            baselines: what masked-off positions become: ``None`` (zeros), a number, a tensor
                broadcastable to the input (its shape, batch size 1, or no batch dim),
                ``"blur"`` (Gaussian blur, kernel 11, sigma 5), or a tuple of those.
            target: Captum target: int, tuple (N-d outputs), tensor, list of ints or tuples.
                ``None`` explains the predicted class of ``(B, K)`` outputs and the output
                itself for one value per example.
            additional_forward_args: extra arguments of ``forward_func`` (tensors whose dim 0
                is the batch are gathered per perturbed row).
            feature_mask: integer groups (superpixels, channel segments) broadcastable to the
                inputs, ids shared across a tuple (Captum convention); replaces the grid.
            budget: forward passes per input (default 400).
            design: which masks are evaluated (``variant="adaptive"``):

                * ``"random"`` (default): every mask random (each cell kept with
                  ``keep_prob``), upsampled with a random shift, RISE-style;
                * ``"sequential"``: half the budget random masks; the regression is fitted;
                  the other half is drawn with a keep-probability per cell that follows that
                  fit — cells whose membership of the top 10% of the map is uncertain (score
                  within a few standard errors of the top-10% threshold) are kept with
                  probability 0.5, settled cells with 0.9 — and the regression is refitted on
                  all masks (regression estimator only);
                * ``"chain"``: the poster's on/off chains, ``n_iter`` steps (default 2) of
                  ``budget // n_iter`` chains (chosen automatically when ``n_iter`` is given;
                  ``n_iter=1`` is the random design).
            n_iter: N, iterations (forward passes) per chain (``design="chain"``).
            n_chains: independent chains per input (masks per input for the other designs).
            grid_size: cells of the low-resolution mask M_0 (an int or a pair; one int for
                series). Default: 6 x 6 on images; ``ceil(T / 8)`` clamped to 8..32 on series.
            fine_grid_size: cells of the regression features (default ``2 * grid_size``).
            n1: fraction of the grid kept from Lambda_on (scaled by p_i; ``design="chain"``).
            n2: fraction of the grid drawn from Lambda_off (scaled by 1 - p_i; chain).
            eta: weight of the total-variation term V (default 10.0, the regression's
                smoothness prior; 0.05 for ``variant="literal"``).
            keep_prob: probability that a cell of M_0 is on.
            initial_mask: M_0: ``"random"`` (each cell on with ``keep_prob``) or ``"ones"``.
            random_shift: crop the upsampled mask at a random sub-cell offset (RISE); ``False``
                upsamples without shift (cells then have fixed borders).
            perturbations_per_eval: perturbed copies of each example per forward call, as in
                Captum: a call holds at most ``perturbations_per_eval * B`` rows.
            show_progress: show a progress bar over forward calls.
            seed: seed of the private random generator (bit-reproducible on CPU); ``None``
                draws a fresh one. The global RNG is never touched.
            estimator: deprecated here, pass it to ``PerturbMask(...)``.
            variant: deprecated here, pass it to ``PerturbMask(...)``.
            confidence: deprecated here, pass it to ``PerturbMask(...)``.

        Returns:
            Attributions with exactly the structure, shape, device and dtype of ``inputs``
            (values repeated over channels for grid inputs). Higher means more important.

        Raises:
            TypeError: inputs, knobs or model outputs of the wrong type.
            ValueError: wrong shapes, an empty batch, non-finite inputs or baselines, bad knob
                values, outputs that do not give one value per example, or NaN/inf outputs.
            AssertionError, IndexError: an invalid ``target``, as Captum raises it.
        """
        is_tuple = _is_tuple(inputs)
        inputs_t = _format_tensor_into_tuples(inputs)
        check_inputs(inputs_t)
        baselines, target = legacy_order(type(self).__name__, baselines, target, inputs_t)
        est_spec, variant, confidence = self._call_config(estimator, variant, confidence)
        if n_iter is not None:
            n_iter = check_int(n_iter, "n_iter")
        design = _resolve_design(design, n_iter, est_spec, variant)
        n_iter, n_chains = resolve_budget(
            budget, n_iter, n_chains, DEFAULT_CHAIN_STEPS if design == "chain" else 1
        )
        check_int(perturbations_per_eval, "perturbations_per_eval")
        grid = None if grid_size is None else check_size(grid_size, "grid_size")
        fine = None if fine_grid_size is None else check_size(fine_grid_size, "fine_grid_size")
        n1 = check_fraction(n1, "n1")
        n2 = check_fraction(n2, "n2")
        keep_prob = check_fraction(keep_prob, "keep_prob")
        check_choice(initial_mask, "initial_mask", INITIAL_MASKS)
        check_bool(random_shift, "random_shift")
        check_bool(show_progress, "show_progress")
        if eta is not None:
            eta = check_float(eta, "eta", 0.0, high_open=True)
            if not isinstance(est_spec, str) and variant == "adaptive":
                warnings.warn(
                    "`eta` is ignored when `estimator` is an object: set it on the estimator",
                    UserWarning,
                    stacklevel=3,
                )
        seed = resolve_seed(seed)
        warn_if_training(self.forward_func)

        dtype = compute_dtype(inputs_t[0])
        fmask = format_feature_mask(feature_mask, inputs_t)
        bases = format_baselines(baselines, inputs_t)
        runner = TargetForward(
            self.forward_func, inputs_t[0].shape[0], target, additional_forward_args, confidence
        )
        p0 = runner.resolve(inputs_t)
        masks = MaskDesign(
            inputs_t, fmask, grid, fine, dtype,
            image_grid=8 if variant == "literal" else DEFAULT_IMAGE_GRID,
        )  # fmt: skip
        knobs = _Knobs(
            n_iter, n_chains, n1, n2, keep_prob, initial_mask, random_shift,
            perturbations_per_eval, show_progress, seed, design,
        )  # fmt: skip

        # masks and estimators in full precision; the model keeps the caller's autocast
        with torch.autocast(runner.autocast[0], enabled=False):
            if variant == "literal":
                from captum_perturbmask.attr._literal import literal_attribution

                attrs = literal_attribution(
                    runner, inputs_t, bases, masks, p0, knobs, 0.05 if eta is None else eta
                )
            else:
                template = _make_estimator(est_spec, DEFAULT_ETA if eta is None else eta)
                scores = _run_chains(runner, inputs_t, bases, masks, template, knobs)
                attrs = masks.to_attr(scores)
        out = tuple(
            a.to(x.dtype).expand_as(x).contiguous() for a, x in zip(attrs, inputs_t, strict=True)
        )
        if not all(bool(torch.isfinite(a).all()) for a in out):
            raise ValueError(
                "the attribution is not finite: `forward_func` returned NaN/inf outputs for "
                "some perturbed inputs"
            )
        return _format_output(is_tuple, out)

    def _call_config(
        self, estimator: Any, variant: Any, confidence: Any
    ) -> tuple[str | Estimator, str, ConfidenceType]:
        """The instance's configuration, overridden by the deprecated per-call keywords."""
        given = [n for n, v in (("estimator", estimator), ("variant", variant),
                                ("confidence", confidence)) if v is not None]  # fmt: skip
        if given:
            warnings.warn(
                f"passing {', '.join(given)} to attribute() is deprecated: pass "
                f"{'it' if len(given) == 1 else 'them'} to PerturbMask(...) instead",
                FutureWarning,
                stacklevel=3,
            )
        return (
            self.estimator if estimator is None else _check_estimator(estimator),
            self.variant if variant is None else check_choice(variant, "variant", VARIANTS),
            self.confidence if confidence is None else check_confidence(confidence),
        )


class _Knobs:
    """The per-call knobs of the mask loop, checked."""

    __slots__ = (
        "n_iter", "n_chains", "n1", "n2", "keep_prob", "initial_mask", "random_shift",
        "perturbations_per_eval", "show_progress", "seed", "design",
    )  # fmt: skip

    def __init__(self, *values: Any) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            setattr(self, name, value)


def _check_estimator(estimator: object) -> str | Estimator:
    if isinstance(estimator, str):
        return check_choice(estimator, "estimator", ("regression", "average"))
    for name in ("reset", "update", "solve"):
        if not callable(getattr(estimator, name, None)):
            raise TypeError(
                "`estimator` must be 'regression', 'average' or an object with reset/update/"
                f"solve methods; {type(estimator).__name__} has no `{name}` method"
            )
    return estimator  # type: ignore[return-value]


def _resolve_design(
    design: object, n_iter: int | None, estimator: str | Estimator, variant: str
) -> str:
    """The mask design: ``design`` if given (checked against ``n_iter`` and the estimator),
    else ``"chain"`` when ``n_iter`` is given (a 1-step chain is the random design) or for the
    literal variant, ``"random"`` otherwise."""
    if design is None:
        return "chain" if variant == "literal" or n_iter is not None else "random"
    design = check_choice(design, "design", DESIGNS)
    if variant == "literal" and design != "chain":
        raise ValueError(f"variant='literal' runs chains; got design={design!r}")
    if design != "chain" and n_iter is not None and n_iter > 1:
        raise ValueError(
            f"`n_iter`={n_iter} steps only apply to design='chain'; got design={design!r} "
            "(give `budget` or `n_chains` for the number of masks)"
        )
    if design == "sequential" and not (
        estimator == "regression" or callable(getattr(estimator, "posterior", None))
    ):
        raise ValueError(
            "design='sequential' needs the regression estimator (an estimator with a "
            f"`posterior` method); got {type(estimator).__name__}: use design='random'"
        )
    return design


def sequential_keep(scores: Tensor, sd: Tensor, top: float = SEQ_TOP) -> Tensor:
    r"""Keep-probability of every feature in the second half of the sequential design.

    Cells whose score is near the threshold :math:`\tau` of the top ``top`` fraction, in units
    of their standard error, are perturbed most: :math:`q = q_{hi} - (q_{hi} - q_{lo})
    \exp(-z^2 / 2)`, :math:`z = (\hat s - \tau) / \mathrm{se}`, with
    :math:`(q_{lo}, q_{hi})` = ``SEQ_KEEP`` = (0.5, 0.9): a cell surely in or surely out of the
    top set is kept 90% of the time, an undecided one half of the time (the most informative
    Bernoulli draw).

    Args:
        scores: current scores :math:`(B, F)`.
        sd: their standard errors :math:`(B, F)`.
        top: size of the top set, a fraction of the features.

    Returns:
        Keep-probabilities :math:`(B, F)` in ``SEQ_KEEP``.

    Example:
        >>> s = torch.tensor([[0.0, 1.0, 2.0, 3.0, 10.0]])
        >>> sequential_keep(s, torch.full_like(s, 0.5), top=0.4).round(decimals=2)
        tensor([[0.9000, 0.9000, 0.8500, 0.5000, 0.9000]])
    """
    lo, hi = SEQ_KEEP
    k = max(1, math.ceil(top * scores.shape[1]))
    tau = scores.topk(k, dim=1).values[:, -1:]
    z = (scores - tau) / sd.clamp_min(torch.finfo(sd.dtype).tiny)
    return hi - (hi - lo) * torch.exp(-0.5 * z * z)


def _make_estimator(spec: str | Estimator, eta: float) -> Estimator:
    """A fresh estimator for one call (objects are templates, copied: state never shared)."""
    if spec == "regression":
        return RegressionEstimator(eta=eta)
    if spec == "average":
        return AverageEstimator()
    return copy.deepcopy(spec)  # type: ignore[arg-type]


def example_groups(batch: int, n_features: int, itemsize: int) -> list[tuple[int, int]]:
    """Split the batch so that features and estimator statistics fit the working memory."""
    per_example = max(
        CHAIN_BLOCK * n_features * itemsize / _FEATURE_BYTES,
        n_features * n_features * itemsize / _ESTIMATOR_BYTES,
    )
    size = max(1, min(batch, math.floor(1 / per_example) if per_example > 0 else batch))
    return list(spans(batch, size))


def _run_chains(
    runner: TargetForward,
    inputs: tuple[Tensor, ...],
    bases: tuple[Tensor, ...],
    design: MaskDesign,
    template: Estimator,
    k: _Knobs,
) -> Tensor:
    """The adaptive loop: masks are proposed (random, sequential or chains), the estimator
    credits their confidences.

    Examples are processed in groups and chains (masks) in blocks of :data:`CHAIN_BLOCK`; every
    group replays the same random draws (the generator is re-seeded), so each example's map
    does not depend on the batch, the grouping or ``perturbations_per_eval``. Memory is bounded
    by the group size, the block size and ``perturbations_per_eval`` — never by the budget.
    The sequential design refits once, between its two halves, on the device (no host sync).
    """
    x0 = inputs[0]
    device, batch, dtype = x0.device, x0.shape[0], design.dtype
    n_cells, n_feat = design.n_cells, design.n_feat
    groups = example_groups(batch, n_feat, torch.empty((), dtype=dtype).element_size())
    first = k.n_chains
    if k.design == "sequential" and k.n_chains > 1:
        first = max(1, min(k.n_chains - 1, round(SEQ_FIRST * k.n_chains)))
    blocks = [(s, e, False) for s, e in spans(first, CHAIN_BLOCK)]
    blocks += [(first + s, first + e, True) for s, e in spans(k.n_chains - first, CHAIN_BLOCK)]
    calls = sum(math.ceil((e - s) / k.perturbations_per_eval) for s, e, _ in blocks)
    bar = tqdm(
        desc="PerturbMask attribution",
        total=len(groups) * k.n_iter * calls,
        disable=not k.show_progress,
    )
    scores = []
    for g0, g1 in groups:
        nb = g1 - g0
        lap = design.laplacian(examples=slice(g0, g1))
        est = copy.deepcopy(template)
        est.reset(nb, n_feat, device, dtype)
        gen = make_generator(k.seed, device)
        keep = None  # (nb, n_feat) keep-probabilities of the sequential second half
        for c0, c1, second in blocks:
            if second and keep is None:
                keep = sequential_keep(*est.posterior(lap))  # type: ignore[attr-defined]
            nc = c1 - c0
            rows = nb * nc
            example = g0 + torch.arange(rows, device=device) // nc
            shifts = design.sample_shifts(nc, gen) if k.random_shift else None
            if k.initial_mask == "ones":
                on = torch.ones(nb, nc, n_cells, device=device, dtype=torch.bool)
            else:
                draw = torch.rand(nc, n_cells, generator=gen, device=device)
                if second:
                    on = draw < design.keep_probability(keep, shifts, nc).to(draw.dtype)
                else:
                    on = (draw < k.keep_prob).expand(nb, nc, n_cells)
            for step in range(k.n_iter):
                if step > 0:
                    shifts = design.sample_shifts(nc, gen) if k.random_shift else None
                rep = None if shifts is None else shifts.repeat(nb, 1)
                keys = torch.rand(nc, n_cells, generator=gen, device=device, dtype=dtype)
                cells = on.to(dtype).reshape(rows, n_cells)
                conf = torch.empty(rows, device=device, dtype=dtype)
                lodds = torch.empty(rows, device=device, dtype=dtype)
                feats = torch.empty(rows, n_feat, device=device, dtype=dtype)
                for s, e in spans(rows, k.perturbations_per_eval * nb):
                    idx = example[s:e]
                    masks, feats[s:e] = design.render(
                        cells[s:e], None if rep is None else rep[s:e], idx
                    )
                    perturbed = tuple(
                        mix(x, b, m, idx) for x, b, m in zip(inputs, bases, masks, strict=True)
                    )
                    c, lo = runner.confidence_and_log_odds(perturbed, idx)
                    conf[s:e] = c
                    lodds[s:e] = c if lo is None else lo
                    bar.update()
                p = conf.reshape(nb, nc)
                est.update(feats.reshape(nb, nc, n_feat), p, lodds.reshape(nb, nc))
                if step + 1 < k.n_iter:
                    on = chain_step(on, p, keys, k.n1, k.n2)
        scores.append(est.solve(lap))
    bar.close()
    return torch.cat(scores)
