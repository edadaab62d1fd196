"""The result of :func:`~.evaluate` and
:func:`~.compare`: one type, its tables and its figure.

:func:`~.summarize` turns records into an :class:`~.EvaluationResult`: per method and metric the
mean over examples with its 95% interval, and the paired differences against a reference
method. The columns come from the metric registry
(:data:`~.METRICS`), so a registered metric appears in every table
without further code.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from captum_perturbmask.evaluation.records import read_records
from captum_perturbmask.evaluation.scoring import (
    CONSISTENCY_COLUMNS,
    CURVE_GRID,
    METRICS,
    Column,
)
from captum_perturbmask.metrics.aggregate import mean_ci, paired_difference

__all__ = ["EvaluationResult", "KeptExamples", "format_value", "summarize"]


def _columns_of(keys: Iterable[str], top_k: float | int) -> list[Column]:
    """The registered columns among ``keys`` and the consistency columns, in table order."""
    registered = [c for m in METRICS.values() for c in m.columns]
    top = f"top-{100 * top_k:g}% IoU" if isinstance(top_k, float) else f"top-{top_k} IoU"
    consistency = [
        Column(c.key, top if c.key == "top_k_iou" else c.label, c.higher_is_better)
        for c in CONSISTENCY_COLUMNS
    ]
    keys = set(keys)
    return [c for c in (*registered, *consistency) if c.key in keys]


def format_value(mean: float | None, ci: float | None, digits: int = 3) -> str:
    """A table cell: ``"0.512 ± 0.031"``, ``"0.512"`` without an interval, ``"–"`` without a
    value.

    Example:
        >>> format_value(0.5123, 0.0312), format_value(0.5, None, 2), format_value(None, None)
        ('0.512 ± 0.031', '0.50', '–')
    """
    if mean is None:
        return "–"
    if ci is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass
class KeptExamples:
    """The examples an evaluation kept with their maps, for figures and the report.

    Row ``k`` of :attr:`inputs`, :attr:`boxes` and of every map in
    :attr:`EvaluationResult.maps` is dataset index ``indices[k]``.

    Attributes:
        indices: Dataset index of every kept example, in evaluation order.
        inputs: Their inputs :math:`(K, C, H, W)` or :math:`(K, C, T)`, on the CPU.
        boxes: Their evidence boxes :math:`(K, 4)` or spans :math:`(K, 2)` (NaN rows for
            examples without one), or ``None``.
    """

    indices: list[int]
    inputs: Tensor
    boxes: Tensor | None = None


@dataclass
class EvaluationResult:
    """Summary of an evaluation or a comparison, with the way back to its records.

    ``result.to_markdown()`` is the table; ``result["RISE"]["insertion"]`` one mean.

    Attributes:
        summary: One dict per method: ``method``, ``n`` (examples), ``errors``, ``runs``
            (seeds recorded per example), ``stochastic``; for every column (the metrics' and
            ``spearman``, ``top_k_iou``) ``<key>`` (mean over examples), ``<key>_ci`` (95%
            half-width) and ``<key>_n``; ``forwards_per_input`` and ``seconds_per_input``.
            A value that does not exist (no boxes, a deterministic method, fewer than two
            examples for an interval) is ``None``.
        paired: One dict per (method, column) against ``reference_method``: ``method``,
            ``reference_method``, ``metric``, ``n``, ``diff`` (mean of method minus reference
            over the examples both have), ``ci``.
        reference_method: The method the paired differences are taken against.
        curves: Method -> key -> mean curve on
            :data:`~.CURVE_GRID`, for the curve columns
            (insertion, deletion).
        n_examples: Examples with at least one record.
        columns: The record keys summarised, in table order.
        out: The output folder, or ``None`` for an in-memory run.
        records_in_memory: The records of an in-memory run (``out=None``).
        maps: Method -> the first seed's maps of the kept examples, concatenated in the order
            of ``examples.indices`` (``compare``: every example; ``evaluate``: the first
            ``keep_examples``).
        top_k: The ``top_k`` of the consistency column.
        examples: The kept examples (inputs, boxes, indices) the rows of ``maps`` belong
            to, or ``None``.
        config: The settings of the run (methods, budget, seeds, metric knobs, model and
            data descriptions), as JSON values.

    Example:
        >>> records = [{"kind": "run", "index": i, "method": m, "seed": 0, "status": "ok",
        ...             "insertion": v, "forwards": 1.0, "seconds": 0.1}
        ...            for i, (a, b) in enumerate([(0.5, 0.25), (0.75, 0.5)])
        ...            for m, v in (("a", a), ("b", b))]
        >>> result = summarize(records)
        >>> print(result.to_markdown(digits=2))
        | method | n | insertion ↑ | forwards/input | s/input |
        |---|---|---|---|---|
        | a | 2 | 0.62 ± 0.24 | 1 | 0.1 |
        | b | 2 | 0.38 ± 0.24 | 1 | 0.1 |
        <BLANKLINE>
        Paired differences, method minus a (mean ± 95% interval over the same examples):
        <BLANKLINE>
        | method | Δ insertion ↑ |
        |---|---|
        | b | -0.25 ± 0.00 |
        >>> result["b"]["insertion"]
        0.375
    """

    summary: list[dict[str, Any]]
    paired: list[dict[str, Any]]
    reference_method: str | None
    curves: dict[str, dict[str, list[float]]]
    n_examples: int
    columns: list[str] = field(default_factory=list)
    out: Path | None = None
    records_in_memory: list[dict[str, Any]] = field(default_factory=list, repr=False)
    maps: dict[str, Tensor] = field(default_factory=dict, repr=False)
    top_k: float | int = 0.05
    examples: KeptExamples | None = field(default=None, repr=False)
    config: dict[str, Any] = field(default_factory=dict, repr=False)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record (from the files under ``out``, or from memory)."""
        if self.out is None:
            yield from self.records_in_memory
        else:
            yield from read_records(self.out)

    def __getitem__(self, method: str) -> dict[str, Any]:
        for row in self.summary:
            if row["method"] == method:
                return row
        raise KeyError(f"no method {method!r}; have {[r['method'] for r in self.summary]}")

    def present_columns(self) -> list[Column]:
        """The summary's columns with a value for at least one method, in table order."""
        cols = _columns_of(self.columns, self.top_k)
        return [c for c in cols if any(r.get(c.key) is not None for r in self.summary)]

    def paired_columns(self) -> list[Column]:
        """The present columns with a paired difference against :attr:`reference_method`."""
        keys = {p["metric"] for p in self.paired}
        return [c for c in self.present_columns() if c.key in keys]

    def to_markdown(self, digits: int = 3) -> str:
        """A table per method (mean ± 95% interval) and the paired differences; columns
        without any value are left out."""
        present = self.present_columns()
        head = ["method", "n", *(c.header for c in present), "forwards/input", "s/input"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.summary:
            cells = [r["method"], str(r["n"])]
            cells += [format_value(r.get(c.key), r.get(f"{c.key}_ci"), digits) for c in present]
            fw, secs = r["forwards_per_input"], r["seconds_per_input"]
            cells.append("–" if fw is None else f"{fw:g}")
            cells.append("–" if secs is None else f"{secs:.3g}")
            lines.append("| " + " | ".join(cells) + " |")
        paired = self.paired_columns()
        if paired:
            lines += [
                "",
                f"Paired differences, method minus {self.reference_method} (mean ± 95% "
                "interval over the same examples):",
                "",
                "| method | " + " | ".join(f"Δ {c.header}" for c in paired) + " |",
                "|" + "---|" * (len(paired) + 1),
            ]
            pairs = {(p["method"], p["metric"]): p for p in self.paired}
            for name in [r["method"] for r in self.summary if r["method"] != self.reference_method]:
                cells = [name]
                for c in paired:
                    p = pairs.get((name, c.key))
                    cells.append("–" if p is None else format_value(p["diff"], p["ci"], digits))
                lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the per-method summary (one row per method, every column; empty cells for
        ``None``) to ``path``."""
        keys = list(self.summary[0]) if self.summary else ["method"]
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            writer.writeheader()
            for row in self.summary:
                writer.writerow({k: "" if row.get(k) is None else row[k] for k in keys})

    def curve_columns(self) -> list[Column]:
        """The curve columns (insertion, deletion) with a mean curve for some method."""
        cols = [c for c in _columns_of(self.columns, self.top_k) if c.curve]
        return [c for c in cols if any(c.key in m for m in self.curves.values())]

    def example_runs(self, indices: Iterable[int]) -> dict[int, dict[str, dict[str, Any]]]:
        """Index -> method -> the run record of the first seed (whose maps are kept), for the
        examples ``indices``; a method whose run failed is missing."""
        wanted = set(indices)
        seeds = self.config.get("seeds") or []
        first = seeds[0] if seeds else None
        out: dict[int, dict[str, dict[str, Any]]] = {i: {} for i in wanted}
        for r in self.records():
            if r.get("kind") != "run" or r.get("status") != "ok" or r["index"] not in wanted:
                continue
            mine = out[r["index"]]
            if r["method"] not in mine or r["seed"] == first:
                mine[r["method"]] = r
        return out

    def plot(self, path: str | os.PathLike | None = None) -> Any:
        """Mean curves per method (one panel per curve column: insertion, deletion) above the
        per-example distributions of their values (a :class:`matplotlib.figure.Figure`;
        saved to ``path`` when given).

        Raises:
            ValueError: no curve was recorded (no insertion or deletion metric).
        """
        from matplotlib.figure import Figure

        from captum_perturbmask.viz.curves import draw_perturbation_curves

        curve_cols = self.curve_columns()
        if not curve_cols:
            raise ValueError("no curve to plot: the run recorded no insertion or deletion")
        fig = Figure(figsize=(5.5 * len(curve_cols), 6.5), layout="constrained")
        axes = fig.subplots(2, len(curve_cols), squeeze=False)
        per_example = _per_example(self.records(), [c.key for c in curve_cols])
        names = [r["method"] for r in self.summary]
        for j, col in enumerate(curve_cols):
            ax = axes[0, j]
            mean = {n: c[col.key] for n, c in self.curves.items() if col.key in c}
            draw_perturbation_curves(ax, mean, CURVE_GRID, col.label, col.higher_is_better,
                                     methods=names, prefix="mean ")  # fmt: skip
            ax = axes[1, j]
            data = [list(per_example[col.key].get(n, {}).values()) or [float("nan")]
                    for n in names]  # fmt: skip
            ax.boxplot(data, tick_labels=names, showmeans=True)
            ax.set_title(f"{col.label} AUC per example", fontsize=10)
            ax.tick_params(axis="x", labelrotation=20, labelsize=8)
            ax.grid(True, axis="y", alpha=0.3)
        axes[0, 0].legend(fontsize=8)
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig


def _per_example(
    records: Iterable[dict[str, Any]], keys: Sequence[str]
) -> dict[str, dict[str, dict[int, float]]]:
    """key -> method -> index -> mean over seeds (ok records only)."""
    sums: dict[str, dict[str, dict[int, list[float]]]] = {k: {} for k in keys}
    for r in records:
        if r.get("status") != "ok":
            continue
        for k in keys:
            v = r.get(k)
            if v is None:
                continue
            sums[k].setdefault(r["method"], {}).setdefault(r["index"], []).append(float(v))
    return {
        k: {name: {i: sum(v) / len(v) for i, v in per.items()} for name, per in by.items()}
        for k, by in sums.items()
    }


def summarize(
    records: Iterable[dict[str, Any]],
    methods: Sequence[str] | None = None,
    reference_method: str | None = None,
    top_k: float | int = 0.05,
    out: Path | None = None,
    keep_records: bool = False,
) -> EvaluationResult:
    """Summary of evaluation records: means with 95% intervals and paired differences.

    ``summarize(read_records("eval")).to_markdown()`` rebuilds the summary of a run.

    Every value is first averaged over the seeds of an example, then over examples (so each
    example weighs the same); the interval is 1.96 standard errors over examples
    (:func:`~captum_perturbmask.metrics.mean_ci`). A paired difference uses the examples both
    methods have, method minus ``reference_method``
    (:func:`~captum_perturbmask.metrics.paired_difference`).

    Args:
        records: Records as :func:`~.score_batch` makes
            them (any order; duplicates of the same (index, method, seed) count once).
        methods: Method order of the summary (default: order of first appearance).
        reference_method: Method of the paired differences (default: ``"PerturbMask"`` when
            present, else the first method); ``None`` with a single method.
        top_k: The consistency ``top_k``, for the column label.
        out: The folder the records came from.
        keep_records: Keep the records in the result (in-memory runs).

    Returns:
        An :class:`~.EvaluationResult`.

    Raises:
        ValueError: ``reference_method`` is not one of the methods.
    """
    unique: dict[tuple, dict[str, Any]] = {}
    for r in records:
        unique[(r["kind"], r["index"], r["method"], r.get("seed"))] = r
    recs = list(unique.values())
    order = list(methods) if methods is not None else []
    for r in recs:
        if r["method"] not in order and r["method"] != "*":
            order.append(r["method"])
    present = {k for r in recs for k in r} | {c.key for c in CONSISTENCY_COLUMNS}
    columns = [c.key for c in _columns_of(present, top_k)]
    per = _per_example(recs, columns)
    curve_keys = [c.key for c in _columns_of(present, top_k) if c.curve]
    rows = []
    curves: dict[str, dict[str, list[float]]] = {}
    for name in order:
        mine = [r for r in recs if r["method"] == name and r["kind"] == "run"]
        ok = [r for r in mine if r["status"] == "ok"]
        row: dict[str, Any] = {
            "method": name,
            "n": len({r["index"] for r in ok}),
            "errors": len({(r["index"], r["seed"]) for r in mine if r["status"] != "ok"}),
        }
        for key in columns:
            mean, ci, n = mean_ci(per[key].get(name, {}).values())
            row[key], row[f"{key}_ci"], row[f"{key}_n"] = _none_if_nan(mean), _none_if_nan(ci), n
        fw = [r["forwards"] for r in ok if r.get("forwards") is not None]
        row["forwards_per_input"] = sum(fw) / len(fw) if fw else None
        secs = [r["seconds"] for r in ok if r.get("seconds") is not None]
        row["seconds_per_input"] = sum(secs) / len(secs) if secs else None
        seeds: dict[int, set] = {}
        for r in ok:
            seeds.setdefault(r["index"], set()).add(r["seed"])
        row["runs"] = max((len(s) for s in seeds.values()), default=0)
        row["stochastic"] = any(r["kind"] == "consistency" and r["method"] == name for r in recs)
        rows.append(row)
        for key in curve_keys:
            with_curve = [r[f"curve_{key}"] for r in ok if r.get(f"curve_{key}")]
            if with_curve:
                curves.setdefault(name, {})[key] = [
                    sum(c[i] for c in with_curve) / len(with_curve) for i in range(len(CURVE_GRID))
                ]
    if reference_method is None and len(order) > 1:
        reference_method = "PerturbMask" if "PerturbMask" in order else order[0]
    paired = []
    if reference_method is not None:
        if reference_method not in order:
            raise ValueError(
                f"`reference_method` {reference_method!r} is not one of the methods {order}."
            )
        for name in order:
            if name == reference_method:
                continue
            for key in columns:
                diff, ci, n = paired_difference(
                    per[key].get(name, {}), per[key].get(reference_method, {})
                )
                if n:
                    paired.append(
                        {"method": name, "reference_method": reference_method, "metric": key,
                         "n": n, "diff": diff, "ci": _none_if_nan(ci)}
                    )  # fmt: skip
    return EvaluationResult(
        summary=rows, paired=paired, reference_method=reference_method, curves=curves,
        n_examples=len({r["index"] for r in recs}), columns=columns, out=out,
        records_in_memory=recs if keep_records else [], top_k=top_k,
    )  # fmt: skip
