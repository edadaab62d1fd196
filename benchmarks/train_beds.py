"""Train the classifiers of the ``digits-b`` and ``photos`` beds (seeded, one CPU thread).

    python benchmarks/train_beds.py [--what digits-b photos] [--epochs N]

Each epoch draws fresh training images (the ``train`` split: other source digits, other photo
regions than the test images); weights go to ``benchmarks/.cache/<bed>.pt`` with a JSON log
(held-out accuracy, seconds, seed). ``beds.py`` calls :func:`train` when a weight file is
missing. About 1-3 minutes per model on one core.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import beds  # noqa: E402

SPECS = {
    # name: (model class, renderer, classes, epochs, images per epoch, test seed)
    "digits-b": (beds.ResNetB, beds.render_digits_b, 10, 6, 5000, 1),
    "photos": (beds.PhotoNet, beds.render_photos, len(beds.INSET_PHOTOS), 14, 5000, 2),
}


def train(name: str, epochs: int | None = None, seed: int = 0) -> dict:
    """Train bed ``name``'s classifier, save it under ``benchmarks/.cache`` and return its log."""
    cls, render, _, n_epochs, per_epoch, test_seed = SPECS[name]
    n_epochs = epochs or n_epochs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)  # a training script: model initialisation from the global RNG
    model = cls()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = n_epochs * math.ceil(per_epoch / 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for epoch in range(n_epochs):
        x, y, _ = render("train", per_epoch, seed=1000 * (seed + 1) + epoch)
        model.train()
        perm = torch.randperm(per_epoch, generator=g)
        total = 0.0
        for i in range(0, per_epoch, 64):
            idx = perm[i : i + 64]
            xb = x[idx]
            # light augmentation: brightness/contrast jitter (keeps the boxes valid)
            a = 1 + 0.2 * (torch.rand(len(idx), 1, 1, 1, generator=g) - 0.5)
            b = 0.1 * (torch.rand(len(idx), 1, 1, 1, generator=g) - 0.5)
            loss = F.cross_entropy(model((xb * a + b).clamp(0, 1)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        print(f"{name} epoch {epoch + 1}/{n_epochs} loss {total / per_epoch:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    model.eval()
    xt, yt, _ = render("test", 1000, seed=test_seed)
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).float().mean())
    log = {
        "bed": name, "test_accuracy": acc, "epochs": n_epochs, "images_per_epoch": per_epoch,
        "seconds": round(time.perf_counter() - t0, 1), "seed": seed,
        "torch": torch.__version__, "parameters": sum(p.numel() for p in model.parameters()),
    }  # fmt: skip
    beds.CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), beds.CACHE / f"{name}.pt")
    (beds.CACHE / f"{name}.json").write_text(json.dumps(log, indent=1))
    print(json.dumps(log), flush=True)
    torch.set_num_threads(threads)
    return log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--what", nargs="+", default=list(SPECS), choices=list(SPECS))
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for name in args.what:
        train(name, args.epochs, args.seed)


if __name__ == "__main__":
    main()
