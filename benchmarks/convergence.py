"""AUC and consistency as functions of the forward budget: PerturbMask vs RISE.

The poster's second figure. For each budget (forward passes per input), both methods explain
the same images of a bed (``beds.py``; default the held-out digits with the shipped classifier)
for several seeds; insertion↑ and deletion↓ (seed 0) and the top-5% run-to-run overlap (all
seeds) are plotted against the budget. PerturbMask runs with its defaults at each ``budget``.

    python benchmarks/convergence.py [--bed digits] [--n-images 30] [--seeds 2]
        [--budgets 50 100 400 2000]

Writes ``benchmarks/results/convergence[-BED].{csv,png,md}`` (no suffix for ``digits``).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import beds as bedlib  # noqa: E402
from _bench import consistency, score_maps  # noqa: E402

from captum_perturbmask import RISE, PerturbMask  # noqa: E402
from captum_perturbmask.metrics import mean_ci  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bed", default="digits", choices=list(bedlib.BEDS))
    ap.add_argument("--n-images", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200, 400, 1000, 2000])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    bed = bedlib.get(args.bed, args.n_images)
    model, x, y = bed.model, bed.inputs, bed.targets
    suffix = "" if args.bed == "digits" else f"-{args.bed}"
    pm, rise = PerturbMask(model), RISE(model)
    methods = {
        "PerturbMask": lambda b, s: pm.attribute(
            x, target=y, budget=b, seed=s, perturbations_per_eval=512
        ),
        "RISE": lambda b, s: rise.attribute(
            x, target=y, budget=b, seed=s, perturbations_per_eval=512
        ),
    }
    rows = []
    for budget in args.budgets:
        for name, fn in methods.items():
            t0 = time.perf_counter()
            maps = [fn(budget, s) for s in range(args.seeds)]
            secs = (time.perf_counter() - t0) / (args.seeds * len(x))
            sc = score_maps(model, x, y, None, maps[0])
            cons = consistency(maps) if args.seeds > 1 else {}
            row = {"method": name, "budget": budget, "seconds_per_input": secs}
            for k, v in {**sc, **cons}.items():
                row[k], row[k + "_ci"], _ = mean_ci(v)
            rows.append(row)
            print(
                f"{name:12s} {budget:5d} ins {row['insertion']:.4f} del {row['deletion']:.4f} "
                f"top5 {row.get('top5', float('nan')):.3f}",
                file=sys.stderr,
                flush=True,
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"convergence{suffix}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, label in zip(
        axes,
        ("insertion", "deletion", "top5"),
        ("insertion AUC ↑", "deletion AUC ↓", "top-5% run-to-run IoU ↑"),
        strict=True,
    ):
        for name in methods:
            rs = [r for r in rows if r["method"] == name and key in r]
            b = [r["budget"] for r in rs]
            m = torch.tensor([r[key] for r in rs])
            h = torch.tensor([r[key + "_ci"] for r in rs])
            ax.plot(b, m, marker="o", label=name)
            ax.fill_between(b, m - h, m + h, alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("forward passes per input")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Convergence on {len(x)} images of {args.bed} ({args.seeds} seeds)")
    fig.tight_layout()
    fig.savefig(out / f"convergence{suffix}.png", dpi=90)
    lines = [
        f"`python benchmarks/convergence.py {' '.join(sys.argv[1:])}` "
        f"({torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')})",
        "",
        "| method | budget | insertion ↑ | deletion ↓ | top-5% IoU ↑ | Spearman ↑ | s/input |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['budget']} | {r['insertion']:.4f} | {r['deletion']:.4f} | "
            f"{r.get('top5', float('nan')):.3f} | {r.get('spearman', float('nan')):.3f} | "
            f"{r['seconds_per_input']:.3f} |"
        )
    (out / f"convergence{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
