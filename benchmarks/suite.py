"""The benchmark suite: every method on every bed of ``beds_suite``, through ``evaluate``.

    python benchmarks/suite.py list
    python benchmarks/suite.py train [--beds study|final|all|NAME ...]
    python benchmarks/suite.py run --beds study --methods "PerturbMask,RISE,RISE-4000,HSIC,..." \\
        --budget 400 --n 16 --seeds 0 1 --out benchmarks/results/suite_runs
    python benchmarks/suite.py report [--beds study] [--reference RISE-4000]

``run`` explains the first ``--n`` correctly classified held-out examples of each bed with
each method and seed and scores every map with ``evaluate``'s default metrics (insertion and
deletion AUC; box/span IoU and pointing where the evidence is known) plus insertion and
deletion from and to the bed's training-mean input (the ``mean_reference`` metric below:
``insertion_mean``, ``deletion_mean``), forward passes and seconds per example, and the
run-to-run top-5% IoU over the seeds. One ``evaluate`` folder per bed and method,
``<out>/<bed>/<method-slug>``; ``evaluate(resume=True)`` skips what is recorded, so a killed
run picks up where it stopped. A method named ``NAME-<k>`` is the registered ``NAME`` at a
budget of ``k`` forwards (``RISE-4000``). Methods that do not apply to a bed (Grad-CAM on
series or on a model without a convolution) are skipped with a note.

:func:`run_bed` also takes callables ``fn(x, target, seed)`` (a study's own candidates) and
:func:`load_records` reads any folder back as per-example arrays.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).parent))
import beds_suite  # noqa: E402

from captum_perturbmask.evaluation import default_methods, evaluate  # noqa: E402
from captum_perturbmask.evaluation.methods import METHODS, data_kind  # noqa: E402
from captum_perturbmask.evaluation.records import read_records  # noqa: E402
from captum_perturbmask.evaluation.scoring import (  # noqa: E402
    METRICS,
    Column,
    Metric,
    MetricBatch,
    register_metric,
)

PEERS = (
    "PerturbMask", "RISE", "RISE-4000", "HSIC", "Sobol", "Occlusion", "LIME", "KernelShap",
    "FeatureAblation", "GradCAM", "IntegratedGradients",
)  # fmt: skip
OUT = Path(__file__).parent / "results" / "suite_runs"
#: examples explained together (one evaluate block) and rows per forward call
BATCH_SIZE = 16
FORWARD_BATCH_SIZE = 256
#: the keys :func:`load_records` returns (those a run has)
KEYS = (
    "insertion", "deletion", "insertion_mean", "deletion_mean", "iou", "pointing",
    "top5_overlap", "seconds", "forwards",
)  # fmt: skip

# ------------------------------------------------------------------------------ the metric
#: The training mean of the bed being run (set by :func:`run_bed`; ``(C, *S)``).
_MEAN_REFERENCE: dict[str, Tensor] = {}


def _mean_reference(b: MetricBatch) -> dict[str, Any]:
    from captum_perturbmask.metrics import insertion_deletion

    ref = _MEAN_REFERENCE.get("mean")
    if ref is None:
        raise RuntimeError("the mean_reference metric runs inside suite.run_bed only")
    ref = ref.to(b.inputs.device, b.inputs.dtype)
    s = b.settings
    r = insertion_deletion(
        b.model, b.inputs, b.attributions, b.target, substrate=ref, baselines=ref,
        n_steps=s.n_steps, step_size=s.step_size, batch_size=s.forward_batch_size,
        confidence=s.confidence,
    )  # fmt: skip
    return {"insertion_mean": r.insertion, "deletion_mean": r.deletion}


if "mean_reference" not in METRICS:
    register_metric(
        Metric(
            "mean_reference",
            (
                Column("insertion_mean", "insertion (mean)", True),
                Column("deletion_mean", "deletion (mean)", False),
            ),
            _mean_reference,
            default=False,
        )
    )
SUITE_METRICS = ("insertion", "deletion", "iou", "pointing", "mean_reference")


# ------------------------------------------------------------------------------ running
class _Items(Dataset):
    """``(input, target)`` or ``(input, target, truth)`` items of a bed."""

    def __init__(self, data: beds_suite.BedData) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data.targets)

    def __getitem__(self, i: int) -> tuple:
        d = self.data
        item = (d.inputs[i], int(d.targets[i]))
        return item if d.truth is None else (*item, d.truth[i])


def slug(name: str) -> str:
    """A method's folder name: lower case, runs of other characters as one ``-``."""
    out = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    if not out:
        raise ValueError(f"method name {name!r} has no letter or digit")
    return out


def parse_method(name: str, budget: int) -> tuple[str, int]:
    """``(registered name, budget)`` of a suite method name: ``"RISE-4000"`` is RISE at 4000
    forwards, any other registered name runs at ``budget``.

    Raises:
        ValueError: the name is not registered.
    """
    by_lower = {n.lower(): n for n in METHODS}
    m = re.fullmatch(r"(.+)-(\d+)", name)
    if m and m.group(1).lower() in by_lower:
        return by_lower[m.group(1).lower()], int(m.group(2))
    if name.lower() in by_lower:
        return by_lower[name.lower()], budget
    raise ValueError(f"method {name!r} is not registered; choose from {list(METHODS)}")


def build_registered(
    model: nn.Module, example: Tensor, name: str, budget: int,
    forward_batch_size: int = FORWARD_BATCH_SIZE,
) -> tuple[Callable | None, str | None]:  # fmt: skip
    """``(fn, None)`` for a registered suite method name, or ``(None, why)`` when it does not
    apply to this data or model."""
    registered, b = parse_method(name, budget)
    kind = data_kind(example)
    if kind not in METHODS[registered].data:
        return None, f"{name} does not explain {kind}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            fns = default_methods(
                model, example, [registered], budget=b, forward_batch_size=forward_batch_size
            )
        except ValueError as err:
            return None, f"{name}: {err}"
    return fns[registered], None


def run_bed(
    bed_name: str,
    methods: Mapping[str, Callable] | Sequence[str],
    budget: int = 400,
    n: int = 16,
    seeds: Sequence[int] = (0, 1),
    out: str | Path = OUT,
    *,
    forward_batch_size: int = FORWARD_BATCH_SIZE,
    log: Callable[[str], Any] | None = print,
) -> dict[str, str]:
    """Explain and score bed ``bed_name`` with every method, one ``evaluate`` folder each.

    Args:
        bed_name: A name of ``beds_suite.BEDS``.
        methods: Suite method names (registered names, ``NAME-<budget>``), or name ->
            ``fn(x, target, seed)`` (e.g. a closure over ``PerturbMask(model, **kwargs)``;
            build it from ``beds_suite.BEDS[bed_name].load(n).model``).
        budget: Forward passes per example of the registered methods.
        n: Examples (the first ``n`` correctly classified held-out examples).
        seeds: Run seeds.
        out: Root folder; records go to ``out/<bed>/<method-slug>/``.
        forward_batch_size: Rows per forward call of the methods and the metrics.
        log: Called with one line per method (no metric values); ``None``: silent.

    Returns:
        Method name -> ``"done"``, or the reason it was skipped.

    Raises:
        ValueError: an unknown bed or method name.
    """
    if bed_name not in beds_suite.BEDS:
        raise ValueError(f"unknown bed {bed_name!r}; choose from {sorted(beds_suite.BEDS)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = beds_suite.BEDS[bed_name].load(n)
    example = data.inputs[: min(BATCH_SIZE, len(data.inputs))]
    if isinstance(methods, Mapping):
        fns: dict[str, Callable | None] = dict(methods)
        notes: dict[str, str] = {}
    else:
        if isinstance(methods, str):
            methods = [m.strip() for m in methods.split(",") if m.strip()]
        fns, notes = {}, {}
        for name in methods:
            fn, why = build_registered(data.model, example, name, budget, forward_batch_size)
            fns[name] = fn
            if why is not None:
                notes[name] = why
    status: dict[str, str] = {}
    _MEAN_REFERENCE["mean"] = data.mean
    try:
        for name, fn in fns.items():
            if fn is None:
                status[name] = f"skipped: {notes[name]}"
                if log is not None:
                    log(f"{bed_name:<22} {name:<20} skipped ({notes[name]})")
                continue
            folder = Path(out) / bed_name / slug(name)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                evaluate(
                    data.model, _Items(data), {name: fn}, budget=parse_budget(name, budget),
                    seeds=list(seeds), batch_size=BATCH_SIZE, metrics=SUITE_METRICS,
                    out=folder, resume=True, show_progress=False,
                    forward_batch_size=forward_batch_size,
                )  # fmt: skip
            status[name] = "done"
            if log is not None:
                log(f"{bed_name:<22} {name:<20} done in {time.perf_counter() - start:.0f} s")
    finally:
        _MEAN_REFERENCE.pop("mean", None)
        torch.set_num_threads(threads)
    bed_dir = Path(out) / bed_name
    bed_dir.mkdir(parents=True, exist_ok=True)
    info_path = bed_dir / "bed.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {"methods": {}}
    info.update({"bed": bed_name, "n": len(data.targets), "accuracy": data.accuracy})
    info["methods"].update(status)
    info_path.write_text(json.dumps(info, indent=1))
    return status


def parse_budget(name: str, budget: int) -> int:
    """The budget a suite method name runs at (``RISE-4000``: 4000; a callable's: ``budget``)."""
    try:
        return parse_method(name, budget)[1]
    except ValueError:
        return budget


# ------------------------------------------------------------------------------ reading
def load_records(out: str | Path, bed: str, method: str) -> dict[str, np.ndarray]:
    """Per-example values of one bed and method, averaged over seeds, aligned by index.

    Returns:
        ``{"index": (N,) int, "insertion", "deletion", "insertion_mean", "deletion_mean",
        "iou" and "pointing" (when the bed has evidence), "top5_overlap" (run-to-run top-5%
        IoU: 1 for a deterministic method, absent with one seed), "seconds", "forwards"}``,
        each ``(N,)`` float over the examples with an ok record, sorted by index.

    Raises:
        FileNotFoundError: no records under ``out/<bed>/<slug(method)>``.
    """
    folder = Path(out) / bed / slug(method)
    runs: dict[int, dict[str, list[float]]] = {}
    overlap: dict[int, float] = {}
    deterministic = False
    seeds: set[int] = set()
    found = False
    for r in read_records(folder):
        found = True
        if r.get("status") != "ok" or r.get("method") != method:
            continue
        if r["kind"] == "run":
            seeds.add(int(r["seed"]))
            deterministic = deterministic or bool(r.get("deterministic"))
            row = runs.setdefault(int(r["index"]), {})
            for key in KEYS:
                v = r.get(key)
                if v is not None and key != "top5_overlap":
                    row.setdefault(key, []).append(float(v))
        elif r["kind"] == "consistency" and r.get("top_k_iou") is not None:
            overlap[int(r["index"])] = float(r["top_k_iou"])
    if not found:
        raise FileNotFoundError(f"no records under {folder}")
    index = np.array(sorted(runs), dtype=np.int64)
    out_: dict[str, np.ndarray] = {"index": index}
    keys = sorted({k for row in runs.values() for k in row}, key=KEYS.index)
    for key in keys:
        out_[key] = np.array([np.mean(runs[i].get(key, [np.nan])) for i in index], float)
    if overlap:
        out_["top5_overlap"] = np.array([overlap.get(int(i), np.nan) for i in index], float)
    elif deterministic:
        out_["top5_overlap"] = np.ones(len(index))
    return out_


# ------------------------------------------------------------------------------ commands
def cmd_list(args: argparse.Namespace) -> None:
    rows = []
    for bed in beds_suite.select(args.beds):
        acc = beds_suite.recorded_accuracy(bed.name)
        if acc is None and bed.is_trained():
            acc = bed.load(1).accuracy
        shape = "-"
        try:
            if bed.is_trained():
                shape = "x".join(str(s) for s in bed.source.test()[0].shape[1:])
        except Exception as err:  # noqa: BLE001 - a listing shows what it can
            shape = f"({type(err).__name__})"
        acc_s = "untrained" if acc is None else f"{acc:.3f}"
        final = " final" if bed.name in beds_suite.FINAL_TEST else ""
        print(f"{bed.name:<22} {bed.kind:<7} {bed.family:<8} {bed.arch:<10} {shape:<12} "
              f"{acc_s}{final}")  # fmt: skip
        group = "final test" if final else "study"
        cols = (bed.name, bed.kind, bed.family, bed.arch, shape, acc_s, group, bed.description)
        rows.append("| " + " | ".join(cols) + " |")
    if args.markdown is not None:
        head = [
            "| bed | kind | family | arch | input | held-out accuracy | group | data and model |",
            "| --- | --- | --- | --- | --- | ---: | --- | --- |",
        ]
        args.markdown.write_text("\n".join(head + rows) + "\n", encoding="utf-8")


def cmd_train(args: argparse.Namespace) -> None:
    import train_suite

    train_suite.train_missing([b.name for b in beds_suite.select(args.beds)], args.force)


def cmd_run(args: argparse.Namespace) -> None:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for bed in beds_suite.select(args.beds):
        run_bed(bed.name, methods, args.budget, args.n, args.seeds, args.out)


def cmd_report(args: argparse.Namespace) -> None:
    import suite_report

    suite_report.main(
        ["--beds", *args.beds, "--out", str(args.out), "--reference", args.reference,
         "--write", str(args.write), "--methods", args.methods]
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="one bed per line with its held-out accuracy")
    p.add_argument("--beds", nargs="+", default=["all"])
    p.add_argument("--markdown", type=Path, default=None, help="also write a Markdown table")
    p = sub.add_parser("train", help="train the beds whose weights are missing")
    p.add_argument("--beds", nargs="+", default=["all"])
    p.add_argument("--force", action="store_true")
    p = sub.add_parser("run", help="run methods on beds (resumable)")
    p.add_argument("--beds", nargs="+", default=["study"])
    p.add_argument("--methods", default=",".join(PEERS))
    p.add_argument("--budget", type=int, default=400)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", type=Path, default=OUT)
    p = sub.add_parser("report", help="paired differences against a reference method")
    p.add_argument("--beds", nargs="+", default=["study"])
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--reference", default="RISE-4000")
    p.add_argument("--write", type=Path, default=Path(__file__).parent / "results" / "suite")
    p.add_argument("--methods", default="peers", help="names, 'peers' or 'all'")
    args = ap.parse_args(argv)
    {"list": cmd_list, "train": cmd_train, "run": cmd_run, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main()
