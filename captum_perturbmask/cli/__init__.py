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
    Explains one PNG/JPEG image with a torchvision classifier and writes ``saliency.png`` and
    ``saliency.pt`` (the map in the image's own pixel coordinates).

``evaluate`` (``captum_perturbmask.cli.evaluate``)
    Scores saliency methods over a whole dataset (the shipped digits, a folder of images or an
    ``.npz`` file) with :func:`~captum_perturbmask.evaluation.evaluate`; resumable, and sharded
    over processes when launched with ``torchrun``.

Errors a user can cause (bad arguments, missing or corrupt files, unfitting weights, an
unwritable ``--out``) end in one line ``captum-perturbmask: error: ...`` on stderr and exit
status 2. Every output file is written whole or not at all (a temporary file in the same
folder, then :func:`os.replace`).

Building the parser imports neither torch nor matplotlib, so ``--help`` and ``--version``
answer at once; a command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import codecs
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NoReturn

from captum_perturbmask._version import __version__

__all__ = ["CLIError", "build_parser", "main"]

PROG = "captum-perturbmask"
#: Largest ``--seed``: every seed a command derives from it stays a valid torch seed.
MAX_SEED = 2**63 - 1
#: ``--size`` range of ``explain``, in pixels (also the cap on the resized longer side).
MIN_SIZE, MAX_SIZE = 8, 4096
#: Largest ``--num-classes`` (a larger head is a typo, and gigabytes of weights).
MAX_CLASSES = 100_000
#: Largest ``demo --n-images``: the held-out split of the digits (one image per digit).
MAX_DEMO_IMAGES = 540
#: Largest ``demo --data gunpoint --n-images``: the GunPoint test split.
MAX_SERIES = 150
#: Largest ``demo --seeds`` and number of ``--convergence-budgets``.
MAX_SEEDS = 100
MAX_BUDGETS = 12
#: Largest ``--batch-size`` and ``--threads``.
MAX_BATCH = 4096
MAX_THREADS = 1024


class CLIError(Exception):
    """An expected failure: reported as one ``error:`` line, exit status 2."""


def say(message: str) -> None:
    """A progress or warning line on stderr."""
    print(message, file=sys.stderr, flush=True)


def first_sentence(err: BaseException, limit: int = 120) -> str:
    """The first sentence of an exception message, for one-line error reports."""
    text = str(err).strip()
    text = text.splitlines()[0] if text else type(err).__name__
    text = text.split(". ")[0].rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------
# Argument types (plain Python: parsing imports nothing heavy)
# ------------------------------------------------------------------------------------------
def int_range(minimum: int, maximum: int | Callable[[], int] | None = None) -> Callable[[str], int]:
    """An argparse type for integers in ``[minimum, maximum]``.

    ``maximum`` may be a function, called when a value is parsed (so that a bound defined in a
    module that imports torch costs nothing for ``--help``).

    Example:
        >>> parse = int_range(2, 10)
        >>> parse("7")
        7
        >>> parse("11")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: expected an integer from 2 to 10, got '11'
    """

    def parse(text: str) -> int:
        high = maximum() if callable(maximum) else maximum
        try:
            value: int | None = int(text, 10)
        except ValueError:
            value = None
        if value is None or value < minimum or (high is not None and value > high):
            expected = f"from {minimum} to {high:,}" if high is not None else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"expected an integer {expected}, got {text!r}")
        return value

    return parse


def _max_budget() -> int:
    from captum_perturbmask._core.checks import MAX_BUDGET

    return MAX_BUDGET


budget_type = int_range(1, _max_budget)
seed_type = int_range(0, MAX_SEED)


def budget_list(text: str) -> tuple[int, ...]:
    """Comma-separated forward budgets, each in ``[1, MAX_BUDGET]``; sorted, unique."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or len(parts) > MAX_BUDGETS:
        raise argparse.ArgumentTypeError(
            f"expected 1 to {MAX_BUDGETS} comma-separated budgets such as 50,100,200, got {text!r}"
        )
    return tuple(sorted({budget_type(p) for p in parts}))


def out_dir(text: str) -> str:
    """An output folder path (not empty)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    return text


def file_path(text: str) -> str:
    """An input file path (not empty)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    return text


# ------------------------------------------------------------------------------------------
# Output files
# ------------------------------------------------------------------------------------------
def prepare_out(path: str) -> Path:
    """Create the output folder (and parents) and check that files can be written there."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {path} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}-{os.urandom(4).hex()}"
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as err:
        raise CLIError(f"cannot write to --out {path}: {err.strerror or err}") from None
    return out


Content = bytes | str | Callable[[str], None]


class Stages:
    """A command's numbered progress lines on stderr, with the seconds since it began.

    Example:
        >>> stages = Stages(4)
        >>> stages.elapsed() >= 0
        True
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the command began."""
        return time.perf_counter() - self.t0

    def __call__(self, i: int, text: str) -> None:
        say(f"[{i}/{self.total} {self.elapsed():5.0f} s] {text}")


def start_outputs(path: str, names: Iterable[str], stages: int) -> tuple[Path, Stages]:
    """Prepare ``--out``, refuse output names a folder is in the way of, and start the clock."""
    out = prepare_out(path)
    check_targets(out / name for name in names)
    return out, Stages(stages)


def check_targets(paths: Iterable[Path]) -> None:
    """Refuse output paths that a folder is in the way of (checked before the work starts)."""
    for target in paths:
        if target.is_dir():
            raise CLIError(f"cannot write {target}: a directory of that name is in the way")


def write_files(files: Mapping[Path, Content]) -> None:
    """Write a set of output files whole or not at all.

    Every file is first written to a temporary file in the same folder (``bytes``, ``str`` as
    UTF-8, or a function that writes the path it is given), and only when all are written are
    they moved into place with :func:`os.replace`; on failure the temporary files are removed
    and one :class:`CLIError` names the file.
    """
    check_targets(files)
    staged: list[tuple[Path, Path]] = []
    try:
        for target, content in files.items():
            tmp = target.with_name(f".{target.name}.{os.getpid()}-{os.urandom(4).hex()}.part")
            staged.append((tmp, target))
            try:
                if isinstance(content, bytes):
                    with open(tmp, "xb") as fh:
                        fh.write(content)
                elif isinstance(content, str):
                    with open(tmp, "x", encoding="utf-8", newline="") as fh:
                        fh.write(content)
                else:
                    content(str(tmp))
            except OSError as err:
                raise CLIError(f"cannot write {target}: {err.strerror or err}") from None
        for tmp, target in staged:
            try:
                os.replace(tmp, target)
            except OSError as err:
                raise CLIError(f"cannot write {target}: {err.strerror or err}") from None
    finally:
        for tmp, _ in staged:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


def text_kind(head: bytes) -> str | None:
    """``"JSON"`` or ``"text"`` when ``head`` (the first bytes of a file) decodes as UTF-8."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    return "JSON" if text.lstrip()[:1] in ("{", "[") else "text"


# ------------------------------------------------------------------------------------------
# Parser and entry point
# ------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, as every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``captum-perturbmask`` argument parser (imports nothing heavy)."""
    parser = _Parser(
        prog=PROG,
        description="Perturbation-mask saliency (Thakur & Fischmeister) with Captum: a "
        "reproducible offline demo, a one-image explainer and a dataset-scale evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    demo = sub.add_parser(
        "demo",
        help="compare saliency methods on the shipped digits-in-clutter data or on time "
        "series (offline)",
        description="Explain held-out digits-in-clutter images with PerturbMask, RISE, "
        "Grad-CAM, LIME and Occlusion; write maps.png, metrics.md/.csv, convergence.png/.csv "
        "and variations.png into --out. With --data gunpoint, explain held-out GunPoint series "
        "and planted-motif series with PerturbMask, RISE, Occlusion, FeatureAblation, LIME "
        "and Integrated Gradients; write series_maps.png, planted_maps.png, metrics.md/.csv "
        "and variations.png.",
    )
    demo.add_argument(
        "--out", type=out_dir, required=True, metavar="DIR", help="output folder (created)"
    )
    demo.add_argument(
        "--data",
        choices=("digits", "gunpoint"),
        default="digits",
        help="digits-in-clutter images (default) or GunPoint and planted-motif time series "
        "(needs the timeseries extra: aeon)",
    )
    demo.add_argument(
        "--n-images",
        type=int_range(1, MAX_DEMO_IMAGES),
        default=None,
        metavar="N",
        help=f"images (series per bed) to explain, at most {MAX_DEMO_IMAGES} ({MAX_SERIES} for "
        "--data gunpoint; default 8; 2 with --quick)",
    )
    demo.add_argument(
        "--budget",
        type=budget_type,
        default=None,
        metavar="B",
        help="forward passes per image and method (default 400; 50 with --quick)",
    )
    demo.add_argument("--seed", type=seed_type, default=0, help="first seed (default 0)")
    demo.add_argument(
        "--seeds",
        type=int_range(1, MAX_SEEDS),
        default=None,
        metavar="K",
        help="runs per stochastic method for consistency (default 3; 2 with --quick)",
    )
    demo.add_argument(
        "--convergence-budgets",
        type=budget_list,
        default=None,
        metavar="LIST",
        help="comma-separated budgets of the convergence figure (default "
        "50,100,200,400,800; 16,50 with --quick; --data digits only)",
    )
    demo.add_argument(
        "--threads",
        type=int_range(1, MAX_THREADS),
        default=1,
        help="torch CPU threads (default 1: fastest for these small models on a busy machine)",
    )
    demo.add_argument(
        "--quick", action="store_true", help="a small, fast run (2 images, budget 50, 2 seeds)"
    )
    demo.set_defaults(command="demo")

    explain = sub.add_parser(
        "explain",
        help="explain one image with a torchvision classifier",
        description="Explain a PNG/JPEG image with a torchvision classification model; write "
        "saliency.png (overlay) and saliency.pt (the (H, W) map, in the image's pixels) into "
        "--out. The image is resized with its aspect ratio kept, never cropped.",
    )
    explain.add_argument("image", type=file_path, metavar="IMAGE", help="PNG or JPEG file")
    explain.add_argument(
        "--model",
        default="resnet50",
        help="torchvision classification model name (default resnet50)",
    )
    explain.add_argument(
        "--weights",
        type=file_path,
        default=None,
        metavar="FILE",
        help="state-dict file (torch.save(model.state_dict())), or DEFAULT to "
        "let torchvision download its default weights; random init if left "
        "out",
    )
    explain.add_argument(
        "--num-classes",
        type=int_range(2, MAX_CLASSES),
        default=None,
        metavar="K",
        help="classes of the model's head, for --weights of another head (default 1000)",
    )
    explain.add_argument(
        "--target",
        type=int,
        default=None,
        metavar="K",
        help="class to explain (default: the predicted class)",
    )
    explain.add_argument("--method", choices=("perturbmask", "rise"), default="perturbmask")
    explain.add_argument(
        "--budget", type=budget_type, default=400, help="forward passes (default 400)"
    )
    explain.add_argument(
        "--size",
        type=int_range(MIN_SIZE, MAX_SIZE),
        default=224,
        help="shorter image side in pixels after resizing, aspect ratio kept (default 224; "
        f"the longer side is capped at {MAX_SIZE})",
    )
    explain.add_argument(
        "--pad",
        action="store_true",
        help="fit the whole image into a --size x --size square, padded with the "
        "normalisation mean (for models with a fixed square input, e.g. vit_b_16)",
    )
    explain.add_argument("--seed", type=seed_type, default=0, help="seed (default 0)")
    explain.add_argument(
        "--batch-size",
        type=int_range(1, MAX_BATCH),
        default=32,
        help="perturbed images per forward batch (default 32)",
    )
    explain.add_argument(
        "--threads",
        type=int_range(1, MAX_THREADS),
        default=None,
        help="torch CPU threads (default: torch's)",
    )
    explain.add_argument(
        "--out", type=out_dir, required=True, metavar="DIR", help="output folder (created)"
    )
    explain.set_defaults(command="explain")

    evaluate = sub.add_parser(
        "evaluate",
        help="score saliency methods over a dataset (one process, or many with torchrun)",
        description="Explain every example of a dataset with every method, score the maps "
        "(insertion, deletion, IoU and pointing when boxes are known, forward passes, seconds, "
        "consistency over seeds) and write records-rank*.jsonl, summary.md, summary.csv and "
        "curves.png into --out. Resumable (--resume); under `torchrun --nproc_per_node N -m "
        "captum_perturbmask evaluate ...` every rank takes a shard and rank 0 writes the summary.",
    )
    evaluate.add_argument(
        "--data",
        required=True,
        metavar="DATA",
        help="'digits' (the shipped held-out digits-in-clutter images, with boxes), a folder of "
        "class subfolders of images (torchvision ImageFolder), or an .npz file with 'inputs' "
        "(N, C, H, W) or (N, C, T), optional 'targets' (N,) and 'boxes' (N, 4) or spans (N, 2)",
    )
    evaluate.add_argument(
        "--model",
        default=None,
        help="'digits' (the shipped classifier, the default for --data digits) or a "
        "torchvision classification model name",
    )
    evaluate.add_argument(
        "--weights",
        type=file_path,
        default=None,
        metavar="FILE",
        help="state-dict file of a torchvision --model (random init if left out)",
    )
    evaluate.add_argument(
        "--num-classes",
        type=int_range(2, MAX_CLASSES),
        default=None,
        metavar="K",
        help="classes of a torchvision model's head (default 1000)",
    )
    evaluate.add_argument(
        "--methods",
        nargs="+",
        type=str.lower,
        default=None,
        metavar="METHOD",
        help="registered methods to run, in any case (default: the default set of the data, "
        "e.g. perturbmask rise gradcam lime occlusion for images; a name that is not "
        "registered lists those that are)",
    )
    evaluate.add_argument(
        "--metrics",
        nargs="+",
        type=str.lower,
        default=None,
        metavar="METRIC",
        help="registered metrics to score (default: the default set, insertion deletion and, "
        "where the data has boxes, iou pointing; road adds ROAD's MoRF and LeRF, slower; a "
        "name that is not registered lists those that are)",
    )
    evaluate.add_argument(
        "--reference",
        default="default",
        metavar="REF",
        help="what removed pixels become in insertion and deletion: 'default' (insertion from "
        "a blur of images, zeros for series; deletion to zeros), 'mean' (the mean input of the "
        "evaluated examples) or a number (default: default)",
    )
    evaluate.add_argument(
        "--budget", type=budget_type, default=400, help="forward passes per example (default 400)"
    )
    evaluate.add_argument(
        "--n-examples", type=int_range(1, 10**9), default=None, metavar="N",
        help="evaluate the first N examples (default all)",
    )  # fmt: skip
    evaluate.add_argument(
        "--seeds",
        type=int_range(1, MAX_SEEDS),
        default=1,
        metavar="K",
        help="runs per stochastic method (2 or more give consistency; default 1)",
    )
    evaluate.add_argument("--seed", type=seed_type, default=0, help="first seed (default 0)")
    evaluate.add_argument(
        "--batch-size",
        type=int_range(1, MAX_BATCH),
        default=16,
        help="examples explained together (default 16)",
    )
    evaluate.add_argument(
        "--size",
        type=int_range(MIN_SIZE, MAX_SIZE),
        default=224,
        help="image side for a folder of images: resized, then centre-cropped (default 224)",
    )
    evaluate.add_argument(
        "--box-threshold",
        type=float,
        default=0.5,
        metavar="Q",
        help="saliency quantile whose box (span) is scored against the data's boxes: 0.9 keeps "
        "the top 10%% (default 0.5)",
    )
    evaluate.add_argument(
        "--predicted",
        action="store_true",
        help="explain the model's predicted class instead of the dataset's label",
    )
    evaluate.add_argument(
        "--resume", action="store_true", help="continue the records already in --out"
    )
    evaluate.add_argument(
        "--skip-errors",
        action="store_true",
        help="record a failing example or method and go on (default: stop)",
    )
    evaluate.add_argument(
        "--device", default=None, help="torch device (default: the model's; cuda:LOCAL_RANK "
        "under torchrun with CUDA)",
    )  # fmt: skip
    evaluate.add_argument(
        "--threads",
        type=int_range(1, MAX_THREADS),
        default=None,
        help="torch CPU threads per process (default: torch's)",
    )
    evaluate.add_argument(
        "--out", type=out_dir, required=True, metavar="DIR", help="output folder (created)"
    )
    evaluate.set_defaults(command="evaluate")
    return parser


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
        command = importlib.import_module(f"captum_perturbmask.cli.{args.command}")
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
