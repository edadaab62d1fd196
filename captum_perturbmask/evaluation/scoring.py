r"""Scoring maps: the metric registry and :func:`~.score_batch`, one batch's records.

A metric entry (:class:`~.Metric`) names the columns it writes (:class:`~.Column`: record key,
table label, which direction is better, whether a curve is kept) and computes them for a
:class:`~.MetricBatch` (the model, the inputs, one method's maps, the target, the knobs). The
records, the summary, the tables, the report and the command line's ``--metrics`` all read the
columns from :data:`~.METRICS`, so adding a metric is one call of :func:`~.register_metric`::

    register_metric(Metric("energy", (Column("energy", "top-10% energy", True),),
                           lambda b: {"energy": top_energy(b.attributions)}, default=False))

Registered: ``insertion``, ``deletion`` (:func:`~captum_perturbmask.metrics.insertion_deletion`,
one pass for both), ``iou``, ``pointing`` (against the evidence boxes or spans, for the
examples that have one) and ``road`` (:func:`~captum_perturbmask.metrics.road`, MoRF and LeRF;
off the default set: it imputes every removed pixel, which costs far more than a deletion).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from numbers import Real
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_perturbmask._core.captum_compat import TargetType
from captum_perturbmask._core.checks import check_choice, check_int
from captum_perturbmask._core.forward import ConfidenceType, CountForwards, check_confidence
from captum_perturbmask._core.random import private_global_rng
from captum_perturbmask.evaluation.methods import AttributionFn

__all__ = [
    "CONSISTENCY_COLUMNS",
    "CURVE_GRID",
    "METRICS",
    "Column",
    "Metric",
    "MetricBatch",
    "ScoreSettings",
    "default_metrics",
    "derive_seed",
    "failure_record",
    "fit_to_inputs",
    "localisation",
    "metric_columns",
    "register_metric",
    "score_batch",
    "target_rows",
]

#: Fractions at which every curve of a curve column is recorded (the mean-curve figure).
CURVE_GRID = tuple(i / 20 for i in range(21))
BOX_MODES = ("quantile", "value", "energy")


@dataclass(frozen=True)
class Column:
    """One value a metric writes per example: a record field and a summary column.

    Attributes:
        key: Record field and summary key (``<key>``, ``<key>_ci``, ``<key>_n``).
        label: Table header, without the arrow.
        higher_is_better: ``True`` (↑), ``False`` (↓) or ``None`` (no arrow, no verdict).
        curve: The metric also returns a curve, kept on :data:`~.CURVE_GRID` as
            ``curve_<key>`` in the records and averaged per method in the summary.
    """

    key: str
    label: str
    higher_is_better: bool | None = True
    curve: bool = False

    @property
    def header(self) -> str:
        """The label with its arrow."""
        arrow = {True: " ↑", False: " ↓", None: ""}[self.higher_is_better]
        return f"{self.label}{arrow}"


@dataclass(frozen=True)
class Metric:
    """One entry of the metric registry.

    Attributes:
        name: What ``metrics=`` and ``--metrics`` select.
        columns: The values it writes per example.
        compute: ``compute(batch) -> {key: Tensor (B,)}`` for a :class:`~.MetricBatch`, NaN
            where a value does not exist; a curve column also returns ``"curve_<key>"`` as a
            pair ``(curves (B, P), fractions (P,))`` (resampled onto :data:`~.CURVE_GRID`).
        needs_boxes: Computed only for the examples with an evidence box (span); the batch it
            gets holds those examples and their ``boxes``.
        default: In the default metric set.
    """

    name: str
    columns: tuple[Column, ...]
    compute: Callable[[MetricBatch], Mapping[str, Any]]
    needs_boxes: bool = False
    default: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty string, got {self.name!r}.")
        if not self.columns or not all(isinstance(c, Column) for c in self.columns):
            raise TypeError(f"`columns` of metric {self.name!r} must be a tuple of Column.")
        if not callable(self.compute):
            raise TypeError(f"`compute` of metric {self.name!r} must be callable.")


#: The registry, name -> :class:`~.Metric`, in the order of the tables.
METRICS: dict[str, Metric] = {}
#: The run-to-run columns of stochastic methods (from :func:`~.score_batch`'s consistency
#: records; the label of ``top_k_iou`` names the ``top_k`` used).
CONSISTENCY_COLUMNS = (Column("spearman", "Spearman"), Column("top_k_iou", "top-k IoU"))


def register_metric(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric`` to :data:`~.METRICS` (the last columns of the tables); returns it.

    Raises:
        ValueError: a metric of that name, or a column of that key, is registered and
            ``replace`` is false.
    """
    if not isinstance(metric, Metric):
        raise TypeError(f"`metric` must be a Metric, got {type(metric).__name__}.")
    others = {n: m for n, m in METRICS.items() if n != metric.name or not replace}
    taken = {c.key for m in others.values() for c in m.columns} | {
        c.key for c in CONSISTENCY_COLUMNS
    }
    clash = [c.key for c in metric.columns if c.key in taken]
    if (metric.name in others) or clash:
        what = f"metric {metric.name!r}" if metric.name in others else f"column {clash[0]!r}"
        raise ValueError(f"a {what} is registered; pass replace=True to replace it.")
    METRICS[metric.name] = metric
    return metric


def default_metrics() -> tuple[str, ...]:
    """The names of the registered metrics in the default set, in table order."""
    return tuple(n for n, m in METRICS.items() if m.default)


def metric_columns(names: Sequence[str]) -> tuple[Column, ...]:
    """The columns of the metrics ``names``, in registry order."""
    wanted = set(names)
    return tuple(c for n, m in METRICS.items() if n in wanted for c in m.columns)


@dataclass(frozen=True)
class ScoreSettings:
    """How maps are scored: the knobs of the metrics.

    Attributes:
        metrics: Names of registered metrics (default: the default set).
        confidence: Scored confidence of the model's output (see ``ConfidenceType``).
        n_steps: Insertion/deletion steps.
        step_size: Insertion/deletion pixels per step.
        forward_batch_size: Rows per forward call of the metrics.
        top_k: Top set of the consistency IoU, a fraction or a count.
        box_threshold: Threshold of the saliency box (span).
        box_mode: Mode of the saliency box (span).
        pointing_tolerance: Tolerance of the pointing game, in pixels (steps).
        reference: What removed pixels become: ``"default"`` (insertion starts from a blur of
            images and from zeros for series, deletion goes to zeros), or a number or a
            tensor broadcastable to one input (both paths).
    """

    metrics: tuple[str, ...] | None = None
    confidence: ConfidenceType = "auto"
    n_steps: int | None = None
    step_size: int | None = None
    forward_batch_size: int = 256
    top_k: float | int = 0.05
    box_threshold: float = 0.5
    box_mode: str = "quantile"
    pointing_tolerance: float = 0
    reference: str | float | Tensor = "default"

    def __post_init__(self) -> None:
        metrics = default_metrics() if self.metrics is None else self.metrics
        if isinstance(metrics, str):
            metrics = (metrics,)
        metrics = tuple(metrics)
        for m in metrics:
            check_choice(m, "metrics", tuple(METRICS))
        if not metrics or len(set(metrics)) != len(metrics):
            raise ValueError(f"`metrics` must be distinct metric names, got {metrics!r}.")
        object.__setattr__(self, "metrics", metrics)
        check_confidence(self.confidence)
        check_int(self.forward_batch_size, "forward_batch_size")
        check_choice(self.box_mode, "box_mode", BOX_MODES)
        ref = self.reference
        if isinstance(ref, str) and ref != "default":
            raise ValueError(f"`reference` must be 'default', a number or a tensor, got {ref!r}.")
        if not isinstance(ref, (str, Tensor)) and (isinstance(ref, bool) or not isinstance(
                ref, Real) or not math.isfinite(ref)):  # fmt: skip
            raise TypeError(
                f"`reference` must be 'default', a finite number or a tensor, got {ref!r}."
            )

    def describe(self) -> dict[str, Any]:
        """The settings as JSON values (a callable confidence or a tensor reference are named
        by their kind), for ``config.json``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "confidence" and not isinstance(value, str):
                value = "callable"
            elif isinstance(value, Tensor):
                digest = hashlib.sha1(value.detach().double().cpu().numpy().tobytes()).hexdigest()
                value = f"tensor{tuple(value.shape)} sha1 {digest[:16]}"
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


# ------------------------------------------------------------------------------ one batch
def target_rows(target: TargetType, rows: Tensor) -> TargetType:
    """The target of the examples ``rows`` (Captum's per-example forms are indexed)."""
    if isinstance(target, Tensor) and target.numel() > 1:
        return target[rows.to(target.device)]
    if isinstance(target, list):
        return [target[i] for i in rows.tolist()]
    return target


@dataclass(frozen=True, eq=False)
class MetricBatch:
    """What a metric scores: one method's maps of one batch.

    Attributes:
        model: The classifier.
        inputs: The batch :math:`(B, C, *S)`.
        attributions: The maps, fitted to the inputs (``fit_to_inputs``).
        target: The batch's Captum target (``None`` only for one-output models).
        settings: The metric knobs.
        boxes: Evidence boxes :math:`(B, 4)` or spans :math:`(B, 2)` (for a metric with
            ``needs_boxes``: every row has one), else ``None``.
    """

    model: Callable[..., Any]
    inputs: Tensor
    attributions: Tensor
    target: TargetType
    settings: ScoreSettings
    boxes: Tensor | None = None

    @cached_property
    def insertion_deletion(self) -> Any:
        """:func:`~captum_perturbmask.metrics.insertion_deletion` with curves, computed once
        for every metric that asks."""
        from captum_perturbmask.metrics import insertion_deletion

        s = self.settings
        ref = None if isinstance(s.reference, str) else s.reference
        return insertion_deletion(
            self.model, self.inputs, self.attributions, self.target, substrate=ref,
            baselines=ref, n_steps=s.n_steps, step_size=s.step_size,
            batch_size=s.forward_batch_size, confidence=s.confidence, return_curves=True,
        )  # fmt: skip

    @cached_property
    def localisation(self) -> tuple[Tensor, Tensor]:
        """IoU and pointing hits against :attr:`boxes` (see ``localisation``)."""
        if self.boxes is None:
            raise ValueError("this metric needs evidence boxes (needs_boxes=True)")
        return localisation(self.attributions, self.boxes, self.settings)

    def rows(self, rows: Tensor, boxes: Tensor | None) -> MetricBatch:
        """The same batch restricted to the examples ``rows``."""
        return MetricBatch(
            self.model, self.inputs[rows], self.attributions[rows],
            target_rows(self.target, rows), self.settings, boxes,
        )  # fmt: skip


def localisation(attributions: Tensor, boxes: Tensor, settings: ScoreSettings) -> tuple:
    """IoU of the saliency box (span) with ``boxes`` :math:`(N, 4)` (images) or spans
    :math:`(N, 2)` (series), and pointing-game hits, both :math:`(N,)`."""
    from captum_perturbmask.metrics import (
        box_iou,
        pointing_game,
        saliency_box,
        saliency_span,
        span_iou,
    )

    boxes = boxes.to(attributions.device)
    if boxes.shape[1] == 4:
        size = tuple(attributions.shape[-2:])
        predicted = saliency_box(attributions, settings.box_threshold, settings.box_mode)
        iou = box_iou(predicted, boxes.to(predicted.device), size)
    else:
        predicted = saliency_span(attributions, settings.box_threshold, settings.box_mode)
        iou = span_iou(predicted, boxes.to(predicted.device))
    hits = pointing_game(attributions, boxes, tolerance=settings.pointing_tolerance)
    return iou, hits


def _insertion(b: MetricBatch) -> dict[str, Any]:
    r = b.insertion_deletion
    return {"insertion": r.insertion, "curve_insertion": (r.insertion_curve, r.fractions)}


def _deletion(b: MetricBatch) -> dict[str, Any]:
    r = b.insertion_deletion
    return {"deletion": r.deletion, "curve_deletion": (r.deletion_curve, r.fractions)}


def _road(b: MetricBatch) -> dict[str, Any]:
    from captum_perturbmask.metrics import road

    s = b.settings
    r = road(b.model, b.inputs, b.attributions, b.target, batch_size=s.forward_batch_size,
             confidence=s.confidence)  # fmt: skip
    return {"road_morf": r.morf, "road_lerf": r.lerf}


for _entry in (
    Metric("insertion", (Column("insertion", "insertion", True, curve=True),), _insertion),
    Metric("deletion", (Column("deletion", "deletion", False, curve=True),), _deletion),
    Metric("iou", (Column("iou", "IoU"),), lambda b: {"iou": b.localisation[0]}, True),
    Metric(
        "pointing",
        (Column("pointing", "pointing"),),
        lambda b: {"pointing": b.localisation[1]},
        True,
    ),  # fmt: skip
    Metric(
        "road",
        (Column("road_morf", "ROAD MoRF", False), Column("road_lerf", "ROAD LeRF")),
        _road,
        default=False,
    ),  # fmt: skip
):
    register_metric(_entry)
del _entry


def fit_to_inputs(name: str, attributions: Any, inputs: Tensor) -> Tensor:
    """Unwrap 1-tuples, detach, and upsample layer attributions to the input size.

    Raises:
        TypeError: the method returned something other than a tensor.
        ValueError: the attributions hold NaN or infinity.
    """
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
    return attributions.to(device=inputs.device, dtype=inputs.dtype)


def derive_seed(seed: int, index: int) -> int:
    """The seed of the batch that starts at dataset ``index`` (never of a process or position).

    Example:
        >>> derive_seed(0, 16) == derive_seed(0, 16) != derive_seed(1, 16)
        True
    """
    return (int(seed) * 0x9E3779B97F4A7C15 + int(index)) % 2**63


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _target_values(target: TargetType, batch: int) -> list[Any]:
    """JSON-friendly target of every example (one host transfer)."""
    if target is None:
        return [None] * batch
    if isinstance(target, Tensor):
        values = target.reshape(-1).tolist()
        return [int(values[0])] * batch if len(values) == 1 else [int(t) for t in values]
    if isinstance(target, list):
        return [list(t) if isinstance(t, tuple) else int(t) for t in target]
    return [list(target) if isinstance(target, tuple) else int(target)] * batch


def failure_record(
    index: int, method: str, seed: int, target: Any, message: str, settings: ScoreSettings
) -> dict[str, Any]:
    """The record of a failed (example, method, seed): every value ``None``."""
    columns = metric_columns(settings.metrics)
    return {
        "kind": "run", "index": int(index), "method": method, "seed": int(seed),
        "target": target, **{c.key: None for c in columns}, "forwards": None, "seconds": None,
        "deterministic": False, **{f"curve_{c.key}": None for c in columns if c.curve},
        "status": "error", "error": message,
    }  # fmt: skip


def _scores(batch: MetricBatch, boxes: Tensor | None) -> dict[str, Any]:
    """Every selected metric of one method's maps: key -> (B,) tensor, curve key -> pair."""
    n = batch.inputs.shape[0]
    has_box = None if boxes is None else ~torch.isnan(boxes.double()).any(1)
    out: dict[str, Any] = {}
    sub: MetricBatch | None = None
    for name in batch.settings.metrics:
        metric = METRICS[name]
        if not metric.needs_boxes:
            out.update(metric.compute(batch))
            continue
        if has_box is None or not bool(has_box.any()):
            continue  # no example of the batch has a box: the values stay None
        rows = has_box.nonzero().flatten().to(batch.inputs.device)
        if sub is None:
            sub = batch.rows(rows, boxes[has_box])
        for key, value in metric.compute(sub).items():
            full = torch.full((n,), float("nan"), dtype=torch.float64, device=value.device)
            out[key] = full.index_copy(0, rows.to(value.device), value.double())
    return out


def _host_values(scores: Mapping[str, Any], columns: Sequence[Column], n: int) -> dict:
    """The scores on the host, one transfer: key -> list of ``n`` floats (``None`` for NaN or
    missing), ``curve_<key>`` -> list of ``n`` curves on :data:`~.CURVE_GRID`."""
    keys = [c.key for c in columns if c.key in scores]
    out: dict[str, list[Any]] = {c.key: [None] * n for c in columns}
    if keys:
        stacked = torch.stack([scores[k].detach().double().reshape(n) for k in keys]).cpu()
        for k, row in zip(keys, stacked.tolist(), strict=True):
            out[k] = [None if math.isnan(v) else v for v in row]
    grid = np.asarray(CURVE_GRID)
    for c in columns:
        if not c.curve:
            continue
        pair = scores.get(f"curve_{c.key}")
        if pair is None:
            out[f"curve_{c.key}"] = [None] * n
            continue
        curves, fractions = (t.detach().double().cpu().numpy() for t in pair)
        out[f"curve_{c.key}"] = [
            [round(float(v), 6) for v in np.interp(grid, fractions, row)] for row in curves
        ]
    return out


def score_batch(
    model: Callable[..., Any],
    methods: Mapping[str, AttributionFn],
    inputs: Tensor,
    target: TargetType,
    indices: Sequence[int],
    seeds: Sequence[int],
    settings: ScoreSettings | None = None,
    boxes: Tensor | None = None,
    counter: CountForwards | None = None,
    on_error: str = "raise",
    keep_maps: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, list[Tensor]]]:
    """Explain one batch with every method and seed and score every map.

    ``records, _ = score_batch(model, {"RISE": fn}, x, y, indices=range(len(x)), seeds=[0])``
    gives one record (a dict) per input, method and seed.

    Each method runs once per seed inside a fork of the global RNG seeded with
    :func:`~.derive_seed` of the batch's first dataset index (methods that draw from the global
    RNG, such as Captum's ``Lime``, become reproducible and the caller's RNG is untouched). A
    method whose first two runs are identical is deterministic: it is not run again and gets
    no consistency record. The metrics of a map run batched on its device; its values come to
    the host in one transfer.

    Args:
        model: The classifier the metrics score with.
        methods: Name -> ``fn(inputs, target, seed)``.
        inputs: The batch :math:`(B, C, H, W)` or :math:`(B, C, T)`.
        target: Captum target of the batch (resolved: ``None`` only for one-output models).
        indices: Dataset index of every example, length :math:`B`.
        seeds: The run seeds.
        settings: Metric knobs (default :class:`ScoreSettings()`).
        boxes: Evidence boxes :math:`(B, 4)` or spans :math:`(B, 2)`; rows of NaN have none.
        counter: Counts the model's forward rows during the method calls (``None``: not
            counted).
        on_error: ``"raise"``, or ``"skip"`` to record a failing method with its message.
        keep_maps: Also return every map.

    Returns:
        The records (``kind`` ``"run"`` per example, method and seed; ``"consistency"`` per
        example and stochastic method) and, with ``keep_maps``, name -> list of maps per seed.
    """
    from captum_perturbmask.metrics import run_consistency

    settings = ScoreSettings() if settings is None else settings
    batch = inputs.shape[0]
    columns = metric_columns(settings.metrics)
    records: list[dict[str, Any]] = []
    kept: dict[str, list[Tensor]] = {}
    targets = _target_values(target, batch)
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
                scored = MetricBatch(model, inputs, attributions, target, settings)
                values = _host_values(_scores(scored, boxes), columns, batch)
                for b in range(batch):
                    records.append(
                        {
                            "kind": "run", "index": int(indices[b]), "method": name,
                            "seed": int(seed), "target": targets[b],
                            **{c.key: values[c.key][b] for c in columns},
                            "forwards": forwards, "seconds": seconds / batch,
                            "deterministic": False,
                            **{f"curve_{c.key}": values[f"curve_{c.key}"][b]
                               for c in columns if c.curve},
                            "status": "ok", "error": None,
                        }
                    )  # fmt: skip
        except Exception as err:  # noqa: BLE001 - recorded in "skip" mode, re-raised otherwise
            if on_error == "raise":
                raise
            message = f"{type(err).__name__}: {err}".splitlines()[0][:500]
            done = {(r["index"], r["seed"]) for r in records if r["method"] == name}
            for b in range(batch):
                for seed in seeds:
                    if (int(indices[b]), int(seed)) not in done:
                        records.append(
                            failure_record(indices[b], name, seed, targets[b], message, settings)
                        )
            continue
        if len(maps) > 1:
            agreement = run_consistency(maps, top_k=settings.top_k)
            both = torch.stack([agreement.spearman, agreement.top_k_iou]).double().cpu().tolist()
            for b in range(batch):
                records.append(
                    {
                        "kind": "consistency", "index": int(indices[b]), "method": name,
                        "seeds": [int(s) for s in run_seeds],
                        **{key: None if math.isnan(row[b]) else row[b]
                           for key, row in zip(("spearman", "top_k_iou"), both, strict=True)},
                        "status": "ok", "error": None,
                    }
                )  # fmt: skip
        if keep_maps:
            kept[name] = maps
    return records, kept
