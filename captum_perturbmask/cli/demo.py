"""``captum-perturbmask demo``: the offline comparison on the shipped digits-in-clutter data
(``--data gunpoint``: on time series, ``captum_perturbmask.cli.series_demo``).

A thin layer over the library: :func:`~captum_perturbmask.evaluation.compare` with
:func:`~captum_perturbmask.evaluation.default_methods` for the table and (once per budget and
seed) for the convergence curves, :class:`~captum_perturbmask.generative.
LatentVariationGenerator` for the variations, :mod:`captum_perturbmask.viz` for the figures.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from captum_perturbmask.cli._common import (
    MAX_DEMO_IMAGES,
    MAX_SEEDS,
    MAX_SERIES,
    announced_seed,
    budget_list,
    int_range,
    say,
    start_outputs,
    write_files,
)

if TYPE_CHECKING:
    from torch import Tensor, nn

#: Forward budgets of the convergence figure (the poster's second figure).
CONVERGENCE_BUDGETS = (50, 100, 200, 400, 800)
QUICK_CONVERGENCE_BUDGETS = (16, 50)
#: Saliency quantile whose box is scored against the digit box (top 10%: a digit box covers
#: about a tenth of the 64 x 64 canvas).
BOX_THRESHOLD = 0.9
#: Rows per forward call of every method and metric.
BATCH_SIZE = 64
#: The files the demo writes into ``--out``.
OUTPUTS = (
    "maps.png",
    "metrics.md",
    "metrics.csv",
    "convergence.png",
    "convergence.csv",
    "variations.png",
    "variations_distribution.png",
    "report.html",
)
#: Resolution of the maps figure (several panels: smaller dots keep the file small).
MAPS_DPI = 80


def convergence(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    budgets: Sequence[int],
    seeds: Sequence[int],
) -> list[dict[str, Any]]:
    """Insertion / deletion AUC of PerturbMask and RISE against the forward budget.

    One :func:`~captum_perturbmask.evaluation.compare` call per budget and seed; each value is
    the mean over images and seeds, ``*_sem`` the standard error over seeds of the per-seed
    means (the run-to-run noise of the estimate at that budget; NaN with one seed).
    """
    from captum_perturbmask.evaluation import compare
    from captum_perturbmask.metrics.aggregate import mean_ci

    rows: list[dict[str, Any]] = []
    names = ["PerturbMask", "RISE"]
    for budget in budgets:
        results = [
            compare(
                model, images, names, target=labels, budget=budget, seeds=(seed,),
                forward_batch_size=BATCH_SIZE, metrics=("insertion", "deletion"),
            )
            for seed in seeds
        ]  # fmt: skip
        for name in names:
            runs = [result[name] for result in results]
            insertion, insertion_sem, _ = mean_ci([r["insertion"] for r in runs], z=1.0)
            deletion, deletion_sem, _ = mean_ci([r["deletion"] for r in runs], z=1.0)
            seconds = statistics.fmean(r["seconds_per_input"] for r in runs)
            rows.append(
                {
                    "method": name,
                    "budget": budget,
                    "forwards_per_input": statistics.fmean(r["forwards_per_input"] for r in runs),
                    "insertion": insertion,
                    "insertion_sem": insertion_sem,
                    "deletion": deletion,
                    "deletion_sem": deletion_sem,
                    "seconds_per_input": seconds,
                    "runs": len(runs),
                }
            )
            say(
                f"  budget {budget:>4} {name:<11}: insertion {insertion:.3f}, "
                f"deletion {deletion:.3f} ({seconds * len(images) * len(runs):.1f} s)"
            )
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _convergence_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | budget | forwards/input | insertion ↑ | deletion ↓ | seconds/input |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["method"] != "PerturbMask", r["budget"])):
        lines.append(
            f"| {r['method']} | {r['budget']} | {r['forwards_per_input']:g} | "
            f"{r['insertion']:.3f} ± {r['insertion_sem']:.3f} | "
            f"{r['deletion']:.3f} ± {r['deletion_sem']:.3f} | {r['seconds_per_input']:.3g} |"
        )
    return "\n".join(lines)


def _variations(
    classifier: nn.Module,
    images: Tensor,
    labels: Tensor,
    saliency: Tensor,
    *,
    n_restarts: int,
    n_keep: int,
    n_steps: int,
    seed: int,
) -> Any:
    """Acceptable variations of the PerturbMask region ``B`` with the shipped inpainter.

    ``B`` is ``generate``'s default (the box of the top 6% of the map, cut to the inpainter's
    32 x 32 window); the class-conditional inpainter redraws ``B`` from its surroundings for
    the target class, with a short search (a long one pulls the restarts to one fill).
    """
    from captum_perturbmask.data.models import load_default_inpainter
    from captum_perturbmask.generative import LatentVariationGenerator, VariationSettings

    generator, critic = load_default_inpainter(images.device)
    lvg = LatentVariationGenerator(generator, critic, forward_func=classifier)
    return lvg.generate(
        images,
        saliency,
        target=labels,
        seed=seed,
        show_progress=True,
        settings=VariationSettings(n_restarts=n_restarts, n_keep=n_keep, n_steps=n_steps, lr=0.01),
    )


def add_parser(subparsers: Any, parents: Callable[..., list[argparse.ArgumentParser]]) -> None:
    """The ``demo`` subcommand (``--data gunpoint`` is run by ``series_demo``)."""
    demo = subparsers.add_parser(
        "demo",
        help="compare saliency methods on the shipped digits-in-clutter data or on time "
        "series (offline)",
        description="Explain held-out digits-in-clutter images with PerturbMask, RISE, "
        "Grad-CAM, LIME and Occlusion; write maps.png, metrics.md/.csv, convergence.png/.csv, "
        "variations.png and report.html into --out. With --data gunpoint, explain held-out "
        "GunPoint series and planted-motif series with PerturbMask, RISE, Occlusion, "
        "FeatureAblation, LIME and Integrated Gradients; write series_maps.png, "
        "planted_maps.png, metrics.md/.csv, variations.png and report.html.",
        parents=parents(
            "--out", "--budget", "--seed", "--threads", "--device",
            budget={
                "default": None,
                "help": "forward passes per image and method (default 400; 50 with --quick)",
            },
            threads={
                "default": 1,
                "help": "torch CPU threads (default 1: fastest for these small models on a "
                "busy machine)",
            },
        ),
    )  # fmt: skip
    demo.add_argument(
        "--data",
        choices=("digits", "gunpoint"),
        default="digits",
        help="digits-in-clutter images (default) or GunPoint and planted-motif time series "
        "(needs the timeseries extra: aeon)",
    )
    demo.add_argument(
        "--n-images",
        type=int_range(1, MAX_DEMO_IMAGES),
        default=None,
        metavar="N",
        help=f"images (series per bed) to explain, at most {MAX_DEMO_IMAGES} ({MAX_SERIES} for "
        "--data gunpoint; default 8; 2 with --quick)",
    )
    demo.add_argument(
        "--seeds",
        type=int_range(1, MAX_SEEDS),
        default=None,
        metavar="K",
        help="runs per stochastic method for consistency, seeds --seed, --seed + 1, ... "
        "(default 3; 2 with --quick)",
    )
    demo.add_argument(
        "--convergence-budgets",
        type=budget_list,
        default=None,
        metavar="LIST",
        help="comma-separated budgets of the convergence figure (default "
        "50,100,200,400,800; 16,50 with --quick; --data digits only)",
    )
    demo.add_argument(
        "--quick", action="store_true", help="a small, fast run (2 images, budget 50, 2 seeds)"
    )
    demo.set_defaults(command="demo")


def run(args: argparse.Namespace) -> int:
    """Run the demo on the digits; see :func:`add_parser` for the arguments."""
    import torch

    from captum_perturbmask import viz
    from captum_perturbmask.data import load_default_classifier, make_digits_clutter
    from captum_perturbmask.evaluation import compare, default_methods
    from captum_perturbmask.evaluation.methods import logged
    from captum_perturbmask.report import write_report

    quick = args.quick
    n_images = args.n_images or (2 if quick else 8)
    budget = args.budget or (50 if quick else 400)
    n_seeds = args.seeds or (2 if quick else 3)
    budgets = args.convergence_budgets or (
        QUICK_CONVERGENCE_BUDGETS if quick else CONVERGENCE_BUDGETS
    )
    n_restarts, n_keep, n_steps = (8, 3, 10) if quick else (16, 8, 10)
    n_varied = min(n_images, 2 if quick else 4)
    seeds = tuple(args.seed + i for i in range(n_seeds))
    out, stage = start_outputs(args.out, OUTPUTS, 4)

    device = args.device or torch.device("cpu")
    ds = make_digits_clutter("test", n=n_images, seed=args.seed)
    classifier = load_default_classifier(device)
    images, labels, boxes = ds.images.to(device), ds.labels.to(device), ds.boxes.to(device)
    with torch.no_grad():
        accuracy = float((classifier(images).argmax(1) == labels).float().mean())

    stage(
        1,
        f"comparing PerturbMask, RISE, Grad-CAM, LIME, Occlusion on {n_images} held-out "
        f"digits-in-clutter images (budget {budget} forwards, seeds {list(seeds)})",
    )
    methods = default_methods(classifier, images, budget=budget, forward_batch_size=BATCH_SIZE)
    table = compare(
        classifier,
        images,
        logged(methods, say, announced_seed(seeds)),
        target=labels,
        boxes=boxes,
        budget=budget,
        seeds=seeds,
        forward_batch_size=BATCH_SIZE,
        box_threshold=BOX_THRESHOLD,
    )
    shown = range(min(n_images, 3))
    maps_png = viz.png_bytes(
        viz.plot_maps(table, images, shown, targets=labels, boxes=boxes), dpi=MAPS_DPI
    )

    stage(2, f"convergence of PerturbMask vs RISE at budgets {list(budgets)}")
    conv = convergence(classifier, images, labels, budgets, seeds)
    convergence_png = viz.png_bytes(
        viz.plot_convergence(conv, xlabel="forward passes per image (+1 clean pass)")
    )

    stage(
        3,
        f"acceptable variations of the PerturbMask region B on {n_varied} images "
        f"(shipped inpainter, {n_restarts} restarts x {n_steps} steps)",
    )
    variations = _variations(
        classifier,
        images[:n_varied],
        labels[:n_varied],
        table.maps["PerturbMask"][:n_varied],
        n_restarts=n_restarts,
        n_keep=n_keep,
        n_steps=n_steps,
        seed=args.seed,
    )
    variations_png = viz.png_bytes(viz.plot_variations(variations, images[:n_varied]))
    distribution_png = viz.png_bytes(
        viz.plot_variation_distribution(variations, images[:n_varied], index=0)
    )
    accepted = variations.accepted
    flipped = (variations.predictions != variations.target[:, None]).sum()

    stage(4, "writing the outputs")
    table.config.update(
        model=f"the shipped DigitsCNN (accuracy on these images {accuracy:.2f})",
        data=f"{n_images} held-out digits-in-clutter test images (seed {args.seed}), with "
        "their digit boxes",
    )
    variation_text = (
        f"LatentVariationGenerator with the shipped class-conditional inpainter on {n_varied} "
        "images: B is the box of the top-6% PerturbMask saliency cut to the 32 x 32 window; "
        f"{n_restarts} latent restarts x {n_steps} steps, best "
        f"{n_keep} kept per image.\n\n"
        f"**Accepted fraction: {variations.accepted_fraction:.2f}** ({int(accepted.sum())} of "
        f"{accepted.numel()} variants keep the class with confidence >= 0.5; "
        f"{int(flipped)} flip the decision)."
    )
    top = table.top_k
    top_text = f"top-{100 * top:g}%" if isinstance(top, float) else f"top-{top}"
    box_top = f"top-{100 * (1 - BOX_THRESHOLD):.0f}%"
    threads = torch.get_num_threads()
    paragraphs = [
        "# captum-perturbmask demo",
        f"{n_images} held-out test images of the shipped digits-in-clutter set (seed "
        f"{args.seed}), shipped `DigitsCNN` classifier (accuracy on these images "
        f"{accuracy:.2f}), target = true class. Every method gets about {budget} forward passes "
        f"per image; stochastic methods run with seeds {list(seeds)} (metrics are means over "
        "images and runs).",
        table.to_markdown(),
        "Insertion / deletion: AUC of the softmax score while the most salient pixels are "
        f"inserted into a blurred image / deleted to zero. IoU: box of the {box_top} saliency vs "
        "the annotated digit box. Pointing: the saliency peak falls in the box. Spearman, "
        f"{top_text} IoU: agreement between runs with different seeds (consistency). Forwards "
        "and seconds are per image. In maps.png each map's colour scale runs from its median "
        "to its maximum (the metrics use only the ranking of pixels); the boxes are the "
        "annotated digit boxes.",
        "## Convergence (PerturbMask vs RISE)",
        f"Mean over the {n_images} images and seeds {list(seeds)}; ± is the standard error "
        "over seeds (run-to-run noise).",
        _convergence_markdown(conv),
        "## Acceptable variations",
        variation_text,
        f"Runtime: {stage.elapsed():.0f} s on {threads} CPU thread{'s' if threads > 1 else ''}.",
    ]
    write_files(
        {
            out / "maps.png": maps_png,
            out / "metrics.csv": table.to_csv,
            out / "metrics.md": "\n\n".join(paragraphs) + "\n",
            out / "convergence.png": convergence_png,
            out / "convergence.csv": _csv_text(conv),
            out / "variations.png": variations_png,
            out / "variations_distribution.png": distribution_png,
            out / "report.html": lambda path: write_report(
                table, path, title="captum-perturbmask demo: digits in clutter"
            ),
        }
    )
    say(f"done in {stage.elapsed():.0f} s; wrote {', '.join(OUTPUTS)} to {out}")
    print(table.to_markdown())
    print(f"accepted fraction of variations: {variations.accepted_fraction:.2f}")
    return 0
