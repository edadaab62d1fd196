"""Side-by-side comparison of saliency methods on one batch: the runner of
:func:`~.evaluate` on tensors in memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_perturbmask._core.captum_compat import TargetType
from captum_perturbmask._core.checks import check_int
from captum_perturbmask._core.devices import resolve_device
from captum_perturbmask._core.forward import ConfidenceType, CountForwards
from captum_perturbmask.evaluation.data import Batch
from captum_perturbmask.evaluation.results import EvaluationResult, KeptExamples, summarize
from captum_perturbmask.evaluation.run import (
    MethodsArg,
    ReferenceArg,
    check_seeds,
    describe_run,
    placed,
    predicted_targets,
    resolve_methods,
    resolve_reference,
    run_batches,
)
from captum_perturbmask.evaluation.scoring import ScoreSettings, target_rows

__all__ = ["compare"]


def compare(
    model: Callable[..., Tensor],
    inputs: Tensor,
    methods: MethodsArg = None,
    *,
    target: TargetType = None,
    boxes: Tensor | None = None,
    budget: int = 400,
    seeds: Sequence[int] = (0, 1, 2),
    batch_size: int | None = None,
    metrics: Sequence[str] | None = None,
    reference: ReferenceArg = "default",
    reference_method: str | None = None,
    device: str | torch.device | None = None,
    forward_batch_size: int = 256,
    confidence: ConfidenceType = "auto",
    n_steps: int | None = None,
    step_size: int | None = None,
    top_k: float | int = 0.05,
    box_threshold: float = 0.5,
    box_mode: str = "quantile",
    pointing_tolerance: float = 0,
) -> EvaluationResult:
    r"""Run saliency methods on one batch and tabulate quality, stability and cost.

    ``result = compare(model, x, target=y, boxes=boxes, budget=400)`` runs the default methods;
    ``print(result.to_markdown())`` shows the table, ``result.maps`` the first run's maps.

    The same runner as :func:`~.evaluate`, with the same
    arguments in the same order and meaning, on ``inputs`` instead of a dataset (example
    ``i`` is index ``i``): each method runs once per seed inside a fork of the global RNG
    seeded from the seed and the batch's first index; a method whose first two runs are
    identical is deterministic (run once, no consistency score); every map is scored with the
    registered ``metrics``; the means over inputs come with 95% intervals and paired
    differences against ``reference_method`` (few inputs give wide intervals: use
    ``evaluate`` on a dataset for a verdict). Forward passes are counted on ``model`` (a
    forward pre-hook; a backward pass is not counted) during the method calls only.

    Args:
        model: The classifier :math:`(B, C, *S) \to (B, K)`, in the mode it should be
            evaluated in (call ``model.eval()`` first).
        inputs: Images :math:`(B, C, H, W)` or series :math:`(B, C, T)`.
        methods: ``None`` (the registry's default set: PerturbMask, RISE, GradCAM, LIME,
            Occlusion on images), registered names, or name -> ``fn(inputs, target, seed)`` or
            a Captum ``Attribution`` object (called as ``obj.attribute(inputs, target=target)``;
            layer attributions are upsampled to the input size).
        target: Class per input, Captum conventions; ``None`` uses the model's prediction.
        boxes: Optional object boxes :math:`(B, 4)` ``(x1, y1, x2, y2)``, pixel-edge
            convention, or evidence spans :math:`(B, 2)` for series (see
            :mod:`captum_perturbmask.metrics.localization`).
        budget: Forward passes per input of the registered methods.
        seeds: Seeds of the runs; at least 2 for a consistency score.
        batch_size: Inputs explained together (default all of them).
        metrics: Registered metric names (default the default set).
        reference: What removed pixels become in insertion/deletion: ``"default"``,
            ``"mean"`` (the mean of ``inputs``), a number or a tensor broadcastable to one
            input.
        reference_method: Method of the paired differences (default ``"PerturbMask"`` when
            present, else the first).
        device: Where the model and the inputs go (default the inputs' device).
        forward_batch_size: Rows per forward call of the metrics and the registered methods.
        confidence: How outputs become the scored confidence in insertion / deletion.
        n_steps: Insertion/deletion steps (see :func:`~captum_perturbmask.metrics.insertion_auc`).
        step_size: Insertion/deletion pixels per step.
        top_k: Top set of the consistency IoU, a fraction or a count.
        box_threshold: Threshold of :func:`~captum_perturbmask.metrics.saliency_box`.
        box_mode: Mode of :func:`~captum_perturbmask.metrics.saliency_box`.
        pointing_tolerance: Tolerance of :func:`~captum_perturbmask.metrics.pointing_game`.

    Returns:
        An :class:`~.EvaluationResult`, one summary row
        per method in the order of ``methods``, with ``maps``, the inputs (``examples``) and
        the settings (``config``): everything
        :func:`~captum_perturbmask.report.write_report` shows.

    Raises:
        TypeError: a method is neither callable nor an Attribution, or returns a non-tensor;
            ``inputs`` is not a tensor.
        ValueError: ``seeds`` is empty, ``boxes`` do not fit, or the metrics reject the
            inputs / maps.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
        >>> x = torch.rand(2, 1, 4, 4)
        >>> methods = {"pixels": lambda inp, target, seed: inp,
        ...            "noise": lambda inp, target, seed: torch.rand(inp.shape)}
        >>> result = compare(model, x, methods, target=0, seeds=(0, 1), n_steps=4)
        >>> [row["method"] for row in result.summary], result["pixels"]["forwards_per_input"]
        (['pixels', 'noise'], 0.0)
        >>> result["pixels"]["spearman"] is None, result["noise"]["spearman"] is None
        (True, False)
    """
    seeds = check_seeds(seeds)
    if not isinstance(inputs, Tensor):
        raise TypeError(f"`inputs` must be a torch.Tensor, got {type(inputs).__name__}.")
    if inputs.ndim not in (3, 4) or inputs.shape[0] == 0:
        raise ValueError(
            f"`inputs` must be a non-empty batch (B, C, H, W) or (B, C, T), got "
            f"{tuple(inputs.shape)}."
        )
    n = inputs.shape[0]
    batch_size = n if batch_size is None else check_int(batch_size, "batch_size")
    budget = check_int(budget, "budget")
    if boxes is not None:
        boxes = torch.as_tensor(boxes).double().cpu()
        if boxes.shape != (n, 2 * (inputs.ndim - 2)):
            raise ValueError(
                f"`boxes` must be {(n, 2 * (inputs.ndim - 2))} for inputs of shape "
                f"{tuple(inputs.shape)} (boxes for images, spans for series), got "
                f"{tuple(boxes.shape)}."
            )
    device = inputs.device if device is None else resolve_device(device)
    inputs = inputs.to(device)
    settings = ScoreSettings(
        metrics=None if metrics is None else tuple(metrics), confidence=confidence,
        n_steps=n_steps, step_size=step_size, forward_batch_size=forward_batch_size,
        top_k=top_k, box_threshold=box_threshold, box_mode=box_mode,
        pointing_tolerance=pointing_tolerance,
        reference=resolve_reference(reference, lambda: inputs.double().mean(0)),
    )  # fmt: skip
    if isinstance(settings.reference, Tensor):
        settings = ScoreSettings(**{**vars(settings), "reference": settings.reference.to(device)})
    records: list[dict[str, Any]] = []
    with placed(model, device):
        if target is None:  # the predicted class, once, so every method explains the same one
            target = predicted_targets(model, inputs, [None] * n)
        counter = CountForwards(model)
        with counter:
            example = inputs[: min(batch_size, n)]
            fns, counted = resolve_methods(
                model, methods, counter, example, budget, forward_batch_size
            )
            chunks = []
            for start in range(0, n, batch_size):
                rows = torch.arange(start, min(start + batch_size, n))
                chunk = Batch(rows.tolist(), inputs[start : start + len(rows)], [None] * len(rows),
                              None if boxes is None else boxes[rows])  # fmt: skip
                chunks.append((chunk, target_rows(target, rows)))
            maps = run_batches(
                model, fns, chunks, seeds, settings, counted, "raise", device, records.extend,
                resolve_targets=False, keep_maps=True,
            )  # fmt: skip
    result = summarize(records, list(fns), reference_method, top_k, keep_records=True)
    result.maps = {name: torch.cat(parts) for name, parts in maps.items()}
    result.examples = KeptExamples(
        list(range(n)), inputs.detach().cpu(), None if boxes is None else boxes.clone()
    )
    result.config = {"methods": list(fns), "budget": budget, "seeds": seeds,
                     "batch_size": batch_size, **settings.describe(),
                     **describe_run(model, inputs, n)}  # fmt: skip
    result.config.pop("forward_batch_size")
    return result
