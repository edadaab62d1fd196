"""Explain a torchvision classifier's decision on a photo, with a local weights file.

Run ``python torchvision_photo.py [OUT_DIR]`` (default: ``$EXAMPLES_OUT`` or a temporary
folder). Offline: the model is built with random weights and saved to a temporary file so that
the script can load it the way you load your own file. ``BUDGET`` is small here so that the
script is quick; use the default (400) or more for maps you want to read.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
import torchvision
from matplotlib.figure import Figure
from sklearn.datasets import load_sample_image
from torch import nn
from torchvision.transforms.v2 import functional as TF

from captum_perturbmask import PerturbMask
from captum_perturbmask.metrics import insertion_deletion

out = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EXAMPLES_OUT") or tempfile.mkdtemp()
)
out.mkdir(parents=True, exist_ok=True)
BUDGET = 48  # forward passes per image; 400 (the default) or more for real use
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# --- 1. the weights file ----------------------------------------------------------------------
# Your own file replaces these two lines: a state dict saved with
# torch.save(model.state_dict(), "resnet18.pth") after training or fine-tuning.
torch.manual_seed(0)  # reproducible stand-in weights
weights_file = out / "resnet18.pth"
torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights_file)

net = torchvision.models.resnet18(weights=None)  # the architecture, no download
net.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True))


# --- 2. preprocessing: normalisation is the model's first layer -------------------------------
class Normalize(nn.Module):
    """ImageNet normalisation inside the model, so inputs and maps stay in pixel space [0, 1]."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


model = nn.Sequential(Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), net)
model = model.eval().to(device)  # eval mode: BatchNorm must not mix the perturbed copies

# class names ship inside torchvision as metadata of the weights enum (nothing is downloaded)
categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]

# --- 3. the photo: resize and crop outside the model, values in [0, 1] ------------------------
photo = torch.tensor(load_sample_image("china.jpg")).permute(2, 0, 1)  # (3, 427, 640) uint8
photo = TF.center_crop(TF.resize(photo, [224]), [224, 224])
x = (photo.float() / 255).unsqueeze(0).to(device)  # (1, 3, 224, 224) on the model's device

with torch.no_grad():
    probs = model(x).softmax(dim=1)
top = probs[0].topk(3)
for p, k in zip(top.values.tolist(), top.indices.tolist(), strict=True):
    print(f"{categories[k]:>20s}: {p:.4f}")
target = int(top.indices[0])

# --- 4. explain: `perturbations_per_eval` sets the batch, `budget` the cost -------------------
attr = PerturbMask(model).attribute(
    x,
    target=target,
    budget=BUDGET,  # forward passes per image (plus one clean pass)
    perturbations_per_eval=32,  # masked copies per forward call: memory, not the result
    seed=0,
)
saliency = attr[0].sum(0).cpu()  # (224, 224): the three channels share one mask

# --- 5. check the map and draw it -------------------------------------------------------------
scores = insertion_deletion(model, x, attr, target=target, n_steps=16)  # 2 x 17 forward passes
print(f"insertion AUC {scores.insertion.item():.3f}, deletion AUC {scores.deletion.item():.3f}")

fig = Figure(figsize=(7, 3.2), layout="constrained")
ax_photo, ax_map = fig.subplots(1, 2)
ax_photo.imshow(x[0].permute(1, 2, 0).cpu().numpy())
ax_photo.set_title(f"{categories[target]} (p={float(probs[0, target]):.3f})", fontsize=9)
ax_map.imshow(x[0].permute(1, 2, 0).cpu().numpy())
ax_map.imshow(saliency.numpy(), cmap="inferno", alpha=0.6)
ax_map.set_title(f"PerturbMask, {BUDGET} forward passes", fontsize=9)
for ax in (ax_photo, ax_map):
    ax.axis("off")
fig.savefig(out / "torchvision_photo.png", dpi=80)
torch.save(saliency, out / "saliency.pt")
print(f"wrote {out / 'torchvision_photo.png'}")
