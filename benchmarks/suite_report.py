"""The suite's report: paired differences against a reference method, bed by bed.

    python benchmarks/suite_report.py [--beds study] [--reference RISE-4000] \\
        [--out benchmarks/results/suite_runs] [--write benchmarks/results/suite]

For every bed and method the per-example values (``suite.load_records``: averaged over the
seeds) are paired with the reference method's on the same examples; the table cell is the mean
difference (method - reference) with its 95% half-width (Student t over examples). Metrics:
insertion and deletion AUC (``evaluate``'s default start), the same from and to the training
mean (``insertion_mean``, ``deletion_mean``) and box/span IoU where the evidence is known.
Each (bed, metric) cell is a **win** when the interval lies beyond ``+-TIE`` on the better side
(higher insertion and IoU, lower deletion), a **loss** beyond it on the worse side, and a
**tie** when the interval reaches into ``[-TIE, TIE]`` (``TIE = 0.005``). Writes
``<write>.md``, ``<write>.csv`` and ``<write>_forest.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

#: metric -> (label, higher is better)
METRICS = {
    "insertion": ("insertion", True),
    "deletion": ("deletion", False),
    "insertion_mean": ("insertion (mean)", True),
    "deletion_mean": ("deletion (mean)", False),
    "iou": ("IoU", True),
}
TIE = 0.005


@dataclass(frozen=True)
class Cell:
    """One paired difference: method - reference on one bed and metric."""

    bed: str
    method: str
    metric: str
    mean: float
    half: float
    n: int

    @property
    def verdict(self) -> str:
        """``"win"``, ``"tie"`` or ``"loss"`` of the method against the reference."""
        return verdict(self.mean, self.half, METRICS[self.metric][1])


def t_quantile(n: int) -> float:
    """The two-sided 95% Student t quantile with ``n - 1`` degrees of freedom."""
    if n < 2:
        return math.nan
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, n - 1))
    except ImportError:  # scipy is in the test extra; the normal quantile otherwise
        return 1.959964


def paired(ref: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray], key: str):
    """Mean difference ``other - ref`` of ``key`` over the examples both have (finite values),
    its 95% half-width and the number of pairs; ``None`` when either lacks ``key``."""
    if key not in ref or key not in other:
        return None
    a = dict(zip(ref["index"].tolist(), ref[key].tolist(), strict=True))
    b = dict(zip(other["index"].tolist(), other[key].tolist(), strict=True))
    d = np.array([b[i] - a[i] for i in sorted(a.keys() & b.keys())], float)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return None
    half = t_quantile(len(d)) * float(d.std(ddof=1)) / math.sqrt(len(d)) if len(d) > 1 else math.nan
    return float(d.mean()), half, len(d)


def verdict(mean: float, half: float, higher_is_better: bool, tie: float = TIE) -> str:
    """Win / tie / loss of a paired difference (method - reference) with half-width ``half``:
    a tie when ``[mean - half, mean + half]`` reaches into ``[-tie, tie]`` (or ``half`` is
    NaN)."""
    if not math.isfinite(half):
        return "tie"
    lo, hi = mean - half, mean + half
    if lo <= tie and hi >= -tie:
        return "tie"
    better = lo > tie if higher_is_better else hi < -tie
    return "win" if better else "loss"


def cells(
    records: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
    reference: str,
    metrics: Sequence[str] = tuple(METRICS),
) -> list[Cell]:
    """Every paired difference of ``records`` (bed -> method -> ``load_records`` dict)
    against ``reference``; beds without the reference are left out."""
    out = []
    for bed, methods in records.items():
        if reference not in methods:
            continue
        for method, values in methods.items():
            if method == reference:
                continue
            for metric in metrics:
                p = paired(methods[reference], values, metric)
                if p is not None:
                    out.append(Cell(bed, method, metric, *p))
    return out


def tally(table: Sequence[Cell]) -> dict[str, dict[str, int]]:
    """method -> ``{"win", "tie", "loss"}`` counts over its (bed, metric) cells."""
    out: dict[str, dict[str, int]] = {}
    for c in table:
        out.setdefault(c.method, {"win": 0, "tie": 0, "loss": 0})[c.verdict] += 1
    return out


def method_names(folder: Path) -> dict[str, str]:
    """slug -> method name of every evaluate folder under a bed folder."""
    out = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        config = sub / "config.json"
        if config.exists():
            names = json.loads(config.read_text()).get("methods") or []
            if names:
                out[sub.name] = names[0]
    return out


def collect(
    out: Path, beds: Sequence[str], methods: Sequence[str] | None = None
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """bed -> method -> per-example records of the run folders under ``out`` (of
    ``methods`` only, in that order, when given)."""
    import suite

    records: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for bed in beds:
        folder = out / bed
        if not folder.is_dir():
            continue
        found = list(method_names(folder).values())
        if methods is not None:
            found = [m for m in methods if m in found]
        for name in found:
            try:
                records.setdefault(bed, {})[name] = suite.load_records(out, bed, name)
            except FileNotFoundError:
                continue
    return records


def _fmt(c: Cell | None) -> str:
    if c is None:
        return ""
    half = "nan" if not math.isfinite(c.half) else f"{c.half:.3f}"
    mark = {"win": " ▲", "loss": " ▼", "tie": ""}[c.verdict]
    return f"{c.mean:+.3f} ± {half}{mark}"


def to_markdown(
    table: Sequence[Cell],
    reference: str,
    records: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]] | None = None,
) -> str:
    """The tally and one bed x method table per metric."""
    methods = list(dict.fromkeys(c.method for c in table))
    beds = list(dict.fromkeys(c.bed for c in table))
    lines = [
        f"Paired differences against **{reference}** (method - {reference}, mean ± 95% "
        f"half-width over examples; ▲ better, ▼ worse beyond ±{TIE}).",
        "",
        "| method | wins | ties | losses |",
        "| --- | ---: | ---: | ---: |",
    ]
    for method, t in tally(table).items():
        lines.append(f"| {method} | {t['win']} | {t['tie']} | {t['loss']} |")
    index = {(c.bed, c.method, c.metric): c for c in table}
    for metric, (label, higher) in METRICS.items():
        rows = [b for b in beds if any((b, m, metric) in index for m in methods)]
        if not rows:
            continue
        arrow = "↑" if higher else "↓"
        lines += ["", f"### {label} {arrow}", ""]
        lines.append(f"| bed | {reference} | " + " | ".join(methods) + " |")
        lines.append("| --- | ---: | " + " | ".join("---:" for _ in methods) + " |")
        for bed in rows:
            ref = ""
            if records is not None and metric in records.get(bed, {}).get(reference, {}):
                ref = f"{np.nanmean(records[bed][reference][metric]):.3f}"
            cols = [_fmt(index.get((bed, m, metric))) for m in methods]
            lines.append(f"| {bed} | {ref} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def write_csv(table: Sequence[Cell], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["bed", "method", "metric", "mean_difference", "half_width", "n", "verdict"])
        for c in table:
            w.writerow([c.bed, c.method, c.metric, f"{c.mean:.6f}", f"{c.half:.6f}", c.n,
                        c.verdict])  # fmt: skip


def forest(table: Sequence[Cell], reference: str, path: Path) -> None:
    """One panel per metric: every method's paired differences, one dot and interval per
    bed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(c.metric == m for c in table)]
    methods = list(dict.fromkeys(c.method for c in table))
    beds = list(dict.fromkeys(c.bed for c in table))
    if not metrics:
        return
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(3.2 * len(metrics), 0.45 * len(methods) + 1.5), sharey=True
    )
    axes = np.atleast_1d(axes)
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(beds), 2)))
    for ax, metric in zip(axes, metrics, strict=True):
        for c in table:
            if c.metric != metric:
                continue
            y = methods.index(c.method) + (beds.index(c.bed) - (len(beds) - 1) / 2) * 0.6 / max(
                len(beds), 1
            )
            half = c.half if math.isfinite(c.half) else 0.0
            ax.errorbar(c.mean, y, xerr=half, fmt="o", ms=2.5, lw=0.8,
                        color=colours[beds.index(c.bed)])  # fmt: skip
        ax.axvline(0, color="k", lw=0.8)
        ax.axvspan(-TIE, TIE, color="0.85", lw=0)
        label, higher = METRICS[metric]
        ax.set_title(f"{label} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(range(len(methods)), methods)
    axes[0].invert_yaxis()
    handles = [plt.Line2D([], [], marker="o", ls="", color=colours[i]) for i in range(len(beds))]
    fig.legend(handles, beds, loc="lower center", ncol=min(len(beds), 6), fontsize=7)
    fig.suptitle(f"method - {reference}, mean and 95% interval per bed", fontsize=10)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * math.ceil(len(beds) / 6), 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> list[Cell]:
    import beds_suite

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beds", nargs="+", default=["study"])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "suite_runs")
    ap.add_argument("--reference", default="RISE-4000")
    ap.add_argument("--write", type=Path, default=Path(__file__).parent / "results" / "suite")
    ap.add_argument(
        "--methods", default="peers",
        help="comma-separated method names, 'peers' (suite.PEERS) or 'all' (every folder)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    beds = [b.name for b in beds_suite.select(args.beds)]
    if args.methods == "all":
        methods = None
    elif args.methods == "peers":
        import suite

        methods = list(suite.PEERS)
    else:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if methods is not None and args.reference not in methods:
        methods.append(args.reference)
    records = collect(args.out, beds, methods)
    table = cells(records, args.reference)
    args.write.parent.mkdir(parents=True, exist_ok=True)
    covered = [b for b in beds if args.reference in records.get(b, {})]
    missing = [b for b in beds if b not in covered]
    sizes = {len(r["index"]) for b in covered for r in records[b].values()}
    title = (
        f"# Benchmark suite: beds {', '.join(args.beds)}\n\n"
        f"Beds with {args.reference} records: {', '.join(covered) or 'none'}"
        + (f"; not (yet) run: {', '.join(missing)}" if missing else "")
        + f". Examples per bed and method: {', '.join(map(str, sorted(sizes))) or '-'} "
        "(seeds averaged per example).\n\n"
    )
    md = title + to_markdown(table, args.reference, records)
    Path(f"{args.write}.md").write_text(md, encoding="utf-8")
    write_csv(table, Path(f"{args.write}.csv"))
    forest(table, args.reference, Path(f"{args.write}_forest.png"))
    print(f"wrote {args.write}.md, .csv, _forest.png ({len(table)} cells)")
    return table


if __name__ == "__main__":
    main()
