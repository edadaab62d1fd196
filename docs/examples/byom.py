"""Bring your own model: one loader for a torchvision name, a torch.export file, a TorchScript
file, your own factory, timm and a Hugging Face folder; every model explained the same way.

Run ``python byom.py [OUT_DIR]`` (default: ``$EXAMPLES_OUT`` or a temporary folder). Offline:
every model is built here with random weights and saved the way you would save yours; timm
and Hugging Face ``transformers`` are skipped when they are not installed. ``BUDGET`` is small
so that the script is quick; use the default (400) or more for maps you want to read.
"""

import importlib.util
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import torchvision
from sklearn.datasets import load_sample_image
from torch import nn
from torchvision.transforms.v2 import functional as TF

from captum_perturbmask import PerturbMask
from captum_perturbmask.cli import main as cli
from captum_perturbmask.loaders import load_model

out = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EXAMPLES_OUT") or tempfile.mkdtemp()
)
out.mkdir(parents=True, exist_ok=True)
BUDGET = 32  # forward passes per image; 400 (the default) or more for real use
torch.manual_seed(0)  # reproducible stand-in weights
photo = torch.tensor(load_sample_image("china.jpg")).permute(2, 0, 1)  # (3, 427, 640) uint8
x = TF.resize(photo, [64], antialias=True).float().unsqueeze(0) / 255  # (1, 3, 64, 96) in [0, 1]
models = {}  # spec -> (model, class names)

# --- 1. a torchvision name and your weights file ----------------------------------------------
torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), out / "resnet18_5.pt")
models["resnet18"] = load_model("resnet18", weights=out / "resnet18_5.pt", num_classes=5)
# weights="DEFAULT" downloads torchvision's weights and returns their 1000 category names


# --- 2. your own architecture, as a factory ---------------------------------------------------
(out / "my_models.py").write_text(
    '''import torch
from torch import nn


class SmallNet(nn.Module):
    """Two convolutions, global pooling, a linear head: any image size."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def build(num_classes: int = 3) -> SmallNet:
    return SmallNet(num_classes)
'''
)
sys.path.insert(0, str(out))  # my_models is importable, as your package is
from my_models import build  # noqa: E402

net = build().eval()
torch.save(
    {"state_dict": net.state_dict(), "class_names": ["pagoda", "palace", "temple"]},
    out / "small.pt",  # a checkpoint may carry the class names next to the weights
)
models["my_models:build"] = load_model("my_models:build", weights=out / "small.pt")

# --- 3. a torch.export program and a TorchScript file -----------------------------------------
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torch.jit's deprecation notice
    batch = torch.export.Dim("batch", min=1, max=4096)
    height, width = torch.export.Dim("height", min=8), torch.export.Dim("width", min=8)
    dynamic = ({0: batch, 2: height, 3: width},)  # any batch and size; else only the example's
    program = torch.export.export(net, (torch.rand(8, 3, 32, 48),), dynamic_shapes=dynamic)
    torch.export.save(program, out / "small.pt2")
    torch.jit.save(torch.jit.script(net), out / "small_scripted.pt")
models["small.pt2"] = load_model(out / "small.pt2")  # a file of the whole model: no weights
models["small_scripted.pt"] = load_model(out / "small_scripted.pt")

# --- 4. timm ----------------------------------------------------------------------------------
if importlib.util.find_spec("timm") is not None:
    import timm

    torch.save(timm.create_model("resnet18", num_classes=4).state_dict(), out / "timm18.pt")
    models["timm:resnet18"] = load_model("timm:resnet18", weights=out / "timm18.pt", num_classes=4)
else:
    print("timm is not installed (pip install timm): skipped")

# --- 5. a Hugging Face transformers image classifier from a local folder ----------------------
if importlib.util.find_spec("transformers") is not None:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
    from transformers.utils import logging

    logging.disable_progress_bar()

    labels = ["bridge", "garden", "roof"]
    config = ViTConfig(
        image_size=64, patch_size=16, num_hidden_layers=2, hidden_size=32,
        num_attention_heads=2, intermediate_size=64, num_labels=3,
        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
    )  # fmt: skip
    ViTForImageClassification(config).save_pretrained(out / "tiny-vit")  # your fine-tuned model
    ViTImageProcessor(image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(out / "tiny-vit")
    models[f"hf:{out / 'tiny-vit'}"] = load_model(f"hf:{out / 'tiny-vit'}")
else:
    print("transformers is not installed (pip install transformers): skipped")

# --- 6. explain every model the same way ------------------------------------------------------
square = TF.center_crop(x, [64, 64])  # the ViT takes 64 x 64 only; the others take any size
rows = ["| model | loaded as | first layer | class names | explained class | p |", "|---" * 6 + "|"]
for spec, (model, names) in models.items():
    inputs = square if spec.startswith("hf:") else x
    with torch.no_grad():
        probs = model(inputs).softmax(1)
    target = int(probs.argmax(1))
    attr = PerturbMask(model).attribute(inputs, target=target, budget=BUDGET, seed=0)
    assert attr.shape == inputs.shape and bool(torch.isfinite(attr).all())
    first = type(model[0]).__name__ if isinstance(model, nn.Sequential) else "-"
    shown = f"{target} ({names[target]})" if names else str(target)
    name = Path(spec[3:]).name if spec.startswith("hf:") else spec
    rows.append(
        f"| `{'hf:' if spec.startswith('hf:') else ''}{name}` | {type(model).__name__} | "
        f"{first} | {'yes' if names else 'no'} | {shown} | {float(probs[0, target]):.3f} |"
    )
(out / "byom.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))

# --- 7. the same models from the command line -------------------------------------------------
photos = out / "photos"
photos.mkdir(exist_ok=True)
for i, side in enumerate((64, 80)):
    TF.to_pil_image(TF.resize(photo, [side], antialias=True)).save(photos / f"china_{i}.png")
(out / "names.txt").write_text("pagoda\npalace\ntemple\n")
status = cli(
    ["explain", str(photos), "--model", "my_models:build", "--weights", str(out / "small.pt"),
     "--class-names", str(out / "names.txt"), "--size", "48", "--budget", str(BUDGET),
     "--batch-size", "4", "--method", "rise", "--out", str(out / "explained")]
)  # fmt: skip
assert status == 0 and (out / "explained" / "index.html").is_file()
print(f"wrote {out / 'byom.md'} and {out / 'explained' / 'index.html'}")
