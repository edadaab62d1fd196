"""The GunPoint series models: a :class:`~captum_perturbmask.data.SeriesCNN` per task
(``series_classifier_gunpoint.pt``, ``series_classifier_planted.pt``), the VAE whose decoder is
the shipped :class:`~captum_perturbmask.data.SeriesGenerator` (``series_generator.pt``), its
probabilistic-PCA baseline, and the 1-NN DTW reference accuracy (aeon)."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from captum_perturbmask.data.models import SeriesCNN, SeriesGenerator
from captum_perturbmask.data.series import (
    GUNPOINT_1NN_DTW_ACCURACY,
    SeriesSet,
    load_gunpoint,
    make_planted_series,
)
from tools.train_weights.settings import log_line, seeded_init

__all__ = [
    "PPCA",
    "evaluate_series_classifier",
    "one_nn_dtw_accuracy",
    "ppca_baseline",
    "train_series_classifier",
    "train_series_generator",
]

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
    max_steps: int | None = None,
) -> tuple[SeriesCNN, dict]:
    """Train a :class:`~captum_perturbmask.data.SeriesCNN` on GunPoint (``"gunpoint"``) or on
    planted motifs (``"planted"``).

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
        max_steps: Stop after this many optimiser steps (the schedule stays that of the whole
            run): the weights are then those of the full run at that step. ``None``: the whole
            run.

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
    model = seeded_init(seed, SeriesCNN)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    steps_per_epoch = math.ceil(n_per_epoch / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2
    )
    gen = torch.Generator().manual_seed(seed)
    n_neutral = round(neutral_fraction * batch_size) if kind == "planted" else 0
    t0, step = time.time(), 0
    for epoch in range(epochs):
        if max_steps is not None and step >= max_steps:
            break
        if kind == "gunpoint":
            x_all, y_all = train.series, train.labels
        else:
            ds = make_planted_series("train", n=n_per_epoch, seed=3_000_017 * (seed + 1) + epoch)
            x_all, y_all = ds.series, ds.labels
        perm = torch.randperm(n_per_epoch, generator=gen)
        model.train()
        loss_sum = 0.0
        for i in range(0, n_per_epoch, batch_size):
            if max_steps is not None and step >= max_steps:
                break
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
            step += 1
            loss_sum += float(loss.detach()) * len(x)
        if (epoch + 1) % max(1, epochs // 6) == 0 or epoch == 0:
            log_line(
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


def one_nn_dtw_accuracy() -> float:
    """Test accuracy of 1-NN full-window DTW on GunPoint, computed with aeon (the reference).

    aeon's DTW starts numba's OpenMP threads, which resets torch's CPU thread count to the
    machine's core count; it is put back, so that a recipe run after this one keeps its own.
    """
    from aeon.distances import dtw_pairwise_distance

    train, test = load_gunpoint("train"), load_gunpoint("test")
    threads = torch.get_num_threads()
    try:
        dist = dtw_pairwise_distance(test.series.double().numpy(), train.series.double().numpy())
    finally:
        torch.set_num_threads(threads)
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
    max_steps: int | None = None,
) -> tuple[SeriesGenerator, dict]:
    """Train the VAE whose decoder is the shipped :class:`~captum_perturbmask.data.SeriesGenerator`.

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
        max_steps: Stop after this many steps. ``None``: all ``steps``.

    Returns:
        The trained decoder (eval mode) and a log dict.
    """
    train = load_gunpoint("train").series
    decoder, encoder = seeded_init(
        seed,
        lambda: (
            SeriesGenerator(latent_dim, train.shape[-1], hidden),
            _SeriesEncoder(latent_dim, train.shape[-1], hidden),
        ),
    )
    log_sigma = torch.nn.Parameter(torch.tensor(-1.0))
    params = [*decoder.parameters(), *encoder.parameters(), log_sigma]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in range(steps if max_steps is None else min(steps, max_steps)):
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
            log_line(
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


class PPCA(nn.Module):
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


PPCA_SHIFTS = (-10, -8, -6, -4, -2, 2, 4, 6, 8, 10)


def _with_shifts(series: torch.Tensor, shifts: tuple[int, ...]) -> torch.Tensor:
    """``series`` :math:`(N, 1, T)` and copies shifted by each of ``shifts`` steps."""
    copies = [_shift(series, torch.full((series.shape[0],), s)) for s in shifts]
    return _znorm(torch.cat([series, *copies]))


def ppca_baseline(latent_dims: tuple[int, ...] = tuple(range(8, 25))) -> tuple[PPCA, dict]:
    """PPCA fitted to the GunPoint training series and their shifted copies, the latent size
    chosen by leave-one-out log-likelihood of the real training series (test split unused)."""
    train = load_gunpoint("train").series
    scores = {}
    for d in latent_dims:
        total = 0.0
        for i in range(train.shape[0]):
            rest = _with_shifts(torch.cat([train[:i], train[i + 1 :]]), PPCA_SHIFTS)
            total += float(PPCA(rest, d).log_prob(train[i : i + 1]))
        scores[d] = total / train.shape[0]
    best = max(scores, key=scores.__getitem__)
    log = {
        "latent_dim": best,
        "loo_log_likelihood": {str(d): round(v, 1) for d, v in scores.items()},
    }
    return PPCA(_with_shifts(train, PPCA_SHIFTS), best).eval(), log
