"""What the commands share: one-line errors, argument types, the options several commands take
(defined once, handed out as argparse parent parsers), whole-or-nothing output files, progress
lines.

Nothing here imports torch at import time: building the parser (``--help``, ``--version``)
stays cheap; an argument type that needs torch (``--device``) imports it when it is given.
"""

from __future__ import annotations

import argparse
import codecs
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

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
    "Parser",
    "SHARED_OPTIONS",
    "Stages",
    "budget_list",
    "budget_type",
    "check_targets",
    "device_type",
    "file_path",
    "first_sentence",
    "int_range",
    "out_dir",
    "parents",
    "prepare_out",
    "say",
    "seed_type",
    "start_outputs",
    "text_kind",
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
    "--model": dict(default=None, help="torchvision classification model name"),
    "--weights": dict(
        type=file_path,
        default=None,
        metavar="FILE",
        help="state-dict file of a torchvision --model (torch.save(model.state_dict())), or "
        "DEFAULT to let torchvision download its default weights; random init if left out",
    ),
    "--num-classes": dict(
        type=int_range(2, MAX_CLASSES),
        default=None,
        metavar="K",
        help="classes of a torchvision model's head, for --weights of another head (default 1000)",
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
