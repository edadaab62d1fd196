"""Reproducible CPU training of the shipped models.

Usage::

    python -m captum_perturbmask.data.train --out captum_perturbmask/data/weights \\
        [--seed 0] [--what classifier|gan|digits|series|all]

``digits`` (= ``classifier`` + ``gan``) writes ``classifier.pt``, ``generator.pt`` and
``discriminator.pt``; ``series`` writes ``series_classifier_gunpoint.pt``,
``series_classifier_planted.pt`` and ``series_generator.pt`` (GunPoint, needs the
``timeseries`` extra); ``all`` does both. Every run updates ``training_log.json`` (accuracy,
epochs/steps, seconds, seed, command, torch version) in ``--out``.

Everything is seeded from ``--seed``; the run uses ``--threads`` CPU threads (default 1, the
fastest on a shared machine) and deterministic algorithms, so a rerun with the same thread
count, machine and torch version reproduces the weights (the log records them). Each model
trains in a few minutes or less on a CPU core.
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
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from captum_perturbmask._core.random import private_global_rng
from captum_perturbmask.data.digits import digit_split_indices, make_digits_clutter, paste_patches
from captum_perturbmask.data.models import (
    DigitsCNN,
    Discriminator,
    Generator,
    SeriesCNN,
    SeriesGenerator,
)
from captum_perturbmask.data.series import (
    GUNPOINT_1NN_DTW_ACCURACY,
    SeriesSet,
    load_gunpoint,
    make_planted_series,
)

__all__ = [
    "evaluate_classifier",
    "evaluate_series_classifier",
    "gan_sanity",
    "main",
    "series_generator_sanity",
    "train_classifier",
    "train_gan",
    "train_series_classifier",
    "train_series_generator",
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
    with private_global_rng(torch.device("cpu")):
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
        ema_decay: Decay of the exponential moving average of the generator weights
            (:class:`torch.optim.swa_utils.AveragedModel`, warm-up decay
            :math:`\\min(\\text{ema\\_decay}, (t + 1) / (t + 10))` at step :math:`t`); the
            averaged generator (BatchNorm statistics recomputed by
            :func:`torch.optim.swa_utils.update_bn`) is the one returned.
        bn_batches: Batches of 256 latents used to recompute those BatchNorm statistics.

    Returns:
        The trained (averaged) generator and discriminator (eval mode) and a log dict.
    """
    with private_global_rng(torch.device("cpu")):
        torch.manual_seed(seed)
        g, d = Generator(), Discriminator()

    def ema(
        averaged: torch.Tensor, current: torch.Tensor, n_averaged: torch.Tensor
    ) -> torch.Tensor:
        # Warm-up decay (n + 1) / (n + 10), capped at ema_decay; n counts the updates so far.
        decay = min(ema_decay, int(n_averaged) / (int(n_averaged) + 9))
        return averaged.lerp(current, 1.0 - decay)

    g_ema = AveragedModel(g, avg_fn=ema)
    g_ema.update_parameters(g)  # the initial weights are the average's starting point
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
        g_ema.update_parameters(g)
        if (step + 1) % 250 == 0 or step == 0:
            _log(
                f"[gan] step {step + 1}/{steps} loss_d {float(loss_d.detach()):.3f} "
                f"loss_g {float(loss_g.detach()):.3f} ({time.time() - t0:.0f}s)"
            )
    # BatchNorm statistics of the averaged weights: recompute them (cumulative average).
    g_avg = g_ema.module.requires_grad_(False)
    update_bn((torch.randn(256, g.latent_dim, generator=gen) for _ in range(bn_batches)), g_avg)
    log = {
        "steps": steps,
        "ema_decay": ema_decay,
        "batch_size": batch_size,
        "lr": lr,
        "seconds": round(time.time() - t0, 1),
        "generator_parameters": sum(p.numel() for p in g.parameters()),
        "discriminator_parameters": sum(p.numel() for p in d.parameters()),
    }
    return g_avg.eval(), d.eval(), log


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


# --------------------------------------------------------------------------------------------
# GunPoint series: a 1-D CNN per task and a VAE-decoder generator (PPCA as its baseline)
# --------------------------------------------------------------------------------------------
_SERIES_RECIPES: dict[str, dict[str, float]] = {
    # 50 real training series, 300 passes with light augmentation.
    "gunpoint": {"epochs": 300, "batch_size": 16, "n_per_epoch": 50},
    # Fresh planted-motif series every epoch, plus motif-free real series with a 50/50 target.
    "planted": {"epochs": 30, "batch_size": 64, "n_per_epoch": 1000},
}


def _shift(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Series :math:`(B, 1, T)` moved later by ``offsets`` :math:`(B,)` steps (earlier when
    negative), the edge values repeated."""
    t = x.shape[-1]
    idx = (torch.arange(t)[None, :] - offsets[:, None]).clamp(0, t - 1)
    return torch.gather(x, 2, idx[:, None, :])


def _augment_series(
    x: torch.Tensor, gen: torch.Generator, shift: int = 10, scale: float = 0.1, noise: float = 0.05
) -> torch.Tensor:
    """Random time shift by up to ``shift`` steps (edge values repeated), amplitude scaling by
    a factor in ``[1 - scale, 1 + scale]`` and Gaussian noise of standard deviation ``noise``."""
    b = x.shape[0]
    x = _shift(x, torch.randint(-shift, shift + 1, (b,), generator=gen))
    x = x * (1.0 + scale * (2.0 * torch.rand(b, 1, 1, generator=gen) - 1.0))
    return x + noise * torch.randn(x.shape, generator=gen)


@torch.no_grad()
def evaluate_series_classifier(
    model: torch.nn.Module, kind: str = "gunpoint", seed: int = 0
) -> float:
    """Accuracy of ``model`` on 150 held-out series.

    ``"gunpoint"``: the GunPoint test split (150 series, never used in training); ``"planted"``:
    the planted-motif test split (motifs on the 150 GunPoint test series, placement seed
    ``seed``).

    Args:
        model: A classifier of :math:`(B, 1, 150)` series (put in eval mode here).
        kind: ``"gunpoint"`` or ``"planted"``.
        seed: Seed of the planted-motif test set (ignored for ``"gunpoint"``).

    Returns:
        Accuracy in :math:`[0, 1]`.

    Example:
        >>> from captum_perturbmask.data.models import load_series_classifier
        >>> evaluate_series_classifier(load_series_classifier("gunpoint")) > 0.907
        True
    """
    if kind not in _SERIES_RECIPES:
        raise ValueError(f"kind must be 'gunpoint' or 'planted', got {kind!r}")
    ds = load_gunpoint("test") if kind == "gunpoint" else make_planted_series("test", seed=seed)
    return _accuracy(model, ds)


@torch.no_grad()
def _accuracy(model: torch.nn.Module, ds: SeriesSet) -> float:
    model.eval()
    device = next(model.parameters()).device
    pred = model(ds.series.to(device)).argmax(1).cpu()
    return float((pred == ds.labels).double().mean())


@torch.no_grad()
def _motif_free_deviation(model: torch.nn.Module) -> float:
    """Mean :math:`|p_1 - 1/2|` of ``model`` on the real GunPoint test series (no motif)."""
    model.eval()
    p = model(load_gunpoint("test").series).softmax(1)[:, 1]
    return float((p - 0.5).abs().mean())


def train_series_classifier(
    kind: str = "gunpoint",
    seed: int = 0,
    epochs: int | None = None,
    n_per_epoch: int | None = None,
    batch_size: int | None = None,
    lr: float = 3e-3,
    neutral_fraction: float = 0.25,
) -> tuple[SeriesCNN, dict]:
    """Train a :class:`SeriesCNN` on GunPoint (``"gunpoint"``) or planted motifs (``"planted"``).

    ``"gunpoint"``: the 50 training series, 300 epochs of batches of 16 with a random shift
    (up to 10 steps), amplitude scaling (:math:`\\pm 10\\%`) and noise (std 0.05).
    ``"planted"``: 1000 fresh planted-motif training series per epoch
    (:func:`~captum_perturbmask.data.make_planted_series`, new seed each epoch) with
    noise (std 0.05), and to every batch a ``neutral_fraction`` share of motif-free real
    training series (shifted and scaled) is added with the target :math:`(1/2, 1/2)`: the
    model must then find the motif of *either* class to be confident, so the evidence of both
    classes is the planted span. AdamW (weight decay 0.01) with a one-cycle schedule peaking
    at ``lr``. The test splits are used only for the final numbers in the log.

    Args:
        kind: ``"gunpoint"`` or ``"planted"``.
        seed: Seed of the initialisation, the batches, the augmentation and the planted sets.
        epochs: Number of epochs (default 300 for ``"gunpoint"``, 30 for ``"planted"``).
        n_per_epoch: Planted series per epoch (default 1000; ignored for ``"gunpoint"``).
        batch_size: Batch size (default 16 for ``"gunpoint"``, 64 for ``"planted"``).
        lr: Peak learning rate.
        neutral_fraction: Motif-free series added per planted batch, relative to its size.

    Returns:
        The trained model (eval mode) and a log dict.
    """
    if kind not in _SERIES_RECIPES:
        raise ValueError(f"kind must be 'gunpoint' or 'planted', got {kind!r}")
    recipe = _SERIES_RECIPES[kind]
    epochs = int(recipe["epochs"]) if epochs is None else epochs
    batch_size = int(recipe["batch_size"]) if batch_size is None else batch_size
    train = load_gunpoint("train")
    n_per_epoch = len(train) if kind == "gunpoint" else (n_per_epoch or int(recipe["n_per_epoch"]))
    with private_global_rng(torch.device("cpu")):
        torch.manual_seed(seed)
        model = SeriesCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    steps_per_epoch = math.ceil(n_per_epoch / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2
    )
    gen = torch.Generator().manual_seed(seed)
    n_neutral = round(neutral_fraction * batch_size) if kind == "planted" else 0
    t0 = time.time()
    for epoch in range(epochs):
        if kind == "gunpoint":
            x_all, y_all = train.series, train.labels
        else:
            ds = make_planted_series("train", n=n_per_epoch, seed=3_000_017 * (seed + 1) + epoch)
            x_all, y_all = ds.series, ds.labels
        perm = torch.randperm(n_per_epoch, generator=gen)
        model.train()
        loss_sum = 0.0
        for i in range(0, n_per_epoch, batch_size):
            idx = perm[i : i + batch_size]
            target = F.one_hot(y_all[idx], 2).float()
            if kind == "gunpoint":
                x = _augment_series(x_all[idx], gen)
            else:
                x = x_all[idx]
                if n_neutral:
                    j = torch.randint(0, len(train), (n_neutral,), generator=gen)
                    x = torch.cat([x, _augment_series(train.series[j], gen, noise=0.0)])
                    target = torch.cat([target, torch.full((n_neutral, 2), 0.5)])
                x = x + 0.05 * torch.randn(x.shape, generator=gen)
            loss = F.cross_entropy(model(x), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(x)
        if (epoch + 1) % max(1, epochs // 6) == 0 or epoch == 0:
            _log(
                f"[series {kind}] epoch {epoch + 1}/{epochs} train loss "
                f"{loss_sum / (n_per_epoch + n_neutral * steps_per_epoch):.4f} "
                f"({time.time() - t0:.0f}s)"
            )
    seconds = round(time.time() - t0, 1)
    model.eval()
    log: dict = {
        "kind": kind,
        "test_accuracy": evaluate_series_classifier(model, kind),
        "test_series": len(load_gunpoint("test")),
        "train_accuracy": _accuracy(
            model, train if kind == "gunpoint" else make_planted_series("train", seed=seed)
        ),
        "epochs": epochs,
        "series_per_epoch": n_per_epoch,
        "batch_size": batch_size,
        "lr": lr,
        "seconds": seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if kind == "gunpoint":
        log["reference_1nn_dtw_accuracy"] = GUNPOINT_1NN_DTW_ACCURACY
        log["reference"] = (
            "1-NN DTW, full window: test error 0.093 (Dau et al., The UCR Time Series Archive, "
            "2019)"
        )
    else:
        log["test_accuracy_seeds_1_2"] = [
            evaluate_series_classifier(model, kind, s) for s in (1, 2)
        ]
        log["neutral_fraction"] = neutral_fraction
        log["motif_free_mean_abs_deviation_from_half"] = _motif_free_deviation(model)
    return model, log


def _one_nn_dtw_accuracy() -> float:
    """Test accuracy of 1-NN full-window DTW on GunPoint, computed with aeon (the reference)."""
    from aeon.distances import dtw_pairwise_distance

    train, test = load_gunpoint("train"), load_gunpoint("test")
    dist = dtw_pairwise_distance(test.series.double().numpy(), train.series.double().numpy())
    pred = train.labels[torch.from_numpy(dist.argmin(axis=1))]
    return float((pred == test.labels).double().mean())


class _SeriesEncoder(nn.Module):
    """The VAE's amortised posterior :math:`q(z | x)`, used only in training: two strided
    convolutions and an MLP to the mean and log-variance, each :math:`(B, d)`."""

    def __init__(self, latent_dim: int, length: int = 150, hidden: int = 256) -> None:
        super().__init__()
        reduced = ((length - 1) // 2 + 1 - 1) // 2 + 1  # after two stride-2 convolutions
        self.net = nn.Sequential(
            nn.Conv1d(1, 16, 7, 2, 3),
            nn.ReLU(),
            nn.Conv1d(16, 32, 5, 2, 2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * reduced, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * latent_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.net(x).chunk(2, dim=1)
        return mean, log_var


def _znorm(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True, unbiased=False)


def train_series_generator(
    seed: int = 0,
    steps: int = 4000,
    batch_size: int = 64,
    latent_dim: int = 8,
    hidden: int = 256,
    lr: float = 1e-3,
    shift: int = 10,
) -> tuple[SeriesGenerator, dict]:
    """Train the VAE whose decoder is the shipped :class:`SeriesGenerator`.

    Every step draws ``batch_size`` GunPoint training series, shifts each by a random number
    of steps in ``[-shift, shift]`` (edge values repeated) and z-normalises it again; the loss
    is the negative ELBO with a Gaussian likelihood whose scale :math:`\\sigma` is learned
    (stored as the decoder's ``noise_std``) and a standard normal prior. Adam, constant
    ``lr``. The test split is not used.

    Args:
        seed: Seed of the initialisation, batches, shifts and reparameterisation noise.
        steps: Optimisation steps.
        batch_size: Batch size.
        latent_dim: Latent dimension :math:`d`.
        hidden: Hidden width of the decoder and encoder MLPs.
        lr: Adam learning rate.
        shift: Largest time shift of the augmentation.

    Returns:
        The trained decoder (eval mode) and a log dict.
    """
    train = load_gunpoint("train").series
    with private_global_rng(torch.device("cpu")):
        torch.manual_seed(seed)
        decoder = SeriesGenerator(latent_dim, train.shape[-1], hidden)
        encoder = _SeriesEncoder(latent_dim, train.shape[-1], hidden)
    log_sigma = torch.nn.Parameter(torch.tensor(-1.0))
    params = [*decoder.parameters(), *encoder.parameters(), log_sigma]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, train.shape[0], (batch_size,), generator=gen)
        x = _znorm(
            _shift(train[idx], torch.randint(-shift, shift + 1, (batch_size,), generator=gen))
        )
        mean, log_var = encoder(x)
        z = mean + torch.randn(mean.shape, generator=gen) * (0.5 * log_var).exp()
        nll = (((decoder(z) - x) / log_sigma.exp()).square() / 2 + log_sigma).sum((1, 2)).mean()
        kl = 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(1).mean()
        loss = nll + kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 500 == 0 or step == 0:
            _log(
                f"[series generator] step {step + 1}/{steps} nll {float(nll.detach()):.1f} "
                f"kl {float(kl.detach()):.2f} sigma {float(log_sigma.detach().exp()):.4f} "
                f"({time.time() - t0:.0f}s)"
            )
    with torch.no_grad():
        decoder.noise_std.copy_(log_sigma.exp())
    log = {
        "model": "VAE decoder (MLP), trained on time-shifted GunPoint training series",
        "latent_dim": latent_dim,
        "hidden": hidden,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "shift": shift,
        "noise_std": float(decoder.noise_std),
        "final_kl_nats": float(kl.detach()),
        "seconds": round(time.time() - t0, 1),
        "parameters": sum(p.numel() for p in decoder.parameters()),
    }
    return decoder.eval(), log


class _PPCA(nn.Module):
    """Probabilistic PCA (Tipping & Bishop, 1999), the linear-Gaussian baseline of the series
    generator: :math:`x = \\mu + W z + \\sigma \\varepsilon`, maximum likelihood in closed form
    (:math:`W = U_d (\\Lambda_d - \\sigma^2 I)^{1/2}`, :math:`\\sigma^2` the mean discarded
    eigenvalue)."""

    def __init__(self, series: torch.Tensor, latent_dim: int) -> None:
        super().__init__()
        n, _, t = series.shape
        x = series[:, 0].double()
        mean = x.mean(0)
        _, sv, vh = torch.linalg.svd(x - mean, full_matrices=False)
        eig = sv.square() / n
        noise_var = eig[latent_dim:].sum() / (t - latent_dim)
        weight = vh[:latent_dim].T * (eig[:latent_dim] - noise_var).clamp_min(0).sqrt()
        self.latent_dim = latent_dim
        self.decoder = nn.Linear(latent_dim, t).double()
        with torch.no_grad():
            self.decoder.weight.copy_(weight)
            self.decoder.bias.copy_(mean)
        self.register_buffer("noise_std", noise_var.sqrt())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.to(self.decoder.weight.dtype))[:, None, :].float()

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        dist = torch.distributions.LowRankMultivariateNormal(
            self.decoder.bias, self.decoder.weight, self.noise_std.square().expand(x.shape[-1])
        )
        return dist.log_prob(x[:, 0].double())


_PPCA_SHIFTS = (-10, -8, -6, -4, -2, 2, 4, 6, 8, 10)


def _with_shifts(series: torch.Tensor, shifts: tuple[int, ...]) -> torch.Tensor:
    """``series`` :math:`(N, 1, T)` and copies shifted by each of ``shifts`` steps."""
    copies = [_shift(series, torch.full((series.shape[0],), s)) for s in shifts]
    return _znorm(torch.cat([series, *copies]))


def _ppca_baseline(latent_dims: tuple[int, ...] = tuple(range(8, 25))) -> tuple[_PPCA, dict]:
    """PPCA fitted to the GunPoint training series and their shifted copies, the latent size
    chosen by leave-one-out log-likelihood of the real training series (test split unused)."""
    train = load_gunpoint("train").series
    scores = {}
    for d in latent_dims:
        total = 0.0
        for i in range(train.shape[0]):
            rest = _with_shifts(torch.cat([train[:i], train[i + 1 :]]), _PPCA_SHIFTS)
            total += float(_PPCA(rest, d).log_prob(train[i : i + 1]))
        scores[d] = total / train.shape[0]
    best = max(scores, key=scores.__getitem__)
    log = {
        "latent_dim": best,
        "loo_log_likelihood": {str(d): round(v, 1) for d, v in scores.items()},
    }
    return _PPCA(_with_shifts(train, _PPCA_SHIFTS), best).eval(), log


def _latent_search(
    generator: torch.nn.Module,
    target: torch.Tensor,
    observed: torch.Tensor,
    steps: int = 400,
    lr: float = 0.05,
) -> torch.Tensor:
    """Latents whose series match ``target`` where ``observed`` (MAP under a N(0, I) prior).

    Minimises :math:`\\sum_\\text{observed} (G(z) - x)^2 / (2 \\sigma^2) + \\|z\\|^2 / 2` with
    Adam from :math:`z = 0`, :math:`\\sigma` the generator's ``noise_std`` (0.1 without one).
    """
    sigma = float(getattr(generator, "noise_std", 0.1))
    z = torch.zeros(target.shape[0], generator.latent_dim, requires_grad=True)
    opt = torch.optim.Adam([z], lr=lr)
    mask = observed.to(target.dtype)
    with torch.enable_grad():
        for _ in range(steps):
            loss = ((generator(z) - target).square() * mask).sum() / (2 * sigma**2)
            loss = loss + z.square().sum() / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return z.detach()


def _linear_fill(x: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """``x`` :math:`(N, 1, T)` with each span replaced by the straight line between its two
    neighbours (the one neighbour repeated at a series end)."""
    out = x.clone()
    t = x.shape[-1]
    for i, (a, b) in enumerate(spans.tolist()):
        left = x[i, 0, a - 1] if a > 0 else x[i, 0, b]
        right = x[i, 0, b] if b < t else left
        w = torch.arange(1, b - a + 1, dtype=x.dtype) / (b - a + 1)
        out[i, 0, a:b] = left + (right - left) * w
    return out


@torch.no_grad()
def series_generator_sanity(
    generator: torch.nn.Module,
    classifier: torch.nn.Module,
    n: int = 256,
    seed: int = 0,
    threshold: float = 0.9,
    span_length: int = 20,
    n_series: int = 150,
    steps: int = 400,
) -> dict[str, float]:
    """Honest, measurable checks of a generator of z-normalised GunPoint series.

    * ``confident_fraction``: generated series :math:`G(z)`, :math:`z \\sim \\mathcal{N}(0, I)`,
      that ``classifier`` labels with softmax :math:`\\ge` ``threshold``;
      ``real_confident_fraction``: the same for the real test series (the reference);
      ``point_fraction``: share of the confident generated series labelled ``"Point"``.
    * ``sample_std``: mean per-series standard deviation of the generated series (real: 1).
    * ``heldout_rmse``: root-mean-square error of the held-out test series reconstructed
      by latent search (MAP, every step observed); ``mean_rmse``: the training mean series'
      error (the no-latent reference).
    * ``span_rmse``: error inside a hidden span of ``span_length`` steps (seeded place) of each
      test series when the latent search sees only the context outside it: the "acceptable
      variation" use. References: ``span_rmse_linear`` (straight line across the span) and
      ``span_rmse_mean`` (training mean series).

    Args:
        generator: Module mapping latents :math:`(M, d)` to series :math:`(M, 1, 150)`, with
            ``latent_dim``.
        classifier: GunPoint classifier of :math:`(B, 1, 150)` series.
        n: Number of generated series.
        seed: Seed of the latents and of the hidden spans.
        threshold: Confidence threshold.
        span_length: Length of the hidden span.
        n_series: Number of test series (the first ones) for the latent-search checks.
        steps: Adam steps of each latent search.

    Returns:
        A dict with the numbers above.
    """
    generator.eval(), classifier.eval()
    gen = torch.Generator().manual_seed(seed)
    fake = generator(torch.randn(n, generator.latent_dim, generator=gen))
    p_fake = classifier(fake).softmax(1)
    conf_fake = p_fake.max(1).values >= threshold
    test = load_gunpoint("test").series[:n_series]
    p_real = classifier(test).softmax(1)
    mean = load_gunpoint("train").series.mean(0, keepdim=True)

    def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).square().mean().sqrt())

    everywhere = torch.ones_like(test, dtype=torch.bool)
    full = generator(_latent_search(generator, test, everywhere, steps=steps))
    span_gen = torch.Generator().manual_seed(seed + 1)  # same spans whatever the latent size
    starts = torch.randint(
        0, test.shape[-1] - span_length + 1, (test.shape[0],), generator=span_gen
    )
    spans = torch.stack([starts, starts + span_length], 1)
    inside = torch.arange(test.shape[-1])[None, None, :]
    inside = (inside >= spans[:, :1, None]) & (inside < spans[:, 1:, None])  # (N, 1, T)
    filled = generator(_latent_search(generator, test, ~inside, steps=steps))
    linear = _linear_fill(test, spans)
    pred = p_real.argmax(1)

    def agree(x: torch.Tensor) -> float:  # same predicted class with the span replaced by x
        return float((classifier(torch.where(inside, x, test)).argmax(1) == pred).double().mean())

    return {
        "confident_fraction": float(conf_fake.double().mean()),
        "real_confident_fraction": float((p_real.max(1).values >= threshold).double().mean()),
        "point_fraction": float((p_fake.argmax(1)[conf_fake] == 1).double().mean()),
        "sample_std": float(fake.std(-1, unbiased=False).mean()),
        "heldout_rmse": rmse(full, test),
        "mean_rmse": rmse(mean.expand_as(test), test),
        "span_rmse": rmse(filled[inside], test[inside]),
        "span_rmse_linear": rmse(linear[inside], test[inside]),
        "span_fill_agreement": agree(filled),
        "span_fill_agreement_linear": agree(linear),
        "span_fill_agreement_mean": agree(mean.expand_as(test)),
        "span_rmse_mean": rmse(mean.expand_as(test)[inside], test[inside]),
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
    parser.add_argument(
        "--what",
        choices=("classifier", "gan", "digits", "series", "all"),
        default="all",
        help="digits = classifier + gan; all = digits + series",
    )
    parser.add_argument("--epochs", type=int, default=12, help="digits classifier epochs")
    parser.add_argument("--gan-steps", type=int, default=6000)
    parser.add_argument(
        "--series-epochs", type=int, default=None, help="series classifier epochs (recipe default)"
    )
    parser.add_argument("--series-generator-steps", type=int, default=4000)
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

    if args.what in ("classifier", "digits", "all"):
        model, clog = train_classifier(seed=args.seed, epochs=args.epochs)
        torch.save(model.state_dict(), args.out / "classifier.pt")
        log["classifier"] = {**clog, **common}
        _log(f"[classifier] final test accuracy {clog['test_accuracy']:.4f}")
    if args.what in ("gan", "digits", "all"):
        g, d, glog = train_gan(seed=args.seed, steps=args.gan_steps)
        torch.save(g.state_dict(), args.out / "generator.pt")
        torch.save(d.state_dict(), args.out / "discriminator.pt")
        classifier = DigitsCNN()
        classifier.load_state_dict(torch.load(args.out / "classifier.pt", weights_only=True))
        glog["sanity"] = gan_sanity(g, d, classifier)
        log["gan"] = {**glog, **common}
        _log(f"[gan] sanity {glog['sanity']}")
    if args.what in ("series", "all"):
        for kind in ("gunpoint", "planted"):
            model, slog = train_series_classifier(kind, seed=args.seed, epochs=args.series_epochs)
            torch.save(model.state_dict(), args.out / f"series_classifier_{kind}.pt")
            if kind == "gunpoint":
                slog["reference_1nn_dtw_accuracy_measured"] = _one_nn_dtw_accuracy()
            log[f"series_classifier_{kind}"] = {**slog, **common}
            _log(f"[series {kind}] {slog}")
        g, glog = train_series_generator(seed=args.seed, steps=args.series_generator_steps)
        torch.save(g.state_dict(), args.out / "series_generator.pt")
        classifier = SeriesCNN()
        state = torch.load(args.out / "series_classifier_gunpoint.pt", weights_only=True)
        classifier.load_state_dict(state)
        glog["sanity"] = series_generator_sanity(g, classifier)
        ppca, plog = _ppca_baseline()
        plog["sanity"] = series_generator_sanity(ppca, classifier)
        glog["ppca_baseline"] = plog
        log["series_generator"] = {**glog, **common}
        _log(f"[series generator] sanity {glog['sanity']}; PPCA baseline {plog}")
    log_path.write_text(json.dumps(log, indent=2, sort_keys=True) + "\n")
    _log(f"wrote {log_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
