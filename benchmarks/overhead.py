"""Overhead of PerturbMask's mask loop over the model's own forward passes.

Times ``PerturbMask.attribute`` against a bare loop of the same number of forward passes with
the same batch shapes (torchvision ResNet-18 architecture, random weights, eval mode), side by
side in one run, alternating the two to share machine noise, and prints the ratio
(goal <= 1.05). Runs on CPU, and on CUDA when present.

    python benchmarks/overhead.py [--repeats 5] [--sizes 224 112]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from captum_perturbmask import PerturbMask


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(device: torch.device, size: int, batch: int, n_iter: int, n_chains: int, repeats: int):
    model = torchvision.models.resnet18(weights=None).to(device).eval()
    x = torch.rand(batch, 3, size, size, device=device)
    rows = batch * n_chains
    ppe = rows  # one forward of all chains per iteration
    pm = PerturbMask(model)

    def run_attr() -> None:
        pm.attribute(
            x, target=3, n_iter=n_iter, n_chains=n_chains, perturbations_per_eval=ppe, seed=0
        )

    rows_in = torch.rand(rows, 3, size, size, device=device)  # made once, outside the timing

    def run_bare() -> None:
        with torch.no_grad():
            model(x)  # PerturbMask's clean pass (target check, p_0)
            for _ in range(n_iter):
                torch.softmax(model(rows_in), 1)[:, 3]

    run_attr(), run_bare()  # warm-up
    t_attr, t_bare = [], []
    for _ in range(repeats):
        for fn, acc in ((run_bare, t_bare), (run_attr, t_attr)):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            acc.append(time.perf_counter() - t0)
    a, b = statistics.median(t_attr), statistics.median(t_bare)
    return a, b, a / b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 112])
    ap.add_argument("--n-iter", type=int, default=8)
    ap.add_argument("--n-chains", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| device | size | batch x chains | iterations | attribute (s) | bare loop (s) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for device in devices:
        for size in args.sizes:
            a, b, r = bench(device, size, args.batch, args.n_iter, args.n_chains, args.repeats)
            print(
                f"| {device.type} | {size}x{size} | {args.batch} x {args.n_chains} | "
                f"{args.n_iter} | {a:.3f} | {b:.3f} | {r:.3f} |"
            )


if __name__ == "__main__":
    main()
