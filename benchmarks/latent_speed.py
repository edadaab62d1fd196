"""Seconds per input of the latent search, and the share spent outside the models.

Runs :meth:`LatentVariationGenerator.generate` on digits-in-clutter test images with the
shipped DCGAN (generator + discriminator) and classifier, ``--restarts`` latents per input and
exactly ``--steps`` Adam steps (``tol=0``), B = the digit's ink box. Side by side (interleaved,
best of ``--repeats``), a bare loop runs the same model calls with the same batch shapes and
nothing else: per step one generator + discriminator forward and a backward to the latents,
then the final scoring forwards. ``overhead = (search - bare) / search`` is the share of time
spent outside the generator/discriminator/classifier forwards and backwards (goal <= 10%).
With ``--counterfactual`` the counterfactual stage (one classifier forward + backward per step
on the composed images) is timed the same way.

Falls back to randomly initialised models of the shipped architectures (and says so) when the
weights are not there; timings do not depend on the weights.

Usage::

    python benchmarks/latent_speed.py [--images 2] [--restarts 64] [--steps 100]
                                      [--threads 1] [--repeats 3] [--counterfactual]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from captum_perturbmask.data import (
    DigitsCNN,
    Discriminator,
    Generator,
    load_default_classifier,
    load_default_gan,
    make_digits_clutter,
)
from captum_perturbmask.generative import (
    CounterfactualConfig,
    LatentVariationGenerator,
    VariationSettings,
)
from captum_perturbmask.metrics import box_to_mask


def load_models() -> tuple[nn.Module, nn.Module, nn.Module, bool]:
    try:
        gen, disc = load_default_gan()
        clf = load_default_classifier()
        return gen, disc, clf, True
    except (FileNotFoundError, OSError, RuntimeError):
        torch.manual_seed(0)
        return Generator().eval(), Discriminator().eval(), DigitsCNN().eval(), False


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--restarts", type=int, default=64)
    parser.add_argument("--keep", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--counterfactual", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    gen, disc, clf, shipped = load_models()
    ds = make_digits_clutter("test", n=args.images)
    x = ds.images
    mask = box_to_mask(ds.boxes, (64, 64))
    n, r, k = args.images, args.restarts, args.keep
    lvg = LatentVariationGenerator(gen, disc, forward_func=clf)
    cf = CounterfactualConfig(n_steps=args.steps) if args.counterfactual else False

    def search() -> None:
        lvg.generate(
            x,
            mask=mask,
            seed=0,
            counterfactual=cf,
            settings=VariationSettings(n_restarts=r, n_keep=k, n_steps=args.steps, tol=0.0),
        )

    models = (gen, disc, clf)
    flags = [(p, p.requires_grad) for m in models for p in m.parameters()]

    def bare() -> None:
        """The model calls of ``search`` with the same shapes, nothing else."""
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            with torch.no_grad():
                clf(x)  # target prediction
                gen(torch.zeros(2, gen.latent_dim))  # shape probe
            z = torch.randn(n * r, gen.latent_dim, requires_grad=True)
            for _ in range(args.steps):
                g = gen(z)
                torch.autograd.grad(g.sum() + disc(g).sum(), z)
            with torch.no_grad():
                disc(gen(z))  # final evaluation of the last iterate
                g = gen(z[: n * k])
                disc(g)
                clf(torch.rand(n * k, 3, 64, 64))
            if args.counterfactual:
                zc = torch.randn(n * k, gen.latent_dim, requires_grad=True)
                for _ in range(args.steps):
                    g = gen(zc)
                    canvas = torch.rand(n * k, 3, 64, 64)
                    canvas[:, :, 16:48, 16:48] = g
                    torch.autograd.grad(disc(g).sum() + clf(canvas).sum(), zc)
                with torch.no_grad():
                    disc(gen(zc))
                    clf(torch.rand(n * k, 3, 64, 64))
                    disc(gen(zc))
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)

    search(), bare()  # warm-up
    s_times, b_times = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine noise
        s_times.append(timed(search))
        b_times.append(timed(bare))
    s, b = min(s_times), min(b_times)
    what = "shipped" if shipped else "RANDOMLY INITIALISED (weights missing)"
    mode = "search + counterfactual" if args.counterfactual else "search"
    print(f"models: {what}; torch {torch.__version__}; {torch.get_num_threads()} thread(s)")
    print(
        f"{mode}: {n} images x {r} restarts x {args.steps} steps (keep {k}): "
        f"{s / n:.3f} s per input ({s:.2f} s total); bare model calls {b / n:.3f} s per input; "
        f"outside the models {100 * (s - b) / s:.1f}% (goal <= 10%)"
    )


if __name__ == "__main__":
    main()
