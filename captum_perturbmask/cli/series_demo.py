"""``captum-perturbmask demo --data gunpoint``: the offline comparison on time series.

Two beds, both shipped with the package: held-out UCR GunPoint series with the shipped GunPoint
classifier, and planted-motif series (a square pulse or a sine burst added to a real series; the
motif decides the class and its span is known) with the shipped planted-motif classifier. A thin
layer over the library: :func:`~captum_perturbmask.evaluation.compare` with
:func:`~captum_perturbmask.evaluation.default_methods` for the tables,
:class:`~captum_perturbmask.generative.LatentVariationGenerator` with the shipped series
generator for the variations, :mod:`captum_perturbmask.viz` for the figures.
"""

from __future__ import annotations

import argparse
import csv
import io
from typing import Any

import torch
from torch import Tensor, nn

from captum_perturbmask import viz
from captum_perturbmask.cli._common import (
    MAX_SERIES,
    CLIError,
    announced_seed,
    say,
    start_outputs,
    write_files,
)
from captum_perturbmask.evaluation import EvaluationResult, compare, default_methods
from captum_perturbmask.evaluation.methods import logged
from captum_perturbmask.report import write_report

#: The files the series demo writes into ``--out``.
OUTPUTS = (
    "series_maps.png",
    "planted_maps.png",
    "metrics.md",
    "metrics.csv",
    "variations.png",
    "report.html",
)
#: Rows per forward call of every method and metric.
BATCH_SIZE = 64
#: Resolution of the maps figures.
MAPS_DPI = 80
#: B of the variations: the run of the top 10% PerturbMask steps that holds the map's peak.
VARIATION_THRESHOLD = 0.9


def peak_span_mask(saliency: Tensor, threshold: float) -> Tensor:
    """The region ``B`` of a series: the run of salient steps that holds the map's peak.

    The salient steps are the top ``1 - threshold`` share of the map (channels summed,
    :func:`~captum_perturbmask.metrics.saliency_mask` in ``"quantile"`` mode); ``B`` is the
    contiguous run of them around the most salient step (the salient steps elsewhere are left
    out, so ``B`` is one span however scattered the map is).

    Args:
        saliency: Maps :math:`(N, C, T)` or :math:`(N, T)`.
        threshold: Quantile of the salient steps, in :math:`[0, 1]`.

    Returns:
        ``B`` as a boolean mask :math:`(N, T)`.

    Example:
        >>> import torch
        >>> saliency = torch.tensor([[0.9, 0.0, 0.5, 1.0, 0.8, 0.1]])  # top half: 0.9, 1.0, 0.8
        >>> peak_span_mask(saliency, threshold=0.5)  # the run around the peak 1.0
        tensor([[False, False, False,  True,  True, False]])
    """
    from captum_perturbmask.metrics import saliency_mask

    flat = saliency.sum(1) if saliency.ndim == 3 else saliency
    keep = saliency_mask(flat[:, None], threshold)[:, 0]
    steps = torch.arange(flat.shape[1], device=flat.device)
    peak = flat.argmax(1, keepdim=True)  # always salient
    left = torch.where(~keep & (steps < peak), steps, -1).amax(1, keepdim=True) + 1
    right = torch.where(~keep & (steps > peak), steps, flat.shape[1]).amin(1, keepdim=True)
    return (steps >= left) & (steps < right)


def _table_csv(tables: dict[str, EvaluationResult]) -> str:
    """Both beds' rows in one CSV, with a ``data`` column."""
    rows = [{"data": bed, **row} for bed, table in tables.items() for row in table.summary]
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in keys})
    return buffer.getvalue()


def _compare(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    spans: Tensor | None,
    budget: int,
    seeds: tuple[int, ...],
) -> EvaluationResult:
    methods = default_methods(model, x, budget=budget, forward_batch_size=BATCH_SIZE)
    kw: dict[str, Any] = {}
    if spans is not None:  # span of the top steps, as many as the mean motif covers
        kw["box_threshold"] = 1 - float((spans[:, 1] - spans[:, 0]).double().mean()) / x.shape[-1]
    return compare(
        model, x, logged(methods, say, announced_seed(seeds)), target=y, boxes=spans,
        budget=budget, seeds=seeds, forward_batch_size=BATCH_SIZE, **kw,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run the series demo (``demo --data gunpoint``); see
    :func:`captum_perturbmask.cli.demo.add_parser` for the arguments."""
    from captum_perturbmask.data.models import load_series_classifier, load_series_generator
    from captum_perturbmask.data.series import (
        GUNPOINT_CLASSES,
        PLANTED_CLASSES,
        load_gunpoint,
        make_planted_series,
    )
    from captum_perturbmask.generative import (
        CounterfactualConfig,
        LatentVariationGenerator,
        VariationSettings,
    )

    if args.convergence_budgets is not None:
        raise CLIError("--convergence-budgets applies to --data digits only")
    quick = args.quick
    n_series = args.n_images or (2 if quick else 8)
    if n_series > MAX_SERIES:
        raise CLIError(
            f"--n-images must be at most {MAX_SERIES} for --data gunpoint, got {n_series}"
        )
    budget = args.budget or (50 if quick else 400)
    n_seeds = args.seeds or (2 if quick else 3)
    n_restarts, n_keep, n_steps, cf_steps = (8, 3, 25, 10) if quick else (32, 6, 150, 60)
    n_varied = min(n_series, 2 if quick else 4)
    seeds = tuple(args.seed + i for i in range(n_seeds))
    out, stage = start_outputs(args.out, OUTPUTS, 4)
    device = args.device or torch.device("cpu")

    try:
        gunpoint = load_gunpoint("test")
        planted = make_planted_series("test", n=n_series, seed=args.seed)
    except ImportError as err:
        raise CLIError(str(err)) from None
    order = torch.randperm(len(gunpoint), generator=torch.Generator().manual_seed(args.seed))
    pick = order[:n_series].sort().values  # held-out series, a seeded choice
    x_gp, y_gp = gunpoint.series[pick].to(device), gunpoint.labels[pick].to(device)
    x_pl, y_pl, spans = (t.to(device) for t in (planted.series, planted.labels, planted.spans))
    gp_model = load_series_classifier("gunpoint", device)
    pl_model = load_series_classifier("planted", device)
    with torch.no_grad():
        acc_gp = float((gp_model(x_gp).argmax(1) == y_gp).float().mean())
        acc_pl = float((pl_model(x_pl).argmax(1) == y_pl).float().mean())
    names = ", ".join(default_methods(gp_model, x_gp, budget=budget))

    stage(1, f"comparing {names} on {n_series} held-out GunPoint series (budget {budget} "
             f"forwards, seeds {list(seeds)})")  # fmt: skip
    table_gp = _compare(gp_model, x_gp, y_gp, None, budget, seeds)
    shown = range(min(n_series, 3))
    series_png = viz.png_bytes(
        viz.plot_series_maps(
            table_gp, x_gp, targets=y_gp, class_names=GUNPOINT_CLASSES, indices=shown
        ),  # fmt: skip
        dpi=MAPS_DPI,
    )

    stage(2, f"the same on {n_series} planted-motif series, scored against the motif spans")
    table_pl = _compare(pl_model, x_pl, y_pl, spans, budget, seeds)
    planted_png = viz.png_bytes(
        viz.plot_series_maps(
            table_pl, x_pl, spans, targets=y_pl, class_names=PLANTED_CLASSES, indices=shown
        ),  # fmt: skip
        dpi=MAPS_DPI,
    )

    stage(3, f"acceptable variations of the PerturbMask span B on {n_varied} GunPoint series "
             f"(shipped series generator, {n_restarts} restarts x {n_steps} steps)")  # fmt: skip
    mask = peak_span_mask(table_gp.maps["PerturbMask"][:n_varied], VARIATION_THRESHOLD)
    lvg = LatentVariationGenerator(load_series_generator(device), forward_func=gp_model)
    variations = lvg.generate(
        x_gp[:n_varied],
        mask=mask,
        target=y_gp[:n_varied],
        counterfactual=CounterfactualConfig(n_steps=cf_steps),
        seed=args.seed,
        show_progress=True,
        settings=VariationSettings(n_restarts=n_restarts, n_keep=n_keep, n_steps=n_steps),
    )
    variations_png = viz.png_bytes(
        viz.plot_variations(variations, x_gp[:n_varied], class_names=GUNPOINT_CLASSES)
    )
    accepted = variations.accepted
    flipped = (variations.predictions != variations.target[:, None]).sum()
    cf = variations.counterfactuals

    stage(4, "writing the outputs")
    table_gp.config.update(
        model=f"the shipped GunPoint SeriesCNN (accuracy on these series {acc_gp:.2f})",
        data=f"{n_series} held-out UCR GunPoint test series (seed {args.seed})",
    )
    table_pl.config.update(
        model=f"the shipped planted-motif SeriesCNN (accuracy {acc_pl:.2f})",
        data=f"{n_series} planted-motif test series (seed {args.seed}), with their motif spans",
    )
    beds = {"GunPoint": table_gp, "Planted motifs": table_pl}
    names = {"GunPoint": list(GUNPOINT_CLASSES), "Planted motifs": list(PLANTED_CLASSES)}
    lengths = mask.sum(1).tolist()
    top = table_gp.top_k
    top_text = f"top-{100 * top:g}%" if isinstance(top, float) else f"top-{top}"
    motif_share = 1 - float((spans[:, 1] - spans[:, 0]).double().mean()) / x_pl.shape[-1]
    threads = torch.get_num_threads()
    paragraphs = [
        "# captum-perturbmask demo: time series",
        f"Every method gets about {budget} forward passes per series; stochastic methods run "
        f"with seeds {list(seeds)} (metrics are means over series and runs). Insertion / "
        "deletion: AUC of the softmax score while the most salient steps are inserted into an "
        "all-zero series (the mean of a z-normalised series) / deleted to zero. Spearman, "
        f"{top_text} IoU: agreement between runs with different seeds (consistency). Forwards "
        "and seconds are per series. In the figures each map is a colour band under the curve, "
        "its colour scale from the map's median to its maximum.",
        "## GunPoint",
        f"{n_series} held-out UCR GunPoint test series (a seeded choice, seed {args.seed}), "
        f"shipped GunPoint `SeriesCNN` (accuracy on these series {acc_gp:.2f}), target = true "
        "class (Gun / Point). Maps: series_maps.png.",
        table_gp.to_markdown(),
        "## Planted motifs",
        f"{n_series} planted-motif test series (seed {args.seed}): a square pulse (class 0) or "
        "a sine burst (class 1) of 16-24 steps added to a real series, so the class is decided "
        f"by the motif alone; shipped planted-motif `SeriesCNN` (accuracy {acc_pl:.2f}). Span "
        f"IoU: span of the top {100 * (1 - motif_share):.0f}% steps (the mean motif share) "
        "against the motif span; pointing: the map's peak lies in the span. Maps (motif spans "
        "outlined): planted_maps.png. This classifier reads an all-zero series as a square "
        "pulse, so the zero start of insertion favours class 0 here; benchmarks/RESULTS.md "
        "scores the same maps against the training mean series as well.",
        table_pl.to_markdown(),
        "## Acceptable variations",
        f"LatentVariationGenerator with the shipped series generator (a VAE decoder) and the "
        f"GunPoint classifier on {n_varied} series: B is the run of the top "
        f"{100 * (1 - VARIATION_THRESHOLD):.0f}% PerturbMask steps around the map's peak "
        f"({', '.join(str(int(v)) for v in lengths)} steps); {n_restarts} latent restarts x "
        f"{n_steps} steps, best {n_keep} kept per series.\n\n"
        f"**Accepted fraction: {variations.accepted_fraction:.2f}** ({int(accepted.sum())} of "
        f"{accepted.numel()} variants keep the class with confidence >= 0.5; {int(flipped)} "
        f"flip the decision). Counterfactual mode (latent budget {cf.epsilon:.2f}, "
        f"{cf_steps} steps): {cf.n_flipped_inputs} of {n_varied} series flipped "
        f"({int(cf.flipped.sum())} of {cf.flipped.numel()} candidates). Figure: variations.png.",
        f"Runtime: {stage.elapsed():.0f} s on {threads} CPU thread{'s' if threads > 1 else ''}.",
    ]
    write_files(
        {
            out / "series_maps.png": series_png,
            out / "planted_maps.png": planted_png,
            out / "metrics.md": "\n\n".join(paragraphs) + "\n",
            out / "metrics.csv": _table_csv({"gunpoint": table_gp, "planted": table_pl}),
            out / "variations.png": variations_png,
            out / "report.html": lambda path: write_report(
                beds, path, title="captum-perturbmask demo: time series", class_names=names
            ),
        }
    )
    say(f"done in {stage.elapsed():.0f} s; wrote {', '.join(OUTPUTS)} to {out}")
    print(table_gp.to_markdown())
    print(table_pl.to_markdown())
    print(f"accepted fraction of variations: {variations.accepted_fraction:.2f}")
    return 0
