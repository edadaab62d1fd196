"""Explicit randomness: private generators, never the global RNG."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from captum_perturbmask._core.checks import check_seed


def resolve_seed(seed: object) -> int:
    """``seed`` checked, or a fresh one drawn from the OS when ``None`` (global RNG untouched)."""
    checked = check_seed(seed)
    if checked is not None:
        return checked
    return int(torch.Generator().seed())


def make_generator(seed: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A private ``torch.Generator`` on ``device``, seeded with ``seed`` (fresh when ``None``).

    Example:
        >>> a = torch.rand(2, generator=make_generator(0))
        >>> torch.equal(a, torch.rand(2, generator=make_generator(0)))
        True
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(resolve_seed(seed))
    return gen


def private_global_rng(device: torch.device) -> AbstractContextManager:
    """Fork the global RNG (CPU, and ``device`` when CUDA) and restore it on exit.

    For third-party code that draws from the global RNG (Captum's ``Lime``): the caller may
    seed it inside the block without changing the user's random state.
    """
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
