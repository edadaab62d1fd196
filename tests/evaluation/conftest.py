"""Shared pieces of the evaluation tests: a tiny conv model, boxed items, methods."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from captum_perturbmask import PerturbMask


def make_tiny_model() -> nn.Module:
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 3))  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 2)
    return model.eval()


@pytest.fixture
def tiny_model() -> nn.Module:
    return make_tiny_model()


class Boxed(Dataset):
    """(image, target, box) items; target None for odd indices (the model's prediction)."""

    def __init__(self, n: int = 10) -> None:
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(n, 3, 8, 8, generator=g)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int):
        return self.x[i], (i % 3 if i % 2 == 0 else None), torch.tensor([1.0, 2.0, 5.0, 7.0])


def methods(model: nn.Module) -> dict:
    """A stochastic library method, a seeded noise map and a deterministic one."""
    return {
        "PerturbMask": lambda x, target, seed: PerturbMask(model).attribute(
            x, target=target, budget=40, seed=seed
        ),
        "noise": lambda x, target, seed: torch.rand(
            x.shape, generator=torch.Generator().manual_seed(seed)
        ),
        "pixels": lambda x, target, seed: x.clone(),
    }


def strip(records) -> list[str]:
    """Records without wall-clock seconds, in a canonical order."""
    out = []
    for r in records:
        r = dict(r)
        r.pop("seconds", None)
        out.append(json.dumps(r, sort_keys=True))
    return sorted(out)
