"""A tiny image classifier and the model files made from it (exported, scripted, state dict),
shared by the loader and command-line tests."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


class TinyNet(nn.Module):
    """Conv, ReLU, global pooling, linear: ``(B, 3, H, W) -> (B, num_classes)``, any size."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def tiny_factory(num_classes: int = 3) -> TinyNet:
    """A seeded TinyNet (the same weights on every call)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return TinyNet(num_classes).eval()


def write_model_files(root: Path) -> dict[str, Path]:
    """TinyNet as a state dict (with class names), a torch.export program (dynamic batch and
    size; and a static 1 x 3 x 16 x 16 one) and a TorchScript file."""
    model = tiny_factory()
    files = {"state_dict": root / "tiny.pt", "named": root / "tiny_named.pt"}
    torch.save(model.state_dict(), files["state_dict"])
    torch.save({"state_dict": model.state_dict(), "class_names": ["ant", "bee", "cow"]},
               files["named"])  # fmt: skip
    batch = torch.export.Dim("batch", min=1, max=4096)
    height, width = torch.export.Dim("height", min=4), torch.export.Dim("width", min=4)
    example = (torch.rand(2, 3, 16, 16),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dynamic = torch.export.export(
            model, example, dynamic_shapes=({0: batch, 2: height, 3: width},)
        )
        files["export"] = root / "tiny.pt2"
        torch.export.save(dynamic, files["export"])
        static = torch.export.export(model, (torch.rand(1, 3, 16, 16),))
        files["export_static"] = root / "tiny_static.pt2"
        torch.export.save(static, files["export_static"])
        files["torchscript"] = root / "tiny_scripted.pt"
        torch.jit.save(torch.jit.script(model), files["torchscript"])
    return files
