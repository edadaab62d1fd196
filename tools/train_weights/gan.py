"""The digits-patch DCGAN: :class:`~captum_perturbmask.data.Generator` and
:class:`~captum_perturbmask.data.Discriminator` trained on :math:`32 \\times 32` train-split
patches (``generator.pt``, ``discriminator.pt``)."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, update_bn

from captum_perturbmask.data.digits import make_digits_clutter
from captum_perturbmask.data.models import Discriminator, Generator
from tools.train_weights.settings import log_line, seeded_init

__all__ = ["train_gan"]


def train_gan(
    seed: int = 0,
    steps: int = 6000,
    batch_size: int = 64,
    pool_size: int = 12000,
    lr: float = 2e-4,
    ema_decay: float = 0.999,
    bn_batches: int = 20,
    max_steps: int | None = None,
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
        max_steps: Stop after this many update pairs (then recompute the BatchNorm
            statistics as at the end of a whole run). ``None``: all ``steps``.

    Returns:
        The trained (averaged) generator and discriminator (eval mode) and a log dict.
    """
    g, d = seeded_init(seed, lambda: (Generator(), Discriminator()))

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
    for step in range(steps if max_steps is None else min(steps, max_steps)):
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
            log_line(
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
