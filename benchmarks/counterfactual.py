"""Latent counterfactuals vs a pixel-space PGD attack restricted to B, on the shipped models.

For ``--images`` digits-in-clutter test images (correctly classified ones only), B is the box
of the most salient pixels (``--mask``: ``saliency`` = box of the top ``1 - --threshold``
share, default 2%, of a smoothed input-gradient saliency map; ``digit`` = the digit's ink
box). Then

* :class:`LatentVariationGenerator` with the shipped DCGAN reports the acceptable variations
  (accepted fraction, diversity) and, in counterfactual mode (untargeted, latent budget
  ``--epsilon``), the realistic variants that flip the decision;
* ``captum.robust.PGD`` attacks the same images with ``mask = B`` (pixels outside B fixed), for
  an L2 radius equal to the median pixel perturbation of the latent counterfactuals and for an
  L-inf radius ``--linf``.

Flip rate is the share of images with at least one flipping variant; perturbation sizes are
``||X' - X||`` over the image (B only, as outside B both methods leave X unchanged), for the
flipping variant closest to X.

Usage::

    python benchmarks/counterfactual.py [--images 10] [--restarts 32] [--steps 200]
                                        [--epsilon 2.0] [--mask saliency|digit]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from captum.robust import PGD

from captum_perturbmask.data import load_default_classifier, load_default_gan, make_digits_clutter
from captum_perturbmask.generative import (
    CounterfactualConfig,
    LatentVariationGenerator,
    VariationSettings,
)
from captum_perturbmask.metrics import box_to_mask, saliency_box


def gradient_saliency(clf: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|d logit / d x| summed over channels and smoothed, (N, H, W)."""
    x = x.clone().requires_grad_(True)
    logit = clf(x).gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(logit, x)
    sal = grad.abs().sum(1, keepdim=True)
    return F.avg_pool2d(sal, 5, stride=1, padding=2)[:, 0]


def make_masks(
    kind: str, clf: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, boxes: torch.Tensor,
    threshold: float,
) -> torch.Tensor:  # fmt: skip
    if kind == "digit":
        return box_to_mask(boxes, tuple(x.shape[-2:]))
    return box_to_mask(saliency_box(gradient_saliency(clf, x, y), threshold), tuple(x.shape[-2:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=32)
    parser.add_argument("--keep", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--epsilon", type=float, default=2.0)
    parser.add_argument("--cf-weight", type=float, default=1.0)
    parser.add_argument("--mask", choices=["saliency", "digit"], default="saliency")
    parser.add_argument("--threshold", type=float, default=0.98)
    parser.add_argument("--linf", type=float, default=16 / 255)
    parser.add_argument("--pgd-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    clf = load_default_classifier()
    gen, disc = load_default_gan()
    ds = make_digits_clutter("test", n=4 * args.images, seed=args.seed)
    with torch.no_grad():
        correct = (clf(ds.images).argmax(1) == ds.labels).nonzero().flatten()[: args.images]
    x, y, boxes = ds.images[correct], ds.labels[correct], ds.boxes[correct]
    digit_patch = ds.patch_boxes[correct][:, [1, 0]].long()  # (row, col) the GAN trained on
    n = x.shape[0]
    mask = make_masks(args.mask, clf, x, y, boxes, args.threshold)
    area = mask.flatten(1).sum(1).float()
    print(f"{n} correctly classified test images; B ({args.mask}): mean {area.mean():.0f} px")

    lvg = LatentVariationGenerator(gen, disc, forward_func=clf)
    cfg = CounterfactualConfig(epsilon=args.epsilon, weight=args.cf_weight)
    start = time.perf_counter()
    out = lvg.generate(
        x,
        mask=mask,
        target=y,
        counterfactual=cfg,
        seed=args.seed,
        settings=VariationSettings(n_restarts=args.restarts, n_keep=args.keep, n_steps=args.steps),
    )
    seconds = time.perf_counter() - start
    assert out.accepted is not None and out.counterfactuals is not None
    cf = out.counterfactuals
    print(
        f"acceptable variations: accepted {out.accepted.sum()}/{out.accepted.numel()} "
        f"({100 * out.accepted_fraction:.0f}%), inputs with >= 1 accepted "
        f"{int(out.accepted.any(1).sum())}/{n}, mean diversity in B "
        f"{out.diversity.mean():.2f} (L2), mean realism "
        f"{out.realism.mean() if out.realism is not None else float('nan'):.2f}"
    )
    try:  # the same search with the patch where the GAN was trained: centred on the digit
        placed = lvg.generate(
            x,
            mask=mask,
            target=y,
            seed=args.seed,
            patch_origin=digit_patch,
            settings=VariationSettings(
                n_restarts=args.restarts, n_keep=args.keep, n_steps=args.steps
            ),
        )
        print(
            f"  with patch_origin = the digit's patch box: accepted {placed.accepted_fraction:.0%}"
            f", inputs with >= 1 accepted {int(placed.accepted.any(1).sum())}/{n}"
        )
    except ValueError as err:  # B sticks out of the digit patch
        print(f"  with patch_origin = the digit's patch box: not applicable ({err})")
    delta = (cf.variants - x[:, None]).flatten(2)
    l2 = delta.norm(dim=2)
    linf = delta.abs().amax(dim=2)
    rec_l2 = (cf.variants - out.variants[:, :1]).flatten(2).norm(dim=2)
    flipped = cf.flipped
    best = torch.where(flipped, l2, torch.inf).argmin(1)
    has = flipped.any(1)
    idx = torch.arange(n)
    cf_l2 = l2[idx, best][has].tolist()
    cf_linf = linf[idx, best][has].tolist()
    cf_rec = rec_l2[idx, best][has].tolist()
    med = statistics.median(cf_l2) if cf_l2 else 1.0
    kept = out.accepted[:, 0]  # the best reconstruction z0 keeps the class
    print(
        f"latent counterfactuals (eps={cf.epsilon}): flipped {int(has.sum())}/{n} images "
        f"({int((has & kept).sum())}/{int(kept.sum())} of those whose best reconstruction "
        f"keeps the class), "
        f"{int(flipped.sum())}/{flipped.numel()} candidates; closest flip: median L2 "
        f"{med:.2f}, median Linf {statistics.median(cf_linf) if cf_linf else float('nan'):.2f}"
        f", median L2 from the best reconstruction "
        f"{statistics.median(cf_rec) if cf_rec else float('nan'):.2f}; realism of flips "
        f"{cf.realism[flipped].mean() if cf.realism is not None and flipped.any() else 0:.2f}"
        f" ({seconds:.1f} s for search + counterfactuals)"
    )
    b3 = mask[:, None].expand_as(x).float()
    # captum's default loss is -log(output), meant for probabilities: use cross-entropy on logits
    pgd = PGD(clf, loss_func=lambda out, t: F.cross_entropy(out, t, reduction="none"),
              lower_bound=0.0, upper_bound=1.0)  # fmt: skip
    b_size = float(b3.flatten(1).sum(1).mean())
    for norm, radius in (("L2", med), ("Linf", args.linf)):
        # captum's PGD steps along sign(grad) for both norms; size an L2 step to 2.5 r / steps
        step = 2.5 * radius / args.pgd_steps / (b_size**0.5 if norm == "L2" else 1.0)
        adv = pgd.perturb(
            x,
            radius=radius,
            step_size=step,
            step_num=args.pgd_steps,
            target=y,
            norm=norm,
            mask=b3,
        )
        with torch.no_grad():
            flip = clf(adv).argmax(1) != y
            d = (adv - x).flatten(1)
        assert torch.equal((adv - x)[b3 == 0], torch.zeros_like(x)[b3 == 0])
        print(
            f"PGD in B ({norm}, radius {radius:.3f}, {args.pgd_steps} steps): flipped "
            f"{int(flip.sum())}/{n} images; median L2 {d.norm(dim=1).median():.2f}, median "
            f"Linf {d.abs().amax(1).median():.3f}"
        )


if __name__ == "__main__":
    main()
