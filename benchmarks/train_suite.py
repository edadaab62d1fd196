"""Train the models of the benchmark suite's beds (seeded, one CPU thread).

    python benchmarks/train_suite.py [--beds NAME ...] [--force]

Image beds draw fresh training images each epoch (``digits-b`` and ``photos`` are trained by
``train_beds.py``'s own recipe); series beds train on their set's training split. Weights go to
``benchmarks/.cache/<bed>.pt`` with a JSON log ``<bed>.json`` (held-out accuracy, seconds,
seed). ``beds_suite`` calls :func:`train` when a weight file is missing. Under about two
minutes per model on one core.
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
import beds_series  # noqa: E402
import beds_suite  # noqa: E402
import train_beds  # noqa: E402

#: image beds: name -> (epochs, images per epoch, peak learning rate)
IMAGE_RECIPES = {
    "objects-cnn": (6, 3000, 3e-3),
    "objects-resnet": (6, 3000, 3e-3),
    "digits-vit": (24, 3000, 1e-3),
}
#: series beds: name -> (set, arch, epochs)
SERIES_RECIPES = {
    "gunpoint-inception": ("gunpoint", "inception", 200),
    "italypower-cnn": ("italypower", "cnn", 60),
    "osuleaf-cnn": ("osuleaf", "cnn", 80),
    "acsf1-cnn": ("acsf1", "cnn", 80),
    "japanesevowels-gru": ("japanesevowels", "gru", 60),
    "basicmotions-gru": ("basicmotions", "gru", 80),
    "arrowhead-inception": ("arrowhead", "inception", 300),
}


def _train_images(name: str, seed: int) -> tuple[torch.nn.Module, dict]:
    cls, render = beds_suite.RENDERED[name][:2]
    epochs, per_epoch, lr = IMAGE_RECIPES[name]
    torch.manual_seed(seed)  # a training script: initialisation from the global RNG
    model = cls()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(per_epoch / 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        # train split, a seed per (bed family, epoch): never the held-out seed
        x, y, _ = render("train", per_epoch, seed=5000 + 100 * (seed + 1) + epoch)
        model.train()
        perm = torch.randperm(per_epoch, generator=g)
        total = 0.0
        for i in range(0, per_epoch, 64):
            idx = perm[i : i + 64]
            a = 1 + 0.2 * (torch.rand(len(idx), 1, 1, 1, generator=g) - 0.5)
            b = 0.1 * (torch.rand(len(idx), 1, 1, 1, generator=g) - 0.5)
            loss = F.cross_entropy(model((x[idx] * a + b).clamp(0, 1)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        print(f"{name} epoch {epoch + 1}/{epochs} loss {total / per_epoch:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    model.eval()
    log = {"epochs": epochs, "images_per_epoch": per_epoch, "lr": lr,
           "seconds": round(time.perf_counter() - t0, 1), "seed": seed}  # fmt: skip
    return model, log


def train(name: str, seed: int = 0) -> dict:
    """Train bed ``name``'s model, save it under ``benchmarks/.cache`` and return its log.

    Raises:
        ValueError: the bed has nothing to train (shipped or planted model) or is unknown.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if name in train_beds.SPECS:  # digits-b, photos: beds.py's recipe
            return train_beds.train(name, seed=seed)
        if name in IMAGE_RECIPES:
            model, log = _train_images(name, seed)
        elif name in SERIES_RECIPES:
            set_name, arch, epochs = SERIES_RECIPES[name]
            model, log = beds_series.train_series(set_name, arch, epochs, seed=seed)
        else:
            raise ValueError(f"bed {name!r} has no model to train")
        beds_suite.CACHE.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), beds_suite.CACHE / f"{name}.pt")
        x, y, _ = beds_suite.BEDS[name].source.test()
        acc = float((beds_suite.predict(model, x) == y).float().mean())
        log = {"bed": name, "test_accuracy": round(acc, 4), "n_test": len(y), **log,
               "torch": torch.__version__,
               "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip
        (beds_suite.CACHE / f"{name}.json").write_text(json.dumps(log, indent=1))
        print(json.dumps(log), flush=True)
        return log
    finally:
        torch.set_num_threads(threads)


def trainable() -> list[str]:
    """The beds whose model is trained here (the others are shipped or planted)."""
    return [n for n, b in beds_suite.BEDS.items() if b.source.trained]


def train_missing(names: list[str] | None = None, force: bool = False) -> list[dict]:
    """Train every bed of ``names`` (default all) whose weights are missing."""
    logs = []
    for name in names or trainable():
        bed = beds_suite.BEDS[name]
        if bed.source.trained and (force or not bed.is_trained()):
            logs.append(train(name))
    return logs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beds", nargs="+", default=None, help="bed names or groups")
    ap.add_argument("--force", action="store_true", help="train again when weights exist")
    args = ap.parse_args(argv)
    names = None if args.beds is None else [b.name for b in beds_suite.select(args.beds)]
    train_missing(names, args.force)


if __name__ == "__main__":
    main()
