"""Quality of saliency methods at equal forward budgets (issue: best black-box method at 400).

Beds: the held-out digits-in-clutter split with the shipped classifier (annotated ink boxes),
and planted-evidence models written here (class logit = correlation with a ±1 pattern in a known
16x16 box that does not line up with any mask grid; three softmax strengths, incl. saturated).

Per method: insertion↑, deletion↓ (RISE protocol), IoU↑ of the box around the top-k saliency
pixels with the annotated box (k = the bed's mean box area), pointing↑, run-to-run consistency
(mean pairwise Spearman and top-5% IoU across seeds), forward passes and seconds per input;
mean ± 95% interval over images; paired differences of PerturbMask against RISE at the same
budget and at 4000.

    python benchmarks/quality.py [--n-images 200] [--seeds 3] [--consistency-images 50]

Seed 0 runs on all images; seeds 1.. on the first ``--consistency-images`` (consistency needs
several seeds; the remaining metrics use seed 0). Writes Markdown to stdout and
``benchmarks/results/quality.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Lime, Occlusion

sys.path.insert(0, str(Path(__file__).parent))
from _bench import consistency, fmt, planted_bed, score_maps  # noqa: E402

from captum_perturbmask import RISE, PerturbMask  # noqa: E402
from captum_perturbmask.data import load_default_classifier, make_digits_clutter  # noqa: E402


def methods(model, layer, budget: int, ppe: int, eta: float | None = None):
    """name -> (fn(x, target, seed), forwards per input, stochastic)."""
    pm, rise = PerturbMask(model), RISE(model)
    pm_kw = {} if eta is None else {"eta": eta}

    def gradcam(x, t, s):
        a = LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)
        return LayerAttribution.interpolate(a, x.shape[-2:], "bilinear").expand_as(x)

    grid = torch.arange(64).reshape(8, 8).repeat_interleave(8, 0).repeat_interleave(8, 1)

    def lime(x, t, s):
        torch.manual_seed(s)  # captum's Lime samples from the global RNG
        return Lime(model).attribute(
            x,
            target=t,
            feature_mask=grid[None, None].expand(x.shape[0], 1, 64, 64),
            n_samples=budget,
            perturbations_per_eval=ppe,
        )

    out = {
        f"PerturbMask ({budget})": (
            lambda x, t, s: pm.attribute(x, target=t, seed=s, perturbations_per_eval=ppe, **pm_kw),
            budget + 1,
            True,
        ),
    }
    for n in (100, 400, 1000, 4000):
        out[f"RISE ({n})"] = (
            lambda x, t, s, n=n: rise.attribute(
                x, target=t, n_masks=n, seed=s, perturbations_per_eval=ppe
            ),
            n + 1,
            True,
        )
    out["Grad-CAM"] = (gradcam, 1, False)
    out[f"LIME ({budget})"] = (lime, budget, True)
    out["Occlusion (8x8, stride 4)"] = (
        lambda x, t, s: Occlusion(model).attribute(
            x,
            target=t,
            sliding_window_shapes=(3, 8, 8),
            strides=(3, 4, 4),
            perturbations_per_eval=ppe,
        ),
        15 * 15 + 1,
        False,
    )
    out["Integrated Gradients (50)"] = (
        lambda x, t, s: IntegratedGradients(model).attribute(x, target=t, n_steps=50),
        50,
        False,
    )
    return out


def evaluate_bed(model, layer, x, y, boxes, args, results):
    """Append per-image scores of every method on one bed to ``results[method]``."""
    meths = methods(model, layer, args.budget, args.ppe, args.eta)
    if args.only:
        meths = {k: v for k, v in meths.items() if k in args.only}
    for mname, (fn, forwards, stochastic) in meths.items():
        t0 = time.perf_counter()
        maps0 = torch.cat(
            [
                fn(x[i : i + args.chunk], y[i : i + args.chunk], 0)
                for i in range(0, len(x), args.chunk)
            ]
        )
        secs = (time.perf_counter() - t0) / len(x)
        area = float(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).mean())
        scores = score_maps(model, x, y, boxes, maps0, box_quantile=1 - area / x[0, 0].numel())
        cons = {}
        if stochastic and args.seeds > 1:
            m = args.consistency_images
            runs = [maps0[:m]] + [fn(x[:m], y[:m], s) for s in range(1, args.seeds)]
            cons = consistency(runs)
        r = results.setdefault(mname, {"forwards": forwards, "secs": [], "scores": {}})
        r["secs"].append(secs)
        for k, v in {**scores, **cons}.items():
            r["scores"].setdefault(k, []).append(v)
        print(f"  {mname} done ({secs:.3f} s/input)", file=sys.stderr, flush=True)


def report(name, n_images, results, args, lines):
    rows = []
    per_image = {}
    for mname, r in results.items():
        sc = {k: torch.cat(v) for k, v in r["scores"].items()}
        per_image[mname] = sc
        cons = {k: sc[k] for k in ("spearman", "top5") if k in sc}
        rows.append((mname, sc, cons, r["forwards"], sum(r["secs"]) / len(r["secs"])))
    lines.append(f"\n### {name} ({n_images} images; consistency over {args.seeds} seeds)\n")
    lines.append(
        "| method | insertion ↑ | deletion ↓ | IoU ↑ | pointing ↑ | Spearman ↑ | "
        "top-5% IoU ↑ | forwards/input | s/input |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for mname, sc, cons, fw, secs in rows:
        lines.append(
            f"| {mname} | {fmt(sc['insertion'])} | {fmt(sc['deletion'])} | "
            f"{fmt(sc.get('iou'))} | {fmt(sc.get('pointing'), 2)} | {fmt(cons.get('spearman'))} | "
            f"{fmt(cons.get('top5'))} | {fw} | {secs:.3f} |"
        )
    pm = f"PerturbMask ({args.budget})"
    lines.append(
        f"\nPaired differences, {pm} minus RISE (mean ± 95% interval; a win excludes 0 "
        "on the right side):\n"
    )
    lines.append("| against | Δ insertion (↑) | Δ deletion (↓) | Δ IoU (↑) | Δ top-5% IoU (↑) |")
    lines.append("|---|---|---|---|---|")
    for ref in (f"RISE ({args.budget})", "RISE (4000)"):
        if ref not in per_image:
            continue
        a, b = per_image[pm], per_image[ref]
        d = {k: a[k] - b[k] for k in ("insertion", "deletion", "iou", "top5") if k in a and k in b}
        lines.append(
            f"| {ref} | {fmt(d.get('insertion'))} | {fmt(d.get('deletion'))} | "
            f"{fmt(d.get('iou'))} | {fmt(d.get('top5'))} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-images", type=int, default=200)
    ap.add_argument("--consistency-images", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--ppe", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--planted-models", type=int, default=6)
    ap.add_argument("--planted-images", type=int, default=5)
    ap.add_argument("--skip-digits", action="store_true")
    ap.add_argument("--skip-planted", action="store_true")
    ap.add_argument("--only", nargs="+", help="run only these method names")
    ap.add_argument("--eta", type=float, default=None, help="PerturbMask's eta (default: its own)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "quality.md"))
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    lines = [
        f"## Quality at {args.budget} forward passes",
        f"\n`python benchmarks/quality.py {' '.join(sys.argv[1:])}` — "
        f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}",
    ]
    if not args.skip_digits:
        data = make_digits_clutter("test", n=args.n_images, seed=0)
        model = load_default_classifier()
        results: dict = {}
        evaluate_bed(
            model, model.gradcam_layer, data.images, data.labels, data.boxes, args, results
        )
        report("digits-in-clutter, shipped CNN", args.n_images, results, args, lines)
    if args.skip_planted:
        beds = []
    else:
        beds = planted_bed(args.planted_models, args.planted_images)
    results = {}
    for model, x, y, boxes in beds:
        evaluate_bed(model, model.evidence, x, y, boxes, args, results)
    if beds:
        report(
            f"planted-evidence models ({args.planted_models} models, logit strength 2/4/8, "
            "16x16 box off the mask grid)",
            args.planted_models * args.planted_images,
            results,
            args,
            lines,
        )
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
