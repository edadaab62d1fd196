"""Reproducible CPU training of the shipped digits-in-clutter classifier and patch GAN.

Usage::

    python -m captum_perturbmask.data.train --out captum_perturbmask/data/weights \\
        [--seed 0] [--what classifier|gan|all]

Writes ``classifier.pt``, ``generator.pt``, ``discriminator.pt`` (state dicts) and
``training_log.json`` (accuracy, epochs/steps, seconds, seed, command, torch version) to
``--out``. Everything is seeded from ``--seed``; the run uses ``--threads`` CPU threads
(default 1, the fastest on a shared machine) and deterministic algorithms, so a rerun with the
same thread count, machine and torch version reproduces the weights (the log records them).
Each model trains in a few minutes on a CPU core.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from captum_perturbmask.data.digits import digit_split_indices, make_digits_clutter, paste_patches
from captum_perturbmask.data.models import DigitsCNN, Discriminator, Generator

__all__ = [
    "evaluate_classifier",
    "gan_sanity",
    "main",
    "train_classifier",
    "train_gan",
]


def _log(msg: str) -> None:
    print(msg, flush=True)


@torch.no_grad()
def evaluate_classifier(model: torch.nn.Module, seed: int = 0, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on the held-out test split (one image per test digit).

    Args:
        model: A classifier of :math:`(B, 3, 64, 64)` images (put in eval mode here).
        seed: Seed of the test images (placement and clutter).
        batch_size: Evaluation batch size.

    Returns:
        Accuracy in :math:`[0, 1]`.

    Example:
        >>> from captum_perturbmask.data.models import load_default_classifier
        >>> evaluate_classifier(load_default_classifier()) > 0.9
        True
    """
    model.eval()
    ds = make_digits_clutter("test", seed=seed)
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(ds), batch_size):
        x = ds.images[i : i + batch_size].to(device)
        correct += int((model(x).argmax(1).cpu() == ds.labels[i : i + batch_size]).sum())
    return correct / len(ds)


def train_classifier(
    seed: int = 0,
    epochs: int = 12,
    n_per_epoch: int = 6000,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> tuple[DigitsCNN, dict]:
    """Train a :class:`DigitsCNN` on freshly generated train-split images every epoch.

    Args:
        seed: Seed of the initialisation, the batches and the generated images.
        epochs: Number of epochs.
        n_per_epoch: Images generated per epoch (new placements and clutter each epoch).
        batch_size: Batch size.
        lr: Peak learning rate of the one-cycle AdamW schedule.

    Returns:
        The trained model (eval mode) and a log dict.
    """
    torch.manual_seed(seed)
    model = DigitsCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(n_per_epoch / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2
    )
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for epoch in range(epochs):
        ds = make_digits_clutter("train", n=n_per_epoch, seed=1_000_003 * (seed + 1) + epoch)
        perm = torch.randperm(len(ds), generator=gen)
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(ds), batch_size):
            idx = perm[i : i + batch_size]
            x, y = ds.images[idx], ds.labels[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            total += len(idx)
        acc = evaluate_classifier(model)
        _log(
            f"[classifier] epoch {epoch + 1}/{epochs} loss {loss_sum / total:.4f} "
            f"train acc {correct / total:.4f} test acc {acc:.4f} ({time.time() - t0:.0f}s)"
        )
    acc = evaluate_classifier(model)
    log = {
        "test_accuracy": acc,
        "test_images": len(digit_split_indices("test")),
        "epochs": epochs,
        "images_per_epoch": n_per_epoch,
        "batch_size": batch_size,
        "lr": lr,
        "seconds": round(time.time() - t0, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return model.eval(), log


def train_gan(
    seed: int = 0,
    steps: int = 6000,
    batch_size: int = 64,
    pool_size: int = 12000,
    lr: float = 2e-4,
    ema_decay: float = 0.999,
    bn_batches: int = 20,
) -> tuple[Generator, Discriminator, dict]:
    """Train the DCGAN on :math:`32 \\times 32` train-split patches (non-saturating loss).

    Args:
        seed: Seed of the initialisation, latents, batches and generated images.
        steps: Number of generator/discriminator update pairs.
        batch_size: Batch size.
        pool_size: Number of real train-split patches, generated once and reshuffled per pass.
        lr: Adam learning rate (betas 0.5, 0.999).
        ema_decay: Decay of the exponential moving average of the generator weights; the
            averaged generator (BatchNorm statistics recomputed) is the one returned.
        bn_batches: Batches of 256 latents used to recompute those BatchNorm statistics.

    Returns:
        The trained (averaged) generator and discriminator (eval mode) and a log dict.
    """
    torch.manual_seed(seed)
    g, d = Generator(), Discriminator()
    g_ema = copy.deepcopy(g).requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed + 1)
    t0 = time.time()
    chunks = [
        make_digits_clutter(
            "train", n=min(2000, pool_size), seed=2_000_003 * (seed + 1) + i
        ).patches()
        for i in range(math.ceil(pool_size / 2000))
    ]
    pool = torch.cat(chunks)[:pool_size]
    order, pos = torch.randperm(pool_size, generator=gen), 0
    for step in range(steps):
        if pos + batch_size > pool_size:
            order, pos = torch.randperm(pool_size, generator=gen), 0
        real = pool[order[pos : pos + batch_size]]
        pos += batch_size
        z = torch.randn(batch_size, g.latent_dim, generator=gen)
        fake = g(z)
        # Discriminator: one-sided label smoothing (real target 0.9).
        loss_d = F.binary_cross_entropy_with_logits(
            d(real), torch.full((batch_size,), 0.9)
        ) + F.binary_cross_entropy_with_logits(d(fake.detach()), torch.zeros(batch_size))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(d(fake), torch.ones(batch_size))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            decay = min(ema_decay, (step + 1) / (step + 10))
            for p_ema, p in zip(g_ema.parameters(), g.parameters(), strict=True):
                p_ema.lerp_(p, 1.0 - decay)
        if (step + 1) % 250 == 0 or step == 0:
            _log(
                f"[gan] step {step + 1}/{steps} loss_d {float(loss_d.detach()):.3f} "
                f"loss_g {float(loss_g.detach()):.3f} ({time.time() - t0:.0f}s)"
            )
    # BatchNorm statistics of the averaged weights: recompute them (cumulative average).
    for m in g_ema.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    g_ema.train()
    with torch.no_grad():
        for _ in range(bn_batches):
            g_ema(torch.randn(256, g.latent_dim, generator=gen))
    for m in g_ema.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    log = {
        "steps": steps,
        "ema_decay": ema_decay,
        "batch_size": batch_size,
        "lr": lr,
        "seconds": round(time.time() - t0, 1),
        "generator_parameters": sum(p.numel() for p in g.parameters()),
        "discriminator_parameters": sum(p.numel() for p in d.parameters()),
    }
    return g_ema.eval(), d.eval(), log


@torch.no_grad()
def gan_sanity(
    g: Generator,
    d: Discriminator,
    classifier: torch.nn.Module,
    n: int = 256,
    seed: int = 0,
    threshold: float = 0.9,
) -> dict[str, float]:
    """Honest, measurable GAN checks.

    * ``confident_fraction``: generated patches pasted into held-out test canvases (replacing
      the digit patch) that ``classifier`` assigns some class with softmax :math:`\\ge`
      ``threshold``.
    * ``real_confident_fraction``: the same for the real test patches (the reference).
    * ``d_real_minus_noise``: mean discriminator logit of real test patches minus that of
      uniform-noise patches.
    * ``class_entropy_bits``: entropy of the predicted-class histogram of the confident
      generated samples (diversity; :math:`\\log_2 10 \\approx 3.32` is uniform).

    Args:
        g: Generator.
        d: Discriminator.
        classifier: Classifier of :math:`(B, 3, 64, 64)` canvases.
        n: Number of test canvases / generated patches.
        seed: Seed of the canvases, latents and noise.
        threshold: Confidence threshold.

    Returns:
        A dict with the four numbers.
    """
    g.eval(), d.eval(), classifier.eval()
    gen = torch.Generator().manual_seed(seed)
    ds = make_digits_clutter("test", n=n, seed=seed)
    fake = g(torch.randn(n, g.latent_dim, generator=gen))
    p_fake = classifier(paste_patches(ds.images, fake, ds.patch_boxes)).softmax(1)
    p_real = classifier(ds.images).softmax(1)
    conf_fake = p_fake.max(1).values >= threshold
    hist = torch.bincount(p_fake.argmax(1)[conf_fake], minlength=10).double()
    prob = hist / hist.sum().clamp_min(1)
    entropy = abs(float((prob[prob > 0] * prob[prob > 0].log2()).sum()))
    noise = torch.rand(n, 3, 32, 32, generator=gen)
    return {
        "confident_fraction": float(conf_fake.float().mean()),
        "real_confident_fraction": float((p_real.max(1).values >= threshold).float().mean()),
        "d_real_minus_noise": float(d(ds.patches()).mean() - d(noise).mean()),
        "class_entropy_bits": entropy,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status (0).
    """
    parser = argparse.ArgumentParser(prog="python -m captum_perturbmask.data.train")
    parser.add_argument("--out", type=Path, required=True, help="output folder for *.pt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--what", choices=("classifier", "gan", "all"), default="all")
    parser.add_argument("--epochs", type=int, default=12, help="classifier epochs")
    parser.add_argument("--gan-steps", type=int, default=6000)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy box)"
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "training_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    common = {
        "seed": args.seed,
        "command": " ".join(["python -m captum_perturbmask.data.train", *(argv or sys.argv[1:])]),
        "torch_version": torch.__version__,
        "threads": args.threads,
    }

    if args.what in ("classifier", "all"):
        model, clog = train_classifier(seed=args.seed, epochs=args.epochs)
        torch.save(model.state_dict(), args.out / "classifier.pt")
        log["classifier"] = {**clog, **common}
        _log(f"[classifier] final test accuracy {clog['test_accuracy']:.4f}")
    if args.what in ("gan", "all"):
        g, d, glog = train_gan(seed=args.seed, steps=args.gan_steps)
        torch.save(g.state_dict(), args.out / "generator.pt")
        torch.save(d.state_dict(), args.out / "discriminator.pt")
        classifier = DigitsCNN()
        classifier.load_state_dict(torch.load(args.out / "classifier.pt", weights_only=True))
        glog["sanity"] = gan_sanity(g, d, classifier)
        log["gan"] = {**glog, **common}
        _log(f"[gan] sanity {glog['sanity']}")
    log_path.write_text(json.dumps(log, indent=2, sort_keys=True) + "\n")
    _log(f"wrote {log_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
