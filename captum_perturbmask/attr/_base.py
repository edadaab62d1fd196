"""What every mask method of the package shares: Captum's arguments in, checks, the clean pass,
the mask loop, and the same structure out.

A method subclasses :class:`MaskAttribution`, configures itself in ``__init__`` and writes
``attribute`` as ``call = self._start(...)``, its own proposals and estimator on
``call.evaluate``, then ``return self._finish(call, maps)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from captum_perturbmask._core.checks import MAX_BUDGET, check_bool, check_int
from captum_perturbmask._core.forward import ConfidenceType, TargetForward
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
    check_perturbations_per_eval,
    resolve_masks_per_call,
)
from captum_perturbmask.attr._masks import MaskDesign


@dataclass
class MaskCall:
    """One ``attribute`` call, set up: checked inputs, the resolved forward layer, the mask
    design and the chunk loop."""

    is_tuple: bool
    inputs: tuple[Tensor, ...]
    runner: TargetForward
    design: MaskDesign
    evaluate: MaskEvaluator
    p0: Tensor
    budget: int
    seed: int
    bar: Any

    @property
    def batch(self) -> int:
        return self.inputs[0].shape[0]


class MaskAttribution(PerturbationAttribution):
    """Base of the package's mask methods (not used directly).

    Subclasses set ``confidence`` in ``__init__`` and the class attributes below.
    """

    #: forward passes per input when ``budget`` is ``None``
    default_budget = 400
    #: cells per side of the default grid on images
    image_grid = 7
    #: how cells are upsampled: ``"bilinear"`` (linear on series) or ``"nearest"``
    upsample = "bilinear"
    confidence: ConfidenceType = "auto"
    grid_size: tuple[int, ...] | None = None
    fine_grid_size: tuple[int, ...] | None = None

    @property
    def multiplies_by_inputs(self) -> bool:
        """The map is not multiplied by the inputs (a mask importance, not a contribution)."""
        return False

    def _start(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any,
        target: TargetType,
        additional_forward_args: Any,
        feature_mask: Tensor | tuple[Tensor, ...] | None,
        budget: int | None,
        perturbations_per_eval: int | str,
        show_progress: bool,
        seed: int | None,
        masks_per_block: Callable[[int], int] | None = None,
    ) -> MaskCall:
        """Check everything, run the clean pass (one host synchronisation) and set up the loop.

        ``masks_per_block(budget)`` is the most masks one evaluation holds (the budget when
        ``None``), so that ``"auto"`` never sizes calls beyond what is evaluated at once.
        """
        is_tuple = _is_tuple(inputs)
        inputs_t = _format_tensor_into_tuples(inputs)
        checks = check_inputs(inputs_t)
        budget = self.default_budget if budget is None else budget
        budget = check_int(budget, "budget", 1, MAX_BUDGET)
        check_perturbations_per_eval(perturbations_per_eval)
        check_bool(show_progress, "show_progress")
        seed = resolve_seed(seed)
        warn_if_training(self.forward_func, stacklevel=4)
        dtype = compute_dtype(inputs_t[0])
        fmask = format_feature_mask(feature_mask, inputs_t)
        bases = format_baselines(baselines, inputs_t, checks=checks)
        runner = TargetForward(
            self.forward_func, inputs_t[0].shape[0], target, additional_forward_args,
            self.confidence,
        )  # fmt: skip
        design = MaskDesign(
            inputs_t, fmask, self.grid_size, self.fine_grid_size, dtype,
            image_grid=self.image_grid, upsample=self.upsample,
        )  # fmt: skip
        self._check_design(design, budget)
        p0 = runner.resolve(inputs_t, checks)
        most = budget if masks_per_block is None else masks_per_block(budget)
        per_call = resolve_masks_per_call(perturbations_per_eval, runner, inputs_t, most)
        bar = tqdm(desc=f"{self.get_name()} attribution", disable=not show_progress)
        evaluate = MaskEvaluator(runner, inputs_t, bases, design, per_call, bar)
        return MaskCall(is_tuple, inputs_t, runner, design, evaluate, p0, budget, seed, bar)

    def _check_design(self, design: MaskDesign, budget: int) -> None:
        """A hook for methods whose budget depends on the number of cells."""

    def _finish(
        self,
        call: MaskCall,
        maps: Sequence[Tensor],
        retry: Callable[[], Sequence[Tensor]] | None = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        """Maps in each input's dtype and shape, checked finite (the second and last host
        synchronisation); ``retry`` gives a second chance to a failed float32 solve."""
        call.bar.close()
        out = _as_inputs(maps, call.inputs)
        finite = _all_finite(out)
        if not finite and retry is not None:
            out = _as_inputs(retry(), call.inputs)
            finite = _all_finite(out)
        if not finite:
            raise ValueError(
                "the attribution is not finite: `forward_func` returned NaN/inf outputs for "
                "some perturbed inputs"
            )
        return _format_output(call.is_tuple, out)


def _as_inputs(maps: Sequence[Tensor], inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Attributions in each input's dtype and shape (values repeated over channels)."""
    return tuple(a.to(x.dtype).expand_as(x).contiguous() for a, x in zip(maps, inputs, strict=True))


def _all_finite(out: Sequence[Tensor]) -> bool:
    """One host decision for all attribution tensors."""
    flags = [torch.isfinite(a).all() for a in out]
    return bool(flags[0] if len(flags) == 1 else torch.stack(flags).all())
