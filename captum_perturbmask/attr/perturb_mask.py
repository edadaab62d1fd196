r"""PerturbMask: Algorithm 1 of Thakur & Fischmeister as a Captum perturbation attribution."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_perturbmask._core.checks import (
    MAX_BUDGET,
    check_bool,
    check_choice,
    check_float,
    check_fraction,
    check_int,
    check_size,
)
from captum_perturbmask._core.forward import ConfidenceType, check_confidence
from captum_perturbmask.attr._base import MaskAttribution, MaskCall
from captum_perturbmask.attr._designs import (
    DEFAULT_CHAIN_STEPS,
    DESIGNS,
    INITIAL_MASKS,
    SAMPLERS,
    DesignRun,
    DesignSettings,
    design_calls,
    split_budget,
)
from captum_perturbmask.attr._loop import DRAW_BLOCK
from captum_perturbmask.attr._masks import GridPart, MaskDesign
from captum_perturbmask.attr.estimators import AverageEstimator, Estimator, RegressionEstimator

VARIANTS = ("adaptive", "literal")
#: Default cells per side of the mask grid on images, and the regression's smoothness weight.
DEFAULT_IMAGE_GRID = 6
DEFAULT_ETA = 10.0
#: Default keep-probability range (each mask draws its own) and the regression's response, as
#: chosen by the leave-one-bed-out study (``benchmarks/default_study.py``).
DEFAULT_KEEP_PROB = 0.5
DEFAULT_LINK = "logit"
#: ``budget="auto"``: most masks, the top share of the map compared, and the overlap at which
#: the two halves' maps count as stable.
AUTO_MAX_BUDGET = 4000
AUTO_TOP = 0.05
AUTO_TOLERANCE = 0.9
#: The literal reading's grid and total-variation weight.
LITERAL_IMAGE_GRID = 8
LITERAL_ETA = 0.05


class PerturbMask(MaskAttribution):
    r"""Perturbation-mask saliency (Thakur & Fischmeister, Algorithm 1) for any classifier.

    ``PerturbMask(model).attribute(x, target=y)`` returns a map of ``x``'s shape saying how much
    keeping each region keeps the model's confidence in ``y``. The model is only queried (a
    black box), with ``budget`` = 400 masked copies of each input by default. Works for images
    :math:`(B, C, H, W)` (a 2-D grid of cells), time series :math:`(B, C, T)` (a 1-D grid along
    time, shared by the channels), any other tensor :math:`(B, *)` (each element a cell) and
    user groupings (``feature_mask``, e.g. superpixels or one segment per channel). As in
    Captum, the method is configured here and ``attribute`` takes Captum's arguments.

    Example:
        >>> import torch
        >>> from captum_perturbmask import PerturbMask
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> attr = PerturbMask(model, grid_size=4).attribute(x, target=1, budget=64, seed=0)
        >>> attr.shape
        torch.Size([2, 3, 16, 16])

    How it works. Masks are binary grids of cells, upsampled smoothly with a random sub-cell
    shift; each masked input :math:`I \odot M + b \odot (1 - M)` is scored by the model, and an
    estimator turns the confidences of all evaluated masks into one score per region. The
    default estimator is a regression of the target's log-odds on how much of each region a mask
    keeps, with the poster's total-variation term :math:`V` as a smoothness prior. Each cell is
    kept with probability 0.5, so it is seen as often in mostly-off contexts (what suffices) as
    in mostly-on ones (what is necessary). The random
    masks are shared by every example of a call: they are rendered once and the regression is
    one factorisation for the whole batch.

    Which masks (``design=``). By default every mask is random. The poster's adaptive idea is
    available in two forms: ``"sequential"`` spends half the budget on random masks, fits, and
    draws the other half where that fit's top set is unsure, then refits on all masks (a
    regression stays valid under any design); ``"chain"`` runs the poster's on/off chains.
    ``docs/algorithm.rst`` ("Which design, and why") says what each was measured to do.

    Algorithm 1, line by line (default ``variant="adaptive"``):

    * Init M_0: every mask (chain) starts from a random on-set, each cell on with probability
      ``keep_prob`` (``initial_mask="ones"`` keeps all).
    * ``for i = 1 to N``: ``n_iter`` steps (``design="chain"``; one step otherwise).
    * M <- upsample(M_{i-1}): the on-set of a ``grid_size`` grid upsampled bilinearly
      (linearly for series) with a random sub-cell shift, as in RISE.
    * p_i = f(I * M): one batched forward of the masked inputs; ``confidence`` maps the output
      to [0, 1] (softmax over classes by default) and the log-odds come from the raw logits,
      so they never saturate.
    * dp = abs(p_i - p_{i-1}): used by ``variant="literal"`` only; crediting it rewards cells
      present when the confidence *changes* and is no better than a random map.
    * Lambda_1, Lambda_2, Lambda_on, Lambda_off: the chain draws ``n1 * p_i`` (a fraction of
      the grid) cells of Lambda_on and ``n2 * (1 - p_i)`` cells of Lambda_off as the next
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

    Forward passes per input: ``budget + 1`` (one clean pass validates the target, resolves
    ``target=None`` and gives p_0).

    Args:
        forward_func: the model or any callable; its output may be ``(B, K)`` logits, one
            logit per example ``(B,)``/``(B, 1)``, or any N-d tensor with a target that selects
            one value per example.
        grid_size: cells of the low-resolution mask (an int or a pair; one int for series).
            Default: 6 x 6 on images (8 x 8 for the literal reading); ``ceil(T / 8)`` clamped
            to 8..32 on series.
        fine_grid_size: cells of the regression features (default ``2 * grid_size``).
        design: ``"random"`` (default), ``"sequential"`` (regression estimator only) or
            ``"chain"`` (the only design of ``variant="literal"``).
        keep_prob: probability that a cell of a random mask (or of M_0) is on, or a range
            ``(lo, hi)``: every mask draws its own keep-probability uniformly in it (a
            mixture of mostly-off and mostly-on contexts). Default 0.5.
        sampler: ``"uniform"`` (independent cells) or ``"lhs"`` (every cell's column of a
            block of masks is a stratified Latin-hypercube sample, as in the HSIC method's
            design: each cell is kept as often as its probabilities say, with less noise).
        scales: multipliers of ``grid_size`` (random and sequential designs on one image or
            series tensor): the masks are split evenly between grids of these sizes, all
            fitted on the same features, e.g. ``(0.5, 1, 2)``.
        eta: weight of the total-variation term V (default 10.0, the regression's smoothness
            prior; 0.05 for ``variant="literal"``). Set it on the estimator when passing one.
        estimator: ``"regression"`` (default,
            :class:`~captum_perturbmask.attr.estimators.RegressionEstimator` of the log-odds),
            ``"average"``
            (:class:`~captum_perturbmask.attr.estimators.AverageEstimator`) or an estimator
            object (a template: it is copied for every call, so one object can serve
            concurrent calls).
        variant: ``"adaptive"`` (default, the reading that works) or ``"literal"``.
        confidence: how outputs become confidences: ``"auto"`` (softmax over dim 1 for
            several classes, sigmoid for one logit), ``"softmax"``, ``"sigmoid"``,
            ``"identity"`` or a callable ``fn(output) -> Tensor``.
        n_iter: N, steps per chain (``design="chain"``, default 2); the budget is split into
            ``budget // n_iter`` chains.
        n1: fraction of the grid kept from Lambda_on (scaled by p_i; chain designs).
        n2: fraction of the grid drawn from Lambda_off (scaled by 1 - p_i; chain designs).
        initial_mask: M_0: ``"random"`` (each cell on with ``keep_prob``) or ``"ones"``.
        random_shift: crop the upsampled mask at a random sub-cell offset (RISE); ``False``
            upsamples without shift (cells then have fixed borders).

    Raises:
        TypeError, ValueError: a knob of the wrong type or value, named in the message.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        *,
        grid_size: int | Sequence[int] | None = None,
        fine_grid_size: int | Sequence[int] | None = None,
        design: str = "random",
        keep_prob: float | tuple[float, float] = DEFAULT_KEEP_PROB,
        sampler: str = "uniform",
        scales: Sequence[float] = (1.0,),
        eta: float | None = None,
        estimator: str | Estimator = "regression",
        variant: str = "adaptive",
        confidence: ConfidenceType = "auto",
        n_iter: int | None = None,
        n1: float = 0.5,
        n2: float = 0.5,
        initial_mask: str = "random",
        random_shift: bool = True,
    ) -> None:
        super().__init__(forward_func)
        self.variant = check_choice(variant, "variant", VARIANTS)
        self.image_grid = LITERAL_IMAGE_GRID if self.variant == "literal" else DEFAULT_IMAGE_GRID
        self.estimator = _check_estimator(estimator)
        self.confidence = check_confidence(confidence)
        self.grid_size = None if grid_size is None else check_size(grid_size, "grid_size")
        self.fine_grid_size = (
            None if fine_grid_size is None else check_size(fine_grid_size, "fine_grid_size")
        )
        design = check_choice(design, "design", DESIGNS)
        if self.variant == "literal" and design not in ("chain", "random"):
            raise ValueError(f"variant='literal' runs chains; got design={design!r}")
        if self.variant == "literal":
            design = "chain"
        if n_iter is not None:
            n_iter = check_int(n_iter, "n_iter", 1, MAX_BUDGET)
            if design != "chain" and n_iter > 1:
                raise ValueError(
                    f"`n_iter`={n_iter} steps only apply to design='chain'; got design={design!r}"
                )
        if design == "sequential" and not (
            self.estimator == "regression" or callable(getattr(self.estimator, "posterior", None))
        ):
            raise ValueError(
                "design='sequential' needs the regression estimator (an estimator with a "
                f"`posterior` method); got {type(self.estimator).__name__}: use design='random'"
            )
        if eta is not None:
            eta = check_float(eta, "eta", 0.0, high_open=True)
            if not isinstance(self.estimator, str) and self.variant == "adaptive":
                warnings.warn(
                    "`eta` is ignored when `estimator` is an object: set it on the estimator",
                    UserWarning,
                    stacklevel=2,
                )
        self.eta = eta
        self.settings = DesignSettings(
            design=design,
            keep_prob=_check_keep(keep_prob),
            sampler=check_choice(sampler, "sampler", SAMPLERS),
            scales=_check_scales(scales),
            n_iter=(n_iter or DEFAULT_CHAIN_STEPS) if design == "chain" else 1,
            n1=check_fraction(n1, "n1"),
            n2=check_fraction(n2, "n2"),
            initial_mask=check_choice(initial_mask, "initial_mask", INITIAL_MASKS),
            random_shift=check_bool(random_shift, "random_shift"),
        )

    def _plan(self, budget: object) -> tuple[Any, Any, Any]:
        auto = isinstance(budget, str)
        if auto and (budget != "auto" or self.settings.design != "random"
                     or self.variant != "adaptive"):  # fmt: skip
            raise ValueError(
                "`budget` must be a positive int, or 'auto' with design='random' (the adaptive "
                f"variant); got budget={budget!r} with design={self.settings.design!r}"
            )
        if auto:
            return AUTO_MAX_BUDGET, lambda b: DRAW_BLOCK, True
        per_block = None if self.settings.design == "random" else (lambda b: min(b, DRAW_BLOCK))
        return budget, per_block, False

    def _explain(self, call: MaskCall) -> tuple[list[Tensor], Any]:
        masks, evaluate = call.design, call.evaluate
        n_iter, n_masks = split_budget(call.budget, self.settings)
        call.bar.total = design_calls(call.budget, self.settings, evaluate.masks_per_call)
        self.last_budget = n_iter * n_masks
        if self.variant == "literal":
            from captum_perturbmask.attr._literal import literal_attribution

            eta = LITERAL_ETA if self.eta is None else self.eta
            maps = literal_attribution(
                evaluate, masks, call.p0, self.settings, n_iter, n_masks, eta, call.seed
            )
            return maps, None
        est = _make_estimator(self.estimator, DEFAULT_ETA if self.eta is None else self.eta)
        est.reset(call.batch, masks.n_feat, masks.device, masks.dtype)
        scaled = _scaled_designs(masks, call.inputs, self.settings.scales)
        run = DesignRun(evaluate, masks, est, self.settings, call.seed, scaled)
        lap = masks.laplacian()
        if call.plan:  # budget="auto"
            self.last_budget = run.random_until_stable(
                AUTO_MAX_BUDGET, lap, est, AUTO_TOLERANCE, AUTO_TOP
            )
        elif self.settings.design == "chain":
            run.chain(n_iter, n_masks)
        elif self.settings.design == "sequential":
            run.sequential(n_masks, lap)
        else:
            run.random(n_masks)

        def exact() -> list[Tensor]:  # a failed float32 factorisation: solve in float64
            est.solve_dtype = torch.float64  # type: ignore[attr-defined]
            return masks.to_attr(est.solve(lap, exact=True))  # type: ignore[call-arg]

        retry = exact if isinstance(est, RegressionEstimator) else None
        return masks.to_attr(est.solve(lap)), retry


def _check_keep(keep: object) -> float | tuple[float, float]:
    if isinstance(keep, (tuple, list)):
        if len(keep) != 2:
            raise ValueError(f"`keep_prob` as a range must be (lo, hi), got {keep!r}")
        lo = check_fraction(keep[0], "keep_prob")
        hi = check_fraction(keep[1], "keep_prob")
        if lo > hi:
            raise ValueError(f"`keep_prob` range must have lo <= hi, got {keep!r}")
        return (lo, hi)
    return check_fraction(keep, "keep_prob")


def _check_scales(scales: object) -> tuple[float, ...]:
    if not isinstance(scales, (tuple, list)) or not scales:
        raise TypeError(f"`scales` must be a non-empty tuple of numbers, got {scales!r}")
    return tuple(check_float(v, "scales", 0.0, low_open=True) for v in scales)


def _scaled_designs(
    base: MaskDesign, inputs: tuple[Tensor, ...], scales: tuple[float, ...]
) -> list[MaskDesign] | None:
    """One design per scale with the base design's features, for one grid tensor."""
    if scales == (1.0,) or len(base.parts) != 1 or not isinstance(base.parts[0], GridPart):
        return None
    part = base.parts[0]
    designs = []
    for scale in scales:
        grid = tuple(max(1, round(g * scale)) for g in part.grid)
        same = grid == part.grid
        designs.append(base if same else MaskDesign(inputs, None, grid, part.fine, base.dtype))
    return designs


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


def _make_estimator(spec: str | Estimator, eta: float) -> Estimator:
    """A fresh estimator for one call (objects are templates, copied: state never shared)."""
    if spec == "regression":
        return RegressionEstimator(eta=eta, link=DEFAULT_LINK)
    if spec == "average":
        return AverageEstimator()
    return copy.deepcopy(spec)  # type: ignore[arg-type]
