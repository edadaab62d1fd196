"""Planted-evidence models: the output depends only on a known region of the input."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PlantedImageModel(nn.Module):
    """Class-0 logit = correlation of the input with a fixed +-1 pattern inside ``box``.

    ``box`` = (top, left, height, width); the box need not line up with any mask grid.
    ``strength`` is the class-0 logit on the full evidence (large values saturate the softmax).
    """

    def __init__(
        self,
        box: tuple[int, int, int, int],
        channels: int = 3,
        seed: int = 0,
        strength: float = 4.0,
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        t, l, h, w = box
        self.box = box
        self.register_buffer(
            "pattern", torch.randint(0, 2, (channels, h, w), generator=g) * 2.0 - 1
        )
        self.scale = 2.0 * strength / (channels * h * w)

    def evidence_image(self, n: int, size: int, generator: torch.Generator) -> Tensor:
        x = torch.rand(n, self.pattern.shape[0], size, size, generator=generator) * 0.5
        t, l, h, w = self.box
        x[:, :, t : t + h, l : l + w] = (self.pattern > 0).float()
        return x

    def forward(self, x: Tensor) -> Tensor:
        t, l, h, w = self.box
        region = x[:, :, t : t + h, l : l + w] - 0.5
        ev = (region * self.pattern).flatten(1).sum(1) * self.scale
        return torch.stack([ev, -ev, torch.zeros_like(ev)], 1)


class PlantedSeriesModel(nn.Module):
    """Class-0 logit = weighted sum of the series inside ``[start, stop)``."""

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: Tensor) -> Tensor:
        ev = x[:, :, self.start : self.stop].mean((1, 2)) * 6.0 - 3.0
        return torch.stack([ev, -ev], 1)
