r"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das & Saenko, 2018)."""

from __future__ import annotations

import math
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
from captum_perturbmask._core.random import make_generator
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

NORMALIZATIONS = ("expected", "mask_sum")
_BLOCK = 32  # masks drawn and accumulated together; fixed so results never depend on batching


class RISE(PerturbationAttribution):
    r"""RISE saliency: the confidence-weighted average of random smooth masks.

    ``RISE(model).attribute(x, target=y, budget=4000)`` scores 4000 randomly masked copies of
    ``x`` and averages the masks weighted by the model's confidence in ``y`` (``budget`` and
    ``n_masks`` are the same knob).

    Example:
        >>> import torch
        >>> from captum_perturbmask import RISE
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        >>> attr = RISE(model).attribute(torch.rand(2, 3, 16, 16), target=0, n_masks=64, seed=0)
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

    Forward passes per input: ``n_masks + 1`` (one clean pass validates the target).

    Args:
        forward_func: the model or any callable (any output shape a target can select one
            value per example from).
        confidence: ``"auto"`` (softmax over dim 1 for several classes, sigmoid for one
            logit), ``"softmax"``, ``"sigmoid"``, ``"identity"`` or a callable.
    """

    def __init__(
        self, forward_func: Callable[..., Any], confidence: ConfidenceType = "auto"
    ) -> None:
        super().__init__(forward_func)
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
        n_masks: int | None = None,
        budget: int | None = None,
        grid_size: int | Sequence[int] | None = None,
        keep_prob: float = 0.5,
        normalize: str = "expected",
        perturbations_per_eval: int = 16,
        show_progress: bool = False,
        seed: int | None = None,
        confidence: ConfidenceType | None = None,
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
            n_masks: N, random masks (forward passes) per input; default 4000.
            budget: the same as ``n_masks`` (the knob every method of the package shares).
            grid_size: s, cells per side of the random grid (int or pair). Default 7 on
                images, ``ceil(T / 8)`` clamped to 8..32 on series.
            keep_prob: p_1, probability that a cell is kept.
            normalize: ``"expected"`` divides by N p_1 (the paper); ``"mask_sum"`` by the sum
                of the masks (per pixel).
            perturbations_per_eval: masked copies of each example per forward call (Captum's
                meaning: at most ``perturbations_per_eval * B`` rows).
            show_progress: show a progress bar over forward calls.
            seed: seed of the private generator; ``None`` draws a fresh one.
            confidence: deprecated here, pass it to ``RISE(...)``.

        Returns:
            Attributions with the structure, shape, device and dtype of ``inputs``.

        Raises:
            TypeError: inputs, knobs or outputs of the wrong type.
            ValueError: wrong shapes, an empty batch, non-finite inputs or bad knob values.
            AssertionError, IndexError: an invalid ``target``, exactly as Captum raises it.
        """
        is_tuple = _is_tuple(inputs)
        inputs_t = _format_tensor_into_tuples(inputs)
        check_inputs(inputs_t)
        baselines, target = legacy_order("RISE", baselines, target, inputs_t)
        if confidence is not None:
            import warnings

            warnings.warn(
                "passing confidence to attribute() is deprecated: pass it to RISE(...) instead",
                FutureWarning,
                stacklevel=3,
            )
            confidence = check_confidence(confidence)
        if n_masks is not None and budget is not None and n_masks != budget:
            raise ValueError(f"`n_masks`={n_masks} and `budget`={budget} disagree; give one")
        n_masks = n_masks if n_masks is not None else budget if budget is not None else 4000
        n_masks = check_int(n_masks, "n_masks", 1, MAX_BUDGET)
        ppe = check_int(perturbations_per_eval, "perturbations_per_eval")
        grid = None if grid_size is None else check_size(grid_size, "grid_size")
        keep_prob = check_fraction(keep_prob, "keep_prob", low_open=True)
        check_choice(normalize, "normalize", NORMALIZATIONS)
        check_bool(show_progress, "show_progress")
        warn_if_training(self.forward_func)

        dtype = compute_dtype(inputs_t[0])
        fmask = format_feature_mask(feature_mask, inputs_t)
        bases = format_baselines(baselines, inputs_t)
        runner = TargetForward(
            self.forward_func,
            inputs_t[0].shape[0],
            target,
            additional_forward_args,
            self.confidence if confidence is None else confidence,
        )
        runner.resolve(inputs_t)
        # masks and sums in full precision; the model keeps the caller's autocast
        with torch.autocast(runner.autocast[0], enabled=False):
            out = self._accumulate(
                runner, inputs_t, bases, fmask, grid, dtype, n_masks, keep_prob, normalize,
                ppe, show_progress, seed,
            )  # fmt: skip
        if not all(bool(torch.isfinite(a).all()) for a in out):
            raise ValueError("the attribution is not finite: `forward_func` returned NaN/inf")
        return _format_output(is_tuple, tuple(out))

    @staticmethod
    def _accumulate(
        runner: TargetForward, inputs_t: tuple[Tensor, ...], bases: tuple[Tensor, ...],
        fmask: tuple[Tensor, ...] | None, grid: tuple[int, ...] | None, dtype: torch.dtype,
        n_masks: int, keep_prob: float, normalize: str, ppe: int, show_progress: bool,
        seed: int | None,
    ) -> list[Tensor]:  # fmt: skip
        """The weighted mask sums, block by block."""
        x0 = inputs_t[0]
        device, batch = x0.device, x0.shape[0]
        design = MaskDesign(inputs_t, fmask, grid, None, dtype, image_grid=7)
        gen = make_generator(seed, device)

        sal: list[Tensor | None] = [None] * len(inputs_t)
        msum: list[Tensor | None] = [None] * len(inputs_t)
        full, rest = divmod(n_masks, _BLOCK)
        n_calls = full * math.ceil(_BLOCK / ppe) + math.ceil(rest / ppe)
        bar = tqdm(desc="RISE attribution", total=n_calls, disable=not show_progress)
        for s, e in spans(n_masks, _BLOCK):
            nb = e - s
            cells = torch.rand(nb, design.n_cells, generator=gen, device=device) < keep_prob
            shifts = design.sample_shifts(nb, gen)
            masks, _ = design.render(cells.to(dtype), shifts, torch.zeros(nb, dtype=torch.long))
            rows = batch * nb  # row r: mask r // batch, example r % batch
            conf = torch.empty(rows, device=device, dtype=dtype)
            for a, b in spans(rows, ppe * batch):
                r = torch.arange(a, b, device=device)
                idx, midx = r % batch, r // batch
                perturbed = tuple(
                    mix(x, base, m.index_select(0, midx), idx)
                    for x, base, m in zip(inputs_t, bases, masks, strict=True)
                )
                conf[a:b] = runner(perturbed, idx).to(dtype)
                bar.update()
            w = conf.reshape(nb, batch)
            for t, m in enumerate(masks):
                add = torch.einsum("nb,n...->b...", w, m)
                sal[t] = add if sal[t] is None else sal[t] + add
                msum[t] = m.sum(0) if msum[t] is None else msum[t] + m.sum(0)
        bar.close()

        out = []
        for x, sm, ms in zip(inputs_t, sal, msum, strict=True):
            assert sm is not None and ms is not None
            sm = sm / (n_masks * keep_prob) if normalize == "expected" else sm / ms.clamp_min(1e-12)
            out.append(sm.to(x.dtype).expand_as(x).contiguous())
        return out
