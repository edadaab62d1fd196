"""What the commands share: one-line errors, argument types, the options several commands take
(defined once, handed out as argparse parent parsers), whole-or-nothing output files, progress
lines.

Nothing here imports torch at import time: building the parser (``--help``, ``--version``)
stays cheap; an argument type that needs torch (``--device``) imports it when it is given.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from captum_perturbmask._core.errors import LoadError
from captum_perturbmask._core.errors import one_line as first_sentence

__all__ = [
    "MAX_BATCH",
    "MAX_BUDGETS",
    "MAX_CLASSES",
    "MAX_DEMO_IMAGES",
    "MAX_SEED",
    "MAX_SEEDS",
    "MAX_SERIES",
    "MAX_SIZE",
    "MAX_THREADS",
    "MIN_SIZE",
    "PROG",
    "CLIError",
    "LOADER_FLAGS",
    "Parser",
    "StagedFolder",
    "SHARED_OPTIONS",
    "Stages",
    "announced_seed",
    "budget_list",
    "budget_type",
    "check_targets",
    "device_type",
    "file_path",
    "first_sentence",
    "fit_class_names",
    "int_range",
    "load_cli_model",
    "loader_errors",
    "normalize_type",
    "out_dir",
    "parents",
    "prepare_out",
    "say",
    "seed_type",
    "start_outputs",
    "write_files",
]

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


def normalize_type(text: str) -> str | tuple[tuple[float, ...], tuple[float, ...]]:
    """``--normalize``: ``auto``, ``imagenet``, ``none`` or ``MEAN,MEAN,MEAN/STD,STD,STD``.

    Example:
        >>> normalize_type("0.5,0.5,0.5/0.25,0.25,0.25")
        ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    """
    import math

    choice = text.strip().lower()
    if choice in ("auto", "imagenet", "none"):
        return choice
    try:
        mean_text, std_text = text.split("/")
        mean = tuple(float(v) for v in mean_text.split(","))
        std = tuple(float(v) for v in std_text.split(","))
    except ValueError:
        mean = std = ()
    finite = all(math.isfinite(v) for v in (*mean, *std))
    if not mean or len(mean) != len(std) or not finite or min(std) <= 0:
        raise argparse.ArgumentTypeError(
            "expected auto, imagenet, none or MEAN,MEAN,MEAN/STD,STD,STD (as many means as "
            f"positive stds), got {text!r}"
        )
    return mean, std


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


def _write(tmp: Path, content: Content, target: Path) -> None:
    """Write ``content`` to the new file ``tmp`` (``target`` names it in the error)."""
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


def _replace(tmp: Path, target: Path) -> None:
    try:
        os.replace(tmp, target)
    except OSError as err:
        raise CLIError(f"cannot write {target}: {err.strerror or err}") from None


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
            _write(tmp, content, target)
        for tmp, target in staged:
            _replace(tmp, target)
    finally:
        for tmp, _ in staged:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


class StagedFolder:
    """Many output files, some in subfolders, that appear in ``--out`` together or not at all.

    :meth:`add` writes each file into a hidden staging folder inside ``out`` (so memory does
    not grow with their number); :meth:`commit` moves them all into place with
    :func:`os.replace` and removes the staging folder; leaving the ``with`` block without a
    commit (an error) removes the staging folder, and ``out`` itself when this command
    created it and it is empty.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp())
        >>> with StagedFolder(out) as staged:
        ...     staged.add("maps/a.txt", "a")
        ...     staged.add("index.html", "<p>")
        ...     _ = staged.commit()
        >>> sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
        ['index.html', 'maps', 'maps/a.txt']
    """

    def __init__(self, out: Path, created: bool = False) -> None:
        self.out = out
        self.created = created
        self.stage = out / f".staging-{os.getpid()}-{os.urandom(4).hex()}.part"
        self.names: list[str] = []

    def __enter__(self) -> StagedFolder:
        try:
            self.stage.mkdir()
        except OSError as err:
            raise CLIError(f"cannot write to --out {self.out}: {err.strerror or err}") from None
        return self

    def add(self, name: str, content: Content) -> None:
        """Write the file ``out/name`` (a relative path with ``/``) into the staging folder."""
        tmp = self.stage / name
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CLIError(f"cannot write {self.out / name}: {err.strerror or err}") from None
        _write(tmp, content, self.out / name)
        self.names.append(name)

    def commit(self) -> list[Path]:
        """Move every file into place; returns their paths."""
        targets = [self.out / name for name in self.names]
        check_targets(targets)
        for name, target in zip(self.names, targets, strict=True):
            if target.parent != self.out:
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise CLIError(f"cannot write {target}: {err.strerror or err}") from None
            _replace(self.stage / name, target)
        self.names = []
        return targets

    def __exit__(self, *exc: object) -> None:
        import shutil

        shutil.rmtree(self.stage, ignore_errors=True)
        if exc[0] is not None and self.created:
            try:
                self.out.rmdir()  # only when empty: nothing of a failed run is left
            except OSError:
                pass


#: Each loader argument's option, for :func:`loader_errors`.
LOADER_FLAGS = {
    "spec": "--model",
    "weights": "--weights",
    "num_classes": "--num-classes",
    "class_names": "--class-names",
    "normalize": "--normalize",
    "device": "--device",
    "data": "--data",
    "image": "IMAGE",
}


@contextlib.contextmanager
def loader_errors(**flags: str) -> Iterator[None]:
    """Turn a :class:`~captum_perturbmask.loaders.LoadError` into a :class:`CLIError` that
    names the option instead of the loader's argument (:data:`LOADER_FLAGS`, updated by
    ``flags``): ```weights` x.txt is not ...`` becomes ``--weights x.txt is not ...``.

    Example:
        >>> with loader_errors():
        ...     raise LoadError("weights", "x.txt is empty; pass `num_classes` 10")
        Traceback (most recent call last):
        ...
        captum_perturbmask.cli._common.CLIError: --weights x.txt is empty; pass --num-classes 10
    """
    names = {**LOADER_FLAGS, **flags}
    try:
        yield
    except LoadError as err:
        detail = re.sub(r"`(\w+)`", lambda m: names.get(m[1], m[0]), err.detail)
        raise CLIError(f"{names.get(err.argument, err.argument)} {detail}") from None


def load_cli_model(args: argparse.Namespace, spec: Any) -> tuple[Any, list[str] | None]:
    """The model of ``--model`` (``spec``) with ``--weights``, ``--num-classes``,
    ``--normalize``, ``--device`` and ``--class-names``, through
    :func:`~captum_perturbmask.loaders.load_model`; warns when the model has random weights."""
    from captum_perturbmask.loaders.models import load_class_names, load_model, spec_kind

    with loader_errors():
        kind = spec_kind(spec)
        model, names = load_model(
            spec, args.weights, args.num_classes, args.device, normalize=args.normalize
        )
        if getattr(args, "class_names", None) is not None:
            names = load_class_names(args.class_names)
    if args.weights is None and kind in ("torchvision", "timm"):
        say(
            f"{PROG}: warning: no --weights given; {spec} has random weights, so the map "
            "explains an untrained network"
        )
    return model, names


def fit_class_names(names: list[str] | None, classes: int, args: argparse.Namespace) -> Any:
    """The class names if there is one per output of the model; a ``--class-names`` file of
    another length is an error, metadata of another length is dropped with a warning."""
    if names is None or len(names) == classes:
        return names
    if getattr(args, "class_names", None) is not None:
        raise CLIError(
            f"--class-names {args.class_names} holds {len(names)} names, but the model has "
            f"{classes} outputs"
        )
    say(f"{PROG}: warning: {len(names)} class names for {classes} outputs; not shown")
    return None


def announced_seed(seeds: Iterable[int]) -> Callable[[int], int]:
    """The run seed a method call's seed was derived from, for progress lines: ``compare`` on
    one batch calls each method with ``derive_seed(seed, 0)``; the demos announce ``seed``.

    Example:
        >>> from captum_perturbmask.evaluation.scoring import derive_seed
        >>> announced_seed([0, 1, 2])(derive_seed(2, 0))
        2
    """
    from captum_perturbmask.evaluation.scoring import derive_seed

    table = {derive_seed(seed, 0): seed for seed in seeds}
    return lambda derived: table.get(derived, derived)


def device_type(text: str) -> Any:
    """A torch device present on this machine, checked by
    :func:`~captum_perturbmask._core.devices.resolve_device` (torch is imported only when the
    option is given); an absent or unknown device is a usage error that names it."""
    from captum_perturbmask._core.devices import resolve_device

    try:
        return resolve_device(text, "--device")
    except (TypeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# ------------------------------------------------------------------------------------------
# Options several commands take, defined once
# ------------------------------------------------------------------------------------------
#: Each shared option's ``add_argument`` keywords; :func:`parents` hands them to the commands.
SHARED_OPTIONS: dict[str, dict[str, Any]] = {
    "--out": dict(type=out_dir, required=True, metavar="DIR", help="output folder (created)"),
    "--model": dict(
        default=None,
        metavar="MODEL",
        help="the classifier: a torchvision model name (resnet50), a torch.export file (.pt2), "
        "a TorchScript file, package.module:factory or file.py:factory (a callable returning "
        "the model), timm:NAME (needs timm) or hf:FOLDER (a Hugging Face transformers image "
        "classifier saved with save_pretrained)",
    ),
    "--weights": dict(
        type=file_path,
        default=None,
        metavar="FILE",
        help="state-dict file of --model (torch.save(model.state_dict()); read with "
        "weights_only=True; a 'class_names' entry next to the state dict names the classes), "
        "or DEFAULT to let torchvision or timm download their weights; random init if left out",
    ),
    "--num-classes": dict(
        type=int_range(2, MAX_CLASSES),
        default=None,
        metavar="K",
        help="classes of the model's head, for --weights of another head (torchvision default "
        "1000)",
    ),
    "--class-names": dict(
        type=file_path,
        default=None,
        metavar="FILE",
        help="class names, one per line or a JSON list (default: from the weights' metadata "
        "where they carry them)",
    ),
    "--normalize": dict(
        type=normalize_type,
        default="auto",
        metavar="NORM",
        help="normalisation put in front of the model, which then takes pixels in [0, 1]: "
        "auto (torchvision and timm: theirs; hf: the saved image processor's; other models: "
        "none), imagenet, none, or MEAN,MEAN,MEAN/STD,STD,STD (default auto)",
    ),
    "--skip-errors": dict(
        action="store_true",
        help="record an input that cannot be read or explained, say why, and go on (default: "
        "stop at the first)",
    ),
    "--budget": dict(
        type=budget_type, default=400, metavar="B", help="forward passes per input (default 400)"
    ),
    "--seed": dict(type=seed_type, default=0, help="seed (default 0)"),
    "--device": dict(
        type=device_type,
        default=None,
        metavar="DEVICE",
        help="torch device of the model and the inputs: cpu, cuda, cuda:1, mps, ... (default "
        "cpu); checked before any work",
    ),
    "--threads": dict(
        type=int_range(1, MAX_THREADS),
        default=None,
        help="torch CPU threads per process (default: torch's)",
    ),
}


def parents(*flags: str, **changes: Mapping[str, Any]) -> list[argparse.ArgumentParser]:
    """A parent parser holding the shared options ``flags``, for ``add_parser(parents=...)``.

    ``changes`` maps an option's dest (``threads`` for ``--threads``) to the keywords a command
    sets differently, its default and help; each call builds new actions, so one command's
    change never reaches another's.

    Example:
        >>> shared = parents("--seed", "--threads", threads={"default": 1})
        >>> argparse.ArgumentParser(parents=shared).parse_args([])
        Namespace(seed=0, threads=1)
    """
    parent = argparse.ArgumentParser(add_help=False)
    for flag in flags:
        dest = flag.lstrip("-").replace("-", "_")
        parent.add_argument(flag, **{**SHARED_OPTIONS[flag], **changes.pop(dest, {})})
    if changes:
        raise ValueError(f"no shared option for {sorted(changes)} among {flags}")
    return [parent]


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, as every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")
