r"""The runner: :func:`~.evaluate`, every example of a dataset with every method and seed.

It explains fixed blocks of ``batch_size`` consecutive dataset indices (loaded by a
``DataLoader``, :mod:`~captum_perturbmask.evaluation.data`), scores every map with the
registered metrics (:func:`~.score_batch`), appends the
records after each block (:mod:`~captum_perturbmask.evaluation.records`) and summarises them
(:func:`~.summarize`). Under ``torchrun`` every rank takes
every ``world``-th block (:mod:`~captum_perturbmask.evaluation.distributed`).
:func:`~.compare` is the same loop on one in-memory batch.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from captum_perturbmask._core.captum_compat import TargetType
from captum_perturbmask._core.checks import check_bool, check_choice, check_int
from captum_perturbmask._core.forward import ConfidenceType, CountForwards
from captum_perturbmask.evaluation.data import Batch, block_loader, check_item, dataset_mean
from captum_perturbmask.evaluation.distributed import Distributed
from captum_perturbmask.evaluation.methods import AttributionFn, as_method, default_methods
from captum_perturbmask.evaluation.records import (
    append_records,
    completed,
    drop_partial_line,
    examples_path,
    read_examples,
    read_records,
    records_path,
    remove_records,
    write_config,
    write_examples,
)
from captum_perturbmask.evaluation.results import EvaluationResult, KeptExamples, summarize
from captum_perturbmask.evaluation.scoring import ScoreSettings, failure_record, score_batch

__all__ = [
    "ON_ERROR",
    "MethodsArg",
    "describe_run",
    "evaluate",
    "kept_examples",
    "resolve_methods",
    "run_batches",
]

ON_ERROR = ("raise", "skip")
#: ``methods=``: ``None`` (the default set), registered names, or name -> ``fn(inputs, target,
#: seed)`` / Captum ``Attribution``.
MethodsArg = Mapping[str, Any] | Sequence[str] | None
#: ``reference=``: ``"default"``, ``"mean"``, a number or a tensor.
ReferenceArg = str | float | Tensor


def check_seeds(seeds: object) -> list[int]:
    """``seeds`` as a list of distinct non-negative ints, else raise ``ValueError``."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise ValueError(
            f"`seeds` must be a sequence of distinct non-negative ints, got {seeds!r}."
        )
    values = list(seeds)
    if not values or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in values):
        raise ValueError(f"`seeds` must be distinct non-negative ints, got {values!r}.")
    if len(set(values)) != len(values):
        raise ValueError(f"`seeds` must be distinct non-negative ints, got {values!r}.")
    return values


def resolve_methods(
    model: Callable[..., Any],
    methods: MethodsArg,
    counter: CountForwards,
    example: Tensor,
    budget: int,
    forward_batch_size: int,
) -> tuple[dict[str, AttributionFn], CountForwards | None]:
    """Name -> ``fn(inputs, target, seed)`` for batches shaped like ``example``, and the
    counter to read forward passes from (``None`` when they cannot be counted: a plain
    function called by the user's own methods).

    Raises:
        TypeError: ``methods`` is neither ``None``, names nor a non-empty mapping.
        ValueError: a name is not registered for this data.
    """
    registry = methods is None or (
        isinstance(methods, Sequence) and not isinstance(methods, (str, bytes, Mapping))
    )
    if registry:
        forward = model if isinstance(model, nn.Module) else counter.forward
        if methods is not None and (not methods or not all(isinstance(n, str) for n in methods)):
            raise TypeError(f"`methods` as names must be non-empty strings, got {methods!r}.")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fns = default_methods(
                forward, example, methods, budget=budget, forward_batch_size=forward_batch_size
            )
        return fns, counter
    if not isinstance(methods, Mapping) or not methods:
        raise TypeError(
            f"`methods` must be None, registered method names or a non-empty mapping name -> "
            f"method, got {methods!r}."
        )
    fns = {str(name): as_method(str(name), m) for name, m in methods.items()}
    return fns, counter if isinstance(model, nn.Module) else None


def first_input(dataset: Any, indices: Sequence[int], on_error: str) -> Tensor:
    """The input of the first item, which sets the shape of the methods' batches: the first
    index's, or with ``on_error="skip"`` that of the first item that loads.

    Raises:
        ValueError: (``on_error="skip"``) no item loads; else the first item's error.
    """
    first_error: BaseException | None = None
    for index in indices:
        try:
            return check_item(dataset[index], index)[0]
        except Exception as err:  # noqa: BLE001 - raised or recorded as the runner would
            if on_error == "raise":
                raise
            first_error = first_error or err
    raise ValueError(f"no item of `dataset` could be loaded; the first failed with: {first_error}")


def resolve_reference(reference: object, mean: Callable[[], Tensor]) -> str | float | Tensor:
    """``reference=`` as the metrics take it: ``"default"``, a float or a tensor (``"mean"``
    calls ``mean()``).

    Raises:
        ValueError, TypeError: anything else.
    """
    if isinstance(reference, str):
        choice = check_choice(reference, "reference", ("default", "mean"))
        return mean().float() if choice == "mean" else "default"
    if isinstance(reference, Tensor):
        if reference.is_complex() or reference.dtype == torch.bool:
            raise TypeError(f"`reference` must be a real tensor, got {reference.dtype}.")
        if not bool(torch.isfinite(reference).all()):
            raise ValueError("`reference` must be finite, but it holds NaN or infinity.")
        return reference.detach()
    if isinstance(reference, bool) or not isinstance(reference, (int, float)):
        raise TypeError(
            "`reference` must be 'default', 'mean', a number or a tensor, got "
            f"{type(reference).__name__}."
        )
    if not math.isfinite(reference):
        raise ValueError(f"`reference` must be finite, got {reference}.")
    return float(reference)


def _module_device(model: Any) -> torch.device | None:
    if isinstance(model, nn.Module):
        for t in (*model.parameters(), *model.buffers()):
            return t.device
    return None


@contextlib.contextmanager
def placed(model: Any, device: torch.device) -> Iterator[None]:
    """Move an ``nn.Module`` to ``device`` for the block, and back afterwards."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    original = _module_device(model)
    moved = isinstance(model, nn.Module) and original not in (None, device)
    if moved:
        model.to(device)
    try:
        yield
    finally:
        if moved:
            model.to(original)


def predicted_targets(model: Any, x: Tensor, targets: Sequence[int | None]) -> TargetType:
    """The batch's target: the given ints, the model's prediction where ``None``.

    Raises:
        ValueError: targets mix ``None`` and classes for a model with one output per example.
    """
    if all(t is not None for t in targets):
        return torch.tensor(list(targets), device=x.device)
    with torch.no_grad():
        out = model(x)
    if isinstance(out, Tensor) and out.dim() == 2 and out.shape[1] > 1:
        predicted = out.argmax(1)
        if all(t is None for t in targets):
            return predicted
        given = torch.tensor([-1 if t is None else t for t in targets], device=x.device)
        return torch.where(given < 0, predicted, given)
    if all(t is None for t in targets):
        return None  # one value per example: the output itself
    raise ValueError(
        "dataset targets mix None and classes, but the model returns one value per example"
    )


def run_batches(
    model: Any,
    fns: Mapping[str, AttributionFn],
    batches: Iterable[tuple[Batch, TargetType]],
    seeds: list[int],
    settings: ScoreSettings,
    counted: CountForwards | None,
    on_error: str,
    device: torch.device,
    sink: Callable[[list[dict[str, Any]]], None],
    done: set[tuple[int, str]] = frozenset(),  # type: ignore[assignment]
    progress: Any = None,
    resolve_targets: bool = True,
    keep_maps: bool = False,
    keeper: Callable[[Batch, Tensor, dict[str, Tensor]], None] | None = None,
) -> dict[str, list[Tensor]]:
    """Score every batch and hand its records to ``sink``, batch by batch.

    ``batches`` yields ``(batch, target)``; with ``resolve_targets`` the target is the
    batch's own (``predicted_targets``: the model's prediction where an item has none)
    and the yielded one is ignored. Item failures become records (``on_error="skip"``) or are
    raised. Returns, with ``keep_maps``, method -> first-seed maps of every batch; ``keeper``
    gets every batch, its inputs and its first-seed maps before ``sink`` gets its records.
    """
    kept: dict[str, list[Tensor]] = {}
    for batch, target in batches:
        records: list[dict[str, Any]] = []
        for index, err in batch.failures:
            if on_error == "raise":
                raise err
            message = f"{type(err).__name__}: {err}".splitlines()[0][:500]
            records.append(failure_record(index, "*", -1, None, message, settings))
        if batch.inputs is not None:
            x = batch.inputs.to(device, non_blocking=True)
            if resolve_targets:
                target = predicted_targets(model, x, batch.targets)
            boxes = batch.boxes
            todo = {n: f for n, f in fns.items() if any((i, n) not in done for i in batch.indices)}
            new, maps = score_batch(
                model, todo, x, target, batch.indices, seeds, settings, boxes, counted,
                on_error, keep_maps or keeper is not None,
            )  # fmt: skip
            records += new
            if keeper is not None:
                keeper(batch, x, {name: runs[0] for name, runs in maps.items()})
            if keep_maps:
                for name, runs in maps.items():
                    kept.setdefault(name, []).append(runs[0])
        sink(records)
        if progress is not None:
            progress.update(len(batch.indices) + len(batch.failures))
    return kept


def evaluate(
    model: Callable[..., Any],
    dataset: Any,
    methods: MethodsArg = None,
    *,
    budget: int = 400,
    seeds: Sequence[int] = (0,),
    batch_size: int = 16,
    metrics: Sequence[str] | None = None,
    reference: ReferenceArg = "default",
    reference_method: str | None = None,
    device: str | torch.device | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = True,
    on_error: str = "raise",
    show_progress: bool = True,
    indices: Sequence[int] | None = None,
    num_workers: int | None = None,
    forward_batch_size: int = 256,
    confidence: ConfidenceType = "auto",
    n_steps: int | None = None,
    step_size: int | None = None,
    top_k: float | int = 0.05,
    box_threshold: float = 0.5,
    box_mode: str = "quantile",
    pointing_tolerance: float = 0,
    keep_examples: int = 0,
) -> EvaluationResult:
    r"""Explain and score a whole dataset with several saliency methods; resumable, sharded.

    ``result = evaluate(model, dataset, out="eval")`` runs the default methods on every item;
    ``print(result.to_markdown())`` shows means with 95% intervals. The same call under
    ``torchrun --nproc_per_node N script.py`` shards the dataset over N processes.

    Every example is explained by every method for every seed and each map is scored with the
    registered metrics chosen by ``metrics`` (default: insertion / deletion AUC with their
    curves, IoU of the saliency box or span with the evidence box or span and a pointing-game
    hit when the item carries one; ``"road"`` adds ROAD's MoRF and LeRF), forward passes of
    ``model`` per example (counted when ``model`` is an ``nn.Module`` or the methods come from
    the registry) and seconds; with two or more seeds, the run-to-run Spearman and top-k IoU
    of each stochastic method. Records (JSON Lines, one per example, method and seed) are
    appended under ``out`` after each batch, so memory does not grow with the dataset and a
    killed run loses at most the batch in flight; ``resume=True`` skips what is recorded.

    Batches are fixed blocks of ``batch_size`` consecutive dataset indices, loaded by a
    ``DataLoader`` (workers and pinned memory on CUDA), and the seed of a block is derived from
    its first index, never from the process or the order of work: one process and any number
    of ``torchrun`` ranks give bit-identical records on CPU (at the same thread count). Under
    ``torchrun`` each rank initialises the process group (gloo on CPU, nccl on CUDA), takes
    every ``world_size``-th block, writes ``records-rank<r>.jsonl``, and rank 0 merges all of
    them after a barrier and writes the summary.

    Args:
        model: The classifier; its output and ``confidence`` follow the package's rule
            (softmax over dim 1 for several classes, sigmoid for one logit).
        dataset: Any map-style dataset whose items are ``(input, target)`` or
            ``(input, target, box)``: input :math:`(C, H, W)` or :math:`(C, T)`; target an
            int, a one-element tensor or ``None`` (the model's prediction); box ``xyxy``
            (pixel-edge convention) for images or ``(start, end)`` for series. A torchvision
            ``ImageFolder`` with its transforms works as is.
        methods: ``None`` (the registry's default set for the data), a list of registered
            names (:data:`~.METHODS`), or name ->
            ``fn(inputs, target, seed)`` or a Captum ``Attribution`` object.
        budget: Forward passes per example of the registered methods.
        seeds: Run seeds; two or more give consistency records.
        batch_size: Examples explained together (the unit of seeding, sharding and resuming).
        metrics: Names of registered metrics
            (:data:`~.METRICS`); default the default set.
        reference: What removed pixels become in insertion and deletion: ``"default"``
            (insertion from a blur of images and from zeros for series, deletion to zeros),
            ``"mean"`` (the mean input over the evaluated items, computed first in a pass over
            the data), a number, or a tensor broadcastable to one input (e.g. a training mean
            :math:`(C, 1, 1)` or :math:`(C, H, W)`).
        reference_method: Method the paired differences are taken against (default
            ``"PerturbMask"`` when present, else the first).
        device: Where the model and the inputs go (the model is moved there for the run and
            moved back afterwards); default ``cuda:LOCAL_RANK`` under ``torchrun`` with CUDA
            (one process included), else the model's device.
        out: Folder for the records, ``config.json``, ``summary.md``/``.csv`` and
            ``curves.png``; ``None`` keeps the records in memory (small runs).
        resume: Skip the (example, method, seed) records already under ``out``.
        on_error: ``"raise"`` (default), or ``"skip"``: a failing item or method is recorded
            with its message and the run goes on.
        show_progress: A progress bar per rank (examples per second).
        indices: The dataset indices to evaluate (default all).
        num_workers: ``DataLoader`` worker processes; default none on the CPU, up to 4 per
            rank on CUDA. Records do not depend on it.
        forward_batch_size: Rows per forward call of the metrics and of the registered
            methods.
        confidence: Scored confidence of the insertion/deletion metrics.
        n_steps: Insertion/deletion steps (see :func:`~captum_perturbmask.metrics.insertion_auc`).
        step_size: Insertion/deletion pixels per step.
        top_k: Top set of the consistency IoU, a fraction or a count.
        box_threshold: Threshold of the saliency box / span.
        box_mode: Mode of the saliency box / span (``"quantile"``, ``"value"``, ``"energy"``).
        pointing_tolerance: Tolerance of the pointing game, in pixels (steps).
        keep_examples: Keep the inputs and the first seed's maps of the first
            ``keep_examples`` examples (``result.examples``, ``result.maps``: for figures
            and :func:`~captum_perturbmask.report.write_report`). With ``out`` they are
            stored under ``out/examples/``, batch by batch before the batch's records, so a
            resumed run keeps them too; the records do not depend on it. Default 0.

    Returns:
        An :class:`~.EvaluationResult` (on every rank;
        the summary files are written by rank 0).

    Raises:
        TypeError, ValueError: bad arguments; a malformed dataset item (naming its index and
            what was expected) unless ``on_error="skip"``; a resumed ``out`` written with other
            settings.

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
    budget = check_int(budget, "budget")
    batch_size = check_int(batch_size, "batch_size")
    seeds = check_seeds(seeds)
    check_bool(resume, "resume")
    check_choice(on_error, "on_error", ON_ERROR)
    check_bool(show_progress, "show_progress")
    if num_workers is not None:
        check_int(num_workers, "num_workers", 0)
    keep_examples = check_int(keep_examples, "keep_examples", 0)
    settings = ScoreSettings(
        metrics=None if metrics is None else tuple(metrics), confidence=confidence,
        n_steps=n_steps, step_size=step_size, forward_batch_size=forward_batch_size,
        top_k=top_k, box_threshold=box_threshold, box_mode=box_mode,
        pointing_tolerance=pointing_tolerance,
    )  # fmt: skip
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"`dataset` must be a map-style dataset (__getitem__ and __len__), got "
            f"{type(dataset).__name__}"
        )
    all_indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    if not all_indices:
        raise ValueError("`dataset` (or `indices`) selects no example.")
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        if str(out) == "":
            raise ValueError("`out` must be a folder path, got an empty string.")
        out_dir.mkdir(parents=True, exist_ok=True)
    dist = Distributed()
    try:
        device = dist.device(device, _module_device(model))
        with placed(model, device):
            blocks = [
                all_indices[s : s + batch_size] for s in range(0, len(all_indices), batch_size)
            ]

            first = first_input(dataset, all_indices, on_error)
            on_cpu = first.device.type == "cpu"

            def mean() -> Tensor:
                loader = block_loader(dataset, blocks, device, num_workers, dist.world, on_cpu)
                return dataset_mean(loader)

            ref = resolve_reference(reference, mean)
            if isinstance(ref, Tensor):
                ref = ref.to(device)
            settings = ScoreSettings(**{**vars(settings), "reference": ref})
            result = _run(
                model, dataset, first, methods, budget, seeds, batch_size, blocks, out_dir, resume,
                device, on_error, show_progress, num_workers, reference_method, settings, dist,
                all_indices[:keep_examples],
            )  # fmt: skip
            result.config.update(describe_run(model, dataset, len(all_indices)))
            return result
    finally:
        dist.close()


def _run(
    model: Any, dataset: Any, first: Tensor, methods: MethodsArg, budget: int, seeds: list[int],
    batch_size: int, blocks: list[list[int]], out: Path | None, resume: bool, device: torch.device,
    on_error: str, show_progress: bool, num_workers: int | None, reference_method: str | None,
    settings: ScoreSettings, dist: Distributed, keep: list[int],
) -> EvaluationResult:  # fmt: skip
    from tqdm.auto import tqdm

    mine = blocks[dist.rank :: dist.world]
    counter = CountForwards(model)
    example = first.to(device).unsqueeze(0).expand(len(blocks[0]), *first.shape)
    fns, counted = resolve_methods(
        model, methods, counter, example, budget, settings.forward_batch_size
    )
    names = list(fns)
    done: set[tuple[int, str]] = set()
    memory: list[dict[str, Any]] = []
    sink: Callable[[list[dict[str, Any]]], None] = memory.extend
    config = {"methods": names, "budget": budget, "seeds": seeds, "batch_size": batch_size,
              **settings.describe()}  # fmt: skip
    config.pop("forward_batch_size")  # rows per call do not change a record
    if out is None:
        keeper = _Keeper(keep, mine, names, out)
    else:
        path = records_path(out, dist.rank)
        if resume:
            drop_partial_line(path)
            done = completed(read_records(out), seeds)
        elif dist.rank == 0:
            remove_records(out)
        if dist.rank == 0:
            write_config(out, config, resume)
        dist.barrier()
        keeper = _Keeper(keep, mine, names, out)
        # blocks explained again for their kept maps: their recorded runs are not appended twice
        recorded = keeper.recorded(done)
        done = {(i, n) for i, n in done if i not in keeper.redo}

        def sink(records: list[dict[str, Any]]) -> None:
            append_records(path, [r for r in records if _key(r) not in recorded])

    todo = [b for b in mine if any((i, n) not in done for i in b for n in names)]
    bar = tqdm(
        total=sum(len(b) for b in mine),
        initial=sum(len(b) for b in mine) - sum(len(b) for b in todo),
        desc=f"evaluate rank {dist.rank}/{dist.world}" if dist.world > 1 else "evaluate",
        disable=not show_progress,
        position=dist.rank,
        unit="examples",
        dynamic_ncols=True,
    )
    loader = block_loader(
        dataset, todo, device, num_workers, dist.world, first.device.type == "cpu"
    )
    try:
        with counter:
            run_batches(
                model, fns, ((batch, None) for batch in loader), seeds, settings, counted,
                on_error, device, sink, done, bar, keeper=keeper if keep else None,
            )  # fmt: skip
    finally:
        bar.close()  # also on an error: its line ends before the error is told
    dist.barrier()
    source: Any = read_records(out) if out is not None else memory
    if dist.world > 1 and out is None:
        source = dist.gather(memory)
    result = summarize(
        source, names, reference_method, settings.top_k, out, keep_records=out is None
    )
    result.config = {**config, "keep_examples": len(keep)}
    if keep:
        parts = read_examples(out) if out is not None else keeper.parts
        if out is None and dist.world > 1:
            parts = dist.gather(keeper.parts)
        result.examples, result.maps = kept_examples(parts, keep, names)
    if out is not None and dist.rank == 0 and result.summary:
        (out / "summary.md").write_text(result.to_markdown() + "\n", encoding="utf-8")
        result.to_csv(out / "summary.csv")
        if result.curves:
            try:
                result.plot(out / "curves.png")
            except Exception as err:  # noqa: BLE001 - a figure must not lose the records
                warnings.warn(f"could not draw curves.png: {err}", RuntimeWarning, stacklevel=3)
    return result


def _key(record: Mapping[str, Any]) -> tuple:
    """The identity of a record (as :func:`~.summarize` counts it)."""
    return record["kind"], record["index"], record["method"], record.get("seed")


class _Keeper:
    """The kept examples of one rank: which of its blocks need their maps (``redo``: no
    complete file under ``out``), and the ``run_batches`` keeper that saves them (to
    ``out/examples/`` before the records, or in memory)."""

    def __init__(
        self, keep: list[int], mine: list[list[int]], names: list[str], out: Path | None
    ) -> None:
        self.keep, self.out, self.parts = set(keep), out, []
        self.first = {i: b[0] for b in mine if self.keep.intersection(b) for i in b}
        self.redo: set[int] = set()
        for block in mine:
            wanted = self.keep.intersection(block)
            if wanted and (out is None or not self._complete(block[0], wanted, names)):
                self.redo.update(block)

    def _complete(self, first: int, wanted: set[int], names: list[str]) -> bool:
        path = examples_path(self.out, first)
        if not path.exists():
            return False
        try:
            part = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged file is written again
            return False
        return wanted <= set(part["indices"]) and set(names) <= set(part["maps"])

    def recorded(self, done: set[tuple[int, str]]) -> set[tuple]:
        """The recorded runs of the blocks explained again (``done`` pairs only)."""
        if not self.redo or self.out is None:
            return set()
        return {
            _key(r)
            for r in read_records(self.out)
            if r["index"] in self.redo and (r["index"], r["method"]) in done
        }

    def __call__(self, batch: Batch, x: Tensor, maps: dict[str, Tensor]) -> None:
        rows = [k for k, i in enumerate(batch.indices) if i in self.keep]
        if not rows or batch.indices[rows[0]] not in self.redo:
            return  # a block whose file is complete, resumed for other methods
        boxes = None if batch.boxes is None else batch.boxes[rows].cpu()
        part = {
            "indices": [batch.indices[k] for k in rows],
            "inputs": x[rows].detach().cpu(),
            "boxes": boxes,
            "maps": {n: m[rows].detach().cpu() for n, m in maps.items()},
        }
        if self.out is None:
            self.parts.append(part)
        else:
            write_examples(self.out, self.first[part["indices"][0]], part)


def kept_examples(
    parts: Iterable[Mapping[str, Any]], keep: Sequence[int], names: Sequence[str]
) -> tuple[KeptExamples | None, dict[str, Tensor]]:
    """The kept examples and their maps from the saved batches ``parts``, rows in the order
    of ``keep``: the examples found (of the first's shape), the methods every one has."""
    rows: dict[int, tuple[Mapping[str, Any], int]] = {}
    for part in parts:
        for k, index in enumerate(part["indices"]):
            rows[int(index)] = (part, k)
    order = [i for i in keep if i in rows]
    if not order:
        return None, {}
    shape = rows[order[0]][0]["inputs"].shape[1:]
    order = [i for i in order if rows[i][0]["inputs"].shape[1:] == shape]
    methods = [n for n in names if all(n in rows[i][0]["maps"] for i in order)]
    inputs = torch.stack([rows[i][0]["inputs"][rows[i][1]] for i in order])
    boxes = None
    if any(rows[i][0]["boxes"] is not None for i in order):
        width = 4 if inputs.ndim == 4 else 2
        nan = torch.full((width,), float("nan"), dtype=torch.float64)
        boxes = torch.stack(
            [
                nan if rows[i][0]["boxes"] is None else rows[i][0]["boxes"][rows[i][1]].double()
                for i in order
            ]
        )
    maps = {n: torch.stack([rows[i][0]["maps"][n][rows[i][1]] for i in order]) for n in methods}
    return KeptExamples(order, inputs, boxes), maps


def describe_run(model: Any, data: Any, n_examples: int) -> dict[str, Any]:
    """The model and the data of a run in words, for its configuration (the report)."""
    if isinstance(model, nn.Module):
        params = sum(p.numel() for p in model.parameters())
        what = f"{type(model).__name__} ({params:,} parameters)"
    else:
        what = getattr(model, "__qualname__", type(model).__name__)
    if isinstance(data, Tensor):
        about = f"tensor of shape {tuple(data.shape)}"
    else:
        about = f"{type(data).__name__} of {len(data):,} items"
    return {"model": what, "data": about, "n_examples": int(n_examples)}
