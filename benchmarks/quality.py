"""Quality of saliency methods at equal forward budgets (issue: best black-box method at 400).

Beds come from ``beds.py`` (``--bed NAME ...``, or ``--bed all``): the held-out digits-in-clutter
split with the shipped classifier, ``digits-b`` (another rendering and architecture),
planted-evidence models at 32/64/96/224 px, ``photos`` (real photographs; the held-out bed of
the design study) and ``series`` once its models exist.

Per method: insertion↑, deletion↓ (RISE protocol), IoU↑ of the box around the top-k saliency
pixels with the annotated box (k = the bed's mean box area), pointing↑, run-to-run consistency
(mean pairwise Spearman and top-5% IoU across seeds), forward passes and seconds per input;
mean ± 95% interval over images; paired differences of PerturbMask against RISE at the same
budget and at 4000.

    python benchmarks/quality.py [--bed digits planted-64] [--n-images 200] [--seeds 3]
        [--consistency-images 50]

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
import beds as bedlib  # noqa: E402
from _bench import consistency, fmt, score_maps  # noqa: E402

from captum_perturbmask import RISE, PerturbMask  # noqa: E402


def methods(model, layer, budget: int, ppe: int, eta: float | None = None, size: int = 64):
    """name -> (fn(x, target, seed), forwards per input, stochastic); ``size``: image side."""
    pm, rise = PerturbMask(model), RISE(model)
    pm_kw = {} if eta is None else {"eta": eta}
    win = max(1, size // 8)  # LIME cells and Occlusion windows: an 8 x 8 grid at any size
    stride = max(1, win // 2)
    n_occ = ((size - win) // stride + 1) ** 2

    def gradcam(x, t, s):
        a = LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)
        return LayerAttribution.interpolate(a, x.shape[-2:], "bilinear").expand_as(x)

    cell = (torch.arange(size) // win).clamp(max=7)
    grid = cell[:, None] * 8 + cell[None, :]

    def lime(x, t, s):
        torch.manual_seed(s)  # captum's Lime samples from the global RNG
        return Lime(model).attribute(
            x,
            target=t,
            feature_mask=grid[None, None].expand(x.shape[0], 1, size, size),
            n_samples=budget,
            perturbations_per_eval=ppe,
        )

    out = {
        f"PerturbMask ({b})": (
            lambda x, t, s, b=b: pm.attribute(
                x, target=t, budget=b, seed=s, perturbations_per_eval=ppe, **pm_kw
            ),
            b + 1,
            True,
        )
        for b in dict.fromkeys((budget, 100))
    }
    for n in (100, 400, 1000, 4000):
        out[f"RISE ({n})"] = (
            lambda x, t, s, n=n: rise.attribute(
                x, target=t, n_masks=n, seed=s, perturbations_per_eval=ppe
            ),
            n + 1,
            True,
        )
    if layer is not None:
        out["Grad-CAM"] = (gradcam, 1, False)
    out[f"LIME ({budget})"] = (lime, budget, True)
    out[f"Occlusion ({win}x{win}, stride {stride})"] = (
        lambda x, t, s: Occlusion(model).attribute(
            x,
            target=t,
            sliding_window_shapes=(3, win, win),
            strides=(3, stride, stride),
            perturbations_per_eval=ppe,
        ),
        n_occ + 1,
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
    meths = methods(model, layer, args.budget, args.ppe, args.eta, x.shape[-1])
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
        if boxes is not None:
            area = float(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).mean())
            q = 1 - area / x[0, 0].numel()
        else:
            q = 0.9
        scores = score_maps(model, x, y, boxes, maps0, box_quantile=q)
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
    pairs = [
        (pm, f"RISE ({args.budget})"),
        (pm, "RISE (4000)"),
        ("PerturbMask (100)", "RISE (1000)"),
    ]
    for mine, ref in pairs:
        if ref not in per_image or mine not in per_image:
            continue
        a, b = per_image[mine], per_image[ref]
        d = {k: a[k] - b[k] for k in ("insertion", "deletion", "iou", "top5") if k in a and k in b}
        label = ref if mine == pm else f"{ref}, for {mine}"
        lines.append(
            f"| {label} | {fmt(d.get('insertion'))} | {fmt(d.get('deletion'))} | "
            f"{fmt(d.get('iou'))} | {fmt(d.get('top5'))} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--bed", nargs="+", default=["digits", "planted-64"],
        help=f"beds from beds.py ({', '.join(bedlib.BEDS)}) or 'all' (every available bed)",
    )  # fmt: skip
    ap.add_argument("--n-images", type=int, default=200)
    ap.add_argument("--consistency-images", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--ppe", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--only", nargs="+", help="run only these method names")
    ap.add_argument("--eta", type=float, default=None, help="PerturbMask's eta (default: its own)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "quality.md"))
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    names = bedlib.available() if args.bed == ["all"] else args.bed
    lines = [
        f"## Quality at {args.budget} forward passes",
        f"\n`python benchmarks/quality.py {' '.join(sys.argv[1:])}` — "
        f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}",
    ]
    for name in names:
        bed = bedlib.get(name, args.n_images)
        print(f"bed {name}", file=sys.stderr, flush=True)
        results: dict = {}
        layer = getattr(bed.model, "gradcam_layer", None)
        evaluate_bed(bed.model, layer, bed.inputs, bed.targets, bed.boxes, args, results)
        report(bed.name, len(bed.inputs), results, args, lines)
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
