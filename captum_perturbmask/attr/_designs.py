r"""Mask designs of PerturbMask: which masks are evaluated.

Each design proposes cells block by block, has them scored by the one chunk loop
(:class:`~captum_perturbmask.attr._loop.MaskEvaluator`) and hands every evaluated mask with its
score to the estimator:

* ``"random"`` (default): every mask random, each cell kept with ``keep_prob``, shared by the
  whole batch (one render and one set of regression statistics for all examples);
* ``"sequential"``: half the budget random, a fit, then masks drawn where that fit's top set
  is unsure (per example), and a refit on all masks;
* ``"chain"``: the poster's on/off chains (Algorithm 1, lines 4-8): ``n_iter`` steps, the next
  on-set drawn from the confidence of the mask just evaluated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from captum_perturbmask._core.checks import MAX_BUDGET
from captum_perturbmask.attr._loop import (
    DRAW_BLOCK,
    MaskEvaluator,
    block_generator,
    block_sizes,
    planned_calls,
)
from captum_perturbmask.attr._masks import MaskDesign
from captum_perturbmask.attr.estimators import Estimator

DESIGNS = ("random", "sequential", "chain")
INITIAL_MASKS = ("random", "ones")
SAMPLERS = ("uniform", "lhs")
#: Chain steps of ``design="chain"`` when ``n_iter`` is not given.
DEFAULT_CHAIN_STEPS = 2
#: Sequential design: the share of the budget drawn before the refit, the top set whose border
#: the second half resolves (a fraction of the features), and the keep-probability range.
SEQ_FIRST = 0.5
SEQ_TOP = 0.1
SEQ_KEEP = (0.5, 0.9)


@dataclass(frozen=True)
class DesignSettings:
    """The checked knobs of a mask design (see :class:`~captum_perturbmask.PerturbMask`)."""

    design: str = "random"
    #: one keep-probability, or a range ``(lo, hi)``: each mask draws its own, uniformly
    keep_prob: float | tuple[float, float] = 0.7
    #: ``"uniform"`` (independent draws) or ``"lhs"`` (each cell's column of a block is a
    #: stratified Latin-hypercube sample: every cell kept as often as its probabilities say)
    sampler: str = "uniform"
    #: multipliers of the grid: the masks of a block are split evenly between the scales
    scales: tuple[float, ...] = (1.0,)
    n_iter: int = 1
    n1: float = 0.5
    n2: float = 0.5
    initial_mask: str = "random"
    random_shift: bool = True


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


def split_budget(budget: int, settings: DesignSettings) -> tuple[int, int]:
    """``(n_iter, n_masks)``: chain steps and masks (chains) per step for a budget of forward
    passes per input; every design but the chain has one step."""
    n_iter = settings.n_iter if settings.design == "chain" else 1
    n_iter = min(n_iter, budget)
    n = max(1, budget // n_iter)
    if n * n_iter > MAX_BUDGET:
        raise ValueError(f"`budget` of {n * n_iter:,} forward passes is more than {MAX_BUDGET:,}")
    return n_iter, n


def _first_half(n: int) -> int:
    return max(1, min(n - 1, round(SEQ_FIRST * n))) if n > 1 else n


def design_calls(budget: int, settings: DesignSettings, masks_per_call: int) -> int:
    """Forward calls a design makes (for the progress bar)."""
    n_iter, n = split_budget(budget, settings)
    if settings.design == "sequential":
        first = _first_half(n)
        return planned_calls(
            _random_evaluations(first, masks_per_call, len(settings.scales))
            + block_sizes(n - first),
            masks_per_call,
        )
    if settings.design == "chain":
        return n_iter * planned_calls(block_sizes(n), masks_per_call)
    return planned_calls(_random_evaluations(n, masks_per_call, len(settings.scales)),
                         masks_per_call)  # fmt: skip


def _random_evaluations(n: int, masks_per_call: int, scales: int = 1) -> list[int]:
    """Masks of every evaluation of the random design (per group of blocks and scale)."""
    out = []
    for size in _groups(n, masks_per_call):
        for j in range(scales):
            m = sum((part + scales - 1 - j) // scales for part in block_sizes(size))
            if m:
                out.append(m)
    return out


def _groups(n: int, masks_per_call: int) -> list[int]:
    """Masks per evaluation of the random design: whole draw blocks, several per forward call
    when a call holds more than one block."""
    per = max(1, masks_per_call // DRAW_BLOCK)
    sizes = block_sizes(n)
    return [sum(sizes[i : i + per]) for i in range(0, len(sizes), per)]


class DesignRun:
    """One call's proposals: draws, evaluation and estimator updates of a design."""

    def __init__(
        self,
        evaluate: MaskEvaluator,
        design: MaskDesign,
        estimator: Estimator,
        settings: DesignSettings,
        seed: int,
        scaled: list[MaskDesign] | None = None,
    ) -> None:
        self.evaluate, self.design, self.est = evaluate, design, estimator
        #: one design per scale (the first is ``design``); all share the feature grid
        self.designs = scaled or [design]
        self.s, self.seed = settings, seed
        self.device = design.device
        self.shared = bool(getattr(estimator, "shared_features", False))
        self.batch = evaluate.batch
        self.halves: list[Estimator] = []

    def _update(self, score: Tensor, feats: Tensor) -> Tensor:
        conf = self.evaluate.runner.confidence_of(score)
        if feats.dim() == 2 and not self.shared:
            feats = feats.expand(self.batch, *feats.shape)
        self.est.update(feats, conf, score)
        for half, est in enumerate(self.halves):  # the stop rule's two independent fits
            f = feats[half::2] if feats.dim() == 2 else feats[:, half::2]
            est.update(f, conf[:, half::2], score[:, half::2])
        return conf

    def _cells(self, n: int, gen: torch.Generator, design: MaskDesign | None = None) -> Tensor:
        """``(n, K)`` on/off cells of ``n`` random masks (``keep_prob``, ``sampler``)."""
        k = (design or self.design).n_cells
        if self.s.initial_mask == "ones":
            return torch.ones(n, k, device=self.device, dtype=torch.bool)
        draw = torch.rand(n, k, generator=gen, device=self.device)
        if self.s.sampler == "lhs":  # stratify every column: rank r of n -> [r, r + 1) / n
            rank = draw.argsort(0).argsort(0)
            draw = (rank + torch.rand(n, k, generator=gen, device=self.device)) / n
        keep = self.s.keep_prob
        if isinstance(keep, tuple):
            lo, hi = keep
            keep = lo + (hi - lo) * torch.rand(n, 1, generator=gen, device=self.device)
        return draw < keep

    def _shifts(
        self, n: int, gen: torch.Generator, design: MaskDesign | None = None
    ) -> Tensor | None:
        return (design or self.design).sample_shifts(n, gen) if self.s.random_shift else None

    def random(self, n: int, first_block: int = 0) -> None:
        """``n`` random masks shared by the batch, from draw block ``first_block`` on; with
        several scales, every block's masks are split evenly between them."""
        block = first_block
        scales = len(self.designs)
        for size in _groups(n, self.evaluate.masks_per_call):
            cells: list[list[Tensor]] = [[] for _ in range(scales)]
            shifts: list[list[Tensor | None]] = [[] for _ in range(scales)]
            for part in block_sizes(size):
                gen = block_generator(self.seed, block, self.device)
                for j, design in enumerate(self.designs):
                    m = (part + scales - 1 - j) // scales  # masks of scale j in this block
                    if m:
                        shifts[j].append(self._shifts(m, gen, design))
                        cells[j].append(self._cells(m, gen, design))
                block += 1
            for design, c, sh in zip(self.designs, cells, shifts, strict=True):
                if not c:
                    continue
                shift = None if sh[0] is None else torch.cat(sh)  # type: ignore[arg-type]
                score, feats, _ = self.evaluate(torch.cat(c), shift, design=design)
                self._update(score, feats)

    def random_until_stable(
        self, most: int, laplacian: Tensor, template: Estimator, tolerance: float, top: float
    ) -> int:
        """Random masks, block after block, until the map is stable; returns the masks used.

        The masks alternate between two halves, each with its own fit (two independent runs of
        half the masks); after every block the top ``top`` share of features of the halves'
        maps are compared, and the run stops once their overlap (intersection over union) is
        at least ``tolerance`` for every example - the run-to-run consistency of half the
        masks, so the whole map is at least as consistent - or at ``most`` masks. One host
        decision per block of :data:`DRAW_BLOCK` masks.
        """
        import copy

        self.halves = [copy.deepcopy(template) for _ in range(2)]
        for est in self.halves:
            est.reset(self.batch, self.design.n_feat, self.device, self.design.dtype)
        used = 0
        for block, size in enumerate(block_sizes(most)):
            self.random(size, first_block=block)
            used += size
            if bool((self._half_overlap(laplacian, top) >= tolerance).all()):
                break
        self.halves = []
        return used

    def _half_overlap(self, laplacian: Tensor, top: float) -> Tensor:
        """Per example, the intersection over union of the top ``top`` share of positions of
        the two halves' maps (of the first input tensor, at its resolution)."""
        maps = [self.design.to_attr(est.solve(laplacian))[0] for est in self.halves]
        flat = [m.flatten(1) for m in maps]
        k = max(1, math.ceil(top * flat[0].shape[1]))
        hits = []
        for f in flat:
            mask = torch.zeros_like(f, dtype=torch.bool)
            hits.append(mask.scatter_(1, f.topk(k, dim=1).indices, True))
        inter = (hits[0] & hits[1]).sum(1)
        return inter / (2 * k - inter)

    def sequential(self, n: int, laplacian: Tensor) -> None:
        """Half random; the rest drawn per example where the first fit's top set is unsure."""
        first = _first_half(n)
        self.random(first)
        if n == first:
            return
        keep = sequential_keep(*self.est.posterior(laplacian))  # type: ignore[attr-defined]
        block = len(block_sizes(first))
        for size in block_sizes(n - first):
            gen = block_generator(self.seed, block, self.device)
            shifts = self._shifts(size, gen)
            q = self.design.keep_probability(keep, shifts, size)  # (B, size, K)
            draw = torch.rand(size, self.design.n_cells, generator=gen, device=self.device)
            score, feats, _ = self.evaluate(draw < q.to(draw.dtype), shifts)
            self._update(score, feats)
            block += 1

    def chain(self, n_iter: int, n: int) -> None:
        """The poster's on/off chains, in blocks of :data:`DRAW_BLOCK` chains."""
        for block, size in enumerate(block_sizes(n)):
            gen = block_generator(self.seed, block, self.device)
            shifts = self._shifts(size, gen)
            on = self._cells(size, gen)  # step 0: shared by the batch
            for step in range(n_iter):
                if step > 0:
                    shifts = self._shifts(size, gen)
                keys = torch.rand(size, self.design.n_cells, generator=gen, device=self.device)
                score, feats, _ = self.evaluate(on.to(self.design.dtype), shifts)
                conf = self._update(score, feats)
                if step + 1 < n_iter:
                    on = chain_step(on, conf, keys.to(conf.dtype), self.s.n1, self.s.n2)
