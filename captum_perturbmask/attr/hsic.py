r"""HSIC attribution: dependence of the output on each mask cell (Novello, Fel, Vigouroux,
NeurIPS 2022)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_perturbmask._core.checks import check_choice, check_int, check_size
from captum_perturbmask._core.forward import ConfidenceType, check_confidence
from captum_perturbmask.attr._base import MaskAttribution, MaskCall
from captum_perturbmask.attr._loop import block_generator, planned_calls
from captum_perturbmask.attr._masks import MaskDesign
from captum_perturbmask.attr.sobol import sobol_points

SAMPLERS = ("lhs", "sobol")
#: Most masks one call of HSIC attribution takes: its estimator holds an N x N kernel matrix
#: per example (computed by blocks of rows, but N^2 d operations).
MAX_HSIC_BUDGET = 50_000
#: Pairwise distances subsampled for the median bandwidth beyond this many outputs.
MEDIAN_SAMPLE = 2048


def binary_design(n: int, d: int, sampler: str, seed: int, device: torch.device) -> Tensor:
    """``(n, d)`` binary masks, each cell on in half of them, from a low-discrepancy design.

    * ``"lhs"``: a Latin hypercube (every column a stratified permutation), thresholded at
      0.5: each cell is on in exactly ``n // 2`` or ``n // 2 + 1`` masks, independently of
      the other cells.
    * ``"sobol"``: a scrambled Sobol sequence thresholded at 0.5.

    Example:
        >>> x = binary_design(10, 3, "lhs", seed=0, device=torch.device("cpu"))
        >>> x.shape, x.sum(0).tolist()
        (torch.Size([10, 3]), [5.0, 5.0, 5.0])
    """
    if sampler == "sobol":
        u = sobol_points(n, d, seed, device)
    else:
        gen = block_generator(seed, 0, device)
        strata = torch.rand(n, d, generator=gen, device=device).argsort(0).argsort(0)
        u = (strata + torch.rand(n, d, generator=gen, device=device)) / n
    return (u >= 0.5).float()


def hsic_scores(x: Tensor, y: Tensor, rows: int = 1024) -> Tensor:
    r"""The HSIC estimator of the dependence between each binary input and the output.

    :math:`\mathcal H_i = \frac{1}{(N-1)^2}\operatorname{tr}(K_i H L H)`, with
    :math:`K_i` the Dirac kernel of cell :math:`i` (:math:`k(a, b) = 1[a = b]`; for binary
    values :math:`H K_i H = 2 \tilde x_i \tilde x_i^\top`, so
    :math:`\mathcal H_i = 2\,\tilde x_i^\top L \tilde x_i / (N-1)^2` with :math:`\tilde x_i`
    the centred column), :math:`L` the Gaussian kernel of the outputs,
    :math:`l(y, y') = \exp(-(y - y')^2 / (2\sigma^2))` with :math:`\sigma` the median of the
    pairwise distances (the median heuristic), and :math:`H = I - \frac1N 11^\top`.
    :math:`L` is built ``rows`` rows at a time, never whole.

    Args:
        x: binary masks :math:`(N, d)`, shared by the examples.
        y: outputs :math:`(B, N)`.
        rows: rows of :math:`L` built at once.

    Returns:
        :math:`(B, d)` scores (higher: the output depends more on the cell).

    Example:
        >>> x = torch.tensor([[0., 1.], [1., 1.], [0., 0.], [1., 0.]] * 4)
        >>> hsic_scores(x, x[:, 0][None] * 3.0).argmax().item()  # y depends on cell 0 only
        0
    """
    n = x.shape[0]
    xc = (x - x.mean(0)).to(y.dtype)  # (N, d)
    sample = y if n <= MEDIAN_SAMPLE else y[:, :: -(-n // MEDIAN_SAMPLE)]
    iu = torch.triu_indices(sample.shape[1], sample.shape[1], 1, device=y.device)
    pairs = (sample[:, iu[0]] - sample[:, iu[1]]).abs()  # (B, m (m - 1) / 2)
    sigma = pairs.median(1).values.clamp_min(1e-12) if pairs.shape[1] else y.new_ones(len(y))
    lx = torch.zeros(y.shape[0], n, x.shape[1], device=y.device, dtype=y.dtype)
    for s in range(0, n, rows):
        block = y[:, s : s + rows].unsqueeze(2) - y.unsqueeze(1)  # (B, r, N)
        kernel = torch.exp(-block.square() / (2 * sigma.square())[:, None, None])
        lx[:, s : s + rows] = kernel @ xc  # (B, r, d)
    return 2 * (lx * xc).sum(1) / max(n - 1, 1) ** 2


class HSICAttribution(MaskAttribution):
    r"""HSIC attribution (Novello, Fel, Vigouroux, "Making Sense of Dependence: Efficient
    Black-box Explanations Using Dependence Measure", NeurIPS 2022) as a Captum perturbation
    attribution.

    ``HSICAttribution(model).attribute(x, target=y, budget=1500)`` scores every cell of a
    low-resolution grid by the Hilbert-Schmidt independence criterion between the cell being
    kept or removed and the model's confidence: how strongly the output depends on the cell,
    linearly or not, alone or in interaction.

    Example:
        >>> import torch
        >>> from captum_perturbmask import HSICAttribution
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        >>> attr = HSICAttribution(model, grid_size=4).attribute(
        ...     torch.rand(2, 3, 16, 16), target=0, budget=64, seed=0)
        >>> attr.shape
        torch.Size([2, 3, 16, 16])

    Method. :math:`N` binary masks over the cells come from a low-discrepancy design (a Latin
    hypercube by default, as in the paper; each cell kept in half of the masks), are
    upsampled with nearest-neighbour interpolation and move the input toward the baseline
    where a cell is off. The map is :func:`~captum_perturbmask.attr.hsic.hsic_scores` of the
    masks and the confidences, upsampled bicubically.

    Forward passes per input: ``budget`` (plus one clean pass). The paper's reference setting
    is a 7 x 7 grid with 1,500 passes (750 for a cheaper version).

    Args:
        forward_func: the model or any callable.
        grid_size: cells per side (int or pair; one int for series). Default 7 on images,
            ``ceil(T / 8)`` clamped to 8..32 on series.
        sampler: ``"lhs"`` (default) or ``"sobol"``.
        confidence: how outputs become the explained score (see
            :class:`~captum_perturbmask.PerturbMask`).

    Raises:
        TypeError, ValueError: a knob of the wrong type or value, named in the message.
    """

    default_budget = 1500
    image_grid = 7
    upsample = "nearest"

    def __init__(
        self,
        forward_func: Callable[..., Any],
        *,
        grid_size: int | Sequence[int] | None = None,
        sampler: str = "lhs",
        confidence: ConfidenceType = "auto",
    ) -> None:
        super().__init__(forward_func)
        self.grid_size = None if grid_size is None else check_size(grid_size, "grid_size")
        self.sampler = check_choice(sampler, "sampler", SAMPLERS)
        self.confidence = check_confidence(confidence)

    def _check_design(self, design: MaskDesign, budget: int) -> None:
        check_int(budget, "budget", 2, MAX_HSIC_BUDGET)

    def _explain(self, call: MaskCall) -> tuple[list[Tensor], None]:
        design, evaluate = call.design, call.evaluate
        n = call.budget
        call.bar.total = planned_calls([n], evaluate.masks_per_call)
        x = binary_design(n, design.n_cells, self.sampler, call.seed, design.device)
        score, _, _ = evaluate(x.to(design.dtype), None)
        y = evaluate.runner.confidence_of(score).to(design.dtype)
        return design.to_attr(hsic_scores(x, y), from_cells=True, smooth="cubic"), None
