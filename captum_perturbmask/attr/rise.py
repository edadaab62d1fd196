r"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das & Saenko, 2018)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_perturbmask._core.checks import check_choice, check_fraction, check_size
from captum_perturbmask._core.forward import ConfidenceType, check_confidence
from captum_perturbmask.attr._base import MaskAttribution, MaskCall
from captum_perturbmask.attr._loop import (
    MaskEvaluator,
    block_generator,
    block_sizes,
    planned_calls,
)
from captum_perturbmask.attr._masks import MaskDesign

NORMALIZATIONS = ("expected", "mask_sum")


class RISE(MaskAttribution):
    r"""RISE saliency: the confidence-weighted average of random smooth masks.

    ``RISE(model).attribute(x, target=y, budget=4000)`` scores 4000 randomly masked copies of
    ``x`` and averages the masks weighted by the model's confidence in ``y``.

    Example:
        >>> import torch
        >>> from captum_perturbmask import RISE
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        >>> attr = RISE(model).attribute(torch.rand(2, 3, 16, 16), target=0, budget=64, seed=0)
        >>> attr.shape
        torch.Size([2, 3, 16, 16])

    ``N`` binary :math:`s \times s` grids, each cell kept with probability :math:`p_1`, are
    upsampled bilinearly to :math:`(s + 1) \lceil H/s \rceil` and cropped at a random shift
    (soft masks); the saliency is :math:`\sum_i p(I \odot M_i)\, M_i / (N p_1)`. The same masks
    are shared by all inputs of a call and generated block by block on the inputs' device, so
    all ``N`` are never held at once. Paper and TorchRay defaults: ``N`` = 4000-8000,
    ``s`` = 7, :math:`p_1` = 0.5. Images :math:`(B, C, H, W)`, series :math:`(B, C, T)`
    (a 1-D grid), other tensors :math:`(B, *)` and ``feature_mask`` groups (each element or
    group kept with :math:`p_1`, no upsampling).

    Forward passes per input: ``budget + 1`` (one clean pass validates the target).

    Args:
        forward_func: the model or any callable (any output shape a target can select one
            value per example from).
        grid_size: s, cells per side of the random grid (int or pair). Default 7 on
            images, ``ceil(T / 8)`` clamped to 8..32 on series.
        keep_prob: p_1, probability that a cell is kept.
        normalize: ``"expected"`` divides by N p_1 (the paper); ``"mask_sum"`` by the sum
            of the masks (per pixel).
        confidence: ``"auto"`` (softmax over dim 1 for several classes, sigmoid for one
            logit), ``"softmax"``, ``"sigmoid"``, ``"identity"`` or a callable.

    Raises:
        TypeError, ValueError: a knob of the wrong type or value, named in the message.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        *,
        grid_size: int | Sequence[int] | None = None,
        keep_prob: float = 0.5,
        normalize: str = "expected",
        confidence: ConfidenceType = "auto",
    ) -> None:
        super().__init__(forward_func)
        self.default_budget = 4000
        self.grid_size = None if grid_size is None else check_size(grid_size, "grid_size")
        self.keep_prob = check_fraction(keep_prob, "keep_prob", low_open=True)
        self.normalize = check_choice(normalize, "normalize", NORMALIZATIONS)
        self.confidence = check_confidence(confidence)

    def get_name(self) -> str:
        """``"RISE"`` (Captum would spell the acronym out letter by letter)."""
        return "RISE"

    def _explain(self, call: MaskCall) -> tuple[list[Tensor], None]:
        sizes = block_sizes(call.budget)
        call.bar.total = planned_calls(sizes, call.evaluate.masks_per_call)
        return self._accumulate(call.evaluate, call.design, call.inputs, sizes, call.seed), None

    def _accumulate(
        self, evaluate: MaskEvaluator, design: MaskDesign, inputs_t: tuple[Tensor, ...],
        sizes: list[int], seed: int,
    ) -> list[Tensor]:  # fmt: skip
        """The confidence-weighted mask sums, block by block."""
        device = design.device
        by_group = design.per_example_masks  # per-example feature masks: sums per group
        sal: list[Tensor | None] = [None] * len(inputs_t)
        msum: list[Tensor | None] = [None] * len(inputs_t)
        for block, n in enumerate(sizes):
            gen = block_generator(seed, block, device)
            shifts = design.sample_shifts(n, gen)
            cells = torch.rand(n, design.n_cells, generator=gen, device=device) < self.keep_prob
            score, feats, masks = evaluate(cells, shifts, keep_masks=not by_group)
            w = evaluate.runner.confidence_of(score).to(design.dtype)  # (B, n)
            if by_group:  # feats (B, n, K): the cells, per example
                parts = [(torch.bmm(w.unsqueeze(1), feats).squeeze(1), feats.sum(1))]
            else:
                flats = [m.reshape(n, -1).to(design.dtype) for m in masks]  # type: ignore[union-attr]
                parts = [(w @ f, f.sum(0)) for f in flats]
            for t, (add, ms) in enumerate(parts):
                sal[t] = add if sal[t] is None else sal[t].add_(add)  # type: ignore[union-attr]
                msum[t] = ms if msum[t] is None else msum[t].add_(ms)  # type: ignore[union-attr]
        scores = [
            sm / (sum(sizes) * self.keep_prob) if self.normalize == "expected"
            else sm / ms.clamp_min(1e-12)  # type: ignore[union-attr]
            for sm, ms in zip(sal, msum, strict=False) if sm is not None
        ]  # fmt: skip
        if by_group:
            maps = design.to_attr(scores[0])
        else:
            maps = [sm.reshape(x.shape[0], *m.shape[2:])  # type: ignore[union-attr]
                    for sm, x, m in zip(scores, inputs_t, masks, strict=True)]  # fmt: skip
        return maps
