"""Scaling of ``captum_perturbmask.evaluation.evaluate``: processes, memory and a full held-out run.

Three measurements, each in fresh processes so that nothing is shared between them:

* ``scaling``: throughput (examples per second) of one process against two ``torchrun``
  ranks, one CPU thread each, on the same examples and methods; the ratio is the speed-up
  (goal >= 1.8 on two cores). Each rank times its own ``evaluate`` call (shard, barrier,
  merge); the slowest rank's time is the run's.
* ``memory``: peak resident memory of one process evaluating 100 and 1,000 examples
  (records stream to disk, so it should not grow with the dataset).
* ``full``: the 540 held-out digits-in-clutter images with the five default methods at 400
  forward passes, one process, every core: a time a user can plan with.

Usage::

    python benchmarks/evaluate_scaling.py --part scaling memory full
    python benchmarks/evaluate_scaling.py --part scaling --n 64 --budget 100

Results are printed as Markdown and appended to ``benchmarks/results/evaluate_scaling.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

WORKER = """
import json, os, resource, sys, time, torch
from captum_perturbmask.data import load_default_classifier, make_digits_clutter
from captum_perturbmask.evaluation import evaluate

n, budget, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
threads, methods = int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
model = load_default_classifier()
data = make_digits_clutter("test", n=n, seed=0)
chosen = None
if methods == "pixels":
    chosen = {"pixels": lambda x, t, s: x.clone()}
elif methods == "perturbmask":
    from captum_perturbmask import PerturbMask
    def perturb_mask(x, t, s):
        return PerturbMask(model).attribute(x, target=t, budget=budget, seed=s)
    chosen = {"PerturbMask": perturb_mask}
start = time.perf_counter()
result = evaluate(model, data, chosen, budget=budget, batch_size=16, out=out, show_progress=False)
elapsed = time.perf_counter() - start
rank = int(os.environ.get("RANK", "0"))
print(json.dumps({"rank": rank, "seconds": elapsed, "n": n,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "summary": result.summary if rank == 0 else None}))
"""


def _run(cmd: list[str], env: dict[str, str]) -> list[dict]:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def scaling(worker: Path, n: int, budget: int, methods: str, repeats: int) -> list[str]:
    rows = []
    for r in range(repeats):  # interleaved: 1 process, then 2 ranks
        times = {}
        for procs in (1, 2):
            with tempfile.TemporaryDirectory() as out:
                args = [str(worker), str(n), str(budget), out, "1", methods]
                if procs == 1:
                    cmd = [sys.executable, *args]
                else:
                    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", str(procs), *args]  # fmt: skip
                reports = _run(cmd, _env(1))
                times[procs] = max(rep["seconds"] for rep in reports)
        rows.append((r, times[1], times[2]))
        print(f"  repeat {r}: 1 process {times[1]:.1f} s, 2 ranks {times[2]:.1f} s", flush=True)
    lines = [
        f"Throughput, {n} digits-in-clutter images, method(s) `{methods}` at budget {budget}, "
        "batch 16, one CPU thread per process (wall time of `evaluate`, slowest rank):",
        "",
        "| repeat | 1 process (s) | 2 torchrun ranks (s) | examples/s, 1 | examples/s, 2 | "
        "speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for r, t1, t2 in rows:
        lines.append(f"| {r} | {t1:.1f} | {t2:.1f} | {n / t1:.2f} | {n / t2:.2f} | "
                     f"**{t1 / t2:.2f}** |")  # fmt: skip
    best1, best2 = min(t for _, t, _ in rows), min(t for _, _, t in rows)
    lines += ["", f"Best of {len(rows)}: speed-up **{best1 / best2:.2f}** (goal >= 1.8)."]
    return lines


def memory(worker: Path, sizes: list[int]) -> list[str]:
    lines = [
        "Peak resident memory of one process (records stream to disk; method `pixels`, so the "
        "model and the metrics dominate):",
        "",
        "| examples | peak RSS (MiB) | seconds |",
        "|---|---|---|",
    ]
    for n in sizes:
        with tempfile.TemporaryDirectory() as out:
            rep = _run([sys.executable, str(worker), str(n), "1", out, "1", "pixels"], _env(1))[0]
        lines.append(f"| {n} | {rep['peak_mib']:.0f} | {rep['seconds']:.1f} |")
        print(f"  {n} examples: {rep['peak_mib']:.0f} MiB", flush=True)
    return lines


def full(worker: Path, budget: int, threads: int) -> list[str]:
    with tempfile.TemporaryDirectory() as out:
        rep = _run([sys.executable, str(worker), "540", str(budget), out, str(threads),
                    "default"], _env(threads))[0]  # fmt: skip
    lines = [
        f"The 540 held-out digits-in-clutter images, the five default methods at {budget} "
        f"forward passes, one process, {threads} threads: **{rep['seconds'] / 60:.1f} min** "
        f"({rep['seconds'] / 540:.2f} s per image for all five methods and their metrics).",
        "",
        "| method | insertion ↑ | deletion ↓ | IoU ↑ | pointing ↑ | forwards/input |",
        "|---|---|---|---|---|---|",
    ]
    for row in rep["summary"]:
        lines.append(
            f"| {row['method']} | {row['insertion']:.3f} ± {row['insertion_ci']:.3f} | "
            f"{row['deletion']:.3f} ± {row['deletion_ci']:.3f} | {row['iou']:.3f} ± "
            f"{row['iou_ci']:.3f} | {row['pointing']:.3f} | {row['forwards_per_input']:g} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=["scaling", "memory"],
                        choices=("scaling", "memory", "full"))  # fmt: skip
    parser.add_argument("--n", type=int, default=64, help="examples of the scaling run")
    parser.add_argument("--budget", type=int, default=100, help="budget of the scaling run")
    parser.add_argument("--methods", default="perturbmask", choices=("perturbmask", "default"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        worker = Path(tmp) / "worker.py"
        worker.write_text(textwrap.dedent(WORKER))
        sections = [
            f"## evaluate scaling — {platform.machine()}, {os.cpu_count()} cores, "
            f"{time.strftime('%Y-%m-%d')}",
            "",
            f"`python benchmarks/evaluate_scaling.py {' '.join(sys.argv[1:])}`",
        ]
        if "scaling" in args.part:
            sections += ["", *scaling(worker, args.n, args.budget, args.methods, args.repeats)]
        if "memory" in args.part:
            sections += ["", *memory(worker, [100, 1000])]
        if "full" in args.part:
            sections += ["", *full(worker, 400, args.threads)]
    text = "\n".join(sections) + "\n"
    print(text)
    results = HERE / "results" / "evaluate_scaling.md"
    results.parent.mkdir(exist_ok=True)
    with open(results, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
