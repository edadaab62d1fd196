r"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das & Saenko, 2018)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from captum.attr import PerturbationAttribution
from torch import Tensor

from captum_perturbmask._captum_compat import (
    TargetType,
    TensorOrTupleOfTensorsGeneric,
    _format_output,
    _format_tensor_into_tuples,
    _is_tuple,
    progress,
)
from captum_perturbmask._checks import check_fraction, check_int
from captum_perturbmask.attr._common import (
    RowForward,
    check_inputs,
    chunks,
    format_baselines,
    make_generator,
    resolve_target,
)
from captum_perturbmask.attr._masks import GridPart, MaskDesign
from captum_perturbmask.attr.perturb_mask import _as_size, _mix

NORMALIZATIONS = ("expected", "mask_sum")
_BLOCK = 32  # masks drawn and accumulated together; fixed so results never depend on batching


class RISE(PerturbationAttribution):
    r"""RISE saliency: the confidence-weighted average of random smooth masks.

    ``N`` binary :math:`s \times s` grids, each cell kept with probability :math:`p_1`, are
    upsampled bilinearly to :math:`(s + 1) \lceil H/s \rceil` and cropped at a random shift
    (soft masks); the saliency is :math:`\sum_i p(I \odot M_i)\, M_i / (N p_1)`. The same masks
    are shared by all inputs of a call and generated block by block on the inputs' device, so
    all ``N`` are never held at once. Paper and TorchRay defaults: ``N`` = 4000-8000,
    ``s`` = 7, :math:`p_1` = 0.5. Images :math:`(B, C, H, W)` and series :math:`(B, C, T)`.

    Forward passes per input: ``n_masks + 1`` (one clean pass validates the target).

    Args:
        forward_func: the model or any callable returning ``(batch, classes)`` outputs.

    Example:
        >>> import torch
        >>> from captum_perturbmask import RISE
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        >>> attr = RISE(model).attribute(torch.rand(2, 3, 16, 16), target=0, n_masks=64, seed=0)
        >>> attr.shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        super().__init__(forward_func)

    @torch.no_grad()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        baselines: Any = None,
        n_masks: int = 4000,
        grid_size: int | Sequence[int] = 7,
        keep_prob: float = 0.5,
        normalize: str = "expected",
        confidence: str = "softmax",
        perturbations_per_eval: int = 64,
        show_progress: bool = False,
        seed: int | None = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""Compute RISE saliency maps.

        Args:
            inputs: tensor or tuple of tensors, :math:`(B, C, H, W)` or :math:`(B, C, T)`.
            target: Captum target; ``None`` explains the predicted class of the clean input.
            additional_forward_args: extra arguments of ``forward_func`` (Captum convention).
            baselines: value of masked-off positions: ``None`` (zeros), scalar, tensor,
                ``"blur"`` or a tuple of those.
            n_masks: :math:`N`, number of random masks (forward passes per input).
            grid_size: :math:`s`, cells per side of the random grid (int or pair).
            keep_prob: :math:`p_1`, probability that a cell is kept.
            normalize: ``"expected"`` divides by :math:`N p_1` (the paper);
                ``"mask_sum"`` by :math:`\sum_i M_i` (per pixel).
            confidence: ``"softmax"`` (default), ``"sigmoid"`` or ``"identity"``.
            perturbations_per_eval: most rows per forward call.
            show_progress: show a progress bar over forward calls.
            seed: seed of the private generator; ``None`` draws a fresh one.

        Returns:
            Attributions with the structure, shape, device and dtype of ``inputs``.

        Raises:
            TypeError: for inputs or knobs of the wrong type.
            ValueError: for wrong shapes, empty batch, non-finite inputs or bad knob values.
            AssertionError, IndexError: an invalid ``target``, exactly as Captum raises it.
        """
        is_tuple = _is_tuple(inputs)
        inputs_t = _format_tensor_into_tuples(inputs)
        check_inputs(inputs_t)
        for i, x in enumerate(inputs_t):
            if x.dim() not in (3, 4):
                raise ValueError(
                    f"RISE needs `inputs[{i}]` of shape (B, C, H, W) or (B, C, T), "
                    f"got {tuple(x.shape)}"
                )
        check_int(n_masks, "n_masks")
        check_int(perturbations_per_eval, "perturbations_per_eval")
        grid = _as_size("grid_size", grid_size)
        keep_prob = check_fraction(keep_prob, "keep_prob", low_open=True)
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"`normalize` must be one of {NORMALIZATIONS}, got {normalize!r}")

        x0 = inputs_t[0]
        device, batch = x0.device, x0.shape[0]
        dtype = torch.float32 if x0.dtype in (torch.float16, torch.bfloat16) else x0.dtype
        bases = format_baselines(baselines, inputs_t)
        runner = RowForward(
            self.forward_func, inputs_t, target, additional_forward_args, confidence
        )
        resolve_target(runner, inputs_t)
        design = MaskDesign(inputs_t, None, grid, None, dtype)
        assert all(isinstance(p, GridPart) for p in design.parts)
        gen = make_generator(seed, device)

        sal = [torch.zeros(batch, 1, *x.shape[2:], device=device, dtype=dtype) for x in inputs_t]
        msum = [torch.zeros(1, *x.shape[2:], device=device, dtype=dtype) for x in inputs_t]
        blocks = chunks(n_masks, _BLOCK)
        n_calls = sum(len(chunks(batch * (e - s), perturbations_per_eval)) for s, e in blocks)
        bar = progress(desc="RISE attribution", total=n_calls, disable=not show_progress)
        for s, e in blocks:
            nb = e - s
            cells = (torch.rand(nb, design.n_cells, generator=gen, device=device) < keep_prob).to(
                dtype
            )
            shifts = design.sample_shifts(nb, gen)
            masks, _ = design.render(cells, shifts, torch.zeros(nb, dtype=torch.long))
            rows = batch * nb  # row r: mask r // batch, example r % batch
            conf = torch.empty(rows, device=device, dtype=dtype)
            for a, b in chunks(rows, perturbations_per_eval):
                r = torch.arange(a, b, device=device)
                idx, midx = r % batch, r // batch
                perturbed = tuple(
                    _mix(x, base, m.index_select(0, midx), idx)
                    for x, base, m in zip(inputs_t, bases, masks, strict=True)
                )
                conf[a:b] = runner(perturbed, idx).to(dtype)
                bar.update()
            w = conf.reshape(nb, batch)
            for t, m in enumerate(masks):
                sal[t] += torch.einsum("nb,n...->b...", w, m)
                msum[t] += m.sum(0)
        bar.close()

        out = []
        for x, sm, ms in zip(inputs_t, sal, msum, strict=True):
            sm = sm / (n_masks * keep_prob) if normalize == "expected" else sm / ms.clamp_min(1e-12)
            out.append(sm.to(x.dtype).expand_as(x).contiguous())
        if not all(bool(torch.isfinite(a).all()) for a in out):
            raise ValueError("the attribution is not finite: `forward_func` returned NaN/inf")
        return _format_output(is_tuple, tuple(out))
