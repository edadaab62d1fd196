"""The context-aware inpainters: :class:`~captum_perturbmask.generative.ContextInpainter` and
:class:`~captum_perturbmask.generative.InpaintingCritic` trained on :math:`32 \\times 32`
train-split digit windows with random holes (``inpainter.pt``, ``inpainter_critic.pt``).

Loss of the generator per window (Context Encoders, Pathak et al. 2016, with a latent code):
the best-of-:math:`K` mean absolute error inside the hole over :math:`K` codes (so that
different codes may fill it differently and one of them has to be right), plus the mean
absolute error on the known context (the generator returns the whole window), plus
``adv_weight`` times the non-saturating adversarial loss of the critic on every composed
window. Holes: with probability ``full_hole`` the whole window (the free samples), otherwise a
rectangle covering 30-80% of the digit's ink box (or, with probability ``big_hole``, 80-100% of
it plus up to 3 pixels around), placed at random inside it.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from captum_perturbmask.data.digits import PATCH_SIZE, make_digits_clutter
from captum_perturbmask.generative.inpainting import ContextInpainter, InpaintingCritic
from tools.train_weights.settings import log_line, seeded_init

__all__ = [
    "digit_windows",
    "random_holes",
    "random_spans",
    "series_windows",
    "train_inpainter",
    "train_series_inpainter",
]


def digit_windows(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` train-split patches :math:`(n, 3, 32, 32)`, the digit's ink box in each,
    ``xyxy`` :math:`(n, 4)` relative to the patch, and the labels :math:`(n,)`."""
    patches, boxes, labels = [], [], []
    for i in range(math.ceil(n / 2000)):
        ds = make_digits_clutter("train", n=min(2000, n - 2000 * i), seed=seed + i)
        patches.append(ds.patches())
        boxes.append(ds.boxes - ds.patch_boxes[:, :2].repeat(1, 2))
        labels.append(ds.labels)
    return torch.cat(patches), torch.cat(boxes), torch.cat(labels)


def random_holes(
    boxes: torch.Tensor,
    gen: torch.Generator,
    size: int = PATCH_SIZE,
    full_hole: float = 0.2,
    big_hole: float = 0.15,
) -> torch.Tensor:
    """Hole masks :math:`(n, 1, size, size)` (float, 1 inside) around the ink ``boxes``.

    Example:
        >>> h = random_holes(torch.tensor([[4.0, 4.0, 28.0, 28.0]]), torch.Generator(), 32, 0, 0)
        >>> 0.3 <= float(h.sum()) / 24**2 <= 0.81
        True
    """
    n = boxes.shape[0]
    u = torch.rand(n, 6, generator=gen)
    x1, y1, x2, y2 = boxes.unbind(1)
    bw, bh = (x2 - x1).clamp_min(1), (y2 - y1).clamp_min(1)
    big = u[:, 0] < big_hole
    area = torch.where(big, 0.8 + 0.2 * u[:, 1], 0.3 + 0.5 * u[:, 1])
    fw = area + (1 - area) * u[:, 2]  # width fraction in [area, 1]
    fh = area / fw
    pad = torch.where(big, 3.0 * u[:, 5], torch.zeros(n))
    hw = (fw * bw + 2 * pad).round().clamp(1, size)
    hh = (fh * bh + 2 * pad).round().clamp(1, size)
    hx = (x1 - pad + (bw + 2 * pad - hw).clamp_min(0) * u[:, 3]).round().clamp(0, size - 1)
    hy = (y1 - pad + (bh + 2 * pad - hh).clamp_min(0) * u[:, 4]).round().clamp(0, size - 1)
    ar = torch.arange(size, dtype=boxes.dtype)
    rows = (ar[None] >= hy[:, None]) & (ar[None] < (hy + hh)[:, None])
    cols = (ar[None] >= hx[:, None]) & (ar[None] < (hx + hw)[:, None])
    holes = rows[:, :, None] & cols[:, None, :]
    full = torch.rand(n, generator=gen) < full_hole
    holes = holes | full[:, None, None]
    return holes[:, None].float()


def train_inpainter(
    seed: int = 0,
    steps: int = 2500,
    batch_size: int = 32,
    n_codes: int = 3,
    pool_size: int = 8000,
    lr: float = 1e-3,
    adv_weight: float = 0.05,
    full_hole: float = 0.25,
    latent_dim: int = 32,
    width: int = 24,
    max_steps: int | None = None,
) -> tuple[ContextInpainter, InpaintingCritic, dict]:
    """Train the class-conditional digits inpainter (conditioned on the digit's label) and
    its critic.

    Args:
        seed: Seed of the initialisation, the windows, holes and codes.
        steps: Generator/critic update pairs.
        batch_size: Windows per step (each with ``n_codes`` codes).
        n_codes: :math:`K` of the best-of-:math:`K` loss.
        pool_size: Train-split windows, generated once and reshuffled per pass.
        lr: Adam learning rate (betas 0.5, 0.999), decayed by cosine to 10%.
        adv_weight: Weight of the adversarial term.
        full_hole: Share of windows whose hole is the whole window (the free samples).
        latent_dim: Size of the latent code.
        width: Width of both networks.
        max_steps: Stop after this many steps (``None``: all).

    Returns:
        The inpainter, the critic (eval mode) and a log dict.
    """
    g, d = seeded_init(
        seed,
        lambda: (
            ContextInpainter(
                3, (PATCH_SIZE, PATCH_SIZE), latent_dim=latent_dim, width=width, n_classes=10
            ),
            InpaintingCritic(3, (PATCH_SIZE, PATCH_SIZE), width=width),
        ),
    )
    gen = torch.Generator().manual_seed(seed + 7)
    t0 = time.time()
    pool, boxes, labels = digit_windows(pool_size, seed=3_000_017 * (seed + 1))
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))
    total = steps if max_steps is None else min(steps, max_steps)

    def lr_at(step: int) -> float:
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))

    order, pos = torch.randperm(pool_size, generator=gen), 0
    k = n_codes
    for step in range(total):
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
        if pos + batch_size > pool_size:
            order, pos = torch.randperm(pool_size, generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        real, hole = pool[idx], random_holes(boxes[idx], gen, full_hole=full_hole)
        real_k = real.repeat_interleave(k, 0)
        hole_k = hole.repeat_interleave(k, 0)
        z = torch.randn(batch_size * k, latent_dim, generator=gen)
        out = g(z, real_k * (1 - hole_k), hole_k, labels[idx].repeat_interleave(k))
        comp = hole_k * out + (1 - hole_k) * real_k
        # critic: real windows vs composed ones
        loss_d = F.softplus(-d(real)).mean() + F.softplus(d(comp.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        err = (out - real_k).abs().mean(1, keepdim=True)
        inside = (err * hole_k).flatten(1).sum(1) / hole_k.flatten(1).sum(1).clamp_min(1)
        known = (err * (1 - hole_k)).flatten(1).sum(1) / (1 - hole_k).flatten(1).sum(1).clamp_min(1)
        best = inside.view(batch_size, k).min(1).values.mean()
        loss_adv = F.softplus(-d(comp)).mean()
        loss_g = best + known.mean() + adv_weight * loss_adv
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if (step + 1) % 250 == 0 or step == 0:
            log_line(
                f"[inpainter] step {step + 1}/{steps} best-of-{k} {float(best.detach()):.4f} "
                f"known {float(known.mean().detach()):.4f} adv {float(loss_adv.detach()):.3f} "
                f"critic {float(loss_d.detach()):.3f} ({time.time() - t0:.0f}s)"
            )
    log = {
        "steps": steps,
        "batch_size": batch_size,
        "n_codes": k,
        "lr": lr,
        "adv_weight": adv_weight,
        "full_hole": full_hole,
        "latent_dim": latent_dim,
        "width": width,
        "seconds": round(time.time() - t0, 1),
        "generator_parameters": sum(p.numel() for p in g.parameters()),
        "critic_parameters": sum(p.numel() for p in d.parameters()),
    }
    return g.eval(), d.eval(), log


def random_spans(
    spans: torch.Tensor, length: int, gen: torch.Generator, full_hole: float = 0.1
) -> torch.Tensor:
    """Hole masks :math:`(n, 1, length)` (float): half of them cover 30-100% of the given
    evidence ``spans`` (start inside, up to 3 steps around), the others a random span of 8-40
    steps anywhere, and ``full_hole`` of them the whole series.

    Example:
        >>> h = random_spans(torch.tensor([[40, 60]]), 150, torch.Generator(), 0.0)
        >>> h.shape, 1 <= int(h.sum()) <= 40
        (torch.Size([1, 1, 150]), True)
    """
    n = spans.shape[0]
    u = torch.rand(n, 5, generator=gen)
    lo, hi = spans[:, 0].double(), spans[:, 1].double()
    span_len = (hi - lo).clamp_min(1)
    frac = 0.3 + 0.7 * u[:, 1].double()
    pad = (3 * u[:, 4]).round().double()
    hole_len = (frac * span_len + pad).round().clamp(1, length)
    start = lo - pad / 2 + (span_len + pad - hole_len).clamp_min(0) * u[:, 2].double()
    free_len = (8 + 32 * u[:, 2]).round().double()
    free_start = ((length - free_len) * u[:, 3].double()).round()
    on_span = u[:, 0] < 0.5
    hole_len = torch.where(on_span, hole_len, free_len)
    start = torch.where(on_span, start.round(), free_start).clamp(0, length - 1)
    t = torch.arange(length, dtype=torch.float64)
    holes = (t[None] >= start[:, None]) & (t[None] < (start + hole_len)[:, None])
    holes = holes | (torch.rand(n, generator=gen) < full_hole)[:, None]
    return holes[:, None].float()


def series_windows(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` planted-motif *train* series :math:`(n, 1, 150)`, their motif spans and
    labels (the motif's class)."""
    from captum_perturbmask.data import make_planted_series

    ds = make_planted_series("train", n=n, seed=seed)
    return ds.series, ds.spans, ds.labels


def train_series_inpainter(
    seed: int = 0,
    steps: int = 1500,
    batch_size: int = 32,
    n_codes: int = 3,
    pool_size: int = 4000,
    lr: float = 1e-3,
    adv_weight: float = 0.1,
    latent_dim: int = 8,
    width: int = 16,
    max_steps: int | None = None,
) -> tuple[ContextInpainter, InpaintingCritic, dict]:
    """Train the class-conditional series inpainter (conditioned on the motif's class) and
    its projection critic on planted-motif *train* series (the loss of
    :func:`train_inpainter`, holes of :func:`random_spans`).

    Args:
        seed: Seed of the initialisation, the series, holes and codes.
        steps: Generator/critic update pairs.
        batch_size: Series per step (each with ``n_codes`` codes).
        n_codes: :math:`K` of the best-of-:math:`K` loss.
        pool_size: Train series generated once.
        lr: Adam learning rate (betas 0.5, 0.999), decayed by cosine to 10%.
        adv_weight: Weight of the adversarial term.
        latent_dim: Size of the latent code.
        width: Width of both networks.
        max_steps: Stop after this many steps (``None``: all).

    Returns:
        The inpainter, the critic (eval mode) and a log dict.
    """
    pool, spans, labels = series_windows(pool_size, seed=5_000_011 * (seed + 1))
    length = pool.shape[-1]
    g, d = seeded_init(
        seed,
        lambda: (
            ContextInpainter(
                1, length, latent_dim=latent_dim, width=width, output="linear", n_classes=2
            ),
            InpaintingCritic(1, length, width=width, n_classes=2),
        ),
    )
    gen = torch.Generator().manual_seed(seed + 11)
    t0 = time.time()
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))
    total = steps if max_steps is None else min(steps, max_steps)
    k = n_codes
    for step in range(total):
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
        idx = torch.randint(0, pool_size, (batch_size,), generator=gen)
        real, hole = pool[idx], random_spans(spans[idx], length, gen)
        real_k, hole_k = real.repeat_interleave(k, 0), hole.repeat_interleave(k, 0)
        z = torch.randn(batch_size * k, latent_dim, generator=gen)
        y, y_k = labels[idx], labels[idx].repeat_interleave(k)
        out = g(z, real_k * (1 - hole_k), hole_k, y_k)
        comp = hole_k * out + (1 - hole_k) * real_k
        # projection critic: real windows of their class vs composed ones
        loss_d = F.softplus(-d(real, y)).mean() + F.softplus(d(comp.detach(), y_k)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        err = (out - real_k).abs()
        inside = (err * hole_k).flatten(1).sum(1) / hole_k.flatten(1).sum(1).clamp_min(1)
        outside = 1 - hole_k
        known = (err * outside).flatten(1).sum(1) / outside.flatten(1).sum(1).clamp_min(1)
        best = inside.view(batch_size, k).min(1).values.mean()
        loss_adv = F.softplus(-d(comp, y_k)).mean()
        loss_g = best + known.mean() + adv_weight * loss_adv
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if (step + 1) % 250 == 0 or step == 0:
            log_line(
                f"[series-inpainter] step {step + 1}/{steps} best-of-{k} "
                f"{float(best.detach()):.4f} known {float(known.mean().detach()):.4f} "
                f"adv {float(loss_adv.detach()):.3f} ({time.time() - t0:.0f}s)"
            )
    log = {
        "steps": steps,
        "batch_size": batch_size,
        "n_codes": k,
        "lr": lr,
        "adv_weight": adv_weight,
        "latent_dim": latent_dim,
        "width": width,
        "seconds": round(time.time() - t0, 1),
        "generator_parameters": sum(p.numel() for p in g.parameters()),
        "critic_parameters": sum(p.numel() for p in d.parameters()),
    }
    return g.eval(), d.eval(), log


@torch.no_grad()
def inpainter_sanity(
    g: ContextInpainter,
    classifier: torch.nn.Module,
    n: int = 256,
    n_codes: int = 8,
    seed: int = 0,
    threshold: float = 0.9,
) -> dict[str, float]:
    """Honest checks of the digits inpainter on held-out test windows.

    * ``free_read_as_digit``: free samples (empty context, classes cycled) pasted into test
      canvases in place of the digit patch that ``classifier`` assigns some class with
      softmax :math:`\\ge` ``threshold`` (as ``sanity.gan_sanity``), and
      ``free_read_as_asked``: the share read as the class they were conditioned on;
    * ``fill_kept``: test windows with a random hole over 30-80% of the digit box, filled with
      ``n_codes`` codes each (conditioned on the true label), still classified as the label;
    * ``fill_spread``: per-pixel standard deviation over the codes inside the hole.
    """
    from captum_perturbmask.data.digits import paste_patches

    g.eval(), classifier.eval()
    gen = torch.Generator().manual_seed(seed)
    ds = make_digits_clutter("test", n=n, seed=seed)
    y = torch.arange(n) % max(g.n_classes, 1)
    free = g.sample(n, generator=gen, y=y if g.n_classes else None)
    p = classifier(paste_patches(ds.images, free, ds.patch_boxes)).softmax(1)
    boxes = ds.boxes - ds.patch_boxes[:, :2].repeat(1, 2)
    hole = random_holes(boxes, gen, PATCH_SIZE, 0.0, 0.0).repeat_interleave(n_codes, 0)
    win = ds.patches().repeat_interleave(n_codes, 0)
    labels = ds.labels.repeat_interleave(n_codes)
    z = torch.randn(n * n_codes, g.latent_dim, generator=gen)
    out = g(z, win * (1 - hole), hole, labels if g.n_classes else None)
    comp = hole * out + (1 - hole) * win
    canvases = paste_patches(ds.images.repeat_interleave(n_codes, 0), comp,
                             ds.patch_boxes.repeat_interleave(n_codes, 0))  # fmt: skip
    kept = classifier(canvases).argmax(1) == labels
    std = comp.view(n, n_codes, *comp.shape[1:]).std(1, unbiased=False).mean(1)
    h = hole.view(n, n_codes, *hole.shape[1:])[:, 0, 0]
    return {
        "free_read_as_digit": float((p.max(1).values >= threshold).double().mean()),
        "free_read_as_asked": float((p.argmax(1) == y).double().mean()),
        "fill_kept": float(kept.double().mean()),
        "fill_spread": float((std * h).sum() / h.sum()),
    }
