r"""The literal reading of Algorithm 1, kept to measure why it is not the default.

Every chain carries a real-valued low-resolution mask :math:`M` over the grid cells:

* :math:`M_i(\lambda) = M_{i-1}(\lambda)\,\Delta p` on :math:`\Lambda_{on}`, 0 on
  :math:`\Lambda_{off}`, with :math:`\Delta p = |p_i - p_{i-1}|`;
* :math:`M_i \mathrel{+}= \eta\, V\, M_{i-1}` with :math:`V` the scalar total variation of
  :math:`M_{i-1}` on the cell grid;
* masks are upsampled without a random shift; the map is the mean of the chains' final
  :math:`M_N`. Each :math:`M_i` is divided by its maximum to stay finite.

It degenerates: a zeroed cell stays zero and :math:`V` only rescales the map.
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_perturbmask.attr._designs import DesignSettings, chain_step
from captum_perturbmask.attr._loop import MaskEvaluator, block_generator, block_sizes
from captum_perturbmask.attr._masks import MaskDesign


def literal_attribution(
    evaluate: MaskEvaluator,
    design: MaskDesign,
    p0: Tensor,
    settings: DesignSettings,
    n_iter: int,
    n_chains: int,
    eta: float,
    seed: int,
) -> list[Tensor]:
    """Run the literal chains; return the attribution per input tensor."""
    device, dtype, n_cells = design.device, design.dtype, design.n_cells
    batch = evaluate.batch
    lap = design.laplacian(cells=True)
    total = torch.zeros(batch, n_cells, device=device, dtype=dtype)
    for block, nc in enumerate(block_sizes(n_chains)):
        gen = block_generator(seed, block, device)
        if settings.initial_mask == "ones":
            state = torch.ones(batch, nc, n_cells, device=device, dtype=dtype)
        else:
            draw = torch.rand(nc, n_cells, generator=gen, device=device) < settings.keep_prob
            state = draw.to(dtype).expand(batch, nc, n_cells).clone()
        on = state > 0
        p_prev = p0.to(dtype).unsqueeze(1).expand(batch, nc)
        for _ in range(n_iter):
            keys = torch.rand(nc, n_cells, generator=gen, device=device, dtype=dtype)
            score, _, _ = evaluate(state, None)
            p = evaluate.runner.confidence_of(score).to(dtype)
            new_on = chain_step(on, p, keys, settings.n1, settings.n2)
            dp = (p - p_prev).abs()
            tv = ((state @ lap) * state).sum(-1)  # V(M_{i-1}), one number per chain
            new = torch.where(new_on, state * dp.unsqueeze(-1), 0.0)
            new = new + eta * tv.unsqueeze(-1) * state
            state = new / new.amax(-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
            on, p_prev = new_on, p
        total += state.sum(1)
    return design.to_attr(total / n_chains, from_cells=True)
