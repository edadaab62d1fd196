r"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das & Saenko, 2018)."""

from __future__ import annotations

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
    check_fraction,
    check_int,
    check_size,
)
from captum_perturbmask._core.forward import ConfidenceType, TargetForward, check_confidence
from captum_perturbmask._core.random import resolve_seed
from captum_perturbmask.attr._inputs import (
    check_inputs,
    compute_dtype,
    format_baselines,
    format_feature_mask,
    warn_if_training,
)
from captum_perturbmask.attr._loop import (
    MaskEvaluator,
    block_generator,
    block_sizes,
    check_perturbations_per_eval,
    planned_calls,
    resolve_masks_per_call,
)
from captum_perturbmask.attr._masks import MaskDesign

NORMALIZATIONS = ("expected", "mask_sum")
DEFAULT_BUDGET = 4000


class RISE(PerturbationAttribution):
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
        self.grid_size = None if grid_size is None else check_size(grid_size, "grid_size")
        self.keep_prob = check_fraction(keep_prob, "keep_prob", low_open=True)
        self.normalize = check_choice(normalize, "normalize", NORMALIZATIONS)
        self.confidence = check_confidence(confidence)

    @property
    def multiplies_by_inputs(self) -> bool:
        """The map is not multiplied by the inputs."""
        return False

    def get_name(self) -> str:
        """``"RISE"`` (Captum would spell the acronym out letter by letter)."""
        return "RISE"

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
        perturbations_per_eval: int | str = "auto",
        show_progress: bool = False,
        seed: int | None = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""Compute RISE saliency maps.

        The first five arguments are Captum's, in Captum's order; the rest are keyword-only.

        Args:
            inputs: tensor or tuple of tensors: :math:`(B, C, H, W)`, :math:`(B, C, T)` or any
                :math:`(B, *)` tensor.
            baselines: value of masked-off positions: ``None`` (zeros), a number, a tensor,
                ``"blur"`` or a tuple of those.
            target: Captum target; ``None`` explains the predicted class of ``(B, K)`` outputs.
            additional_forward_args: extra arguments of ``forward_func`` (Captum convention).
            feature_mask: integer groups replacing the grid (each group kept with ``keep_prob``).
            budget: N, random masks (forward passes) per input; default 4000.
            perturbations_per_eval: masked copies of each example per forward call (Captum's
                meaning: at most ``perturbations_per_eval * B`` rows) or ``"auto"`` (default,
                as in :meth:`PerturbMask.attribute`).
            show_progress: show a progress bar over forward calls.
            seed: seed of the private generators; ``None`` draws a fresh one.

        Returns:
            Attributions with the structure, shape, device and dtype of ``inputs``.

        Raises:
            TypeError: inputs, arguments or outputs of the wrong type.
            ValueError: wrong shapes, an empty batch, non-finite inputs or bad argument values.
            AssertionError, IndexError: an invalid ``target``, exactly as Captum raises it.
        """
        is_tuple = _is_tuple(inputs)
        inputs_t = _format_tensor_into_tuples(inputs)
        checks = check_inputs(inputs_t)
        n_masks = DEFAULT_BUDGET if budget is None else budget
        n_masks = check_int(n_masks, "budget", 1, MAX_BUDGET)
        check_perturbations_per_eval(perturbations_per_eval)
        check_bool(show_progress, "show_progress")
        seed = resolve_seed(seed)
        warn_if_training(self.forward_func, stacklevel=3)

        dtype = compute_dtype(inputs_t[0])
        fmask = format_feature_mask(feature_mask, inputs_t)
        bases = format_baselines(baselines, inputs_t, checks=checks)
        runner = TargetForward(
            self.forward_func, inputs_t[0].shape[0], target, additional_forward_args,
            self.confidence,
        )  # fmt: skip
        design = MaskDesign(inputs_t, fmask, self.grid_size, None, dtype, image_grid=7)
        runner.resolve(inputs_t, checks)
        per_call = resolve_masks_per_call(perturbations_per_eval, runner, inputs_t, n_masks)
        sizes = block_sizes(n_masks)
        bar = tqdm(desc="RISE attribution", total=planned_calls(sizes, per_call),
                   disable=not show_progress)  # fmt: skip
        evaluate = MaskEvaluator(runner, inputs_t, bases, design, per_call, bar)
        # masks and sums in full precision; the model keeps the caller's autocast
        with torch.autocast(runner.autocast[0], enabled=False):  # type: ignore[index]
            out = self._accumulate(evaluate, design, inputs_t, sizes, seed)
        bar.close()
        if not all(bool(torch.isfinite(a).all()) for a in out):
            raise ValueError("the attribution is not finite: `forward_func` returned NaN/inf")
        return _format_output(is_tuple, tuple(out))

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
        return [
            a.to(x.dtype).expand_as(x).contiguous() for a, x in zip(maps, inputs_t, strict=True)
        ]
