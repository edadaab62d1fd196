"""Ablation of PerturbMask's readings and knobs at a fixed budget (400 forward passes).

Literal reading vs the default (random masks); the earlier default (2-step chains, 8 x 8 grid,
eta 3); the sequential design; estimator (regression, average, clipped logit); chains x
iterations; n1, n2; eta; grid size; initial mask; random shifts. Same held-out digits and
shipped classifier for every row.

    python benchmarks/ablation.py [--n-images 40] [--seeds 2]

Writes ``benchmarks/results/ablation.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _bench import consistency, fmt, score_maps  # noqa: E402

from captum_perturbmask import RISE, PerturbMask  # noqa: E402
from captum_perturbmask.attr.estimators import RegressionEstimator  # noqa: E402
from captum_perturbmask.data import load_default_classifier, make_digits_clutter  # noqa: E402

CONFIGS: dict[str, dict] = {
    "default (400 random masks, grid 6, regression, eta 10)": {},
    "earlier default (2 x 200 chains, grid 8, eta 3)": dict(
        design="chain", n_iter=2, n_chains=200, grid_size=8, eta=3.0
    ),
    "sequential design (design='sequential')": dict(design="sequential"),
    "literal reading (25 x 16, n1 0.3, n2 0.7, eta 0.05)": dict(
        variant="literal", n_iter=25, n_chains=16, n1=0.3, n2=0.7
    ),
    "estimator: average sum(p m) / sum(m)": dict(estimator="average"),
    "estimator: regression on clipped logit (|y| <= 9.21)": dict(
        estimator=RegressionEstimator(eta=10.0, max_log_odds=9.21)
    ),
    "chain step (2 x 200, on/off chains)": dict(n_iter=2, n_chains=200),
    "chains x iterations 4 x 100": dict(n_iter=4, n_chains=100),
    "chains x iterations 8 x 50": dict(n_iter=8, n_chains=50),
    "chains x iterations 25 x 16": dict(n_iter=25, n_chains=16),
    "n1 = 0.3, n2 = 0.7": dict(n1=0.3, n2=0.7),
    "eta 1": dict(estimator=RegressionEstimator(eta=1.0)),
    "eta 3": dict(estimator=RegressionEstimator(eta=3.0)),
    "grid 8 x 8": dict(grid_size=8),
    "grid 10 x 10": dict(grid_size=10),
    "keep_prob 0.5": dict(keep_prob=0.5),
    "initial mask ones": dict(initial_mask="ones"),
    "no random shift": dict(random_shift=False),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-images", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ablation.md"))
    args = ap.parse_args()
    data = make_digits_clutter("test", n=args.n_images, seed=0)
    model = load_default_classifier()
    x, y, boxes = data.images, data.labels, data.boxes
    area = float(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).mean())
    q = 1 - area / x[0, 0].numel()
    pm = PerturbMask(model)
    runs = {
        name: (lambda s, kw=kw: pm.attribute(x, target=y, seed=s, perturbations_per_eval=512, **kw))
        for name, kw in CONFIGS.items()
    }
    rise = RISE(model)
    runs["RISE (400), reference"] = lambda s: rise.attribute(
        x, target=y, n_masks=400, seed=s, perturbations_per_eval=512
    )
    lines = [
        f"`python benchmarks/ablation.py {' '.join(sys.argv[1:])}` — {len(x)} held-out digits, "
        f"{args.seeds} seeds, 400 forward passes per input ({torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')})",
        "",
        "| configuration | insertion ↑ | deletion ↓ | IoU ↑ | pointing ↑ | Spearman ↑ | "
        "top-5% IoU ↑ | s/input |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, fn in runs.items():
        t0 = time.perf_counter()
        maps = [fn(s) for s in range(args.seeds)]
        secs = (time.perf_counter() - t0) / (args.seeds * len(x))
        sc = score_maps(model, x, y, boxes, maps[0], box_quantile=q)
        cons = consistency(maps)
        lines.append(
            f"| {name} | {fmt(sc['insertion'])} | {fmt(sc['deletion'])} | {fmt(sc['iou'])} | "
            f"{fmt(sc['pointing'], 2)} | {fmt(cons['spearman'])} | {fmt(cons['top5'])} | "
            f"{secs:.3f} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
