"""One prepared run of every accelerator measurement: ``python benchmarks/gpu.py``.

Writes ``benchmarks/results/gpu.md`` (``--out`` elsewhere) with, on one device:

1. **the CUDA tests** (``pytest -k cuda``: values compared with the CPU);
2. **ratios against a bare loop** that replays exactly the method's forward calls:
   ResNet-18 on one 224 px image (PerturbMask's default 6 x 6 grid, a 32 x 32 grid, RISE),
   ResNet-50 on 16 images in float32 and in bfloat16 autocast with ``channels_last`` (and the
   largest difference of the maps), the shipped digits CNN on 16 images, a 1-D series CNN;
3. **host synchronisations per call** (CUDA's sync debug mode counts them; on the CPU the
   :class:`~captum_perturbmask._core.profiling.OpCounter` proxy) and tensor operations
   outside the model per forward call;
4. **peak memory** at two budgets;
5. **evaluate** on the held-out digits with the five default methods (examples per second).

``--device cpu --quick`` runs the same code on a CPU in well under a minute (checked by the
test suite); on one GPU the full run takes under five minutes. Nothing is downloaded: the
torchvision models have random weights (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from speed import Recorder, bare_loop, timed  # noqa: E402


def _rows(table: list[list[object]], header: list[str]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in table]
    return out


def _ratio(
    model: nn.Module, run: Callable[[Recorder], object], device: torch.device, repeats: int,
    memory_format: torch.memory_format = torch.contiguous_format, autocast: bool = False,
) -> tuple[float, float, int]:  # fmt: skip
    """Median seconds of ``run`` and of the bare loop of its forward calls, and the rows."""
    recorder = Recorder(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(recorder)  # warm-up and recording
    shapes = list(recorder.shapes)
    bare = bare_loop(model, shapes, device, memory_format, autocast)
    t_run, t_bare = [], []
    for _ in range(repeats):
        t_run.append(timed(lambda: run(recorder), device))
        t_bare.append(timed(bare, device))
    return statistics.median(t_run), statistics.median(t_bare), sum(s[0] for s in shapes)


def _amp(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16)


def ratio_section(device: torch.device, quick: bool, repeats: int) -> list[str]:
    import torchvision

    from captum_perturbmask import RISE, PerturbMask
    from captum_perturbmask.data import load_default_classifier, load_series_classifier

    size = 32 if quick else 224
    budget = 16 if quick else 400
    big = 2 if quick else 16
    r18 = torchvision.models.resnet18(weights=None).eval().to(device)
    # the large model: ResNet-50 (ResNet-18 again in a quick run)
    r50 = r18 if quick else torchvision.models.resnet50(weights=None).eval().to(device)
    big_name = "ResNet-18" if quick else "ResNet-50"
    digits = load_default_classifier(device)
    series = load_series_classifier("gunpoint", device)
    g = torch.Generator().manual_seed(0)
    one = torch.rand(1, 3, size, size, generator=g).to(device)
    many = torch.rand(big, 3, size, size, generator=g).to(device)
    n_small = 4 if quick else 16
    dig = torch.rand(n_small, 3, 64, 64, generator=g).to(device)
    ser = torch.randn(n_small, 1, 150, generator=g).to(device)

    def pm(x: torch.Tensor, **config: object) -> Callable[[nn.Module], object]:
        return lambda m: PerturbMask(m, **config).attribute(x, target=0, budget=budget, seed=0)

    cases = [
        ("ResNet-18, 1 image, PerturbMask (6x6)", r18, pm(one)),
        ("ResNet-18, 1 image, PerturbMask (32x32 grid)", r18, pm(one, grid_size=32)),
        ("ResNet-18, 1 image, RISE", r18,
         lambda m: RISE(m).attribute(one, target=0, budget=budget, seed=0)),
        (f"{big_name}, {big} images, PerturbMask float32", r50, pm(many)),
        (f"digits CNN, {n_small} images, PerturbMask", digits, pm(dig)),
        (f"series CNN (GunPoint), {n_small} series, PerturbMask", series, pm(ser)),
    ]  # fmt: skip
    table = []
    for name, model, run in cases:
        t, b, rows = _ratio(model, run, device, repeats)
        table.append([name, rows, f"{t:.3f}", f"{b:.3f}", f"**{t / b:.3f}**"])
        print("  ", table[-1], flush=True)
    # bfloat16 autocast + channels_last on ResNet-50: speed-up and the maps' difference
    r50_cl = r50.to(memory_format=torch.channels_last)
    many_cl = many.contiguous(memory_format=torch.channels_last)

    def fast(m: nn.Module) -> object:
        with _amp(device):
            return PerturbMask(m).attribute(many_cl, target=0, budget=budget, seed=0)

    t16, b16, rows = _ratio(r50_cl, fast, device, repeats, torch.channels_last, autocast=True)
    r50.to(memory_format=torch.contiguous_format)
    t32 = float(table[3][2])
    ref = PerturbMask(r50).attribute(many, target=0, budget=budget, seed=0)
    with _amp(device):
        got = PerturbMask(r50_cl).attribute(many_cl, target=0, budget=budget, seed=0)
    diff = float((got.float() - ref.float()).abs().max() / ref.float().abs().max())
    table.append([f"{big_name}, {big} images, bf16 autocast + channels_last", rows, f"{t16:.3f}",
                  f"{b16:.3f}", f"**{t16 / b16:.3f}** (x{t32 / t16:.2f} vs float32; maps "
                  f"within {diff:.1e} of the float32 map's max)"])  # fmt: skip
    print("  ", table[-1], flush=True)
    return _rows(table, ["case", "forward rows", "method (s)", "bare loop (s)", "ratio"])


def sync_section(device: torch.device, quick: bool) -> list[str]:
    from captum_perturbmask import RISE, PerturbMask
    from captum_perturbmask._core.profiling import OpCounter
    from captum_perturbmask.data import load_default_classifier

    model = load_default_classifier(device)
    x = torch.rand(4 if quick else 16, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    x = x.to(device)
    budgets = (20, 60) if quick else (100, 400, 4000)
    cases = {
        "PerturbMask (6x6)": lambda b: PerturbMask(model).attribute(x, target=0, budget=b, seed=0),
        "PerturbMask (32x32)": lambda b: PerturbMask(model, grid_size=32).attribute(
            x, target=0, budget=b, seed=0),
        "PerturbMask (chain)": lambda b: PerturbMask(model, design="chain").attribute(
            x, target=0, budget=b, seed=0),
        "RISE": lambda b: RISE(model).attribute(x, target=0, budget=b, seed=0),
    }  # fmt: skip
    table = []
    for name, run in cases.items():
        for b in budgets:
            with OpCounter(model) as counter:
                run(b)
            cuda_syncs = "-"
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    torch.cuda.set_sync_debug_mode("warn")
                    try:
                        run(b)
                    finally:
                        torch.cuda.set_sync_debug_mode("default")
                cuda_syncs = str(sum("synchroniz" in str(w.message) for w in caught))
            table.append([name, b, counter.forward_calls, f"{counter.outside_per_call:.1f}",
                          counter.syncs, cuda_syncs])  # fmt: skip
            print("  ", table[-1], flush=True)
    return _rows(table, [f"method ({len(x)} digits)", "budget", "forward calls",
                         "ops outside the model per call", "sync ops (dispatch count)",
                         "syncs (CUDA sync debug mode)"])  # fmt: skip


def memory_section(device: torch.device, quick: bool) -> list[str]:
    import torchvision

    from captum_perturbmask import PerturbMask

    size = 32 if quick else 224
    model = torchvision.models.resnet18(weights=None).eval().to(device)
    x = torch.rand(4, 3, size, size, device=device)
    table = []
    for budget in (16, 160) if quick else (400, 4000):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        PerturbMask(model).attribute(x, target=0, budget=budget, perturbations_per_eval=16, seed=0)
        if device.type == "cuda":
            peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
            table.append([budget, 16, f"{peak:.0f}"])
        else:
            import resource

            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            table.append([budget, 16, f"{rss:.0f} (peak RSS of the process)"])
        print("  ", table[-1], flush=True)
    return _rows(table, ["budget", "perturbations_per_eval", "peak memory (MiB)"])


def evaluate_section(device: torch.device, quick: bool) -> list[str]:
    from captum_perturbmask import evaluate
    from captum_perturbmask.data import load_default_classifier, make_digits_clutter

    n = 2 if quick else 540
    data = make_digits_clutter("test", n=n)
    model = load_default_classifier()
    budget = 8 if quick else 400
    start = time.perf_counter()
    evaluate(model, data, budget=budget, device=str(device), batch_size=n if quick else 64)
    seconds = time.perf_counter() - start
    return _rows([[n, budget, f"{seconds:.1f}", f"{n / seconds:.2f}"]],
                 ["digits", "budget", "seconds", "examples/s"])  # fmt: skip


def test_section(device: torch.device) -> list[str]:
    if device.type != "cuda":
        return ["(CUDA tests: no CUDA device; run with --device cuda)"]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-k", "cuda", "-p", "no:cacheprovider",
         "tests/attr", "tests/_core", "tests/metrics"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    tail = [line for line in out.stdout.splitlines() if line.strip()][-3:]
    return ["```", *tail, "```"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results" / "gpu.md"))
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=("tests", "ratios", "syncs", "memory", "evaluate"))  # fmt: skip
    args = parser.parse_args(argv)
    from captum_perturbmask._core.devices import resolve_device

    try:
        device = resolve_device(args.device, "--device")
    except (TypeError, ValueError) as err:
        print(f"gpu.py: {err}", file=sys.stderr)
        return 2
    repeats = 1 if args.quick else args.repeats
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    lines = [f"# Accelerator run: {device} ({name}), torch {torch.__version__}, "
             f"{time.strftime('%Y-%m-%d')}", "",
             f"`python benchmarks/gpu.py {' '.join(argv or sys.argv[1:])}`"]  # fmt: skip
    sections = {
        "tests": ("CUDA tests", lambda: test_section(device)),
        "ratios": ("Ratios against a bare loop of the same forward calls",
                   lambda: ratio_section(device, args.quick, repeats)),
        "syncs": ("Host synchronisations and launch overhead per call",
                  lambda: sync_section(device, args.quick)),
        "memory": ("Peak memory", lambda: memory_section(device, args.quick)),
        "evaluate": ("evaluate on held-out digits, five default methods",
                     lambda: evaluate_section(device, args.quick)),
    }  # fmt: skip
    for key, (title, build) in sections.items():
        if key in args.skip:
            continue
        print(f"{title}:", flush=True)
        start = time.perf_counter()
        lines += ["", f"## {title}", "", *build(), "", f"({time.perf_counter() - start:.0f} s)"]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
