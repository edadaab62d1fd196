"""Side-by-side comparison of saliency methods on one batch: quality, stability and cost.

:func:`compare` runs every method on the same inputs for several seeds and tabulates

* insertion AUC (higher is better) and deletion AUC (lower is better),
  :func:`~captum_perturbmask.metrics.insertion_deletion`;
* box IoU and pointing-game accuracy when object ``boxes`` are given,
  :func:`~captum_perturbmask.metrics.box_iou`, :func:`~captum_perturbmask.metrics.pointing_game`;
* run-to-run consistency (mean pairwise Spearman and top-k IoU across seeds) for stochastic
  methods, :func:`~captum_perturbmask.metrics.run_consistency`;
* forward passes of the model per input, counted, and wall-clock seconds per input.

The result is a :class:`ComparisonTable` with ``to_markdown()`` and ``to_csv()``;
:func:`captum_perturbmask.viz.plot_maps` draws its maps.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from captum_perturbmask._core.captum_compat import TargetType
from captum_perturbmask._core.forward import ConfidenceType, CountForwards, deprecated_alias
from captum_perturbmask._core.random import private_global_rng
from captum_perturbmask.evaluate import AttributionFn

__all__ = ["AttributionFn", "ComparisonTable", "compare", "default_methods"]

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("method", "method"),
    ("insertion", "insertion ↑"),
    ("deletion", "deletion ↓"),
    ("iou", "IoU ↑"),
    ("pointing", "pointing ↑"),
    ("spearman", "Spearman ↑"),
    ("top_k_iou", "top-k IoU ↑"),
    ("forwards_per_input", "forwards/input"),
    ("seconds_per_input", "seconds/input"),
)


@dataclass
class ComparisonTable:
    """Tidy result of :func:`compare`: one row per method, no pandas needed.

    Attributes:
        rows: One dict per method with keys ``method``, ``insertion``, ``deletion``, ``iou``,
            ``pointing``, ``spearman``, ``top_k_iou``, ``forwards_per_input``,
            ``seconds_per_input``, ``runs`` and ``stochastic``; a metric that does not apply
            (no boxes, deterministic method) is ``None``.
        maps: The first run's attributions of each method, as returned by the method.
        top_k: The ``top_k`` used for the top-k IoU column.

    Example:
        >>> table = ComparisonTable(rows=[{"method": "a", "insertion": 0.5, "deletion": 0.25}])
        >>> print(table.to_markdown())
        | method | insertion ↑ | deletion ↓ |
        |---|---|---|
        | a | 0.500 | 0.250 |
        >>> table["a"]["deletion"]
        0.25
    """

    rows: list[dict[str, Any]]
    maps: dict[str, Tensor] = field(default_factory=dict)
    top_k: float | int = 0.05

    def _columns(self) -> list[tuple[str, str]]:
        present = [
            (key, label)
            for key, label in _COLUMNS
            if any(row.get(key) is not None for row in self.rows)
        ]
        if isinstance(self.top_k, float):
            label = f"top-{100 * self.top_k:g}% IoU ↑"
        else:
            label = f"top-{self.top_k} IoU ↑"
        return [(k, label if k == "top_k_iou" else v) for k, v in present]

    def __getitem__(self, method: str) -> dict[str, Any]:
        for row in self.rows:
            if row["method"] == method:
                return row
        raise KeyError(f"no method {method!r}; have {[r['method'] for r in self.rows]}")

    def to_markdown(self, digits: int = 3) -> str:
        """Markdown table; columns where every value is ``None`` are left out.

        Metrics get ``digits`` decimals, seconds 3 significant digits.
        """
        columns = self._columns()

        def cell(key: str, value: Any) -> str:
            if value is None:
                return "–"
            if not isinstance(value, float):
                return str(value)
            if math.isnan(value):
                return "nan"
            if key == "seconds_per_input":
                return f"{value:.3g}"
            if key == "forwards_per_input":
                return f"{value:g}"
            return f"{value:.{digits}f}"

        lines = [
            "| " + " | ".join(label for _, label in columns) + " |",
            "|" + "---|" * len(columns),
        ]
        lines += [
            "| " + " | ".join(cell(k, r.get(k)) for k, _ in columns) + " |" for r in self.rows
        ]
        return "\n".join(lines)

    def to_csv(self, path: str) -> None:
        """Write all columns (plain keys as header, empty cells for ``None``) to ``path``."""
        keys = [k for k, _ in _COLUMNS] + ["runs", "stochastic"]
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in keys})

    def __str__(self) -> str:
        return self.to_markdown()


def _last_conv(model: nn.Module) -> nn.Conv2d | None:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def _occlusion_geometry(size: int, budget_per_axis: int) -> tuple[int, int]:
    """Window and stride along one axis giving about ``budget_per_axis`` positions."""
    positions = max(1, min(budget_per_axis, size))
    window = max(1, math.ceil(2 * size / (positions + 1)))
    stride = max(1, (size - window) // max(1, positions - 1))
    return window, stride


def default_methods(
    model: Callable[..., Tensor],
    inputs: Tensor,
    budget: int = 400,
    batch_size: int = 64,
    lime_grid: int = 8,
) -> dict[str, AttributionFn]:
    """The methods :func:`compare` and :func:`~captum_perturbmask.evaluate.evaluate` run when
    ``methods=None``, at a common forward budget.

    ``methods = default_methods(model, x, budget=400)``; ``methods["RISE"](x, y, 0)`` is a map
    (every method is called as ``fn(inputs, target, seed)``).

    Images :math:`(B, C, H, W)`:

    * ``PerturbMask``: its defaults at ``budget`` forwards per input;
    * ``RISE``: ``n_masks = budget``;
    * ``GradCAM``: :class:`captum.attr.LayerGradCam` on the model's last registered
      :class:`~torch.nn.Conv2d` (ReLU applied), bilinearly upsampled with
      ``LayerAttribution.interpolate`` to the input size (one forward and one backward pass);
      left out when the model has no ``Conv2d``;
    * ``LIME``: :class:`captum.attr.Lime` on a ``lime_grid x lime_grid`` grid of square
      superpixels with ``n_samples = budget``;
    * ``Occlusion``: :class:`captum.attr.Occlusion` with a window about twice its stride and
      ``~sqrt(budget)`` positions per axis (so ``~budget`` forwards for large images).

    Series :math:`(B, C, T)` (masking along time across all channels, segments of the default
    series grid, ``ceil(T / 8)`` clamped to 8..32):

    * ``PerturbMask`` and ``RISE`` as above;
    * ``Occlusion``: a window of about ``2 T / positions`` steps over all channels,
      ``min(budget, T)`` positions;
    * ``FeatureAblation``: :class:`captum.attr.FeatureAblation` on the segments (one forward
      per segment);
    * ``LIME``: :class:`captum.attr.Lime` on the segments with ``n_samples = budget``;
    * ``IntegratedGradients``: :class:`captum.attr.IntegratedGradients`, 50 steps from a zero
      baseline.

    Args:
        model: The classifier, :math:`(B, C, H, W) \\to (B, K)` or :math:`(B, C, T) \\to (B, K)`.
        inputs: Example inputs (only their shape is used).
        budget: Target number of forward passes per input.
        batch_size: Rows per forward call of every method: each gets
            ``perturbations_per_eval = max(1, batch_size // B)`` (Captum's per-example meaning),
            so every method runs the same batch shapes.
        lime_grid: Superpixels per side for LIME on images.

    Returns:
        A dict name -> ``fn(inputs, target, seed)``.

    Raises:
        ValueError: If ``inputs`` are neither images nor series, or ``budget`` < 1.
    """
    from captum.attr import (
        FeatureAblation,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        Lime,
        Occlusion,
    )

    from captum_perturbmask.attr import RISE, PerturbMask
    from captum_perturbmask.attr._masks import default_grid

    if not isinstance(inputs, Tensor) or inputs.ndim not in (3, 4):
        shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
        raise ValueError(
            f"The default methods need `inputs` of images (B, C, H, W) or series (B, C, T), got "
            f"{shape}; pass `methods` for other data."
        )
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"`budget` must be a positive int, got {budget!r}.")
    channels, spatial = inputs.shape[1], tuple(inputs.shape[2:])
    per_example = max(1, batch_size // inputs.shape[0])

    def perturb_mask(x: Tensor, target: TargetType, seed: int) -> Tensor:
        return PerturbMask(model).attribute(
            x, target=target, budget=budget, seed=seed, perturbations_per_eval=per_example
        )

    def rise(x: Tensor, target: TargetType, seed: int) -> Tensor:
        return RISE(model).attribute(
            x, target=target, budget=budget, seed=seed, perturbations_per_eval=per_example
        )

    if len(spatial) == 2:
        height, width = spatial
        grid = min(lime_grid, height, width)
        rows = torch.arange(height, device=inputs.device) * grid // height
        cols = torch.arange(width, device=inputs.device) * grid // width
        segments = (rows[:, None] * grid + cols[None, :]).expand(1, channels, height, width)
        per_axis = max(1, math.isqrt(budget))
        geometry = [_occlusion_geometry(n, per_axis) for n in spatial]
    else:
        (length,) = spatial
        n_segments = default_grid(spatial)[0]
        steps = torch.arange(length, device=inputs.device) * n_segments // length
        segments = steps.expand(1, channels, length)
        geometry = [_occlusion_geometry(length, min(budget, length))]
    window = (channels, *(w for w, _ in geometry))
    strides = (channels, *(s for _, s in geometry))

    def lime(x: Tensor, target: TargetType, seed: int) -> Tensor:
        with private_global_rng(x.device), warnings.catch_warnings():
            torch.manual_seed(seed)  # captum's Lime samples from the global RNG
            # "multiple inputs" advice: one model per input is intended
            warnings.simplefilter("ignore", UserWarning)
            return Lime(model).attribute(
                x,
                target=target,
                feature_mask=segments.to(x.device),
                n_samples=budget,
                perturbations_per_eval=per_example,
            )

    def occlusion(x: Tensor, target: TargetType, seed: int) -> Tensor:
        return Occlusion(model).attribute(
            x,
            sliding_window_shapes=window,
            strides=strides,
            target=target,
            perturbations_per_eval=per_example,
        )

    methods: dict[str, AttributionFn] = {"PerturbMask": perturb_mask, "RISE": rise}
    if len(spatial) == 1:

        def feature_ablation(x: Tensor, target: TargetType, seed: int) -> Tensor:
            return FeatureAblation(model).attribute(
                x, target=target, feature_mask=segments.to(x.device),
                perturbations_per_eval=per_example,
            )  # fmt: skip

        def integrated_gradients(x: Tensor, target: TargetType, seed: int) -> Tensor:
            return IntegratedGradients(model).attribute(
                x, target=target, n_steps=50, internal_batch_size=max(50, batch_size)
            )

        methods["Occlusion"] = occlusion
        methods["FeatureAblation"] = feature_ablation
        methods["LIME"] = lime
        methods["IntegratedGradients"] = integrated_gradients
        return methods
    layer = _last_conv(model) if isinstance(model, nn.Module) else None
    if layer is not None:

        def grad_cam(x: Tensor, target: TargetType, seed: int) -> Tensor:
            cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
            return LayerAttribution.interpolate(cam, spatial, interpolate_mode="bilinear")

        methods["GradCAM"] = grad_cam
    else:
        warnings.warn("GradCAM left out: the model has no nn.Conv2d layer.", stacklevel=2)
    methods["LIME"] = lime
    methods["Occlusion"] = occlusion
    return methods


def compare(
    methods: Mapping[str, Any] | None = None,
    *,
    model: Callable[..., Tensor],
    inputs: Tensor,
    target: TargetType = None,
    boxes: Tensor | None = None,
    budget: int = 400,
    seeds: Sequence[int] = (0, 1, 2),
    n_steps: int | None = None,
    step_size: int | None = None,
    batch_size: int = 64,
    confidence: ConfidenceType = "auto",
    top_k: float | int = 0.05,
    box_threshold: float = 0.5,
    box_mode: str = "quantile",
    pointing_tolerance: float = 0,
    apply_softmax: bool | None = None,
) -> ComparisonTable:
    """Run saliency methods on one batch and tabulate quality, stability and cost.

    ``table = compare(model=model, inputs=x, target=y, boxes=boxes, budget=400)`` runs the
    default methods; ``print(table.to_markdown())`` shows the table.

    The scoring is :func:`~captum_perturbmask.evaluate.score_batch`, the code
    :func:`~captum_perturbmask.evaluate.evaluate` runs on every batch of a dataset. Each method
    runs once per seed (inside a fork of the global RNG seeded with the run's seed, derived
    from the seed by :func:`~captum_perturbmask.evaluate.derive_seed`, and passed on); the
    caller's RNG is restored afterwards. A method whose first two runs are identical is
    deterministic: it is not run again and has no consistency score. Metrics are averaged over
    inputs and runs:
    insertion / deletion AUC (blurred start, zero baseline, softmax of ``target``), box IoU
    of :func:`~captum_perturbmask.metrics.saliency_box` (``box_threshold``, ``box_mode``)
    with ``boxes`` and pointing-game hits (``pointing_tolerance``) when ``boxes`` are given,
    and for stochastic methods the mean pairwise Spearman and top-k IoU across runs (NaN
    for constant maps is skipped). Forward passes are counted on ``model`` (a forward
    pre-hook; a backward pass is not counted) during the method calls only.

    Args:
        methods: Mapping name -> ``fn(inputs, target, seed) -> attributions`` or a Captum
            ``Attribution`` object (called as ``obj.attribute(inputs, target=target)``;
            layer attributions are upsampled to the input size). ``None`` runs
            :func:`default_methods` (PerturbMask, RISE, GradCAM, LIME, Occlusion) at ``budget``.
        model: The classifier :math:`(B, C, *S) \\to (B, K)`, in the mode it should be
            evaluated in (call ``model.eval()`` first).
        inputs: Images :math:`(B, C, H, W)` or series :math:`(B, C, T)`.
        target: Class per input, Captum conventions; ``None`` uses the model's prediction.
        boxes: Optional object boxes :math:`(B, 4)` ``(x1, y1, x2, y2)``, pixel-edge
            convention, or evidence spans :math:`(B, 2)` for series (see
            :mod:`captum_perturbmask.metrics.localization`).
        budget: Forward passes per input given to the default methods.
        seeds: Seeds of the runs; at least 2 for a consistency score.
        n_steps: Insertion/deletion steps (see :func:`~captum_perturbmask.metrics.insertion_auc`).
        step_size: Insertion/deletion pixels per step.
        batch_size: Rows per forward pass for the metrics (and ``perturbations_per_eval`` of
            the default methods).
        confidence: How outputs become the scored confidence in insertion / deletion
            (``"auto"``: softmax over dim 1, sigmoid for one logit; see
            :func:`~captum_perturbmask.metrics.insertion_auc`).
        top_k: Top set of the consistency IoU, a fraction or a count.
        box_threshold: Threshold of :func:`~captum_perturbmask.metrics.saliency_box`.
        box_mode: Mode of :func:`~captum_perturbmask.metrics.saliency_box`.
        pointing_tolerance: Tolerance of :func:`~captum_perturbmask.metrics.pointing_game`.
        apply_softmax: Deprecated: ``True`` is ``confidence="softmax"``, ``False``
            ``confidence="identity"``.

    Returns:
        A :class:`ComparisonTable`, one row per method in the order of ``methods``.

    Raises:
        TypeError: If a method is neither callable nor an Attribution, or returns a
            non-tensor.
        ValueError: If ``seeds`` is empty, or the metrics reject the inputs / maps.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
        >>> x = torch.rand(2, 1, 4, 4)
        >>> methods = {"pixels": lambda inp, target, seed: inp,
        ...            "noise": lambda inp, target, seed: torch.rand(inp.shape)}
        >>> table = compare(methods, model=model, inputs=x, target=0, seeds=(0, 1), n_steps=4)
        >>> [row["method"] for row in table.rows], table["pixels"]["forwards_per_input"]
        (['pixels', 'noise'], 0.0)
        >>> table["pixels"]["spearman"] is None, table["noise"]["spearman"] is None
        (True, False)
    """
    from captum_perturbmask.evaluate import ScoreSettings, _methods, score_batch, summarize

    confidence = deprecated_alias(
        confidence, "apply_softmax", apply_softmax, {True: "softmax", False: "identity"}
    )
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ValueError(f"`seeds` must be a non-empty sequence of ints, got {seeds!r}.")
    if not isinstance(inputs, Tensor):
        raise TypeError(f"`inputs` must be a torch.Tensor, got {type(inputs).__name__}.")
    if inputs.ndim not in (3, 4) or inputs.shape[0] == 0:
        raise ValueError(
            f"`inputs` must be a non-empty batch (B, C, H, W) or (B, C, T), got "
            f"{tuple(inputs.shape)}."
        )
    batch = inputs.shape[0]
    if target is None:  # the predicted class, once, so every method explains the same one
        with torch.no_grad():
            clean = model(inputs)
        if isinstance(clean, Tensor) and clean.dim() == 2 and clean.shape[1] > 1:
            target = clean.argmax(dim=1)
    if boxes is not None:
        boxes = torch.as_tensor(boxes).double()
        if boxes.shape != (batch, 2 * (inputs.ndim - 2)):
            raise ValueError(
                f"`boxes` must be {(batch, 2 * (inputs.ndim - 2))} for inputs of shape "
                f"{tuple(inputs.shape)} (boxes for images, spans for series), got "
                f"{tuple(boxes.shape)}."
            )
    settings = ScoreSettings(
        confidence, n_steps, step_size, batch_size, top_k, box_threshold, box_mode,
        pointing_tolerance,
    )  # fmt: skip
    counter = CountForwards(model)
    with counter:
        if methods is None:
            fns = _methods(model, None, counter, inputs, budget, batch_size)
        else:
            fns = _methods(model, methods, counter, inputs, budget)
        counted = counter if isinstance(model, nn.Module) or methods is None else None
        records, maps = score_batch(
            model, fns, inputs, target, list(range(batch)), seeds, settings, boxes, counted,
            keep_maps=True,
        )  # fmt: skip
    result = summarize(records, list(fns), top_k=top_k)
    rows = []
    for row in result.summary:
        name = row["method"]
        value = {
            k: None if row[k] is None or math.isnan(row[k]) else row[k]
            for k in ("insertion", "deletion", "iou", "pointing", "spearman", "top_k_iou")
        }
        rows.append(
            {
                "method": name,
                **value,
                "forwards_per_input": row["forwards_per_input"],
                "seconds_per_input": row["seconds_per_input"],
                # a deterministic method ran twice: the second, identical map is not kept
                "runs": len(maps[name]) + int(len(seeds) > 1 and not row["stochastic"]),
                "stochastic": row["stochastic"],
            }
        )
    return ComparisonTable(rows=rows, maps={n: m[0] for n, m in maps.items()}, top_k=top_k)


def __getattr__(name: str) -> Any:
    """``plot_maps`` moved to :mod:`captum_perturbmask.viz`; the old name still works."""
    if name == "plot_maps":
        from captum_perturbmask.viz import plot_maps

        warnings.warn(
            "captum_perturbmask.compare.plot_maps moved to captum_perturbmask.viz.plot_maps; "
            "the old name will be removed.",
            FutureWarning,
            stacklevel=2,
        )
        return plot_maps
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
