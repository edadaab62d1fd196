"""The digits-in-clutter classifier: :class:`~captum_perturbmask.data.DigitsCNN` trained on
freshly generated train-split images every epoch (``classifier.pt``)."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from captum_perturbmask.data.digits import digit_split_indices, make_digits_clutter
from captum_perturbmask.data.models import DigitsCNN
from tools.train_weights.settings import log_line, seeded_init

__all__ = ["evaluate_classifier", "train_classifier"]


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
        >>> from captum_perturbmask.data import load_default_classifier
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
    """Train a :class:`~captum_perturbmask.data.DigitsCNN` on freshly generated train-split
    images every epoch.

    Args:
        seed: Seed of the initialisation, the batches and the generated images.
        epochs: Number of epochs.
        n_per_epoch: Images generated per epoch (new placements and clutter each epoch).
        batch_size: Batch size.
        lr: Peak learning rate of the one-cycle AdamW schedule.

    Returns:
        The trained model (eval mode) and a log dict.
    """
    model = seeded_init(seed, DigitsCNN)
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
        log_line(
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
