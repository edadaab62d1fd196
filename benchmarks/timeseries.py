"""Saliency on time series: real GunPoint series and planted motifs, through ``evaluate``.

Beds (both offline, shipped models):

* **GunPoint**: all 150 UCR GunPoint test series (z-normalised), the shipped GunPoint
  ``SeriesCNN``, target = the true class (Gun / Point);
* **planted motifs**: 150 planted test series (``make_planted_series("test", 150, seed=0)``: a
  square pulse or a sine burst of 16-24 steps added to a real series), the shipped planted-motif
  ``SeriesCNN``, target = the motif's class; every item carries its motif span.

Methods, about 400 forward passes each: PerturbMask with its defaults and ``budget=400``; RISE
with its defaults and ``budget`` 400 and 4,000; Captum's Occlusion, FeatureAblation and LIME on
time segments and Captum's KernelShap on the same segments with ``n_samples=400``, as the
method registry (:func:`~captum_perturbmask.evaluation.default_methods`) builds them; Integrated
Gradients (white box, 50
steps) and a random map (a control: what any map must beat).

Every map is scored by :func:`captum_perturbmask.evaluation.evaluate` (one code path): insertion
and deletion AUC, span IoU and pointing on the planted bed, run-to-run Spearman and top-5% IoU
over the seeds; means with 95% intervals over series and paired differences against
PerturbMask. RISE-4000 runs with the first ``--rise4000-seeds`` seeds (default all; it costs ten
times the others), in its own ``evaluate`` folder; the summaries merge both folders' records.

**Insertion start.** ``evaluate`` scores with the package defaults: insertion starts from
zeros and deletion replaces steps by zeros (for z-normalised series, zero is each series' own
mean). The same maps are scored again against the training split's mean series
:math:`\\mu` (the per-step mean of the 50 GunPoint training series): ``evaluate`` with
``reference=mu`` starts insertion from and deletes to :math:`\\mu` (the maps are reused, not
recomputed). The random map shows whether each start
ranks maps sensibly.

**Problem 2.** :class:`~captum_perturbmask.generative.LatentVariationGenerator` with the shipped
series generator (VAE decoder) and the GunPoint classifier on the GunPoint test series;
:math:`B` is the span of the top ``1 - --variation-threshold`` share of PerturbMask's seed-0 map;
the accepted share (class kept with p >= 0.5), and how many series the counterfactual mode
flips.

    python benchmarks/timeseries.py [--n 150] [--seeds 3] [--work /tmp/ts-bench]

Records (JSON Lines, resumable) go to ``--work``; the Markdown report is appended to
``benchmarks/results/timeseries.md`` after each bed (intermediate results survive a kill).
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from captum_perturbmask import RISE, PerturbMask
from captum_perturbmask.data.models import load_series_classifier, load_series_generator
from captum_perturbmask.data.series import load_gunpoint, make_planted_series
from captum_perturbmask.evaluation import EvaluationResult, default_methods, evaluate, summarize
from captum_perturbmask.evaluation import read_records as _read_records
from captum_perturbmask.evaluation.scoring import derive_seed
from captum_perturbmask.generative import VariationSettings


def _names(budget: int) -> None:
    """Method names with their budgets (``--budget`` changes them)."""
    global PM, R400, R4000, PEERS
    PM, R400, R4000 = f"PerturbMask ({budget})", f"RISE ({budget})", f"RISE ({10 * budget})"
    PEERS = (R400, "Occlusion", "FeatureAblation", f"LIME ({budget})", f"KernelShap ({budget})")


_names(400)
RANDOM = "Random map"
BATCH = 16  # series explained together
ROWS = 256  # rows per forward call of every method and metric


class SeriesItems(Dataset):
    """``(series, label)`` items, or ``(series, label, span)`` when spans are given."""

    def __init__(self, series: Tensor, labels: Tensor, spans: Tensor | None = None) -> None:
        self.series, self.labels, self.spans = series, labels, spans

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple:
        item = (self.series[i], int(self.labels[i]))
        return item if self.spans is None else (*item, self.spans[i])


def build_methods(model: nn.Module, example: Tensor, budget: int) -> dict[str, Callable]:
    """name -> fn(x, target, seed): the methods of this benchmark at ``budget`` forwards."""
    ppe = max(1, ROWS // example.shape[0])
    shared = default_methods(  # on PerturbMask's time segments, from the method registry
        model, example, ["Occlusion", "FeatureAblation", "LIME", "KernelShap",
                         "IntegratedGradients"], budget=budget, forward_batch_size=ROWS,
    )  # fmt: skip

    def perturb_mask(x: Tensor, t, seed: int) -> Tensor:
        return PerturbMask(model).attribute(
            x, target=t, budget=budget, seed=seed, perturbations_per_eval=ppe
        )

    def rise(n_masks: int) -> Callable:
        def fn(x: Tensor, t, seed: int) -> Tensor:
            return RISE(model).attribute(
                x, target=t, budget=n_masks, seed=seed, perturbations_per_eval=ppe
            )

        return fn

    def random_map(x: Tensor, t, seed: int) -> Tensor:
        return torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))

    return {
        PM: perturb_mask,
        R400: rise(budget),
        R4000: rise(10 * budget),
        "Occlusion": shared["Occlusion"],
        "FeatureAblation": shared["FeatureAblation"],
        f"LIME ({budget})": shared["LIME"],
        f"KernelShap ({budget})": shared["KernelShap"],
        "IntegratedGradients": shared["IntegratedGradients"],
        RANDOM: random_map,
    }


class MapCache:
    """Keeps every map a method returns, keyed by (method, derived seed): the derived seed
    names the batch (its first dataset index) and the run, so a second ``evaluate`` over the
    same batches reuses the maps. On a miss (a resumed first run) the map is computed from
    ``x + shift``."""

    def __init__(self) -> None:
        self.maps: dict[tuple[str, int], Tensor] = {}

    def wrap(self, name: str, fn: Callable) -> Callable:
        def cached(x: Tensor, t, seed: int) -> Tensor:
            key = (name, seed)
            if key not in self.maps:
                self.maps[key] = fn(x, t, seed).detach()
            return self.maps[key]

        return cached

    def stacked(self, name: str, seed: int, n: int) -> Tensor:
        """The maps of ``name`` for dataset items ``0 .. n-1`` from run ``seed``."""
        return torch.cat([self.maps[(name, derive_seed(seed, i))] for i in range(0, n, BATCH)])


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_evaluate(model, data, methods, seeds, folder: Path, **kw) -> float:
    t0 = time.perf_counter()
    evaluate(
        model, data, methods, seeds=seeds, batch_size=BATCH, out=folder, forward_batch_size=ROWS,
        show_progress=False, **kw,
    )  # fmt: skip
    return time.perf_counter() - t0


def run_bed(name: str, model: nn.Module, items: SeriesItems, mu: Tensor, args, cache: MapCache):
    """Both reference runs (and the span-tolerance runs) of one bed; returns the summaries."""
    work = Path(args.work) / name
    seeds = list(range(args.seeds))
    methods = build_methods(model, items.series[:BATCH], args.budget)
    if args.only:
        methods = {k: v for k, v in methods.items() if k in args.only or k == PM}
    main = {k: cache.wrap(k, v) for k, v in methods.items() if k != R4000}
    slow = {k: cache.wrap(k, v) for k, v in methods.items() if k == R4000}
    kw = {}
    if items.spans is not None:
        lengths = (items.spans[:, 1] - items.spans[:, 0]).double()
        kw["box_threshold"] = 1 - float(lengths.mean()) / items.series.shape[-1]
    secs = run_evaluate(model, items, main, seeds, work / "zeros", **kw)
    say(f"{name}: main run {secs:.0f} s")
    if slow:
        secs = run_evaluate(model, items, slow, seeds[: args.rise4000_seeds], work / "zeros4000",
                            **kw)  # fmt: skip
        say(f"{name}: RISE-4000 run {secs:.0f} s")
    order = list(methods)
    zeros = summarize(
        [*_read_records(work / "zeros"), *_read_records(work / "zeros4000")], order, PM
    )

    # the same maps against the training mean series: insertion from it, deletion to it
    ref_kw = {"metrics": ("insertion", "deletion"), "reference": mu}
    secs = run_evaluate(model, items, main, seeds[:1], work / "mean", **ref_kw)
    if slow:
        run_evaluate(model, items, slow, seeds[:1], work / "mean4000", **ref_kw)
    say(f"{name}: training-mean reference {secs:.0f} s")
    mean = summarize([*_read_records(work / "mean"), *_read_records(work / "mean4000")], order, PM)

    tolerant = {}
    if items.spans is not None:
        for tol in args.tolerances:
            folder = work / f"tolerance{tol}"
            run_evaluate(model, items, {k: v for k, v in main.items()}, seeds[:1], folder,
                         metrics=("iou", "pointing"), pointing_tolerance=tol, **kw)  # fmt: skip
            tolerant[tol] = summarize(_read_records(folder), order, PM)
    return zeros, mean, tolerant, kw.get("box_threshold")


# ------------------------------------------------------------------------------------ report
def _fmt(mean: float, ci: float, digits: int = 3) -> str:
    if mean is None or math.isnan(mean):
        return "–"
    if ci is None or math.isnan(ci):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


def _paired(result: EvaluationResult, method: str, metric: str) -> tuple[float, float] | None:
    """PerturbMask minus ``method`` (the summary holds method minus PerturbMask)."""
    for p in result.paired:
        if p["method"] == method and p["metric"] == metric:
            return -p["diff"], p["ci"]
    return None


def _verdict(d: tuple[float, float] | None, higher_better: bool) -> str:
    if d is None:
        return "–"
    diff, ci = d
    lo, hi = diff - ci, diff + ci
    if (lo > 0) if higher_better else (hi < 0):
        return "win"
    if (hi < 0) if higher_better else (lo > 0):
        return "loss"
    return "tie"


def table(result: EvaluationResult, spans: bool, tolerant: dict) -> list[str]:
    cols = ["insertion ↑", "deletion ↓"]
    keys = ["insertion", "deletion"]
    if spans:
        cols += ["span IoU ↑", "pointing ↑"] + [f"pointing ±{t} ↑" for t in tolerant]
        keys += ["iou", "pointing"]
    cols += ["Spearman ↑", "top-5% IoU ↑", "forwards/input", "s/input"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in result.summary:
        cells = [_fmt(r[k], r[f"{k}_ci"]) for k in keys]
        for tol_result in tolerant.values():
            t = tol_result[r["method"]]
            cells.append(_fmt(t["pointing"], t["pointing_ci"]))
        cells += [_fmt(r["spearman"], r["spearman_ci"]), _fmt(r["top_k_iou"], r["top_k_iou_ci"])]
        fw = r["forwards_per_input"]
        cells += ["–" if fw is None else f"{fw:g}", f"{r['seconds_per_input']:.3g}"]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return lines


def paired_table(results: dict[str, EvaluationResult], spans: bool) -> list[str]:
    metrics = [("insertion", True), ("deletion", False)]
    if spans:
        metrics += [("iou", True), ("pointing", True)]
    head = []
    for ref in results:
        head += [
            f"Δ {m} ({ref})" for m, _ in metrics if ref == "zeros" or m in ("insertion", "deletion")
        ]
    lines = ["| PerturbMask minus | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    first = next(iter(results.values()))
    for r in first.summary:
        if r["method"] == PM:
            continue
        cells = []
        for ref, res in results.items():
            for m, up in metrics:
                if ref != "zeros" and m not in ("insertion", "deletion"):
                    continue
                d = _paired(res, r["method"], m)
                cells.append("–" if d is None else f"{_fmt(*d)} ({_verdict(d, up)})")
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return lines


def goals(name: str, results: dict[str, EvaluationResult], spans: bool) -> list[str]:
    lines = ["| goal | reference | result | verdict |", "|---|---|---|---|"]
    for ref, res in results.items():
        ins, dele = _paired(res, R4000, "insertion"), _paired(res, R4000, "deletion")
        for label, d, up in (("insertion ≥ RISE-4000", ins, True),
                             ("deletion ≤ RISE-4000", dele, False)):  # fmt: skip
            v = _verdict(d, up)
            ok = "met" if v in ("win", "tie") else "**not met**"
            lines.append(f"| {label} | {ref} | Δ {_fmt(*d) if d else '–'} | {ok} ({v}) |")
        for peer in PEERS:
            di, dd = _paired(res, peer, "insertion"), _paired(res, peer, "deletion")
            if di is None:
                continue
            vi, vd = _verdict(di, True), _verdict(dd, False)
            ok = "win" in (vi, vd) and "loss" not in (vi, vd)
            lines.append(
                f"| beats {peer} on one of ins/del, not losing the other | {ref} | insertion "
                f"{vi}, deletion {vd} | {'met' if ok else '**not met**'} |"
            )
    zeros = results["zeros"]
    if spans:
        p = zeros[PM]
        ok = p["pointing"] >= 0.95
        lines.append(f"| pointing ≥ 0.95 | – | {_fmt(p['pointing'], p['pointing_ci'])} | "
                     f"{'met' if ok else '**not met**'} |")  # fmt: skip
        d = _paired(zeros, R4000, "iou")
        v = _verdict(d, True)
        lines.append(f"| span IoU ≥ RISE-4000 | – | Δ {_fmt(*d) if d else '–'} | "
                     f"{'met' if v in ('win', 'tie') else '**not met**'} ({v}) |")  # fmt: skip
    p = zeros[PM]
    ok = p["top_k_iou"] >= 0.9
    lines.append(f"| top-5% overlap ≥ 0.9 | – | {_fmt(p['top_k_iou'], p['top_k_iou_ci'])} | "
                 f"{'met' if ok else '**not met**'} |")  # fmt: skip
    return lines


def write(path: Path, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------- Problem 2
def reference_check(bed: str, model: nn.Module, items: SeriesItems, saliency: Tensor, mu: Tensor):
    """Does a start of insertion (end of deletion) rank maps sensibly? Scores PerturbMask's
    seed-0 map, the same map reversed, a random map and (planted) the motif span itself from
    three starts, with the metric itself (``insertion_deletion``), on every series."""
    from captum_perturbmask._core.ops import blur
    from captum_perturbmask.metrics import insertion_deletion

    x, y = items.series, items.labels
    g = torch.Generator().manual_seed(0)
    maps = {"PerturbMask": saliency, "PerturbMask reversed": -saliency,
            "random": torch.rand(x.shape, generator=g)}  # fmt: skip
    if items.spans is not None:
        inside = (torch.arange(x.shape[-1]) >= items.spans[:, :1]) & (
            torch.arange(x.shape[-1]) < items.spans[:, 1:]
        )
        maps["motif span"] = inside[:, None].double() + 1e-3 * torch.rand(x.shape, generator=g)
    starts = {
        "zeros (the default)": torch.zeros_like(x),
        "Gaussian blur (σ = 5, the image default)": blur(x, 11, 5.0),
        "training mean series": mu.expand_as(x),
    }
    head = ["start (= deletion end)", "p(target) at the start, class 0 / 1"]
    head += [f"{name}: ins / del" for name in maps]
    lines = [f"\n{bed}:\n", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, start in starts.items():
        with torch.no_grad():
            p = model(start).softmax(1).gather(1, y[:, None])[:, 0]
        cells = [name, " / ".join(f"{float(p[y == c].mean()):.2f}" for c in (0, 1))]
        for attr in maps.values():
            r = insertion_deletion(model, x, attr, y, substrate=start, baselines=start,
                                   batch_size=ROWS)  # fmt: skip
            cells.append(f"{float(r.insertion.mean()):.3f} / {float(r.deletion.mean()):.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def knob_study(bed: str, model: nn.Module, items: SeriesItems, mu: Tensor, args) -> list[str]:
    """PerturbMask with one knob changed at a time (defaults otherwise), through ``evaluate``
    on the first ``--knob-n`` series: what would move the missed goals."""
    length = items.series.shape[-1]
    ppe = max(1, ROWS // BATCH)
    variants: dict[str, dict] = {
        "defaults (grid 19, budget 400)": {},
        "grid_size=10": {"grid_size": 10},
        "grid_size=38": {"grid_size": 38},
        "fine_grid_size=19 (= grid)": {"fine_grid_size": 19},
        "eta=10": {"eta": 10.0},
        "budget=1000": {"budget": 1000},
        "baselines = training mean": {"baselines": mu},
    }

    def method(kw: dict) -> Callable:
        call = {"budget": kw.pop("budget", args.budget), "baselines": kw.pop("baselines", None)}
        explainer = PerturbMask(model, **kw)  # the configuration; budget and baselines per call

        def fn(x: Tensor, t, seed: int) -> Tensor:
            return explainer.attribute(x, target=t, seed=seed, perturbations_per_eval=ppe, **call)

        return fn

    subset = SeriesItems(
        items.series[: args.knob_n], items.labels[: args.knob_n],
        None if items.spans is None else items.spans[: args.knob_n],
    )  # fmt: skip
    kw = {}
    if subset.spans is not None:
        lengths = (subset.spans[:, 1] - subset.spans[:, 0]).double()
        kw["box_threshold"] = 1 - float(lengths.mean()) / length
    folder = Path(args.work) / bed / "knobs"
    run_evaluate(model, subset, {k: method(v) for k, v in variants.items()},
                 list(range(args.seeds)), folder, **kw)  # fmt: skip
    result = summarize(_read_records(folder), list(variants), "defaults (grid 19, budget 400)")
    return [f"\n{bed}, first {len(subset)} series, seeds 0–{args.seeds - 1}:\n"] + table(
        result, subset.spans is not None, {}
    )


def pm_seed0_maps(model: nn.Module, items: SeriesItems, budget: int) -> Tensor:
    """PerturbMask's seed-0 maps as ``evaluate`` makes them (same batches, same seeds)."""
    fn = build_methods(model, items.series[:BATCH], budget)[PM]
    n = len(items)
    return torch.cat(
        [
            fn(items.series[i : i + BATCH], items.labels[i : i + BATCH], derive_seed(0, i))
            for i in range(0, n, BATCH)
        ]
    )


def variations(args, saliency: Tensor, gunpoint: SeriesItems) -> list[str]:
    """Problem 2 on the GunPoint bed for two readings of B from PerturbMask's seed-0 maps."""
    from captum_perturbmask.cli.series_demo import peak_span_mask
    from captum_perturbmask.generative import CounterfactualConfig, LatentVariationGenerator
    from captum_perturbmask.metrics import saliency_span, span_to_mask

    n = len(gunpoint)
    x, y = gunpoint.series, gunpoint.labels
    q = args.variation_threshold
    readings = {
        "span of the salient steps (first to last)": span_to_mask(saliency_span(saliency, q), 150),
        "salient run around the peak": peak_span_mask(saliency, q),
    }
    clf = load_series_classifier("gunpoint")
    lvg = LatentVariationGenerator(load_series_generator(), forward_func=clf)
    med = statistics.median
    rows: dict[str, list[str]] = {}
    notes = []
    for mask in readings.values():
        t0 = time.perf_counter()
        out = lvg.generate(
            x,
            mask=mask,
            target=y,
            seed=0,
            counterfactual=CounterfactualConfig(n_steps=args.cf_steps),
            settings=VariationSettings(
                n_restarts=args.restarts, n_keep=args.keep, n_steps=args.steps
            ),
        )
        secs = time.perf_counter() - t0
        lengths = mask.sum(1).double()
        acc = out.accepted
        flipped = out.predictions != out.target[:, None]
        cf = out.counterfactuals
        d_input = (cf.variants - x[:, None]).flatten(2).norm(dim=2)  # (N, Kc), zero outside B
        closest = torch.where(cf.flipped, d_input, torch.inf).amin(1)
        closest = closest[torch.isfinite(closest)]
        latent = torch.where(cf.flipped, cf.latent_distance, torch.inf).amin(1)
        latent = latent[torch.isfinite(latent)]
        span_norm = (x[:, 0] * out.mask).norm(dim=1)
        rows.setdefault("B length, steps (of 150)", []).append(
            f"mean {float(lengths.mean()):.1f}, median {med(lengths.tolist()):.0f}, "
            f"{int(lengths.min())}–{int(lengths.max())}"
        )
        rows.setdefault("accepted (class kept, p ≥ 0.5)", []).append(
            f"**{int(acc.sum())}/{acc.numel()} = {out.accepted_fraction:.1%}**; "
            f"{int(acc.any(1).sum())}/{n} series with ≥ 1"
        )
        rows.setdefault("kept variants that flip the class", []).append(
            f"{int(flipped.sum())}/{flipped.numel()} ({int(flipped.any(1).sum())} series)"
        )
        rows.setdefault("diversity inside B (mean pairwise L2)", []).append(
            f"{float(out.diversity.mean()):.3f} (‖X_B‖ median {med(span_norm.tolist()):.2f})"
        )
        rows.setdefault("counterfactual mode: series flipped", []).append(
            f"**{cf.n_flipped_inputs}/{n}** ({int(cf.flipped.sum())}/{cf.flipped.numel()} "
            "candidates)"
        )
        rows.setdefault("closest flip: L2 from X, latent distance from z₀ (medians)", []).append(
            f"{med(closest.tolist()):.3f}, {med(latent.tolist()):.3f}" if closest.numel() else "–"
        )
        rows.setdefault("search time", []).append(f"{secs:.0f} s")
        notes.append(cf.epsilon)
    lines = [
        f"\n### Acceptable variations of the PerturbMask span (Problem 2, {n} GunPoint test "
        "series)\n",
        "`LatentVariationGenerator(load_series_generator(), forward_func=GunPoint CNN)`, B from "
        f"the top {100 * (1 - q):.0f}% steps of PerturbMask's seed-0 map, read two ways; "
        f"{args.restarts} restarts × {args.steps} steps, best {args.keep} kept; counterfactual "
        f"mode untargeted, ε = {notes[0]:.2f} (the default 0.25·√d), {args.cf_steps} steps.\n",
        "| what | " + " | ".join(f"B = {r}" for r in readings) + " |",
        "|---" * (len(readings) + 1) + "|",
    ]
    lines += [f"| {what} | " + " | ".join(cells) + " |" for what, cells in rows.items()]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=150, help="series per bed (at most 150)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rise4000-seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--tolerances", type=int, nargs="*", default=[1, 4])
    ap.add_argument("--beds", nargs="*", default=["gunpoint", "planted"])
    ap.add_argument("--only", nargs="+", help="run only these methods (and PerturbMask)")
    ap.add_argument("--variation-threshold", type=float, default=0.9)
    ap.add_argument("--restarts", type=int, default=32)
    ap.add_argument("--keep", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--cf-steps", type=int, default=100)
    ap.add_argument("--skip-variations", action="store_true")
    ap.add_argument("--knobs", action="store_true", help="also run the PerturbMask knob study")
    ap.add_argument("--knob-n", type=int, default=48, help="series per bed in the knob study")
    ap.add_argument(
        "--check-references",
        action="store_true",
        help="also score PerturbMask, reversed, random and motif-span maps from three starts",
    )
    ap.add_argument("--work", default="/tmp/captum-perturbmask-timeseries")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "timeseries.md"))
    args = ap.parse_args()
    _names(args.budget)
    torch.set_num_threads(1)
    # Captum's advice to explain one example at a time (Lime, KernelShap), and figure notes
    warnings.filterwarnings("ignore", category=UserWarning)
    t_start = time.perf_counter()
    out = Path(args.out)
    write(out, [
        f"\n## Time series: {args.n} series per bed, seeds 0–{args.seeds - 1}",
        f"\n`python benchmarks/timeseries.py {' '.join(sys.argv[1:])}` — "
        f"{platform.machine()}, 1 thread, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
    ])  # fmt: skip
    mu = load_gunpoint("train").series.mean(0, keepdim=True)  # (1, 1, T)
    gunpoint = None
    for bed in args.beds:
        cache = MapCache()  # one per bed: the keys name batches, not beds
        if bed == "gunpoint":
            ds = load_gunpoint("test")
            items = SeriesItems(ds.series[: args.n], ds.labels[: args.n])
            gunpoint = (cache, items)
            title = f"GunPoint test series, shipped GunPoint CNN ({len(items)} series)"
        else:
            ds = make_planted_series("test", args.n, seed=0)
            items = SeriesItems(ds.series, ds.labels, ds.spans)
            title = f"Planted motifs, shipped planted-motif CNN ({len(items)} series)"
        model = load_series_classifier(bed)
        t0 = time.perf_counter()
        zeros, mean, tolerant, threshold = run_bed(bed, model, items, mu, args, cache)
        spans = items.spans is not None
        lines = [f"\n### {title}\n", "Insertion from zeros, deletion to zeros (the defaults):\n"]
        lines += table(zeros, spans, tolerant)
        if spans:
            lines.append(
                f"\nSpan IoU: span of the top {100 * (1 - threshold):.1f}% steps (the mean "
                "motif share) against the motif span. Pointing: the map's peak lies in the span "
                f"(±t: within t steps). Columns ±t use seed 0.\n"
            )
        lines += ["\nThe same maps, insertion from / deletion to the training mean series "
                  "(seed 0):\n"]  # fmt: skip
        lines += table(mean, False, {})
        results = {"zeros": zeros, "training mean": mean}
        lines += ["\nPaired differences, PerturbMask minus each method (mean ± 95% interval "
                  "over series; win / tie / loss for PerturbMask):\n"]  # fmt: skip
        lines += paired_table(results, spans)
        lines += ["\nGoals:\n"] + goals(bed, results, spans)
        lines.append(f"\nBed time: {time.perf_counter() - t0:.0f} s.")
        write(out, lines)
        say(f"{bed} done in {time.perf_counter() - t0:.0f} s")
    if args.knobs:
        lines = ["\n### PerturbMask knobs (one changed at a time; not the defaults)\n"]
        for bed in ("gunpoint", "planted"):
            if bed == "gunpoint":
                ds = load_gunpoint("test")
                items = SeriesItems(ds.series, ds.labels)
            else:
                ds = make_planted_series("test", args.n, seed=0)
                items = SeriesItems(ds.series, ds.labels, ds.spans)
            lines += knob_study(bed, load_series_classifier(bed), items, mu, args)
            say(f"knob study on {bed} done")
        write(out, lines)
    if args.check_references:
        lines = ["\n### Which start makes insertion / deletion meaningful on series\n"]
        for bed in ("gunpoint", "planted"):
            if bed == "gunpoint":
                ds = load_gunpoint("test")
                items = SeriesItems(ds.series[: args.n], ds.labels[: args.n])
            else:
                ds = make_planted_series("test", args.n, seed=0)
                items = SeriesItems(ds.series, ds.labels, ds.spans)
            model = load_series_classifier(bed)
            saliency = pm_seed0_maps(model, items, args.budget)
            lines += reference_check(bed, model, items, saliency, mu)
        write(out, lines)
    if not args.skip_variations:
        if gunpoint is not None and (PM, derive_seed(0, 0)) in gunpoint[0].maps:
            cache, items = gunpoint
            saliency = cache.stacked(PM, 0, len(items))
        else:  # variations alone, or a resumed run: PerturbMask's maps as evaluate made them
            ds = load_gunpoint("test")
            items = SeriesItems(ds.series[: args.n], ds.labels[: args.n])
            saliency = pm_seed0_maps(load_series_classifier("gunpoint"), items, args.budget)
        write(out, variations(args, saliency, items))
    write(out, [f"\nTotal time: {time.perf_counter() - t_start:.0f} s."])
    say(f"done in {time.perf_counter() - t_start:.0f} s; appended to {out}")


if __name__ == "__main__":
    main()
