"""Acceptable variations on held-out digits: how many keep the class, how different, how real.

For ``--images`` correctly classified digits-in-clutter *test* images, the PerturbMask map of
the true class gives :math:`B` through ``LatentVariationGenerator.generate``'s default (the box
of the top 6% of the map, cut to the generator's :math:`32 \\times 32` window). The coverage
of :math:`B` is the share of the digit's ink box inside it. Each generator fills :math:`B`
by the latent search (``--restarts`` codes, ``--steps`` Adam steps, the best ``--keep``
kept), and the shipped classifier scores the variants:

* accepted fraction (the decision is kept) with a 95% Wilson interval, overall and per class;
* spread: the per-pixel standard deviation over an input's variants, averaged over the
  pixels and channels of :math:`B`, then over the inputs;
* counterfactual rate: the share of inputs with at least one realistic variant inside the
  latent budget that flips the decision (``counterfactual=True``, first ``--cf-images``);
* realism of free samples: ``--free`` samples (the inpainter with an empty context, the DCGAN
  from its prior) pasted into held-out canvases in place of the digit patch; "read as a
  digit" = the classifier's top softmax is at least 0.9 (the same check as
  ``tools/train_weights/sanity.gan_sanity``); and improved precision / recall (Kynkaanniemi
  et al., 2019, :math:`k = 3`) of those canvases against real held-out canvases in the
  classifier's penultimate feature space (its 128 pooled channels).

The series part does the same on planted-motif test series (``load_series_classifier
("planted")``): :math:`B` is the span of the top 6% of the PerturbMask map widened to cover the
planted motif (the coverage of the motif is reported), filled by the shipped series
inpainter and, for comparison, the shipped series generator.

Usage::

    python benchmarks/variations.py [--images 32] [--restarts 16] [--keep 8] [--steps 50]
        [--out benchmarks/results/variations.md]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from captum_perturbmask import PerturbMask
from captum_perturbmask.data import (
    load_default_classifier,
    load_default_gan,
    make_digits_clutter,
    paste_patches,
)
from captum_perturbmask.data.models import load_default_inpainter
from captum_perturbmask.generative import LatentVariationGenerator, VariationSettings

RESULTS = Path(__file__).parent / "results"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of ``k`` successes in ``n``."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return mid - half, mid + half


def penultimate(clf: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The shipped classifier's pooled last-conv features, :math:`(N, 128)`."""
    with torch.no_grad():
        return clf.pool(clf.features(x)).flatten(1)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019) of features ``fake`` vs
    ``real``: the share of one set inside the union of the other's :math:`k`-NN balls."""

    def radii(f: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(f, f)
        return d.kthvalue(k + 1, dim=1).values  # the 0 to itself is the first

    d = torch.cdist(fake, real)  # (F, R)
    precision = float((d <= radii(real)[None]).any(1).double().mean())
    recall = float((d.T <= radii(fake)[None]).any(1).double().mean())
    return precision, recall


def free_realism(
    clf: torch.nn.Module, samples: torch.Tensor, n: int, seed: int
) -> dict[str, float]:
    """Read-as-digit share and precision/recall of ``samples`` pasted into test canvases."""
    ds = make_digits_clutter("test", n=n, seed=seed + 1)
    with torch.no_grad():
        canvases = paste_patches(ds.images, samples, ds.patch_boxes)
        p = clf(canvases).softmax(1)
    prec, rec = precision_recall(penultimate(clf, ds.images), penultimate(clf, canvases))
    hist = torch.bincount(p.argmax(1)[p.max(1).values >= 0.9], minlength=10)
    return {
        "read_as_digit": float((p.max(1).values >= 0.9).double().mean()),
        "precision": prec,
        "recall": rec,
        "classes_read": hist.tolist(),
    }


def digit_coverage(mask: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Share of each digit's ink box (``xyxy``) inside ``mask`` :math:`(N, H, W)`."""
    h, w = mask.shape[1:]
    rows = torch.arange(h)[None, :, None]
    cols = torch.arange(w)[None, None, :]
    x1, y1, x2, y2 = (boxes[:, i].long()[:, None, None] for i in range(4))
    box = (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)
    return (mask & box).flatten(1).sum(1) / box.flatten(1).sum(1)


def summarise(out, labels: torch.Tensor) -> dict:  # noqa: ANN001 - LatentVariations
    acc = out.accepted
    k, n = int(acc.sum()), acc.numel()
    lo, hi = wilson(k, n)
    per_class = {}
    for c in labels.unique().tolist():
        rows = acc[labels == c]
        kc, nc = int(rows.sum()), rows.numel()
        per_class[int(c)] = (kc, nc, *wilson(kc, nc))
    b = out.mask[:, None].float()  # (N, 1, H, W)
    std = out.variants.std(1, unbiased=False)  # (N, C, H, W)
    spread = (std * b).flatten(1).sum(1) / (b.flatten(1).sum(1) * std.shape[1])
    return {
        "accepted": k,
        "variants": n,
        "accepted_fraction": k / n,
        "interval": (lo, hi),
        "per_class": per_class,
        "spread": float(spread.mean()),
        "inputs_with_accepted": int(acc.any(1).sum()),
    }


def figure(out, x: torch.Tensor, path: Path) -> None:  # noqa: ANN001 - LatentVariations
    """The distribution figure of the input with the most mixed verdicts."""
    import matplotlib

    matplotlib.use("Agg")
    from captum_perturbmask.viz.variation_distribution import plot_variation_distribution

    share = out.accepted.double().mean(1)
    index = int((share - 0.5).abs().argmin())
    plot_variation_distribution(out, x, index=index, path=str(path))
    print(f"wrote {path} (input {index})", flush=True)


def digits_part(args: argparse.Namespace, lines: list[str], record: dict) -> None:
    clf = load_default_classifier()
    ds = make_digits_clutter("test", n=3 * args.images, seed=args.seed)
    with torch.no_grad():
        correct = (clf(ds.images).argmax(1) == ds.labels).nonzero().flatten()[: args.images]
    x, y, boxes = ds.images[correct], ds.labels[correct], ds.boxes[correct]
    t0 = time.perf_counter()
    maps = PerturbMask(clf).attribute(x, target=y, seed=args.seed)
    t_maps = time.perf_counter() - t0
    inpainter, critic = load_default_inpainter()
    dcgan, disc = load_default_gan()
    search = {"n_restarts": args.restarts, "n_keep": args.keep, "n_steps": args.steps}
    rows = []
    short = {"n_steps": args.short_steps, "lr": args.short_lr}
    configs = (
        (f"inpainter, {args.short_steps} steps lr {args.short_lr}", inpainter, critic, short),
        (f"inpainter, {args.steps} steps lr 0.05", inpainter, critic, {}),
        (f"DCGAN, {args.steps} steps lr 0.05", dcgan, disc, {}),
    )
    for name, g, d, knobs in configs:
        t0 = time.perf_counter()
        out = LatentVariationGenerator(g, d, forward_func=clf).generate(
            x, maps, target=y, seed=args.seed, settings=VariationSettings(**{**search, **knobs})
        )
        secs = time.perf_counter() - t0
        cover = digit_coverage(out.mask, boxes)
        s = summarise(out, y)
        s["coverage_mean"] = float(cover.mean())
        s["coverage_min"] = float(cover.min())
        s["inputs_half_covered"] = int((cover >= 0.5).sum())
        s["seconds"] = secs
        t0 = time.perf_counter()
        cf = LatentVariationGenerator(g, d, forward_func=clf).generate(
            x[: args.cf_images], maps[: args.cf_images], counterfactual=True,
            target=y[: args.cf_images], seed=args.seed,
            settings=VariationSettings(**{**search, **knobs}),
        )  # fmt: skip
        s["cf_rate"] = cf.counterfactuals.n_flipped_inputs / args.cf_images
        s["cf_seconds"] = time.perf_counter() - t0
        gen = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            free = g.sample(args.free, generator=gen)
        s["free"] = free_realism(clf, free, args.free, args.seed)
        with torch.no_grad():
            feats = penultimate(clf, out.variants.flatten(0, 1))
        s["variants_pr"] = precision_recall(penultimate(clf, x), feats)
        rows.append((name, s))
        record[name] = s
        print(name, json.dumps(s, default=str), flush=True)
        if g is inpainter and not knobs and args.figures:
            figure(out, x, args.out.with_name(args.out.stem + "_digits_50steps.png"))
        if g is inpainter and knobs and args.figures:
            figure(out, x, args.out.with_name(args.out.stem + "_digits.png"))
    ref = free_realism(clf, make_digits_clutter("test", n=args.free, seed=99).patches(),
                       args.free, args.seed)  # fmt: skip
    record["real_patches"] = ref
    lines += [
        f"## Digits ({len(x)} correctly classified held-out test images)",
        "",
        f"PerturbMask maps ({t_maps:.0f} s). B = `generate`'s default: the box of the top 6% "
        f"of the map, cut to the 32 x 32 window. Search: {args.restarts} restarts, best "
        f"{args.keep} kept, steps and Adam step size as named; counterfactuals (default "
        f"budget) on the first {args.cf_images} images. The inpainter is class-conditional: "
        "it gets each input's target class.",
        "",
        "| generator | B covers digit box (mean, min; inputs >= 50%) | accepted (95% CI) | "
        "inputs with >= 1 accepted | spread in B | counterfactual rate | variants P / R | "
        "s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in rows:
        lo, hi = s["interval"]
        p, r = s["variants_pr"]
        lines.append(
            f"| {name} | {100 * s['coverage_mean']:.0f}%, {100 * s['coverage_min']:.0f}%; "
            f"{s['inputs_half_covered']}/{len(x)} | {s['accepted']}/{s['variants']} = "
            f"{100 * s['accepted_fraction']:.1f}% ({100 * lo:.1f}-{100 * hi:.1f}%) | "
            f"{s['inputs_with_accepted']}/{len(x)} | {s['spread']:.3f} | "
            f"{100 * s['cf_rate']:.0f}% | {p:.2f} / {r:.2f} | "
            f"{s['seconds']:.0f} + {s['cf_seconds']:.0f} |"
        )
    lines += ["", "Accepted fraction per class (accepted/variants, 95% CI):", ""]
    lines += [
        "| class | " + " | ".join(n for n, _ in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for c in sorted(rows[0][1]["per_class"]):
        cells = []
        for _, s in rows:
            kc, nc, lo, hi = s["per_class"][c]
            cells.append(f"{kc}/{nc} ({100 * lo:.0f}-{100 * hi:.0f}%)")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Free samples ({args.free}, pasted into held-out canvases in place of the digit "
        "patch): read as a digit = top softmax >= 0.9; precision / recall (k = 3) against "
        "real held-out canvases in the classifier's penultimate features.",
        "",
        "| samples | read as a digit | precision | recall | classes read (0-9) |",
        "|---|---|---|---|---|",
    ]
    seen = set()
    for name, s in [*rows, ("real test patches (reference)", ref)]:
        name = name.split(",")[0]
        if name in seen:
            continue
        seen.add(name)
        f = s.get("free", s)
        lines.append(
            f"| {name} | {100 * f['read_as_digit']:.1f}% | {f['precision']:.2f} | "
            f"{f['recall']:.2f} | {f['classes_read']} |"
        )
    lines.append("")


def span_cover(b: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Share of each evidence span ``(start, end)`` inside the mask ``b`` :math:`(N, T)`."""
    t = torch.arange(b.shape[1])[None]
    motif = (t >= spans[:, :1]) & (t < spans[:, 1:])
    return (b & motif).sum(1) / motif.sum(1)


def series_part(args: argparse.Namespace, lines: list[str], record: dict) -> None:
    from captum_perturbmask.data import (
        load_series_classifier,
        load_series_generator,
        make_planted_series,
    )
    from captum_perturbmask.data.models import load_series_inpainter

    clf = load_series_classifier("planted")
    ds = make_planted_series("test", n=2 * args.series, seed=args.seed)
    with torch.no_grad():
        correct = (clf(ds.series).argmax(1) == ds.labels).nonzero().flatten()[: args.series]
    x, y, spans = ds.series[correct], ds.labels[correct], ds.spans[correct]
    maps = PerturbMask(clf).attribute(x, target=y, seed=args.seed)[:, 0]
    # B: the default span of the map (top 6%), widened to cover the motif
    t = torch.arange(x.shape[-1])[None]
    b = (
        LatentVariationGenerator(load_series_generator())
        .generate(x, maps, seed=0, settings=VariationSettings(n_restarts=1, n_keep=1, n_steps=1))
        .mask
    )
    default_cover = span_cover(b, spans)
    b = b | ((t >= spans[:, :1]) & (t < spans[:, 1:]))
    lo_hi = torch.stack([b.float().argmax(1), x.shape[-1] - b.flip(1).float().argmax(1)], 1)
    b = (t >= lo_hi[:, :1]) & (t < lo_hi[:, 1:])
    cover = span_cover(b, spans)
    settings = VariationSettings(n_restarts=args.restarts, n_keep=args.keep, n_steps=args.steps)
    inp, crit = load_series_inpainter()
    rows = []
    for name, g, d in (
        ("series inpainter", inp, crit),
        ("series generator (VAE)", load_series_generator(), None),
    ):
        t0 = time.perf_counter()
        out = LatentVariationGenerator(g, d, forward_func=clf).generate(
            x, mask=b, target=y, seed=args.seed, settings=settings
        )
        s = summarise(out, y)
        s["seconds"] = time.perf_counter() - t0
        s["cover_default"] = float(default_cover.mean())
        s["cover"] = float(cover.mean())
        s["span_length"] = float(b.sum(1).double().mean())
        rows.append((name, s))
        record[name] = s
        print(name, json.dumps(s, default=str), flush=True)
        if name == "series inpainter" and args.figures:
            figure(out, x, args.out.with_name(args.out.stem + "_series.png"))
    lines += [
        f"## Series ({len(x)} correctly classified planted-motif test series, planted classifier)",
        "",
        f"B: the default span of the PerturbMask map (top 6%; it covers "
        f"{100 * float(default_cover.mean()):.0f}% of the planted motif on average), widened to "
        f"cover the whole motif (mean B {rows[0][1]['span_length']:.0f} steps). Search: "
        f"{args.restarts} restarts x {args.steps} steps (lr 0.05), best {args.keep} kept.",
        "",
        "| generator | accepted (95% CI) | inputs with >= 1 accepted | spread in B | s |",
        "|---|---|---|---|---|",
    ]
    for name, s in rows:
        lo, hi = s["interval"]
        lines.append(
            f"| {name} | {s['accepted']}/{s['variants']} = {100 * s['accepted_fraction']:.1f}% "
            f"({100 * lo:.1f}-{100 * hi:.1f}%) | {s['inputs_with_accepted']}/{len(x)} | "
            f"{s['spread']:.3f} | {s['seconds']:.0f} |"
        )
    lines.append("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--restarts", type=int, default=16)
    parser.add_argument("--keep", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--cf-images", type=int, default=8)
    parser.add_argument("--short-steps", type=int, default=10)
    parser.add_argument("--short-lr", type=float, default=0.01)
    parser.add_argument("--free", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-series", action="store_true")
    parser.add_argument("--no-digits", action="store_true")
    parser.add_argument("--no-figures", dest="figures", action="store_false")
    parser.add_argument("--series", type=int, default=40, help="planted-motif test series")
    parser.add_argument("--out", type=Path, default=RESULTS / "variations.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    lines = [
        "# Acceptable variations",
        "",
        f"`python benchmarks/variations.py {' '.join(sys.argv[1:])}` ({args.threads} thread"
        f"{'s' if args.threads > 1 else ''}, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')})",
        "",
    ]
    record: dict = {}
    if not args.no_digits:
        digits_part(args, lines, record)
    if not args.no_series:
        series_part(args, lines, record)
    total = time.perf_counter() - start
    lines += [f"Total {total:.0f} s.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
