"""Speed of PerturbMask, RISE, TorchRay's RISE and Captum's perturbation methods.

Every method explains one image at about the same number of forward passes; each is timed
against a **bare loop that replays exactly the same forward calls** (the same batch shapes, in
the same order, recorded from the method's own run), so the ratio ``method / bare`` is the cost
of everything that is not the model: mask generation, mixing, estimators, bookkeeping. Repeats
are interleaved (method, bare, method, bare, ...) and the medians are reported.

Also measured: PerturbMask at larger grids (16 x 16, 32 x 32 cells) and with ~500
superpixels, ``torch.autocast`` (bfloat16 on CPU, float16 on CUDA) and ``channels_last``
against the float32 / contiguous run, and peak memory at two budgets with the same
``perturbations_per_eval``.

TorchRay is optional (``pip install --no-deps torchray``); its row is skipped when missing.

Usage::

    python benchmarks/speed.py                 # CPU, ResNet-18 at 224 px, 400 passes
    python benchmarks/speed.py --device cuda   # the same on a GPU
    python benchmarks/speed.py --quick         # 112 px, fewer passes and repeats

Results are printed and appended to ``benchmarks/results/speed.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
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


class Recorder(nn.Module):
    """Wraps a model and records the shape of every forward batch."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.model(x)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model: nn.Module, shapes: list[tuple[int, ...]], device: torch.device,
              memory_format: torch.memory_format = torch.contiguous_format,
              autocast: bool = False, amp: torch.dtype = torch.bfloat16,
              ) -> Callable[[], None]:  # fmt: skip
    """A loop of forwards of random inputs with exactly ``shapes`` (under ``torch.autocast``
    to ``amp`` when ``autocast``)."""
    inputs = {s: torch.rand(s, device=device).contiguous(memory_format=memory_format)
              for s in set(shapes)}  # fmt: skip

    def run() -> None:
        ctx = torch.autocast(device.type, dtype=amp) if autocast else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            for s in shapes:
                model(inputs[s])

    return run


def timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def methods(model: nn.Module, x: torch.Tensor, budget: int, ppe: int) -> dict[str, Callable]:
    from captum.attr import FeatureAblation, KernelShap, Lime, Occlusion

    from captum_perturbmask import RISE, PerturbMask

    size = x.shape[-1]
    side = round(budget**0.5)  # FeatureAblation / LIME / KernelShap on a side x side grid
    cells = torch.arange(size) * side // size
    grid_mask = (cells[:, None] * side + cells[None, :]).expand(1, 3, size, size).to(x.device)
    window = max(1, round(2 * size / (side + 1)))
    stride = max(1, (size - window) // max(1, side - 1))
    sp = round(500**0.5)  # ~500 superpixels
    sp_cells = torch.arange(size) * sp // size
    superpixels = (sp_cells[:, None] * sp + sp_cells[None, :]).expand(1, 3, size, size).to(x.device)
    out: dict[str, Callable] = {
        "PerturbMask (default 6x6 grid)": lambda: PerturbMask(model).attribute(
            x, target=0, budget=budget, perturbations_per_eval=ppe, seed=0),
        "PerturbMask (default, perturbations_per_eval auto)": lambda: PerturbMask(model).attribute(
            x, target=0, budget=budget, seed=0),
        "PerturbMask (16x16 grid)": lambda: PerturbMask(model, grid_size=16).attribute(
            x, target=0, budget=budget, perturbations_per_eval=ppe, seed=0),
        "PerturbMask (32x32 grid, 4096 features)": lambda: PerturbMask(
            model, grid_size=32).attribute(
            x, target=0, budget=budget, perturbations_per_eval=ppe, seed=0),
        f"PerturbMask ({sp * sp} superpixels)": lambda: PerturbMask(model).attribute(
            x, target=0, budget=budget, feature_mask=superpixels, perturbations_per_eval=ppe,
            seed=0),
        "RISE": lambda: RISE(model).attribute(
            x, target=0, budget=budget, perturbations_per_eval=ppe, seed=0),
        f"Captum Occlusion ({window} px window)": lambda: Occlusion(model).attribute(
            x, target=0, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
            perturbations_per_eval=ppe),
        f"Captum FeatureAblation ({side}x{side} grid)": lambda: FeatureAblation(model).attribute(
            x, target=0, feature_mask=grid_mask, perturbations_per_eval=ppe),
        f"Captum Lime ({side}x{side} grid)": lambda: Lime(model).attribute(
            x, target=0, feature_mask=grid_mask, n_samples=budget, perturbations_per_eval=ppe),
        f"Captum KernelShap ({side}x{side} grid)": lambda: KernelShap(model).attribute(
            x, target=0, feature_mask=grid_mask, n_samples=budget, perturbations_per_eval=ppe),
    }  # fmt: skip
    try:
        from torchray.attribution.rise import rise as torchray_rise

        out["TorchRay RISE"] = lambda: torchray_rise(
            model, x, num_masks=budget, batch_size=ppe, seed=0
        )
    except ImportError:
        print("  (TorchRay not installed: pip install --no-deps torchray)", flush=True)
    return out


def ratio_rows(model: nn.Module, x: torch.Tensor, budget: int, ppe: int, repeats: int,
               device: torch.device, only: list[str] | None = None) -> list[str]:  # fmt: skip
    rows = ["| method | forwards | method (s) | bare loop (s) | ratio | non-model share |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    recorder = Recorder(model).eval()
    for name, run in methods(recorder, x, budget, ppe).items():
        if only and not any(part in name for part in only):
            continue
        recorder.shapes = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run()  # warm-up, and the recording of the forward calls
        shapes = list(recorder.shapes)
        bare = bare_loop(model, shapes, device)
        t_method, t_bare = [], []
        for _ in range(repeats):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_method.append(timed(run, device))
            t_bare.append(timed(bare, device))
        m, b = statistics.median(t_method), statistics.median(t_bare)
        rows.append(f"| {name} | {sum(s[0] for s in shapes)} | {m:.3f} | {b:.3f} | "
                    f"**{m / b:.3f}** | {100 * (m - b) / m:.1f}% |")  # fmt: skip
        print("  " + rows[-1], flush=True)
    return rows


def precision_rows(model: nn.Module, x: torch.Tensor, budget: int, ppe: int, repeats: int,
                   device: torch.device) -> list[str]:  # fmt: skip
    from captum_perturbmask import PerturbMask

    amp = torch.bfloat16
    cl_model = nn.Sequential(*[model]).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run(m: nn.Module, inp: torch.Tensor, autocast: bool) -> Callable[[], object]:
        def go() -> object:
            ctx = torch.autocast(device.type, dtype=amp) if autocast else contextlib.nullcontext()
            with ctx:
                return PerturbMask(m).attribute(inp, target=0, budget=budget,
                                                perturbations_per_eval=ppe, seed=0)  # fmt: skip

        return go

    variants = {
        "float32, contiguous": run(model, x, False),
        f"autocast {str(amp).split('.')[-1]}": run(model, x, True),
        "channels_last": run(cl_model, x_cl, False),
    }
    for go in variants.values():
        go()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, go in variants.items():
            times[k].append(timed(go, device))
    base = statistics.median(times["float32, contiguous"])
    reference = variants["float32, contiguous"]()
    rows = [
        "| PerturbMask variant | seconds | speed-up vs float32 | max abs. difference of the map |",
        "|---|---|---|---|",
    ]
    for k, go in variants.items():
        t = statistics.median(times[k])
        diff = (go().float() - reference.float()).abs().max().item()
        rows.append(f"| {k} | {t:.3f} | {base / t:.2f} | {diff:.2e} |")
        print("  " + rows[-1], flush=True)
    return rows


def proxy_rows(x: torch.Tensor) -> list[str]:
    """CPU proxies of the GPU cost: tensor operations outside the model per forward call and
    operations that would synchronise with a CUDA device, per call, for 16 images."""
    from captum_perturbmask import RISE, PerturbMask
    from captum_perturbmask._core.profiling import OpCounter
    from captum_perturbmask.data import load_default_classifier

    model = load_default_classifier()
    batch = torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    rows = [
        "| method (16 digits, budget 400, perturbations_per_eval 16) | forward calls | "
        "ops outside the model per call | sync ops per call |",
        "|---|---|---|---|",
    ]
    cases = {
        "PerturbMask (6x6)": PerturbMask(model),
        "PerturbMask (32x32)": PerturbMask(model, grid_size=32),
        "PerturbMask (chain)": PerturbMask(model, design="chain"),
        "PerturbMask (sequential)": PerturbMask(model, design="sequential"),
        "RISE": RISE(model),
    }
    for name, method in cases.items():
        method.attribute(batch, target=0, budget=8, seed=0)  # builds the shape's tables
        with OpCounter(model) as c:
            method.attribute(batch, target=0, budget=400, perturbations_per_eval=16, seed=0)
        rows.append(f"| {name} | {c.forward_calls} | {c.outside_per_call:.1f} | {c.syncs} |")
        print("  " + rows[-1], flush=True)
    return rows


PEAK = """
import resource, sys, torch, torchvision
from captum_perturbmask import PerturbMask
torch.set_num_threads(int(sys.argv[3]))
model = torchvision.models.resnet18(weights=None).eval()
x = torch.rand(1, 3, int(sys.argv[2]), int(sys.argv[2]))
PerturbMask(model).attribute(x, target=0, budget=int(sys.argv[1]), perturbations_per_eval=16,
                             seed=0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def memory_rows(size: int, budgets: list[int], threads: int) -> list[str]:
    rows = ["| budget | perturbations_per_eval | peak RSS of the process (MiB) |", "|---|---|---|"]
    for b in budgets:
        out = subprocess.run([sys.executable, "-c", PEAK, str(b), str(size), str(threads)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        rows.append(f"| {b} | 16 | {float(out.stdout.split()[-1]):.0f} |")
        print("  " + rows[-1], flush=True)
    return rows


def main() -> None:
    import torchvision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--ppe", type=int, default=16, help="perturbations_per_eval")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=("ratios", "precision", "memory", "proxies"))  # fmt: skip
    parser.add_argument("--only", nargs="*", default=[],
                        help="ratio rows of methods whose name contains one of these")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.size, args.budget, args.repeats = 112, 100, 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval().to(device)
    x = torch.rand(1, 3, args.size, args.size, device=device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    lines = [
        f"## speed — {device.type} ({name or platform.machine()}), {args.threads} threads, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}",
        "",
        f"`python benchmarks/speed.py {' '.join(sys.argv[1:])}` — ResNet-18 (random weights, "
        f"eval), one {args.size} x {args.size} image, ~{args.budget} forward passes, "
        f"perturbations_per_eval {args.ppe}, medians of {args.repeats} interleaved repeats.",
    ]
    if "ratios" not in args.skip:
        print("method vs the same forwards in a bare loop:", flush=True)
        lines += ["", *ratio_rows(model, x, args.budget, args.ppe, args.repeats, device, args.only)]
    if "precision" not in args.skip:
        print("autocast and channels_last:", flush=True)
        lines += ["", *precision_rows(model, x, args.budget, args.ppe, args.repeats, device)]
    if "proxies" not in args.skip:
        print("CPU proxies (ops outside the model, host syncs):", flush=True)
        lines += ["", *proxy_rows(x)]
    if "memory" not in args.skip and device.type == "cpu":
        print("peak memory:", flush=True)
        lines += ["", *memory_rows(args.size, [args.budget, 10 * args.budget], args.threads)]
    text = "\n".join(lines) + "\n"
    print(text)
    results = HERE / "results" / "speed.md"
    results.parent.mkdir(exist_ok=True)
    with open(results, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
