"""Quality of saliency methods at equal forward budgets, on every evaluation bed.

A thin user of :func:`captum_perturbmask.evaluation.evaluate`: every bed of ``beds.py`` becomes a
dataset of ``(image, target, box)`` items, every method a ``fn(x, target, seed)``, and evaluate
does the rest (insertion↑, deletion↓ with the RISE protocol, IoU↑ of the box around the top
saliency pixels — the bed's mean box area — with the annotated box, pointing↑, run-to-run
Spearman and top-5% overlap over the seeds, forward passes and seconds per input, mean ± 95%
interval over images, paired differences against PerturbMask). Beds: the held-out digits with
the shipped classifier, ``digits-b``, planted-evidence models at 32/64/96/224 px, ``photos``
(the held-out bed of the design study) and ``series``.

    python benchmarks/quality.py [--bed digits planted-64 | all] [--n-images 200] [--seeds 3]

Records, summaries and figures go to ``benchmarks/results/quality/<bed>/`` (resumable: rerun to
continue); the Markdown tables to stdout and ``benchmarks/results/quality.md``.
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

from captum_perturbmask import RISE, PerturbMask  # noqa: E402
from captum_perturbmask.evaluation import evaluate  # noqa: E402


def methods(model, layer, budget: int, ppe: int, eta: float | None = None, size: int = 64):
    """name -> (fn(x, target, seed), forwards per input, stochastic); ``size``: image side."""
    pm, rise = PerturbMask(model, eta=eta), RISE(model)
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
                x, target=t, budget=b, seed=s, perturbations_per_eval=ppe
            ),
            b + 1,
            True,
        )
        for b in dict.fromkeys((budget, 100))
    }
    for n in (100, 400, 1000, 4000):
        out[f"RISE ({n})"] = (
            lambda x, t, s, n=n: rise.attribute(
                x, target=t, budget=n, seed=s, perturbations_per_eval=ppe
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


class _BedData(torch.utils.data.Dataset):
    """A bed as ``(image, target, box)`` items (``(image, target)`` without boxes)."""

    def __init__(self, bed: bedlib.Bed) -> None:
        self.bed = bed

    def __len__(self) -> int:
        return len(self.bed.inputs)

    def __getitem__(self, i: int) -> tuple:
        b = self.bed
        item = (b.inputs[i], int(b.targets[i]))
        return item if b.boxes is None else (*item, b.boxes[i])


def evaluate_bed(bed: bedlib.Bed, args: argparse.Namespace) -> str:
    """Run every method on one bed through ``evaluate``; return its Markdown section."""
    layer = getattr(bed.model, "gradcam_layer", None)
    meths = methods(bed.model, layer, args.budget, args.ppe, args.eta, bed.inputs.shape[-1])
    if args.only:
        meths = {k: v for k, v in meths.items() if k in args.only}
    out = Path(args.records) / bed.name
    result = evaluate(
        bed.model,
        _BedData(bed),
        {name: fn for name, (fn, _, _) in meths.items()},
        seeds=tuple(range(args.seeds)),
        batch_size=args.chunk,
        out=out,
        reference_method=f"PerturbMask ({args.budget})",
        box_threshold=bedlib.box_quantile(bed) if bed.boxes is not None else 0.9,
        forward_batch_size=256,
        show_progress=True,
    )
    return (
        f"\n### {bed.name} ({result.n_examples} images; consistency over {args.seeds} seeds)\n\n"
        + result.to_markdown()
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--bed", nargs="+", default=["digits", "planted-64"],
        help=f"beds from beds.py ({', '.join(bedlib.BEDS)}) or 'all' (every available bed)",
    )  # fmt: skip
    ap.add_argument("--n-images", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--ppe", type=int, default=16, help="perturbations_per_eval per example")
    ap.add_argument("--chunk", type=int, default=20, help="images explained together")
    ap.add_argument(
        "--records", default=str(Path(__file__).parent / "results" / "quality"),
        help="folder of the per-bed records (resumable)",
    )  # fmt: skip
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
        lines.append(evaluate_bed(bed, args))
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
