r"""Sobol attribution: total Sobol indices of mask cells (Fel et al., NeurIPS 2021)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_perturbmask._core.checks import check_size
from captum_perturbmask._core.forward import ConfidenceType, check_confidence
from captum_perturbmask.attr._base import MaskAttribution, MaskCall
from captum_perturbmask.attr._loop import DRAW_BLOCK, block_seed, planned_calls
from captum_perturbmask.attr._masks import MaskDesign


def sobol_points(n: int, dim: int, seed: int, device: torch.device) -> Tensor:
    """``(n, dim)`` points of an Owen-scrambled Sobol sequence in :math:`[0, 1)^{dim}`, drawn on
    the CPU (where ``torch.quasirandom`` runs) and sent to ``device`` without a host wait."""
    engine = torch.quasirandom.SobolEngine(dim, scramble=True, seed=block_seed(seed, 0))
    points = engine.draw(n)
    if device.type == "cuda":
        return points.pin_memory().to(device, non_blocking=True)
    return points.to(device)


def sobol_design(n: int, d: int, seed: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """The two independent ``(n, d)`` matrices A and B of a scrambled Sobol sequence in
    ``2 d`` dimensions (quasi-Monte Carlo, Owen-scrambled with ``seed``), on ``device``.

    Example:
        >>> a, b = sobol_design(8, 3, seed=0, device=torch.device("cpu"))
        >>> a.shape, bool(((a >= 0) & (a < 1)).all())
        (torch.Size([8, 3]), True)
    """
    points = sobol_points(n, 2 * d, seed, device)
    return points[:, :d], points[:, d:]


def jansen_total_indices(f_a: Tensor, f_c: Tensor) -> Tensor:
    r"""Jansen's estimator of the total Sobol indices.

    :math:`S_{T_i} = \frac{1}{2N}\sum_j \left(f(A_j) - f(C^{(i)}_j)\right)^2 / \hat V`, with
    :math:`C^{(i)}` the matrix A whose column :math:`i` comes from B and :math:`\hat V` the
    (unbiased) variance of :math:`f(A)`.

    Args:
        f_a: outputs on A, :math:`(B, N)`.
        f_c: outputs on every :math:`C^{(i)}`, :math:`(B, d, N)`.

    Returns:
        :math:`(B, d)` total indices.

    Example:
        >>> f_a = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
        >>> f_c = torch.stack([f_a, f_a + 1.0], 1)  # cell 0 never matters, cell 1 always does
        >>> jansen_total_indices(f_a, f_c)
        tensor([[0.0000, 0.3000]])
    """
    n = f_a.shape[-1]
    var = f_a.var(-1, correction=1 if n > 1 else 0).clamp_min(1e-12)
    return (f_a.unsqueeze(1) - f_c).square().sum(-1) / (2 * n * var.unsqueeze(1))


class SobolAttribution(MaskAttribution):
    r"""Sobol attribution (Fel, Cadène, Chalvidal, Cord, Vigouroux, Serre, "Look at the
    Variance! Efficient Black-box Explanations with Sobol-based Sensitivity Analysis",
    NeurIPS 2021) as a Captum perturbation attribution.

    ``SobolAttribution(model).attribute(x, target=y, budget=400)`` returns, for every cell of
    a low-resolution grid, the *total Sobol index* of the model's confidence with respect to
    how much of that cell is kept: the share of the output's variance that involves the cell,
    alone or in interaction with others.

    Example:
        >>> import torch
        >>> from captum_perturbmask import SobolAttribution
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        >>> attr = SobolAttribution(model, grid_size=4).attribute(
        ...     torch.rand(2, 3, 16, 16), target=0, budget=72, seed=0)
        >>> attr.shape
        torch.Size([2, 3, 16, 16])

    Method. Real-valued masks :math:`M \in [0, 1]^d` (one value per cell) come from a
    scrambled Sobol sequence in :math:`2d` dimensions, split into two matrices A and B of
    :math:`N` rows; :math:`C^{(i)}` is A with column :math:`i` taken from B. Each mask is
    upsampled to the input with nearest-neighbour interpolation (cells keep hard borders) and
    moves the input toward the baseline, :math:`x' = b + M \odot (x - b)` (the paper's
    "inpainting" perturbation for a zero baseline). The map is Jansen's estimator of the total
    indices (:func:`~captum_perturbmask.attr.sobol.jansen_total_indices`), upsampled bicubically.

    Forward passes per input: :math:`N (d + 2)` with :math:`N` = ``budget // (d + 2)``
    (plus one clean pass); a budget below :math:`d + 2` is refused. The paper's setting for
    ImageNet is an 11 x 11 grid with :math:`N = 32`; Xplique's default is 8 x 8.

    Args:
        forward_func: the model or any callable (any output a target selects one value per
            example from).
        grid_size: cells per side (int or pair; one int for series). Default 8 on images,
            ``ceil(T / 8)`` clamped to 8..32 on series.
        confidence: how outputs become the explained score (see
            :class:`~captum_perturbmask.PerturbMask`).

    Raises:
        TypeError, ValueError: a knob of the wrong type or value, named in the message.
    """

    image_grid = 8
    upsample = "nearest"

    def __init__(
        self,
        forward_func: Callable[..., Any],
        *,
        grid_size: int | Sequence[int] | None = None,
        confidence: ConfidenceType = "auto",
    ) -> None:
        super().__init__(forward_func)
        self.grid_size = None if grid_size is None else check_size(grid_size, "grid_size")
        self.confidence = check_confidence(confidence)

    def _check_design(self, design: MaskDesign, budget: int) -> None:
        need = design.n_cells + 2
        if budget < need:
            raise ValueError(
                f"`budget`={budget} is too small for Sobol attribution on {design.n_cells} "
                f"cells: it needs at least cells + 2 = {need} forward passes (N (cells + 2) "
                "with N >= 1); raise the budget or lower `grid_size`"
            )

    def _explain(self, call: MaskCall) -> tuple[list[Tensor], None]:
        design, evaluate = call.design, call.evaluate
        d = design.n_cells
        n = call.budget // (d + 2)
        per = max(1, DRAW_BLOCK // n)  # C matrices evaluated together
        groups = [(i, min(i + per, d)) for i in range(0, d, per)]
        sizes = [2 * n] + [(e - s) * n for s, e in groups]
        call.bar.total = planned_calls(sizes, evaluate.masks_per_call)
        a, b = sobol_design(n, d, call.seed, design.device)
        a, b = a.to(design.dtype), b.to(design.dtype)
        f_ab, _, _ = evaluate(torch.cat([a, b]), None)
        f_a = evaluate.runner.confidence_of(f_ab[:, :n])
        f_c = []
        for s, e in groups:
            cols = torch.arange(s, e, device=design.device)
            c = a.expand(e - s, n, d).clone()  # C^(i): A with column i from B
            c[torch.arange(e - s, device=design.device), :, cols] = b[:, cols].mT
            score, _, _ = evaluate(c.reshape(-1, d), None)
            f_c.append(evaluate.runner.confidence_of(score).view(call.batch, e - s, n))
        total = jansen_total_indices(f_a, torch.cat(f_c, 1))
        return design.to_attr(total, from_cells=True, smooth="cubic"), None
