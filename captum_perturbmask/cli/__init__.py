"""Command line interface: ``captum-perturbmask`` (also ``python -m captum_perturbmask``).

Three commands, each a thin layer over the library:

``demo`` (``captum_perturbmask.cli.demo``)
    Explains held-out images of the shipped digits-in-clutter set with the shipped classifier
    (PerturbMask, RISE, Grad-CAM, LIME and Occlusion through
    :func:`~captum_perturbmask.evaluation.compare`) and writes ``maps.png``, ``metrics.md``,
    ``metrics.csv``, ``convergence.png``, ``convergence.csv`` and ``variations.png``. Offline.
    With ``--data gunpoint`` (``captum_perturbmask.cli.series_demo``) it explains held-out
    GunPoint series and planted-motif series instead and writes ``series_maps.png``,
    ``planted_maps.png``, ``metrics.md``, ``metrics.csv`` and ``variations.png``.

``explain`` (``captum_perturbmask.cli.explain``)
    Explains images (a file, folders, glob patterns; batched) with any model
    :func:`~captum_perturbmask.loaders.load_model` loads and any registered method, and writes
    ``saliency.png`` and ``saliency.pt`` for one image file, or a figure and a map per image
    with ``index.html`` and ``index.json`` (the layout is in the module's docstring); every map
    is in its image's own pixel coordinates.

``evaluate`` (``captum_perturbmask.cli.evaluate``)
    Scores saliency methods over a whole dataset (the shipped digits, a folder of images or an
    ``.npz`` file) with :func:`~captum_perturbmask.evaluation.evaluate`; resumable, and sharded
    over processes when launched with ``torchrun``.

Errors a user can cause (bad arguments, missing or corrupt files, unfitting weights, an
unwritable ``--out``) end in one line ``captum-perturbmask: error: ...`` on stderr and exit
status 2. Every output file is written whole or not at all (a temporary file in the same
folder, then :func:`os.replace`).

Each command module (``demo``, ``explain``, ``evaluate``) defines its subcommand,
``add_parser(subparsers, parents)``, and runs it, ``run(args)``; the options several commands
share, the argument types and the output-file helpers are in ``captum_perturbmask.cli._common``.
Building the parser imports neither torch nor matplotlib, so ``--help`` and ``--version``
answer at once; a command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from captum_perturbmask._version import __version__
from captum_perturbmask.cli._common import PROG, CLIError, Parser, parents

__all__ = ["CLIError", "build_parser", "main"]

#: The commands, each a module of this package with ``add_parser`` and ``run``.
COMMANDS = ("demo", "explain", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    """The ``captum-perturbmask`` argument parser (imports nothing heavy)."""
    parser = Parser(
        prog=PROG,
        description="Perturbation-mask saliency (Thakur & Fischmeister) with Captum: a "
        "reproducible offline demo, an explainer of images with any model and a dataset-scale "
        "evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for name in COMMANDS:
        importlib.import_module(f"captum_perturbmask.cli.{name}").add_parser(sub, parents)
    return parser


def _command_module(args: argparse.Namespace) -> str:
    """The module of this package that runs the parsed command (``demo --data gunpoint``: the
    time-series demo, ``series_demo``).

    Example:
        >>> _command_module(build_parser().parse_args(["demo", "--data", "gunpoint", "--out", "x"]))
        'series_demo'
    """
    if args.command == "demo" and args.data == "gunpoint":
        return "series_demo"
    return args.command


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 usage or input error, 130 interrupted).

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status.

    Example:
        >>> main(["--version"])
        captum-perturbmask ...
        0
        >>> main(["demo", "--out", "x", "--seed", "-1"])  # one line on stderr
        2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    import torch

    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        command = importlib.import_module(f"captum_perturbmask.cli.{_command_module(args)}")
        return int(command.run(args))
    except CLIError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except (MemoryError, torch.cuda.OutOfMemoryError):
        print(
            f"{PROG}: error: out of memory; try a smaller --size or --batch-size", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(threads)
