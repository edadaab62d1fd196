"""Orders and ranks of saliency maps, with deterministic, position-independent tie-breaking."""

from __future__ import annotations

import torch
from torch import Tensor

#: Seed of the fixed pseudo-random permutation that breaks saliency ties when no
#: ``generator`` is given. Ties are broken in a position-independent but deterministic way,
#: so a constant map gets a chance-level score instead of one set by pixel order.
TIE_BREAK_SEED = 0


def tie_break_permutation(
    n: int, device: torch.device, generator: torch.Generator | None = None
) -> Tensor:
    """Pseudo-random permutation of ``range(n)`` used to break saliency ties.

    Drawn from ``generator`` if given, else from a fixed seed (:data:`TIE_BREAK_SEED`), so
    results are reproducible and do not depend on pixel order.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(TIE_BREAK_SEED)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator, got {type(generator).__name__}.")
    perm = torch.randperm(n, generator=generator, device=generator.device)
    return perm.to(device)


def descending_order(flat: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Indices sorting each row of ``flat`` :math:`(B, N)` by descending value.

    Ties are broken by a shared pseudo-random permutation (see
    :func:`tie_break_permutation`): among equal values, the element that comes first in the
    permutation comes first.
    """
    perm = tie_break_permutation(flat.shape[-1], flat.device, generator)
    order_in_perm = torch.sort(flat[:, perm], dim=1, descending=True, stable=True).indices
    return perm[order_in_perm]


def rank_map(flat: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Rank (0 = most salient) of every element of each row of ``flat`` :math:`(B, N)`."""
    order = descending_order(flat, generator)
    ranks = torch.empty_like(order)
    arange = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return ranks.scatter_(1, order, arange)
