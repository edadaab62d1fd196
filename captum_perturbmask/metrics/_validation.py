"""Shared argument checks and rank helpers for :mod:`captum_perturbmask.metrics`."""

from __future__ import annotations

import torch
from torch import Tensor

from captum_perturbmask._checks import check_fraction, check_int

__all__ = ["check_fraction", "check_int"]  # re-exported for the metric modules

#: Seed of the fixed pseudo-random permutation that breaks saliency ties when no
#: ``generator`` is given. Ties are broken in a position-independent but deterministic way,
#: so a constant map gets a chance-level score instead of one set by pixel order.
TIE_BREAK_SEED = 0


def check_tensor(x: object, name: str) -> Tensor:
    """Raise ``TypeError`` unless ``x`` is a tensor; return it."""
    if isinstance(x, tuple) and len(x) == 1 and isinstance(x[0], Tensor):
        x = x[0]  # Captum returns 1-tuples for tuple inputs
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}.")
    return x


def check_float_tensor(x: object, name: str) -> Tensor:
    """Raise unless ``x`` is a floating-point tensor holding only finite values."""
    x = check_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {x.dtype}.")
    check_finite(x, name)
    return x


def check_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinity (one host sync)."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"`{name}` must be finite, but it contains NaN or infinite values.")


def aggregate_saliency(attributions: object, input_shape: torch.Size | None, name: str) -> Tensor:
    """Reduce Captum-shaped attributions to one saliency value per pixel / time step.

    Args:
        attributions: Attributions of shape :math:`(B, C, *S)`, :math:`(B, 1, *S)` or
            :math:`(B, *S)` where :math:`S` is :math:`(H, W)` or :math:`(T,)`.
        input_shape: Shape :math:`(B, C, *S)` of the explained inputs, or ``None`` to accept
            :math:`(B, C, H, W)`, :math:`(B, 1, H, W)` or :math:`(B, H, W)` images.
        name: Argument name used in error messages.

    Returns:
        Saliency of shape :math:`(B, *S)`; channels are summed.
    """
    attr = check_float_tensor(attributions, name)
    if input_shape is None:
        if attr.ndim == 4:
            return attr.sum(dim=1)
        if attr.ndim == 3:
            return attr
        raise ValueError(
            f"`{name}` must have shape (B, C, H, W), (B, 1, H, W) or (B, H, W), "
            f"got {tuple(attr.shape)}."
        )
    batch, spatial = input_shape[0], tuple(input_shape[2:])
    shape = tuple(attr.shape)
    allowed = {(batch, input_shape[1], *spatial), (batch, 1, *spatial)}
    if shape in allowed:
        return attr.sum(dim=1)
    if shape == (batch, *spatial):
        return attr
    raise ValueError(
        f"`{name}` must have the input's shape {tuple(input_shape)}, or {(batch, 1, *spatial)} "
        f"or {(batch, *spatial)}, got {shape}."
    )


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
