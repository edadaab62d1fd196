"""The one chunk loop of every perturbation method: render -> mix -> score.

A method proposes *cells* (which low-resolution cells a mask keeps, or how much), the loop turns
them into masked rows and model scores, chunk by chunk:

* masks shared by every example of the call (random designs: PerturbMask's default, RISE,
  HSIC, Sobol) are rendered once per block, and each chunk is one broadcast ``lerp`` of ``r``
  masks against the whole batch, rows ordered mask-major (row ``i * B + b`` is example ``b``
  under mask ``i``);
* masks that differ per example (the poster's chain, the sequential design, per-example feature
  masks) are rendered per chunk.

Draws come in blocks of :data:`DRAW_BLOCK` masks, each from its own generator derived from the
call's seed, so a map never depends on ``perturbations_per_eval``, on how blocks are grouped
into forward calls, or on the batch. Nothing here synchronises with the host.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from captum_perturbmask._core.checks import check_int
from captum_perturbmask._core.forward import TargetForward
from captum_perturbmask.attr._inputs import mix_rows, spans
from captum_perturbmask.attr._masks import MaskDesign

#: Masks drawn together from one generator; fixed, so results never depend on batching.
DRAW_BLOCK = 256
#: Shared masks of a block are rendered at once up to this many bytes (else per chunk).
RENDER_BYTES = 64 * 2**20
#: ``perturbations_per_eval="auto"`` on the CPU: about this many rows per forward call, and
#: at most :data:`AUTO_CPU_BYTES` of perturbed inputs.
AUTO_CPU_ROWS = 64
AUTO_CPU_BYTES = 48 * 2**20
#: On CUDA, the share of the free memory a forward call may use.
AUTO_CUDA_SHARE = 0.5
_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = 2**64 - 1


def block_seed(seed: int, block: int) -> int:
    """Seed of draw block ``block`` of a call seeded ``seed`` (SplitMix64 of the pair).

    Example:
        >>> block_seed(0, 0) != block_seed(0, 1) != block_seed(1, 0)
        True
    """
    z = (seed + (block + 1) * _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & (2**63 - 1)


def block_generator(seed: int, block: int, device: torch.device) -> torch.Generator:
    """A private generator on ``device`` for draw block ``block``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(block_seed(seed, block))
    return gen


def block_sizes(total: int) -> list[int]:
    """Sizes of the draw blocks of ``total`` masks."""
    return [e - s for s, e in spans(total, DRAW_BLOCK)]


def check_perturbations_per_eval(value: object) -> int | str:
    """``"auto"`` or a positive int (Captum's meaning), else a clear error.

    Raises:
        TypeError, ValueError: anything else.
    """
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(
                f"`perturbations_per_eval` must be 'auto' or a positive int, got {value!r}"
            )
        return value
    return check_int(value, "perturbations_per_eval")


def resolve_masks_per_call(
    perturbations_per_eval: object, runner: TargetForward, inputs: Sequence[Tensor], budget: int
) -> int:
    """Masks per forward call: an int keeps Captum's meaning (perturbed copies of each
    example per call); ``"auto"`` picks the largest chunk that fits.

    * CUDA: the clean pass's peak memory per row (measured by the runner), the perturbed rows
      and their masks, against :data:`AUTO_CUDA_SHARE` of the free memory;
    * elsewhere: about :data:`AUTO_CPU_ROWS` rows and at most :data:`AUTO_CPU_BYTES` of rows.

    Capped by the budget in both cases.

    Raises:
        TypeError, ValueError: anything but ``"auto"`` or a positive int.
    """
    value = check_perturbations_per_eval(perturbations_per_eval)
    if value == "auto":
        batch = inputs[0].shape[0]
        row_bytes = sum(x[0].numel() * x.element_size() for x in inputs)
        if inputs[0].device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(inputs[0].device)
            cached = torch.cuda.memory_reserved(inputs[0].device) - torch.cuda.memory_allocated(
                inputs[0].device
            )
            per_row = runner.clean_bytes_per_row + 3 * row_bytes
            rows = int(AUTO_CUDA_SHARE * (free + cached) // max(per_row, 1))
        else:
            rows = min(AUTO_CPU_ROWS, AUTO_CPU_BYTES // max(row_bytes, 1))
        return max(1, min(budget, rows // batch))
    return min(value, max(budget, 1))  # type: ignore[type-var]


def planned_calls(blocks: Sequence[int], masks_per_call: int) -> int:
    """Forward calls of evaluating blocks of these sizes."""
    return sum(math.ceil(n / masks_per_call) for n in blocks)


class MaskEvaluator:
    """Scores masks: cells in, the model's score of every (mask, example) pair out.

    Args:
        runner: the forward layer, resolved on the clean inputs.
        inputs: the formatted inputs.
        bases: their baselines, ``(1 or B, *S)`` each.
        design: how cells become masks.
        masks_per_call: masks per forward call (each against the whole batch).
        bar: a progress bar advanced once per forward call (or ``None``).
    """

    def __init__(
        self,
        runner: TargetForward,
        inputs: tuple[Tensor, ...],
        bases: tuple[Tensor, ...],
        design: MaskDesign,
        masks_per_call: int,
        bar: object = None,
    ) -> None:
        self.runner, self.design, self.bar = runner, design, bar
        self.batch = inputs[0].shape[0]
        self.x = [x.unsqueeze(0) for x in inputs]  # (1, B, *S)
        self.bases = [b.unsqueeze(0) for b in bases]  # (1, 1 or B, *S)
        self.masks_per_call = masks_per_call
        self.mask_bytes = sum(
            math.prod(x.shape[2:]) * torch.empty((), dtype=design.dtype).element_size()
            for x in inputs
        )

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update()  # type: ignore[attr-defined]

    def _rows(self, masks: list[Tensor | None], a: int, b: int) -> tuple[Tensor, ...]:
        return tuple(
            mix_rows(x, base, m[a:b])  # type: ignore[index]
            for x, base, m in zip(self.x, self.bases, masks, strict=True)
        )

    def __call__(
        self,
        cells: Tensor,
        shifts: Tensor | None,
        keep_masks: bool = False,
        design: MaskDesign | None = None,
    ) -> tuple[Tensor, Tensor, list[Tensor | None] | None]:
        """Evaluate ``R`` masks.

        Args:
            cells: :math:`(R, K)` shared by the batch, or :math:`(B, R, K)` per example.
            shifts: :math:`(R, S)` sub-cell offsets (shared by the batch), or ``None``.
            keep_masks: also return the rendered masks (shared cells only).
            design: render with this design instead of the evaluator's (another scale of the
                same inputs, with the same features).

        Returns:
            Scores :math:`(B, R)` (see :meth:`TargetForward.score_mask_major`), features
            :math:`(R, F)` (shared) or :math:`(B, R, F)`, and the masks if asked.
        """
        design = design or self.design
        per_example = cells.dim() == 3 or design.per_example_masks
        n = cells.shape[-2]
        mpc = self.masks_per_call
        scores = []
        if not per_example and (keep_masks or n * self.mask_bytes <= RENDER_BYTES):
            masks, feats = design.render(cells, shifts)
            masks = [None if m is None else m.to(x.dtype).unsqueeze(1)
                     for m, x in zip(masks, self.x, strict=True)]  # fmt: skip
            for a, b in spans(n, mpc):
                scores.append(self.runner.score_mask_major(self._rows(masks, a, b), b - a))
                self._tick()
            return torch.cat(scores).mT, feats, masks if keep_masks else None
        mm = cells.transpose(0, 1) if cells.dim() == 3 else cells.unsqueeze(1)  # (R, B|1, K)
        if per_example:
            mm = mm.expand(n, self.batch, mm.shape[-1])
        rows_per_mask = mm.shape[1]
        feat_chunks = []
        for a, b in spans(n, mpc):
            r = b - a
            c = mm[a:b].reshape(r * rows_per_mask, -1)
            sh = None if shifts is None else shifts[a:b]
            if sh is not None and rows_per_mask > 1:
                sh = sh.repeat_interleave(rows_per_mask, 0)
            index = self.runner.mask_major_index(r * rows_per_mask) if per_example else None
            masks, feats = design.render(c, sh, index)
            masks = [
                None if m is None else m.to(x.dtype).view(r, rows_per_mask, *m.shape[1:])
                for m, x in zip(masks, self.x, strict=True)
            ]
            scores.append(self.runner.score_mask_major(self._rows(masks, 0, r), r))
            feat_chunks.append(feats.view(r, rows_per_mask, -1))
            self._tick()
        feats = torch.cat(feat_chunks)
        feats = feats.transpose(0, 1) if per_example else feats.squeeze(1)
        return torch.cat(scores).mT, feats, None
