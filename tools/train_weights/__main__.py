"""``python -m tools.train_weights``: train the shipped weight files, or check that the recipes
still reproduce them (``--check``); see README.md in this folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from tools.train_weights.check import check
from tools.train_weights.recipes import GROUPS, RECIPES, Options, select, train
from tools.train_weights.settings import cpu_capability, log_line

PROG = "python -m tools.train_weights"


def build_parser() -> argparse.ArgumentParser:
    """The command line of the training recipes."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train the weight files shipped in captum_perturbmask/data/weights/, or "
        "check that the recipes still reproduce them bit for bit (--check).",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=(*RECIPES, *GROUPS),
        metavar="RECIPE",
        help=f"recipe to run, repeatable: {', '.join(RECIPES)}; 'series' = series-gunpoint + "
        "series-planted (default: all)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder for the *.pt files and training_log.json (training)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="retrain and compare with the shipped files (torch.equal per tensor); writes "
        "nothing; exit status 1 when a file differs",
    )
    parser.add_argument(
        "--against", type=Path, default=None, metavar="DIR",
        help="with --check: a folder of *.pt files to compare with instead of the package's",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="digits classifier epochs")
    parser.add_argument("--gan-steps", type=int, default=None)
    parser.add_argument("--series-epochs", type=int, default=None, help="series classifiers")
    parser.add_argument("--series-generator-steps", type=int, default=None)
    parser.add_argument(
        "--inpainter-steps", type=int, default=None, help="digits and series inpainters"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads for every recipe (default: "
        "each recipe's own, those the shipped files were trained with)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train or check; returns the exit status.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        0, or 1 when ``--check`` finds a file that differs.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    recipes = select(args.only)
    opts = Options(
        seed=args.seed,
        epochs=args.epochs,
        gan_steps=args.gan_steps,
        series_epochs=args.series_epochs,
        series_generator_steps=args.series_generator_steps,
        inpainter_steps=args.inpainter_steps,
        out=args.out,
    )
    if args.check:
        return 0 if check(recipes, opts, against=args.against, threads=args.threads) else 1
    if args.out is None:
        parser.error("--out is needed to train (or pass --check)")
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "training_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    command = " ".join([PROG, *(sys.argv[1:] if argv is None else argv)])
    for recipe in recipes:
        threads = args.threads or recipe.threads
        result = train(recipe, opts, threads=threads)
        for name, state in result.states.items():
            torch.save(state, args.out / f"{name}.pt")
        common = {
            "seed": args.seed,
            "command": command,
            "torch_version": torch.__version__,
            "cpu_capability": cpu_capability(),
            "threads": threads,
        }
        for key, entry in result.log.items():
            log[key] = {**entry, **common}
            log_line(f"[{recipe.name}] {key}: {entry}")
        # after every recipe, so that a later one can read this run's classifier and an
        # interrupted run keeps the log of what it wrote
        log_path.write_text(json.dumps(log, indent=2, sort_keys=True) + "\n")
    log_line(f"wrote {log_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
