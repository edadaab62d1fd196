"""Tiny seeded models and inputs shared by the generative tests (images and series)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from captum_perturbmask.generative import LatentVariations, VariationSettings

D_LATENT = 8
SIZE = 16
PATCH = 8
CHANNELS_1D = 2
LENGTH = 24
WINDOW = 10

#: The quick search of the tests: few restarts and steps.
QUICK = {"n_restarts": 6, "n_keep": 3, "n_steps": 15}


def run_args(seed: int | None = 0, **knobs: Any) -> dict[str, Any]:
    """``generate`` keywords of a quick seeded search, with ``knobs`` changed."""
    return {"settings": VariationSettings(**{**QUICK, **knobs}), "seed": seed}


FAST: dict[str, Any] = run_args()


def _seeded(seed: int) -> None:
    """Seed module initialisation without touching the caller's global RNG state."""
    torch.manual_seed(seed)


def full_generator() -> nn.Module:
    """(M, 8) -> (M, 3, 16, 16), with BatchNorm so that train mode would couple restarts."""
    with torch.random.fork_rng():
        _seeded(1)
        return nn.Sequential(
            nn.Linear(D_LATENT, 32),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.Linear(32, 3 * SIZE * SIZE),
            nn.Sigmoid(),
            nn.Unflatten(1, (3, SIZE, SIZE)),
        )


class PatchGenerator(nn.Module):
    """(M, 8, 1, 1) -> (M, 3, 8, 8) patch, DCGAN style."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            _seeded(2)
            self.latent_dim = D_LATENT
            self.net = nn.Sequential(
                nn.ConvTranspose2d(D_LATENT, 16, 4),
                nn.BatchNorm2d(16),
                nn.ReLU(),
                nn.ConvTranspose2d(16, 3, 4, 2, 1),
                nn.Sigmoid(),
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def discriminator() -> nn.Module:
    with torch.random.fork_rng():
        _seeded(3)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.3),
            nn.Flatten(),
            nn.Linear(8 * 4 * 4, 1),
        )


def classifier() -> nn.Module:
    with torch.random.fork_rng():
        _seeded(4)
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 5),
        )


def images(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))


def box_mask(n: int = 2, rows: slice = slice(5, 10), cols: slice = slice(4, 11)) -> torch.Tensor:
    m = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    m[:, rows, cols] = True
    return m


def outside_equal(out: LatentVariations, x: torch.Tensor) -> bool:
    """Variants bitwise equal to the inputs outside ``out.mask`` (images or series)."""
    keep = ~out.mask[:, None, None].expand_as(out.variants)
    ref = x[:, None].expand_as(out.variants)
    return torch.equal(out.variants[keep], ref[keep])


# --------------------------------------------------------------------------- series
def series_generator(length: int = LENGTH) -> nn.Module:
    """(M, 8) -> (M, 2, length) with Tanh: the tiny synthetic 1-D generator."""
    with torch.random.fork_rng():
        _seeded(6)
        return nn.Sequential(
            nn.Linear(D_LATENT, CHANNELS_1D * length),
            nn.Tanh(),
            nn.Unflatten(1, (CHANNELS_1D, length)),
        )


class ConvSeriesGenerator(nn.Module):
    """(M, 8, 1) -> (M, 2, 10) window, a ConvTranspose1d generator with BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            _seeded(7)
            self.net = nn.Sequential(
                nn.ConvTranspose1d(D_LATENT, 8, 5),
                nn.BatchNorm1d(8),
                nn.ReLU(),
                nn.ConvTranspose1d(8, CHANNELS_1D, 6),
                nn.Tanh(),
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def series_discriminator(length: int = WINDOW) -> nn.Module:
    with torch.random.fork_rng():
        _seeded(8)
        return nn.Sequential(
            nn.Conv1d(CHANNELS_1D, 4, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(4 * length, 1),
        )


def series_classifier(n_classes: int = 3) -> nn.Module:
    """(M, 2, 24) -> (M, n_classes) logits (n_classes = 1: one logit per series)."""
    with torch.random.fork_rng():
        _seeded(9)
        return nn.Sequential(
            nn.Conv1d(CHANNELS_1D, 4, 5, padding=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * LENGTH, n_classes),
        )


def series(n: int = 2) -> torch.Tensor:
    t = torch.linspace(0, 6.28, LENGTH)
    noise = torch.randn(n, CHANNELS_1D, LENGTH, generator=torch.Generator().manual_seed(10))
    return 0.5 * torch.sin(t) + 0.2 * noise


def span_mask(n: int = 2, start: int = 9, stop: int = 15) -> torch.Tensor:
    m = torch.zeros(n, LENGTH, dtype=torch.bool)
    m[:, start:stop] = True
    return m


# --------------------------------------------------------------------------- hygiene
def _clone(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clone()


def snapshot(models: list[nn.Module]) -> dict[str, Any]:
    """Everything a call must leave as it was: weights, buffers, modes, flags, grads, hooks."""
    return {
        "state": [{k: v.clone() for k, v in m.state_dict().items()} for m in models],
        "modes": [[s.training for s in m.modules()] for m in models],
        "flags": [[p.requires_grad for p in m.parameters()] for m in models],
        "grads": [[_clone(p.grad) for p in m.parameters()] for m in models],
        "hooks": [
            [
                (len(s._forward_hooks), len(s._forward_pre_hooks), len(s._backward_hooks))
                for s in m.modules()
            ]
            for m in models
        ],
    }


def assert_same_snapshot(before: dict[str, Any], after: dict[str, Any]) -> None:
    for sb, sa in zip(before["state"], after["state"], strict=True):
        assert sb.keys() == sa.keys()
        assert all(torch.equal(sb[k], sa[k]) for k in sb)
    assert before["modes"] == after["modes"]
    assert before["flags"] == after["flags"]
    assert before["hooks"] == after["hooks"]
    for gb, ga in zip(before["grads"], after["grads"], strict=True):
        for b, a in zip(gb, ga, strict=True):
            assert (b is None) == (a is None)
            assert b is None or torch.equal(a, b)
