"""Shared pieces of the quality, convergence and ablation benchmarks (not part of the package)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from captum_perturbmask.metrics import (
    box_iou,
    insertion_deletion,
    mean_ci,
    pointing_game,
    run_consistency,
    saliency_box,
)


def fmt(values: Tensor | None, digits: int = 3) -> str:
    """Mean ± half-width of the normal 95% interval of ``values``."""
    if values is None:
        return "–"
    m, h, _ = mean_ci(values)
    return f"{m:.{digits}f} ± {h:.{digits}f}" if not math.isnan(h) else f"{m:.{digits}f}"


class _EvidenceMap(nn.Module):
    """(x - 0.5) * pattern summed over channels: a (B, 1, H, W) map, zero outside the box."""

    def __init__(self, pattern: Tensor) -> None:
        super().__init__()
        self.register_buffer("pattern", pattern)

    def forward(self, x: Tensor) -> Tensor:
        return ((x - 0.5) * self.pattern).sum(1, keepdim=True)


class PlantedModel(nn.Module):
    """Planted-evidence model: class-0 logit = correlation with a ±1 pattern in a known box.

    ``self.evidence`` is the layer Grad-CAM is computed on.
    """

    def __init__(self, box: tuple[int, int, int, int], size: int, strength: float, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        t, l, h, w = box
        self.box = box
        full = torch.zeros(3, size, size)
        full[:, t : t + h, l : l + w] = torch.randint(0, 2, (3, h, w), generator=g) * 2.0 - 1
        self.evidence = _EvidenceMap(full)
        self.scale = 2.0 * strength / (3 * h * w)

    def forward(self, x: Tensor) -> Tensor:
        ev = self.evidence(x).flatten(1).sum(1) * self.scale
        return torch.stack([ev, -ev, torch.zeros_like(ev)], 1)


def planted_bed(n_models: int, per_model: int, size: int = 64, seed: int = 1234):
    """Planted models with 16x16 evidence boxes at random (grid-misaligned) places."""
    g = torch.Generator().manual_seed(seed)
    beds = []
    for k in range(n_models):
        t, l = torch.randint(2, size - 18, (2,), generator=g).tolist()
        strength = [2.0, 4.0, 8.0][k % 3]
        model = PlantedModel((t, l, 16, 16), size, strength, seed + k).eval()
        x = torch.rand(per_model, 3, size, size, generator=g) * 0.5
        pattern = model.evidence.pattern[:, t : t + 16, l : l + 16]
        x[:, :, t : t + 16, l : l + 16] = (pattern > 0).float()
        box = torch.tensor([[l, t, l + 16, t + 16]], dtype=torch.float32).expand(per_model, 4)
        beds.append((model, x, torch.zeros(per_model, dtype=torch.long), box.clone()))
    return beds


def score_maps(
    model: Callable[..., Tensor],
    x: Tensor,
    target: Tensor,
    boxes: Tensor | None,
    maps: Tensor,
    box_quantile: float = 0.9,
) -> dict[str, Tensor]:
    """Per-image insertion, deletion, IoU of the top-(1 - q) saliency box, pointing."""
    r = insertion_deletion(model, x, maps, target=target, batch_size=256)
    out = {"insertion": r.insertion, "deletion": r.deletion}
    if boxes is not None:
        sal = maps.sum(1)
        out["iou"] = box_iou(saliency_box(sal, threshold=box_quantile, mode="quantile"), boxes)
        out["pointing"] = pointing_game(maps, boxes).float()
    return out


def timed(fn: Callable[[], Tensor]) -> tuple[Tensor, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def consistency(maps: list[Tensor]) -> dict[str, Tensor]:
    rc = run_consistency([m.sum(1) for m in maps], top_k=0.05)
    return {"spearman": rc.spearman, "top5": rc.top_k_iou}
