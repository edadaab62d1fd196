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
    DRAW_BLOCK,
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
    #: what the method's :meth:`MaskAttribution._plan` decided for this call
    plan: Any = None

    @property
    def batch(self) -> int:
        return self.inputs[0].shape[0]


class MaskAttribution(PerturbationAttribution):
    """Base of the package's mask methods (not used directly).

    Subclasses set ``confidence`` in ``__init__`` and the class attributes below, and write
    :meth:`_explain` (and :meth:`_plan` when their budget needs more than an int).
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

    @torch.no_grad()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        *,
        budget: int | str | None = None,
        perturbations_per_eval: int | str = "auto",
        show_progress: bool = False,
        seed: int | None = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""The saliency map of ``inputs`` for ``target``.

        The first five arguments are Captum's, in Captum's order (as ``FeatureAblation``);
        the four after them are keyword-only.

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
            budget: forward passes per input besides the one clean pass (the default and the
                accepted values are the method's: see the class).
            perturbations_per_eval: perturbed copies of each example per forward call, as in
                Captum (a call holds at most ``perturbations_per_eval * B`` rows), or
                ``"auto"`` (default): on CUDA the largest chunk that fits half the free
                memory, elsewhere about 64 rows per call. Results do not depend on it.
            show_progress: show a progress bar over forward calls.
            seed: seed of the private random generators (bit-reproducible on a device);
                ``None`` draws a fresh one. The global RNG is never touched.

        Returns:
            Attributions with exactly the structure, shape, device and dtype of ``inputs``
            (values repeated over channels for grid inputs). Higher means more important.

        Raises:
            TypeError: inputs, arguments or model outputs of the wrong type.
            ValueError: wrong shapes, an empty batch, non-finite inputs or baselines, bad
                argument values, outputs that do not give one value per example, or NaN/inf
                outputs.
            AssertionError, IndexError: an invalid ``target``, as Captum raises it.
        """
        checked, per_block, plan = self._plan(budget)
        call = self._start(
            inputs, baselines, target, additional_forward_args, feature_mask, checked,
            perturbations_per_eval, show_progress, seed, per_block,
        )  # fmt: skip
        call.plan = plan
        # masks and estimators in full precision; the model keeps the caller's autocast
        with torch.autocast(call.runner.autocast[0], enabled=False):  # type: ignore[index]
            maps, retry = self._explain(call)
        return self._finish(call, maps, retry)

    def _plan(self, budget: object) -> tuple[Any, Callable[[int], int] | None, Any]:
        """The budget handed to the checks, the most masks one evaluation holds (as a function
        of the budget; ``None`` for the whole budget) and anything the method wants in
        ``call.plan``."""
        return budget, lambda b: min(b, DRAW_BLOCK), None

    def _explain(
        self, call: MaskCall
    ) -> tuple[Sequence[Tensor], Callable[[], Sequence[Tensor]] | None]:
        """The maps of one set-up call (one per input tensor) and, optionally, a second way
        to compute them should they not be finite."""
        raise NotImplementedError

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
