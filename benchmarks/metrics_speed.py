"""Overhead of insertion/deletion AUC over the bare forward passes it needs.

Times :func:`captum_perturbmask.metrics.insertion_deletion` (and the two single metrics) on
224 x 224 images with a randomly initialised torchvision ResNet-18 (``weights=None``, eval,
CPU) against a bare loop of the same number of forward passes with the same batch shapes,
interleaved in one run. The goal is a ratio <= 1.1.

Usage::

    python benchmarks/metrics_speed.py [--images 2] [--step-size 1792] [--batch-size 64]
                                       [--repeats 3] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
import time
from collections.abc import Callable

import torch
import torchvision

from captum_perturbmask.metrics import deletion_auc, insertion_auc, insertion_deletion

HEADER = (
    "| date | torch | threads | metric | images | steps | forward rows | batch | "
    "metric s | bare s | ratio | median paired ratio |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def bare_loop(model: torch.nn.Module, rows: int, batch: torch.Tensor) -> None:
    """The same forward passes with the same batch shapes, nothing else."""
    batch_size = batch.shape[0]
    with torch.no_grad():
        for start in range(0, rows, batch_size):
            model(batch[: min(batch_size, rows - start)])


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--step-size", type=int, default=224 * 8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--append", default=None, help="Markdown file to append rows to")
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    inputs = torch.rand(args.images, 3, 224, 224)
    attributions = torch.rand(args.images, 1, 224, 224)
    target = torch.arange(args.images)
    n_steps = math.ceil(224 * 224 / args.step_size)
    points = n_steps + 1
    kwargs = {"step_size": args.step_size, "batch_size": args.batch_size}

    cases = {
        "insertion_deletion": (
            lambda: insertion_deletion(model, inputs, attributions, target, **kwargs),
            2 * args.images * points,
        ),
        "insertion_auc + deletion_auc": (
            lambda: (
                insertion_auc(model, inputs, attributions, target, **kwargs),
                deletion_auc(model, inputs, attributions, target, **kwargs),
            ),
            None,
        ),
    }
    bare_single = args.images * points

    rows_md = []
    threads = torch.get_num_threads()
    today = datetime.date.today().isoformat()
    batch = torch.rand(args.batch_size, 3, 224, 224)
    with torch.no_grad():  # warm-up
        model(batch)
    for name, (fn, rows) in cases.items():
        if rows is not None:

            def bare(rows: int = rows) -> None:
                bare_loop(model, rows, batch)

        else:  # two calls, each with its own (shorter) last batch
            rows = 2 * bare_single

            def bare() -> None:
                for _ in range(2):
                    bare_loop(model, bare_single, batch)

        fn(), bare()  # warm-up: the allocator and oneDNN see every batch shape once
        metric_s, bare_s = [], []
        for _ in range(args.repeats):  # interleave to share machine noise
            metric_s.append(best_of(fn, 1))
            bare_s.append(best_of(bare, 1))
        m, b = min(metric_s), min(bare_s)
        paired = statistics.median(x / y for x, y in zip(metric_s, bare_s, strict=True))
        print(
            f"{name}: {rows} forward rows, metric {m:.2f} s, bare loop {b:.2f} s (best of "
            f"{args.repeats}), ratio {m / b:.3f}, median paired ratio {paired:.3f} (goal <= 1.1)"
        )
        rows_md.append(
            f"| {today} | {torch.__version__} | {threads} | {name} | {args.images} | "
            f"{n_steps} | {rows} | {args.batch_size} | {m:.2f} | {b:.2f} | {m / b:.3f} | "
            f"{paired:.3f} |"
        )

    table = "\n".join([HEADER, *rows_md])
    print()
    print(table)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as fh:
            fh.write("\n".join(rows_md) + "\n")


if __name__ == "__main__":
    main()
