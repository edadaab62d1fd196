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

from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_perturbmask._core.forward import TargetForward
from captum_perturbmask._core.random import make_generator
from captum_perturbmask.attr._inputs import mix, spans
from captum_perturbmask.attr._masks import MaskDesign
from captum_perturbmask.attr.perturb_mask import CHAIN_BLOCK, chain_step


def literal_attribution(
    runner: TargetForward,
    inputs: tuple[Tensor, ...],
    bases: tuple[Tensor, ...],
    design: MaskDesign,
    p0: Tensor,
    k: Any,
    eta: float,
) -> list[Tensor]:
    """Run the literal chains; return the attribution per input tensor."""
    x0 = inputs[0]
    device, batch, dtype = x0.device, x0.shape[0], design.dtype
    n_cells = design.n_cells
    blocks = list(spans(k.n_chains, CHAIN_BLOCK))
    calls = sum(-(-batch * (e - s) // (k.perturbations_per_eval * batch)) for s, e in blocks)
    bar = tqdm(desc="PerturbMask attribution", total=k.n_iter * calls, disable=not k.show_progress)
    lap = design.laplacian(cells=True)
    gen = make_generator(k.seed, device)
    total = torch.zeros(batch, n_cells, device=device, dtype=dtype)
    for c0, c1 in blocks:
        nc = c1 - c0
        rows = batch * nc
        example = torch.arange(rows, device=device) // nc
        if k.initial_mask == "ones":
            state = torch.ones(batch, nc, n_cells, device=device, dtype=dtype)
        else:
            draw = torch.rand(nc, n_cells, generator=gen, device=device) < k.keep_prob
            state = draw.to(dtype).expand(batch, nc, n_cells).clone()
        on = state > 0
        p_prev = p0.to(dtype).unsqueeze(1).expand(batch, nc)
        for _ in range(k.n_iter):
            keys = torch.rand(nc, n_cells, generator=gen, device=device, dtype=dtype)
            cells = state.reshape(rows, n_cells)
            conf = torch.empty(rows, device=device, dtype=dtype)
            for s, e in spans(rows, k.perturbations_per_eval * batch):
                idx = example[s:e]
                masks, _ = design.render(cells[s:e], None, idx)
                perturbed = tuple(
                    mix(x, b, m, idx) for x, b, m in zip(inputs, bases, masks, strict=True)
                )
                conf[s:e] = runner(perturbed, idx)
                bar.update()
            p = conf.reshape(batch, nc)
            new_on = chain_step(on, p, keys, k.n1, k.n2)
            dp = (p - p_prev).abs()
            tv = ((state @ lap) * state).sum(-1)  # V(M_{i-1}), one number per chain
            new = torch.where(new_on, state * dp.unsqueeze(-1), 0.0)
            new = new + eta * tv.unsqueeze(-1) * state
            state = new / new.amax(-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
            on, p_prev = new_on, p
        total += state.sum(1)
    bar.close()
    return design.to_attr(total / k.n_chains, from_cells=True)
