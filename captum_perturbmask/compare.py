"""Side-by-side comparison of saliency methods on one batch: quality, stability and cost.

:func:`compare` runs every method on the same inputs for several seeds and tabulates

* insertion AUC (higher is better) and deletion AUC (lower is better),
  :func:`~captum_perturbmask.metrics.insertion_deletion`;
* box IoU and pointing-game accuracy when object ``boxes`` are given,
  :func:`~captum_perturbmask.metrics.box_iou`, :func:`~captum_perturbmask.metrics.pointing_game`;
* run-to-run consistency (mean pairwise Spearman and top-k IoU across seeds) for stochastic
  methods, :func:`~captum_perturbmask.metrics.run_consistency`;
* forward passes of the model per input, counted, and wall-clock seconds per input.

The result is a :class:`ComparisonTable` with ``to_markdown()``, ``to_csv()`` and
:func:`plot_maps` for a figure of the maps.
"""

from __future__ import annotations

import csv
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from captum_perturbmask._captum_compat import TargetType
from captum_perturbmask._forward import ConfidenceType, CountForwards, deprecated_alias
from captum_perturbmask._random import private_global_rng
from captum_perturbmask.metrics import (
    box_iou,
    insertion_deletion,
    pointing_game,
    run_consistency,
    saliency_box,
)

__all__ = ["AttributionFn", "ComparisonTable", "compare", "default_methods", "plot_maps"]

#: A saliency method as :func:`compare` calls it: ``fn(inputs, target, seed) -> attributions``.
AttributionFn = Callable[[Tensor, TargetType, int], Tensor]

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
    """The methods :func:`compare` runs when ``methods=None``, at a common forward budget.

    * ``PerturbMask``: its defaults at ``budget`` forwards per input (random masks);
    * ``RISE``: ``n_masks = budget``;
    * ``GradCAM``: :class:`captum.attr.LayerGradCam` on the model's last registered
      :class:`~torch.nn.Conv2d` (ReLU applied), bilinearly upsampled with
      ``LayerAttribution.interpolate`` to the input size (one forward and one backward pass);
      left out when the model has no ``Conv2d``;
    * ``LIME``: :class:`captum.attr.Lime` on a ``lime_grid x lime_grid`` grid of square
      superpixels with ``n_samples = budget``;
    * ``Occlusion``: :class:`captum.attr.Occlusion` with a window about twice its stride and
      ``~sqrt(budget)`` positions per axis (so ``~budget`` forwards for large images).

    Args:
        model: The classifier, :math:`(B, C, H, W) \\to (B, K)`.
        inputs: Example inputs :math:`(B, C, H, W)` (only their shape is used).
        budget: Target number of forward passes per input.
        batch_size: Rows per forward call of every method: each gets
            ``perturbations_per_eval = max(1, batch_size // B)`` (Captum's per-example meaning),
            so every method runs the same batch shapes.
        lime_grid: Superpixels per side for LIME.

    Returns:
        A dict name -> ``fn(inputs, target, seed)``.

    Raises:
        ValueError: If ``inputs`` are not images :math:`(B, C, H, W)` or ``budget`` < 1.
    """
    from captum.attr import LayerAttribution, LayerGradCam, Lime, Occlusion

    from captum_perturbmask.attr import RISE, PerturbMask

    if not isinstance(inputs, Tensor) or inputs.ndim != 4:
        shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
        raise ValueError(
            f"The default methods need `inputs` of shape (B, C, H, W), got {shape}; pass "
            "`methods` for other data."
        )
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"`budget` must be a positive int, got {budget!r}.")
    channels, height, width = inputs.shape[1:]
    per_example = max(1, batch_size // inputs.shape[0])

    def perturb_mask(x: Tensor, target: TargetType, seed: int) -> Tensor:
        return PerturbMask(model).attribute(
            x, target=target, budget=budget, seed=seed, perturbations_per_eval=per_example
        )

    def rise(x: Tensor, target: TargetType, seed: int) -> Tensor:
        return RISE(model).attribute(
            x, target=target, budget=budget, seed=seed, perturbations_per_eval=per_example
        )

    grid = min(lime_grid, height, width)
    rows = torch.arange(height, device=inputs.device) * grid // height
    cols = torch.arange(width, device=inputs.device) * grid // width
    feature_mask = (rows[:, None] * grid + cols[None, :]).expand(1, channels, height, width)

    def lime(x: Tensor, target: TargetType, seed: int) -> Tensor:
        with private_global_rng(x.device), warnings.catch_warnings():
            torch.manual_seed(seed)  # captum's Lime samples from the global RNG
            # "multiple inputs" advice: one model per input is intended
            warnings.simplefilter("ignore", UserWarning)
            return Lime(model).attribute(
                x,
                target=target,
                feature_mask=feature_mask.to(x.device),
                n_samples=budget,
                perturbations_per_eval=per_example,
            )

    per_axis = max(1, math.isqrt(budget))
    win_h, stride_h = _occlusion_geometry(height, per_axis)
    win_w, stride_w = _occlusion_geometry(width, per_axis)

    def occlusion(x: Tensor, target: TargetType, seed: int) -> Tensor:
        return Occlusion(model).attribute(
            x,
            sliding_window_shapes=(channels, win_h, win_w),
            strides=(channels, stride_h, stride_w),
            target=target,
            perturbations_per_eval=per_example,
        )

    methods: dict[str, AttributionFn] = {"PerturbMask": perturb_mask, "RISE": rise}
    layer = _last_conv(model) if isinstance(model, nn.Module) else None
    if layer is not None:

        def grad_cam(x: Tensor, target: TargetType, seed: int) -> Tensor:
            cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
            return LayerAttribution.interpolate(cam, (height, width), interpolate_mode="bilinear")

        methods["GradCAM"] = grad_cam
    else:
        warnings.warn("GradCAM left out: the model has no nn.Conv2d layer.", stacklevel=2)
    methods["LIME"] = lime
    methods["Occlusion"] = occlusion
    return methods


def _as_callable(name: str, method: Any) -> AttributionFn:
    """Wrap a Captum ``Attribution`` object as ``fn(inputs, target, seed)``."""
    if callable(getattr(method, "attribute", None)):

        def fn(x: Tensor, target: TargetType, seed: int) -> Tensor:
            return method.attribute(x, target=target)

        return fn
    if callable(method):
        return method
    raise TypeError(
        f"`methods[{name!r}]` must be a callable fn(inputs, target, seed) or a Captum "
        f"Attribution, got {type(method).__name__}."
    )


def _fit_to_inputs(name: str, attributions: Any, inputs: Tensor) -> Tensor:
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
            attributions, size=spatial, mode=mode, align_corners=False
        )
    return attributions.to(inputs.dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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

    Each method runs once per seed (``torch.manual_seed(seed)`` is set first inside a fork of
    the global RNG, which is restored afterwards, and the seed is passed on). A method whose
    first two runs are identical is deterministic: it is not
    run again and has no consistency score. Metrics are averaged over inputs and runs:
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
        inputs: Images :math:`(B, C, H, W)` (or series :math:`(B, C, T)` with custom
            ``methods`` and no ``boxes``).
        target: Class per input, Captum conventions; ``None`` uses the model's prediction.
        boxes: Optional object boxes :math:`(B, 4)` ``(x1, y1, x2, y2)``, pixel-edge
            convention (see :mod:`captum_perturbmask.metrics.localization`).
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
    confidence = deprecated_alias(
        confidence, "apply_softmax", apply_softmax, {True: "softmax", False: "identity"}
    )
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ValueError(f"`seeds` must be a non-empty sequence of ints, got {seeds!r}.")
    if not isinstance(inputs, Tensor):
        raise TypeError(f"`inputs` must be a torch.Tensor, got {type(inputs).__name__}.")
    batch = inputs.shape[0]
    if target is None:  # the predicted class, once, so every method explains the same one
        with torch.no_grad():
            clean = model(inputs)
        if isinstance(clean, Tensor) and clean.dim() == 2 and clean.shape[1] > 1:
            target = clean.argmax(dim=1)
    image_size = tuple(inputs.shape[2:]) if boxes is not None else None
    if boxes is not None and len(image_size) != 2:
        raise ValueError(f"`boxes` need image inputs (B, C, H, W), got {tuple(inputs.shape)}.")

    counter = CountForwards(model)
    with counter:
        if methods is None:
            # a module is counted by its pre-hook (and GradCAM needs the module itself)
            forward = model if isinstance(model, nn.Module) else counter.forward
            methods = default_methods(forward, inputs, budget, batch_size)
        if not isinstance(methods, Mapping) or not methods:
            raise TypeError(
                f"`methods` must be a non-empty mapping name -> method, got {methods!r}."
            )
        runs: dict[str, list[Tensor]] = {}
        stats: dict[str, tuple[float | None, float]] = {}
        for name, method in methods.items():
            fn = _as_callable(name, method)
            maps: list[Tensor] = []
            seconds = 0.0
            counter.rows = 0
            for i, seed in enumerate(seeds):
                _sync(inputs.device)
                start = time.perf_counter()
                with private_global_rng(inputs.device):  # restored afterwards
                    torch.manual_seed(seed)
                    attributions = fn(inputs, target, seed)
                _sync(inputs.device)
                seconds += time.perf_counter() - start
                maps.append(_fit_to_inputs(name, attributions, inputs))
                if i == 1 and torch.equal(maps[0], maps[1]):
                    break
            forwards = counter.rows / (batch * len(maps))
            counted = forwards if counter.rows or isinstance(model, nn.Module) else None
            stats[name] = (counted, seconds / (batch * len(maps)))
            runs[name] = maps

    rows = []
    for name, maps in runs.items():
        ins, dele, iou, point = [], [], [], []
        for attributions in maps:
            curves = insertion_deletion(
                model,
                inputs,
                attributions,
                target,
                n_steps=n_steps,
                step_size=step_size,
                batch_size=batch_size,
                confidence=confidence,
            )
            ins.append(curves.insertion.mean().item())
            dele.append(curves.deletion.mean().item())
            if boxes is not None:
                predicted = saliency_box(attributions, box_threshold, box_mode)
                iou.append(box_iou(predicted, boxes.to(predicted.device), image_size).mean().item())
                hits = pointing_game(attributions, boxes, tolerance=pointing_tolerance)
                point.append(hits.float().mean().item())
        stochastic = len(maps) > 1 and not torch.equal(maps[0], maps[1])
        spearman = top_iou = None
        if stochastic:
            agreement = run_consistency(maps, top_k=top_k)
            spearman = agreement.spearman.nanmean().item()
            top_iou = agreement.top_k_iou.mean().item()
        forwards, seconds = stats[name]
        rows.append(
            {
                "method": name,
                "insertion": sum(ins) / len(ins),
                "deletion": sum(dele) / len(dele),
                "iou": sum(iou) / len(iou) if iou else None,
                "pointing": sum(point) / len(point) if point else None,
                "spearman": spearman,
                "top_k_iou": top_iou,
                "forwards_per_input": forwards,
                "seconds_per_input": seconds,
                "runs": len(maps),
                "stochastic": stochastic,
            }
        )
    return ComparisonTable(rows=rows, maps={n: m[0] for n, m in runs.items()}, top_k=top_k)


def plot_maps(
    table: ComparisonTable | Mapping[str, Tensor],
    inputs: Tensor,
    indices: Sequence[int] = (0,),
    method: str = "blended_heat_map",
    sign: str = "absolute_value",
    path: str | None = None,
) -> Any:
    """Draw the maps of several methods side by side (rows: inputs, columns: methods).

    Uses :func:`captum.attr.visualization.visualize_image_attr` on a
    :class:`matplotlib.figure.Figure` (no pyplot, no display needed). The first column is the
    input, min-max scaled to :math:`[0, 1]` for display.

    Args:
        table: A :class:`ComparisonTable` (its ``maps``) or a mapping name -> attributions
            :math:`(B, C, H, W)`, :math:`(B, 1, H, W)` or :math:`(B, H, W)`.
        inputs: Images :math:`(B, C, H, W)` the maps explain.
        indices: Which inputs to draw, one row each.
        method: ``visualize_image_attr`` method, e.g. ``"heat_map"``, ``"blended_heat_map"``.
        sign: ``visualize_image_attr`` sign, e.g. ``"absolute_value"``, ``"all"``.
        path: Save the figure there if given.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        ValueError: If ``inputs`` are not images or ``indices`` are out of range.
    """
    from captum.attr import visualization
    from matplotlib.figure import Figure

    maps = table.maps if isinstance(table, ComparisonTable) else dict(table)
    if not isinstance(inputs, Tensor) or inputs.ndim != 4:
        raise ValueError("`inputs` must be images of shape (B, C, H, W).")
    indices = list(indices)
    if not indices or any(not 0 <= i < inputs.shape[0] for i in indices):
        raise ValueError(f"`indices` must be in [0, {inputs.shape[0]}), got {indices}.")
    n_cols = len(maps) + 1
    fig = Figure(figsize=(2.2 * n_cols, 2.2 * len(indices)))
    axes = fig.subplots(len(indices), n_cols, squeeze=False)
    for row, idx in zip(axes, indices, strict=True):
        image = inputs[idx].detach().float().cpu()
        image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)
        image_np = image.permute(1, 2, 0).numpy()
        row[0].imshow(image_np.squeeze(-1) if image_np.shape[-1] == 1 else image_np, cmap="gray")
        row[0].set_title("input")
        row[0].axis("off")
        for ax, (name, attr) in zip(row[1:], maps.items(), strict=True):
            a = attr[idx].detach().float().cpu()
            a = a.unsqueeze(0) if a.ndim == 2 else a
            a = a.sum(0, keepdim=True) if a.shape[0] != image.shape[0] else a
            if not bool(a.abs().amax() > 0):  # Captum cannot scale an all-zero map
                ax.imshow(image_np.mean(-1), cmap="gray")
                ax.set_title(f"{name} (all 0)")
                ax.axis("off")
                continue
            visualization.visualize_image_attr(
                a.permute(1, 2, 0).numpy(),
                image_np,
                method=method,
                sign=sign,
                plt_fig_axis=(fig, ax),
                use_pyplot=False,
                title=name,
            )
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig
