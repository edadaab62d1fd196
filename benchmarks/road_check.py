"""ROAD cross-check: the package's ROAD against pytorch-grad-cam's on the same maps.

Both remove the same share of pixels (most relevant first, MoRF, and least relevant first,
LeRF), fill them by noisy linear imputation and score the softmax of the target. With the noise
set to 0 the two solve the same linear system, so their scores must agree to the solvers'
tolerance; with the paper's noise (0.01) they differ only by the random draws.

Usage::

    pip install grad-cam  # optional; the script says so and exits when it is missing
    python benchmarks/road_check.py [--n 16]

Results are printed and written to ``benchmarks/results/road_check.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.2, 0.5, 0.8])
    args = parser.parse_args(argv)
    try:
        from pytorch_grad_cam.metrics.perturbation_confidence import (
            PerturbationConfidenceMetric,
            RemoveLeastRelevantFirst,
            RemoveMostRelevantFirst,
        )
        from pytorch_grad_cam.metrics.road import NoisyLinearImputer
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    except ImportError:
        print("pytorch-grad-cam is not installed (pip install grad-cam); nothing to compare")
        return 0

    from captum_perturbmask import PerturbMask
    from captum_perturbmask.data import load_default_classifier, make_digits_clutter
    from captum_perturbmask.metrics import road

    torch.set_num_threads(1)
    model = load_default_classifier()
    data = make_digits_clutter("test", n=args.n, seed=0)
    x, y = data.images, data.labels
    attr = PerturbMask(model).attribute(x, target=y, seed=0)
    cams = attr.sum(1)
    cams = (cams - cams.amin((1, 2), keepdim=True)) / (
        cams.amax((1, 2), keepdim=True) - cams.amin((1, 2), keepdim=True)
    )
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in y]
    rows = []
    for noise in (0.0, 0.01):
        for f in args.fractions:
            ours = road(model, x, attr, target=y, fractions=[f], noise=noise,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
            for order, removal in (("MoRF", RemoveMostRelevantFirst),
                                   ("LeRF", RemoveLeastRelevantFirst)):  # fmt: skip
                metric = PerturbationConfidenceMetric(
                    removal(100 * (1 - f), NoisyLinearImputer(noise=noise))
                )
                torch.manual_seed(0)
                theirs = metric(x, cams.numpy(), targets, model, return_diff=False)
                mine = (ours.morf if order == "MoRF" else ours.lerf).numpy()
                diff = np.abs(mine - theirs)
                corr = float(np.corrcoef(mine, theirs)[0, 1]) if np.std(theirs) > 0 else 1.0
                rows.append((noise, f, order, float(mine.mean()), float(theirs.mean()),
                             float(diff.max()), corr))  # fmt: skip
    lines = [
        "# ROAD: the package against pytorch-grad-cam",
        "",
        f"`python benchmarks/road_check.py --n {args.n}` — {args.n} held-out digits, the "
        "shipped CNN, PerturbMask maps, softmax of the true class after removing and imputing.",
        "",
        "| noise | removed | order | ours (mean) | pytorch-grad-cam (mean) | max abs diff "
        "| Pearson r |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {n:g} | {f:.0%} | {o} | {a:.4f} | {b:.4f} | {d:.2e} | {r:.4f} |"
        for n, f, o, a, b, d, r in rows
    ]
    text = "\n".join(lines)
    print(text)
    (HERE / "results" / "road_check.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
