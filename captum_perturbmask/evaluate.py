r"""Dataset-scale evaluation of saliency methods: one process or many (``torchrun``).

:func:`evaluate` explains every example of a dataset with every method and seed, scores each map
(insertion / deletion AUC, IoU and pointing when an evidence box or span is known, forward
passes, seconds; run-to-run consistency across seeds) and writes one JSON Lines record per
(example, method, seed) as it goes. A killed run loses at most the batch in flight and resumes
where it stopped. Under ``torchrun`` every rank takes a disjoint shard of whole batches and
writes its own file; rank 0 merges them into the summary (mean ± 95% interval per method and
metric, paired differences against a reference method) and its figures.

The scoring of one batch, :func:`score_batch`, is the same code
:func:`~captum_perturbmask.compare.compare` runs on one batch.

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3)).eval()
    >>> data = TensorDataset(torch.rand(4, 3, 4, 4), torch.tensor([0, 1, 2, 0]))
    >>> methods = {"pixels": lambda x, target, seed: x.abs()}
    >>> result = evaluate(model, data, methods, batch_size=2, show_progress=False)
    >>> result.n_examples, [row["method"] for row in result.summary]
    (4, ['pixels'])
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from captum_perturbmask._core.captum_compat import TargetType
from captum_perturbmask._core.checks import check_bool, check_choice, check_int
from captum_perturbmask._core.forward import ConfidenceType, CountForwards, check_confidence
from captum_perturbmask._core.random import private_global_rng

__all__ = ["EvaluationResult", "evaluate", "score_batch", "summarize"]

#: A saliency method as :func:`evaluate` and :func:`~captum_perturbmask.compare.compare` call
#: it: ``fn(inputs, target, seed) -> attributions``.
AttributionFn = Callable[[Tensor, TargetType, int], Tensor]

#: Fractions at which every insertion/deletion curve is recorded (the mean-curve figure).
CURVE_GRID = tuple(i / 20 for i in range(21))
METRICS = ("insertion", "deletion", "iou", "pointing")
_LOCALISATION = ("iou", "pointing")
ON_ERROR = ("raise", "skip")


# ------------------------------------------------------------------------------------------
# Methods
# ------------------------------------------------------------------------------------------
def as_method(name: str, method: Any) -> AttributionFn:
    """Wrap a Captum ``Attribution`` object as ``fn(inputs, target, seed)``.

    The seed is passed on when the object's ``attribute`` takes one (PerturbMask, RISE).
    """
    attribute = getattr(method, "attribute", None)
    if callable(attribute):
        takes_seed = "seed" in inspect.signature(attribute).parameters

        def fn(x: Tensor, target: TargetType, seed: int) -> Tensor:
            if takes_seed:
                return attribute(x, target=target, seed=seed)
            return attribute(x, target=target)

        return fn
    if callable(method):
        return method
    raise TypeError(
        f"`methods[{name!r}]` must be a callable fn(inputs, target, seed) or a Captum "
        f"Attribution, got {type(method).__name__}."
    )


def fit_to_inputs(name: str, attributions: Any, inputs: Tensor) -> Tensor:
    """Unwrap 1-tuples, detach, and upsample layer attributions to the input size."""
    if isinstance(attributions, tuple) and len(attributions) == 1:
        attributions = attributions[0]
    if not isinstance(attributions, Tensor):
        raise TypeError(f"Method {name!r} must return a tensor, got {type(attributions).__name__}.")
    attributions = attributions.detach()
    spatial = inputs.shape[2:]
    if attributions.ndim == inputs.ndim and attributions.shape[2:] != spatial:
        mode = "bilinear" if inputs.ndim == 4 else "linear"
        attributions = torch.nn.functional.interpolate(
            attributions.float(), size=spatial, mode=mode, align_corners=False
        )
    if not bool(torch.isfinite(attributions).all()):
        raise ValueError(f"Method {name!r} returned NaN or infinite attributions.")
    return attributions.to(inputs.dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def derive_seed(seed: int, index: int) -> int:
    """The seed of the batch that starts at dataset ``index`` (never of a process or position)."""
    return (int(seed) * 0x9E3779B97F4A7C15 + int(index)) % 2**63


# ------------------------------------------------------------------------------------------
# Scoring one batch
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreSettings:
    """How maps are scored (the knobs of :func:`evaluate` that :func:`score_batch` needs)."""

    confidence: ConfidenceType = "auto"
    n_steps: int | None = None
    step_size: int | None = None
    metric_batch_size: int = 256
    top_k: float | int = 0.05
    box_threshold: float = 0.5
    box_mode: str = "quantile"
    pointing_tolerance: float = 0
    metrics: tuple[str, ...] = METRICS


def _resample_curve(curve: Tensor, fractions: Tensor) -> list[float]:
    grid = torch.tensor(CURVE_GRID, dtype=torch.float64)
    c, f = curve.detach().double().cpu(), fractions.detach().double().cpu()
    idx = torch.searchsorted(f, grid).clamp(1, f.numel() - 1)
    lo, hi = f[idx - 1], f[idx]
    w = ((grid - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    values = c[idx - 1] + w * (c[idx] - c[idx - 1])
    return [round(float(v), 6) for v in values]


def _localisation(attributions: Tensor, boxes: Tensor, settings: ScoreSettings) -> tuple:
    """IoU and pointing hits of maps against boxes ``(N, 4)`` (images) or spans ``(N, 2)``."""
    from captum_perturbmask import metrics

    if boxes.shape[1] == 4:
        size = tuple(attributions.shape[-2:])
        predicted = metrics.saliency_box(attributions, settings.box_threshold, settings.box_mode)
        iou = metrics.box_iou(predicted, boxes.to(predicted.device), size)
        hits = metrics.pointing_game(attributions, boxes, tolerance=settings.pointing_tolerance)
    else:
        predicted = metrics.saliency_span(attributions, settings.box_threshold, settings.box_mode)
        iou = metrics.span_iou(predicted, boxes.to(predicted.device))
        hits = metrics.pointing_game(attributions, boxes, tolerance=settings.pointing_tolerance)
    return iou, hits


def score_batch(
    model: Callable[..., Any],
    methods: Mapping[str, AttributionFn],
    inputs: Tensor,
    target: TargetType,
    indices: Sequence[int],
    seeds: Sequence[int],
    settings: ScoreSettings = ScoreSettings(),
    boxes: Tensor | None = None,
    counter: CountForwards | None = None,
    on_error: str = "raise",
    keep_maps: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, list[Tensor]]]:
    """Explain one batch with every method and seed and score every map.

    ``records, _ = score_batch(model, {"RISE": fn}, x, y, indices=range(len(x)), seeds=[0])``
    gives one record (a dict) per input, method and seed.

    Each method runs once per seed inside a fork of the global RNG seeded with
    :func:`derive_seed` of the batch's first dataset index (methods that draw from the global
    RNG, such as Captum's ``Lime``, become reproducible and the caller's RNG is untouched). A
    method whose first two runs are identical is deterministic: it is not run again and gets
    no consistency record.

    Args:
        model: the classifier the metrics score with.
        methods: name -> ``fn(inputs, target, seed)`` (see :func:`as_method`).
        inputs: the batch :math:`(B, C, H, W)` or :math:`(B, C, T)`.
        target: Captum target of the batch (resolved: ``None`` only for one-output models).
        indices: dataset index of every example, length :math:`B`.
        seeds: the run seeds.
        settings: metric knobs.
        boxes: evidence boxes :math:`(B, 4)` or spans :math:`(B, 2)`; rows of NaN have none.
        counter: counts the model's forward rows during the method calls (``None``: not counted).
        on_error: ``"raise"``, or ``"skip"`` to record a failing method with its message.
        keep_maps: also return every map (for :func:`~captum_perturbmask.compare.compare`).

    Returns:
        The records (``kind`` ``"run"`` per example, method and seed; ``"consistency"`` per
        example and stochastic method) and, with ``keep_maps``, name -> list of maps per seed.
    """
    from captum_perturbmask.metrics import insertion_deletion, run_consistency

    batch = inputs.shape[0]
    records: list[dict[str, Any]] = []
    kept: dict[str, list[Tensor]] = {}
    targets = _target_values(target, batch)
    has_box = None if boxes is None else ~torch.isnan(boxes.double()).any(1)
    for name, fn in methods.items():
        maps: list[Tensor] = []
        run_seeds: list[int] = []
        try:
            for i, seed in enumerate(seeds):
                derived = derive_seed(seed, indices[0])
                if counter is not None:
                    counter.rows = 0
                _sync(inputs.device)
                start = time.perf_counter()
                with private_global_rng(inputs.device):
                    torch.manual_seed(derived)
                    out = fn(inputs, target, derived)
                _sync(inputs.device)
                seconds = time.perf_counter() - start
                attributions = fit_to_inputs(name, out, inputs)
                forwards = None if counter is None else counter.rows / batch
                if i == 1 and torch.equal(maps[0], attributions):
                    for r in records:
                        if r["method"] == name:
                            r["deterministic"] = True
                    break
                maps.append(attributions)
                run_seeds.append(seed)
                curves = None
                if {"insertion", "deletion"} & set(settings.metrics):
                    curves = insertion_deletion(
                        model,
                        inputs,
                        attributions,
                        target,
                        n_steps=settings.n_steps,
                        step_size=settings.step_size,
                        batch_size=settings.metric_batch_size,
                        confidence=settings.confidence,
                        return_curves=True,
                    )
                iou = hits = None
                wants_box = {"iou", "pointing"} & set(settings.metrics)
                if wants_box and has_box is not None and bool(has_box.any()):
                    rows = has_box.nonzero().flatten()
                    iou_s, hits_s = _localisation(attributions[rows], boxes[rows], settings)
                    iou = torch.full((batch,), float("nan"), dtype=torch.float64)
                    hits = torch.full((batch,), float("nan"), dtype=torch.float64)
                    iou[rows.cpu()] = iou_s.double().cpu()
                    hits[rows.cpu()] = hits_s.double().cpu()
                ins = None if curves is None else curves.insertion.double().cpu()
                dele = None if curves is None else curves.deletion.double().cpu()
                for b in range(batch):
                    records.append(
                        {
                            "kind": "run",
                            "index": int(indices[b]),
                            "method": name,
                            "seed": int(seed),
                            "target": targets[b],
                            "insertion": _num(ins, b),
                            "deletion": _num(dele, b),
                            "iou": _num(iou, b),
                            "pointing": _num(hits, b),
                            "forwards": forwards,
                            "seconds": seconds / batch,
                            "deterministic": False,
                            "curve_insertion": None
                            if curves is None
                            else _resample_curve(curves.insertion_curve[b], curves.fractions),
                            "curve_deletion": None
                            if curves is None
                            else _resample_curve(curves.deletion_curve[b], curves.fractions),
                            "status": "ok",
                            "error": None,
                        }
                    )
        except Exception as err:  # noqa: BLE001 - recorded in "skip" mode, re-raised otherwise
            if on_error == "raise":
                raise
            message = f"{type(err).__name__}: {err}".splitlines()[0][:500]
            done = {(r["index"], r["seed"]) for r in records if r["method"] == name}
            for b in range(batch):
                for seed in seeds:
                    if (int(indices[b]), int(seed)) not in done:
                        records.append(_failure(indices[b], name, seed, targets[b], message))
            continue
        if len(maps) > 1:
            agreement = run_consistency(maps, top_k=settings.top_k)
            for b in range(batch):
                records.append(
                    {
                        "kind": "consistency",
                        "index": int(indices[b]),
                        "method": name,
                        "seeds": [int(s) for s in run_seeds],
                        "spearman": _num(agreement.spearman, b),
                        "top_k_iou": _num(agreement.top_k_iou, b),
                        "status": "ok",
                        "error": None,
                    }
                )
        if keep_maps:
            kept[name] = maps
    return records, kept


def _num(values: Tensor | None, b: int) -> float | None:
    if values is None:
        return None
    v = float(values[b])
    return None if math.isnan(v) else v


def _failure(index: int, method: str, seed: int, target: Any, message: str) -> dict[str, Any]:
    return {
        "kind": "run", "index": int(index), "method": method, "seed": int(seed),
        "target": target, "insertion": None, "deletion": None, "iou": None, "pointing": None,
        "forwards": None, "seconds": None, "deterministic": False, "curve_insertion": None,
        "curve_deletion": None, "status": "error", "error": message,
    }  # fmt: skip


def _target_values(target: TargetType, batch: int) -> list[Any]:
    """JSON-friendly target of every example."""
    if target is None:
        return [None] * batch
    if isinstance(target, Tensor):
        if target.numel() == 1:
            return [int(target.item())] * batch
        return [int(t) for t in target.tolist()]
    if isinstance(target, list):
        return [list(t) if isinstance(t, tuple) else int(t) for t in target]
    return [list(target) if isinstance(target, tuple) else int(target)] * batch


# ------------------------------------------------------------------------------------------
# Summary
# ------------------------------------------------------------------------------------------
def mean_ci(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, half-width of the normal 95% interval (1.96 standard errors) and count.

    Example:
        >>> mean, half_width, n = mean_ci([1.0, 2.0, 3.0])
        >>> mean, round(half_width, 4), n  # 1.96 * 1 / sqrt(3)
        (2.0, 1.1316, 3)
    """
    v = [x for x in values if x is not None and not math.isnan(x)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    mean = sum(v) / n
    if n < 2:
        return mean, float("nan"), n
    var = sum((x - mean) ** 2 for x in v) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n), n


@dataclass
class EvaluationResult:
    """Summary of :func:`evaluate` (and the way back to its records).

    Attributes:
        summary: one dict per method: ``method``, ``n`` (examples), ``errors``, and for each
            metric ``<metric>`` (mean), ``<metric>_ci`` (95% half-width) and ``<metric>_n``;
            metrics: insertion, deletion, iou, pointing, spearman, top_k_iou; plus
            ``forwards_per_input``, ``seconds_per_input``, ``stochastic``.
        paired: one dict per (method, metric) against ``reference``: ``method``, ``metric``,
            ``n``, ``diff`` (mean of method minus reference over the same examples), ``ci``.
        reference: the method the paired differences are taken against.
        curves: method -> ``{"insertion": [...], "deletion": [...]}`` mean curves on
            :data:`CURVE_GRID`.
        n_examples: examples with at least one record.
        out: the output folder, or ``None`` for an in-memory run.
        records_in_memory: the records of an in-memory run (``out=None``).
        top_k: the ``top_k`` of the consistency column.
    """

    summary: list[dict[str, Any]]
    paired: list[dict[str, Any]]
    reference: str | None
    curves: dict[str, dict[str, list[float]]]
    n_examples: int
    out: Path | None = None
    records_in_memory: list[dict[str, Any]] = field(default_factory=list, repr=False)
    top_k: float | int = 0.05

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

    def to_markdown(self, digits: int = 3) -> str:
        """A table per method (mean ± 95% interval) and the paired differences."""
        top = f"top-{100 * self.top_k:g}% IoU" if isinstance(self.top_k, float) else (
            f"top-{self.top_k} IoU"
        )  # fmt: skip
        labels = {
            "insertion": "insertion ↑", "deletion": "deletion ↓", "iou": "IoU ↑",
            "pointing": "pointing ↑", "spearman": "Spearman ↑", "top_k_iou": f"{top} ↑",
        }  # fmt: skip
        present = [m for m in labels if any(not math.isnan(r[m]) for r in self.summary)]
        head = ["method", "n", *(labels[m] for m in present), "forwards/input", "s/input"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.summary:
            cells = [r["method"], str(r["n"])]
            for m in present:
                cells.append(_fmt(r[m], r[f"{m}_ci"], digits))
            cells.append("–" if r["forwards_per_input"] is None else f"{r['forwards_per_input']:g}")
            cells.append("–" if math.isnan(r["seconds_per_input"]) else (
                f"{r['seconds_per_input']:.3g}"))  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        if self.paired:
            metrics = [m for m in present if any(p["metric"] == m for p in self.paired)]
            lines += ["", f"Paired differences, method minus {self.reference} (mean ± 95% "
                      "interval over the same examples):", "",
                      "| method | " + " | ".join(f"Δ {labels[m]}" for m in metrics) + " |",
                      "|" + "---|" * (len(metrics) + 1)]  # fmt: skip
            for name in [r["method"] for r in self.summary if r["method"] != self.reference]:
                cells = [name]
                for m in metrics:
                    p = next((p for p in self.paired if p["method"] == name and p["metric"] == m),
                             None)  # fmt: skip
                    cells.append("–" if p is None else _fmt(p["diff"], p["ci"], digits))
                lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the per-method summary (one row per method, every column) to ``path``."""
        keys = list(self.summary[0]) if self.summary else ["method"]
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            for row in self.summary:
                writer.writerow({k: "" if row[k] is None else row[k] for k in keys})

    def plot(self, path: str | os.PathLike | None = None) -> Any:
        """Mean insertion/deletion curves per method and the per-example metric distributions
        (a :class:`matplotlib.figure.Figure`; saved to ``path`` when given)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 6.5), layout="constrained")
        axes = fig.subplots(2, 2)
        grid = list(CURVE_GRID)
        for key, ax, title in (
            ("insertion", axes[0, 0], "mean insertion curve (higher is better)"),
            ("deletion", axes[0, 1], "mean deletion curve (lower is better)"),
        ):
            for name, curves in self.curves.items():
                ax.plot(grid, curves[key], label=name)
            ax.set_xlabel("fraction of pixels inserted" if key == "insertion" else
                          "fraction of pixels deleted")  # fmt: skip
            ax.set_ylabel("confidence in the target")
            ax.set_title(title, fontsize=10)
            ax.grid(True, alpha=0.3)
        axes[0, 0].legend(fontsize=8)
        per_example = _per_example(self.records(), ("insertion", "deletion"))
        names = [r["method"] for r in self.summary]
        for ax, key in ((axes[1, 0], "insertion"), (axes[1, 1], "deletion")):
            data = [[v for v in per_example[key].get(n, {}).values()] or [float("nan")]
                    for n in names]  # fmt: skip
            ax.boxplot(data, tick_labels=names, showmeans=True)
            ax.set_title(f"{key} AUC per example", fontsize=10)
            ax.tick_params(axis="x", labelrotation=20, labelsize=8)
            ax.grid(True, axis="y", alpha=0.3)
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig


def _fmt(mean: float, ci: float, digits: int) -> str:
    if math.isnan(mean):
        return "–"
    if math.isnan(ci):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


def _per_example(
    records: Iterator[dict[str, Any]] | list[dict[str, Any]], metrics: Sequence[str]
) -> dict[str, dict[str, dict[int, float]]]:
    """metric -> method -> index -> mean over seeds (ok records only)."""
    sums: dict[str, dict[str, dict[int, list[float]]]] = {m: {} for m in metrics}
    for r in records:
        if r.get("status") != "ok":
            continue
        for m in metrics:
            v = r.get(m)
            if v is None:
                continue
            sums[m].setdefault(r["method"], {}).setdefault(r["index"], []).append(float(v))
    return {
        m: {name: {i: sum(v) / len(v) for i, v in per.items()} for name, per in by.items()}
        for m, by in sums.items()
    }


def summarize(
    records: Sequence[dict[str, Any]] | Iterator[dict[str, Any]],
    methods: Sequence[str] | None = None,
    reference: str | None = None,
    top_k: float | int = 0.05,
    out: Path | None = None,
    keep_records: bool = False,
) -> EvaluationResult:
    """Summary of evaluation records: means with 95% intervals and paired differences.

    ``summarize(read_records("eval")).to_markdown()`` rebuilds the summary of a run.

    Every metric is first averaged over the seeds of an example, then over examples (so each
    example weighs the same); the interval is 1.96 standard errors over examples. A paired
    difference uses the examples both methods have, method minus ``reference``.

    Args:
        records: records as :func:`score_batch` makes them (any order, duplicates of the same
            (index, method, seed) are counted once).
        methods: method order of the summary (default: order of first appearance).
        reference: method of the paired differences (default: ``"PerturbMask"`` when present,
            else the first method); ``None`` with a single method.
        top_k: the consistency ``top_k``, for the column label.
        out: the folder the records came from.
        keep_records: keep the records in the result (in-memory runs).

    Returns:
        An :class:`EvaluationResult`.
    """
    unique: dict[tuple, dict[str, Any]] = {}
    for r in records:
        key = (r["kind"], r["index"], r["method"], r.get("seed"))
        unique[key] = r
    recs = list(unique.values())
    order = list(methods) if methods is not None else []
    for r in recs:
        if r["method"] not in order:
            order.append(r["method"])
    all_metrics = (*METRICS, "spearman", "top_k_iou")
    per = _per_example(recs, all_metrics)
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
        for m in all_metrics:
            mean, ci, n = mean_ci(list(per[m].get(name, {}).values()))
            row[m], row[f"{m}_ci"], row[f"{m}_n"] = mean, ci, n
        fw = [r["forwards"] for r in ok if r["forwards"] is not None]
        row["forwards_per_input"] = sum(fw) / len(fw) if fw else None
        secs = [r["seconds"] for r in ok if r["seconds"] is not None]
        row["seconds_per_input"] = sum(secs) / len(secs) if secs else float("nan")
        row["stochastic"] = any(r["kind"] == "consistency" and r["method"] == name for r in recs)
        rows.append(row)
        with_curves = [r for r in ok if r.get("curve_insertion")]
        if with_curves:
            curves[name] = {
                key: [
                    sum(r[f"curve_{key}"][i] for r in with_curves) / len(with_curves)
                    for i in range(len(CURVE_GRID))
                ]
                for key in ("insertion", "deletion")
            }
    if reference is None and len(order) > 1:
        reference = "PerturbMask" if "PerturbMask" in order else order[0]
    paired = []
    if reference is not None:
        if reference not in order:
            raise ValueError(f"`reference` {reference!r} is not one of the methods {order}.")
        for name in order:
            if name == reference:
                continue
            for m in all_metrics:
                ref, mine = per[m].get(reference, {}), per[m].get(name, {})
                common = sorted(set(ref) & set(mine))
                if not common:
                    continue
                diff, ci, n = mean_ci([mine[i] - ref[i] for i in common])
                paired.append(
                    {"method": name, "reference": reference, "metric": m, "n": n,
                     "diff": diff, "ci": ci}
                )  # fmt: skip
    n_examples = len({r["index"] for r in recs})
    return EvaluationResult(
        summary=rows, paired=paired, reference=reference, curves=curves,
        n_examples=n_examples, out=out, records_in_memory=recs if keep_records else [],
        top_k=top_k,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------
# Records on disk
# ------------------------------------------------------------------------------------------
def _records_path(out: Path, rank: int) -> Path:
    return out / f"records-rank{rank:05d}.jsonl"


def read_records(out: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every complete record under ``out`` (a line cut by a kill is skipped)."""
    for path in sorted(Path(out).glob("records-rank*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # the batch in flight when a run was killed


def _drop_partial_line(path: Path) -> None:
    """Cut a last line left unfinished by a killed run, so appends start on a fresh line."""
    if not path.exists():
        return
    with open(path, "rb+") as fh:
        end = fh.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            step = min(1 << 16, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                if pos - step + cut + 1 < end:
                    fh.truncate(pos - step + cut + 1)
                return
            pos -= step
        fh.truncate(0)


def _append(path: Path, records: list[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# ------------------------------------------------------------------------------------------
# Dataset items
# ------------------------------------------------------------------------------------------
def _item(dataset: Any, index: int) -> tuple[Tensor, Any, Tensor | None]:
    """``(input, target, box)`` of item ``index``, checked."""
    item = dataset[index]
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
        kind = type(item).__name__ + (f" of length {len(item)}" if isinstance(item, (tuple, list))
                                      else "")  # fmt: skip
        raise ValueError(
            f"dataset item {index} must be (input, target) or (input, target, box), got a {kind}"
        )
    x, target = item[0], item[1]
    box = item[2] if len(item) == 3 else None
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() not in (1, 2, 3):
        what = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else (
            type(x).__name__)  # fmt: skip
        raise ValueError(
            f"dataset item {index}: the input must be a floating-point tensor (C, H, W) or "
            f"(C, T), got a {what}"
        )
    if isinstance(target, Tensor):
        if target.numel() != 1 or target.is_floating_point() or target.dtype == torch.bool:
            raise ValueError(
                f"dataset item {index}: the target must be an int, a one-element integer tensor "
                f"or None, got a {target.dtype} tensor of shape {tuple(target.shape)}"
            )
        target = int(target.item())
    elif target is not None and (isinstance(target, bool) or not isinstance(target, int)):
        raise ValueError(
            f"dataset item {index}: the target must be an int, a one-element integer tensor or "
            f"None, got {type(target).__name__}"
        )
    if box is not None:
        box = torch.as_tensor(box, dtype=torch.float64).flatten()
        expected = 4 if x.dim() == 3 else 2
        if box.numel() != expected or not bool(torch.isfinite(box).all()):
            raise ValueError(
                f"dataset item {index}: the box must hold {expected} finite numbers "
                f"({'x1, y1, x2, y2' if expected == 4 else 'start, end'}), got {box.tolist()}"
            )
    return x, target, box


def _collate(
    dataset: Any, indices: list[int], on_error: str, skipped: list[dict[str, Any]]
) -> tuple[list[int], Tensor | None, list[Any], Tensor | None]:
    xs, targets, boxes, kept = [], [], [], []
    for i in indices:
        try:
            x, t, b = _item(dataset, i)
            if xs and x.shape != xs[0].shape:
                raise ValueError(
                    f"dataset item {i}: input shape {tuple(x.shape)} differs from the batch's "
                    f"{tuple(xs[0].shape)} (use a transform that gives one size)"
                )
        except Exception as err:
            if on_error == "raise":
                raise
            skipped.append(_failure(i, "*", -1, None, f"{type(err).__name__}: {err}"[:500]))
            continue
        kept.append(i)
        xs.append(x)
        targets.append(t)
        boxes.append(b)
    if not xs:
        return kept, None, targets, None
    box_t = None
    if any(b is not None for b in boxes):
        width = next(b for b in boxes if b is not None).numel()
        box_t = torch.stack(
            [b if b is not None else torch.full((width,), float("nan"), dtype=torch.float64)
             for b in boxes]
        )  # fmt: skip
    return kept, torch.stack(xs), targets, box_t


# ------------------------------------------------------------------------------------------
# Distribution
# ------------------------------------------------------------------------------------------
class _Distributed:
    """``torch.distributed`` under ``torchrun`` (env ``WORLD_SIZE`` > 1), else one process."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.created = False
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and dist.is_available() and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend)
            self.created = True
        self.active = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.active else 0
        self.world = dist.get_world_size() if self.active else 1
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    def barrier(self) -> None:
        if self.active:
            if self.dist.get_backend() == "nccl":
                self.dist.barrier(device_ids=[torch.cuda.current_device()])
            else:
                self.dist.barrier()

    def close(self) -> None:
        if self.created:
            self.dist.destroy_process_group()


# ------------------------------------------------------------------------------------------
# evaluate
# ------------------------------------------------------------------------------------------
def evaluate(
    model: Callable[..., Any],
    dataset: Any,
    methods: Mapping[str, Any] | None = None,
    *,
    budget: int = 400,
    seeds: Sequence[int] = (0,),
    batch_size: int = 16,
    metrics: Sequence[str] = METRICS,
    out: str | os.PathLike | None = None,
    resume: bool = True,
    device: str | torch.device | None = None,
    on_error: str = "raise",
    show_progress: bool = True,
    indices: Sequence[int] | None = None,
    reference: str | None = None,
    confidence: ConfidenceType = "auto",
    n_steps: int | None = None,
    step_size: int | None = None,
    metric_batch_size: int = 256,
    top_k: float | int = 0.05,
    box_threshold: float = 0.5,
    box_mode: str = "quantile",
    pointing_tolerance: float = 0,
) -> EvaluationResult:
    r"""Explain and score a whole dataset with several saliency methods; resumable, sharded.

    ``result = evaluate(model, dataset, out="eval")`` runs the default methods on every item;
    ``print(result.to_markdown())`` shows means with 95% intervals. The same call under
    ``torchrun --nproc_per_node N script.py`` shards the dataset over N processes.

    Every example is explained by every method for every seed and each map is scored:
    insertion / deletion AUC (plus the curves on :data:`CURVE_GRID`), IoU of the saliency box
    (span) with the evidence box (span) and a pointing-game hit when the item carries one,
    forward passes of ``model`` per example (counted when ``model`` is an ``nn.Module``) and
    seconds; with two or more seeds, the run-to-run Spearman and top-k IoU of each stochastic
    method. Records (JSON Lines, one per example, method and seed — ``pandas.read_json(path,
    lines=True)`` opens them) are appended under ``out`` after each batch, so memory does not
    grow with the dataset and a killed run loses at most the batch in flight; ``resume=True``
    skips what is recorded.

    Batches are fixed blocks of ``batch_size`` consecutive dataset indices, and the seed of a
    block is derived from its first index, never from the process or the order of work: one
    process and any number of ``torchrun`` ranks give bit-identical records on CPU (at the same
    thread count). Under ``torchrun`` each rank initialises the process group (gloo on CPU,
    nccl on CUDA, device ``cuda:LOCAL_RANK``), takes every ``world_size``-th block (a disjoint
    shard, no padded duplicates), writes ``records-rank<r>.jsonl``, and rank 0 merges all of
    them after a barrier and writes the summary; without torchrun's environment it runs in one
    process.

    Args:
        model: the classifier; its output and ``confidence`` follow the package's rule
            (softmax over dim 1 for several classes, sigmoid for one logit).
        dataset: any map-style dataset whose items are ``(input, target)`` or
            ``(input, target, box)``: input :math:`(C, H, W)` or :math:`(C, T)`; target an
            int, a one-element tensor or ``None`` (the model's prediction); box ``xyxy``
            (pixel-edge convention) for images or ``(start, end)`` for series. A torchvision
            ``ImageFolder`` with its transforms works as is.
        methods: name -> ``fn(inputs, target, seed)`` or a Captum ``Attribution`` object (the
            same mapping as :func:`~captum_perturbmask.compare.compare`); ``None`` runs
            :func:`~captum_perturbmask.compare.default_methods` at ``budget``.
        budget: forward passes per example of the default methods.
        seeds: run seeds; two or more give consistency records.
        batch_size: examples explained together.
        metrics: which of ``"insertion"``, ``"deletion"``, ``"iou"``, ``"pointing"`` to report
            (all are recorded).
        out: folder for the records, ``config.json``, ``summary.md``/``.csv`` and
            ``curves.png``; ``None`` keeps the records in memory (small runs).
        resume: skip the (example, method, seed) records already under ``out``.
        device: where the model and the inputs go (the model is moved there for the run and
            moved back afterwards); default the model's device, or ``cuda:LOCAL_RANK`` under
            torchrun with CUDA.
        on_error: ``"raise"`` (default), or ``"skip"``: a failing item or method is recorded
            with its message and the run goes on.
        show_progress: a progress bar per rank.
        indices: the dataset indices to evaluate (default all).
        reference: method the paired differences are taken against (default ``"PerturbMask"``
            when present, else the first).
        confidence: scored confidence of the insertion/deletion metrics.
        n_steps: insertion/deletion steps (see :func:`~captum_perturbmask.metrics.insertion_auc`).
        step_size: insertion/deletion pixels per step.
        metric_batch_size: rows per forward of the metrics.
        top_k: top set of the consistency IoU, a fraction or a count.
        box_threshold: threshold of the saliency box / span.
        box_mode: mode of the saliency box / span (``"quantile"``, ``"value"``, ``"energy"``).
        pointing_tolerance: tolerance of the pointing game, in pixels (steps).

    Returns:
        An :class:`EvaluationResult` (on every rank; the summary files are written by rank 0).

    Raises:
        TypeError, ValueError: bad arguments; a malformed dataset item (naming its index and
            what was expected) unless ``on_error="skip"``; a resumed ``out`` written with other
            settings.
    """
    from tqdm.auto import tqdm

    budget = check_int(budget, "budget")
    batch_size = check_int(batch_size, "batch_size")
    metric_batch_size = check_int(metric_batch_size, "metric_batch_size")
    seeds = [check_int(s, "seeds", 0) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"`seeds` must be distinct non-negative ints, got {seeds!r}.")
    for m in metrics:
        check_choice(m, "metrics", METRICS)
    check_bool(resume, "resume")
    check_choice(on_error, "on_error", ON_ERROR)
    check_bool(show_progress, "show_progress")
    check_confidence(confidence)
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"`dataset` must be a map-style dataset (__getitem__ and __len__), got "
            f"{type(dataset).__name__}"
        )
    all_indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    if not all_indices:
        raise ValueError("`dataset` (or `indices`) selects no example.")
    settings = ScoreSettings(
        confidence, n_steps, step_size, metric_batch_size, top_k, box_threshold, box_mode,
        pointing_tolerance, tuple(metrics),
    )  # fmt: skip

    dist = _Distributed()
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        if str(out) == "":
            raise ValueError("`out` must be a folder path, got an empty string.")
        out_dir.mkdir(parents=True, exist_ok=True)
    original_device = _module_device(model)
    if device is None:
        if dist.active and torch.cuda.is_available():
            device = torch.device("cuda", dist.local_rank)
        else:
            device = original_device or torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    moved = isinstance(model, nn.Module) and original_device not in (None, device)
    if moved:
        model.to(device)
    try:
        result = _run(
            model, dataset, methods, budget, seeds, batch_size, out_dir, resume, device,
            on_error, show_progress, all_indices, reference, settings, dist, tqdm,
        )  # fmt: skip
    finally:
        if moved:
            model.to(original_device)
        dist.close()
    return result


def _module_device(model: Any) -> torch.device | None:
    if isinstance(model, nn.Module):
        for t in (*model.parameters(), *model.buffers()):
            return t.device
    return None


def _config(methods: Sequence[str], **kw: Any) -> dict[str, Any]:
    return {"methods": list(methods), **kw}


def _run(
    model: Any, dataset: Any, methods: Mapping[str, Any] | None, budget: int, seeds: list[int],
    batch_size: int, out: Path | None, resume: bool, device: torch.device, on_error: str,
    show_progress: bool, all_indices: list[int], reference: str | None,
    settings: ScoreSettings, dist: _Distributed, tqdm: Any,
) -> EvaluationResult:  # fmt: skip
    blocks = [all_indices[s : s + batch_size] for s in range(0, len(all_indices), batch_size)]
    mine = blocks[dist.rank :: dist.world]
    counter = CountForwards(model)
    first, _, _ = _item(dataset, all_indices[0])
    shape = (min(batch_size, len(all_indices)), *first.shape)
    example = first.to(device).unsqueeze(0).expand(shape)
    fns = _methods(model, methods, counter, example, budget, settings.metric_batch_size)
    names = list(fns)
    counted = counter if isinstance(model, nn.Module) or methods is None else None
    done: set[tuple[int, str]] = set()
    memory: list[dict[str, Any]] = []
    path = None
    if out is not None:
        path = _records_path(out, dist.rank)
        if resume:
            _drop_partial_line(path)
            done = _completed(read_records(out), seeds)
        elif dist.rank == 0:
            for old in out.glob("records-rank*.jsonl"):
                old.unlink()
        if dist.rank == 0:
            _write_config(out, names, budget, seeds, batch_size, settings, resume)
        dist.barrier()
    bar = tqdm(
        total=sum(len(b) for b in mine),
        desc=f"evaluate rank {dist.rank}/{dist.world}" if dist.world > 1 else "evaluate",
        disable=not show_progress,
        position=dist.rank,
        unit="example",
    )
    with counter:
        for block in mine:
            todo = {n: f for n, f in fns.items() if any((i, n) not in done for i in block)}
            if todo:
                skipped: list[dict[str, Any]] = []
                kept, x, targets, boxes = _collate(dataset, block, on_error, skipped)
                records = skipped
                if x is not None:
                    x = x.to(device)
                    target = _resolve_targets(model, x, targets)
                    records += score_batch(
                        model, todo, x, target, kept, seeds, settings, boxes, counted, on_error
                    )[0]
                if path is not None:
                    _append(path, records)
                else:
                    memory.extend(records)
            bar.update(len(block))
    bar.close()
    dist.barrier()
    source: Any = read_records(out) if out is not None else memory
    if dist.world > 1 and out is None:
        source = _gather(dist, memory)
    result = summarize(source, names, reference, settings.top_k, out, keep_records=out is None)
    if out is not None and dist.rank == 0 and result.summary:
        (out / "summary.md").write_text(result.to_markdown() + "\n", encoding="utf-8")
        result.to_csv(out / "summary.csv")
        try:
            result.plot(out / "curves.png")
        except Exception as err:  # noqa: BLE001 - a figure must not lose the records
            warnings.warn(f"could not draw curves.png: {err}", RuntimeWarning, stacklevel=3)
    return result


def _completed(records: Iterator[dict[str, Any]], seeds: list[int]) -> set[tuple[int, str]]:
    """(index, method) pairs whose records are complete: every seed, or the first seed of a
    deterministic method."""
    seen: dict[tuple[int, str], set[int]] = {}
    complete = set()
    for r in records:
        if r["kind"] != "run" or r["status"] != "ok":
            continue
        key = (r["index"], r["method"])
        seen.setdefault(key, set()).add(r["seed"])
        if r.get("deterministic"):
            complete.add(key)
    complete |= {k for k, got in seen.items() if set(seeds) <= got}
    return complete


def _gather(dist: _Distributed, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    gathered: list[Any] = [None] * dist.world
    dist.dist.all_gather_object(gathered, records)
    return [r for part in gathered for r in part]


def _write_config(
    out: Path, names: list[str], budget: int, seeds: list[int], batch_size: int,
    settings: ScoreSettings, resume: bool,
) -> None:  # fmt: skip
    config = _config(
        names, budget=budget, seeds=seeds, batch_size=batch_size,
        confidence=settings.confidence if isinstance(settings.confidence, str) else "callable",
        n_steps=settings.n_steps, step_size=settings.step_size, top_k=settings.top_k,
        box_threshold=settings.box_threshold, box_mode=settings.box_mode,
        pointing_tolerance=settings.pointing_tolerance,
    )  # fmt: skip
    path = out / "config.json"
    if resume and path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = {k for k in config if k != "seeds" and old.get(k) != config[k]}
        if changed:
            raise ValueError(
                f"`out` {out} holds records made with other settings ({', '.join(sorted(changed))}"
                f"); use another folder or resume=False"
            )
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _resolve_targets(model: Any, x: Tensor, targets: list[Any]) -> TargetType:
    """The batch's target: given ints, the model's prediction where ``None``."""
    if all(t is not None for t in targets):
        return torch.tensor(targets, device=x.device)
    with torch.no_grad():
        out = model(x)
    if isinstance(out, Tensor) and out.dim() == 2 and out.shape[1] > 1:
        predicted = out.argmax(1)
        given = [int(predicted[i]) if t is None else t for i, t in enumerate(targets)]
        return torch.tensor(given, device=x.device)
    if all(t is None for t in targets):
        return None  # one value per example: the output itself
    raise ValueError(
        "dataset targets mix None and classes, but the model returns one value per example"
    )


def _methods(
    model: Any,
    methods: Mapping[str, Any] | None,
    counter: CountForwards,
    x: Tensor,
    budget: int,
    rows: int = 64,
) -> dict[str, AttributionFn]:
    """Name -> ``fn(inputs, target, seed)``; ``None`` gives the default methods for batches
    shaped like ``x``, ``rows`` rows per forward call."""
    if methods is None:
        from captum_perturbmask.compare import default_methods

        forward = model if isinstance(model, nn.Module) else counter.forward
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return default_methods(forward, x, budget, rows)
    if not isinstance(methods, Mapping) or not methods:
        raise TypeError(f"`methods` must be a non-empty mapping name -> method, got {methods!r}.")
    return {name: as_method(name, m) for name, m in methods.items()}
