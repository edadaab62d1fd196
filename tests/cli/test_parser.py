"""The parser of ``captum-perturbmask``: fast start-up, range-checked arguments, one-line errors,
whole-or-nothing output files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from captum_perturbmask._version import __version__
from captum_perturbmask.cli import main
from captum_perturbmask.cli._common import CLIError, prepare_out, write_files

HEAVY = ("torch", "torchvision", "captum", "matplotlib", "sklearn")

_RUN_AS_MODULE = """
import runpy, sys
sys.argv = ["captum-perturbmask", *{argv!r}]
try:
    runpy.run_module("captum_perturbmask", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
heavy = [m for m in {heavy!r} if m in sys.modules]
print("RESULT", code, heavy, file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["demo", "--help"], ["explain", "--help"], ["evaluate", "--help"]],
)
def test_help_and_version_import_nothing_heavy(argv: list[str], tmp_path: Path) -> None:
    """``python -m captum_perturbmask --help`` answers without torch, Captum or matplotlib."""
    code = _RUN_AS_MODULE.format(argv=argv, heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULT 0 []" in proc.stderr, proc.stderr
    assert proc.stdout.startswith("usage: captum-perturbmask") or __version__ in proc.stdout


def test_python_dash_m_help(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "captum_perturbmask", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: captum-perturbmask")
    assert "demo" in proc.stdout and "explain" in proc.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"captum-perturbmask {__version__}"


@pytest.mark.skipif(
    shutil.which("captum-perturbmask") is None, reason="console script not installed"
)
def test_console_script_version(tmp_path: Path) -> None:
    exe = shutil.which("captum-perturbmask")
    assert exe is not None
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"captum-perturbmask {__version__}"


USAGE_ERRORS = {
    "no command": ([], "required"),
    "unknown command": (["frobnicate"], "invalid choice"),
    "demo without --out": (["demo"], "--out"),
    "empty --out": (["demo", "--out", ""], "--out: expected a folder path"),
    "blank --out": (["explain", "x.png", "--out", "  "], "--out: expected a folder path"),
    "zero budget": (["demo", "--out", "x", "--budget", "0"], "--budget"),
    "huge budget": (["demo", "--out", "x", "--budget", "1000000000000"], "10,000,000"),
    "float budget": (["explain", "x.png", "--out", "x", "--budget", "1e12"], "--budget"),
    "bad budget list": (["demo", "--out", "x", "--convergence-budgets", "10,a"], "'a'"),
    "huge budget list": (
        ["demo", "--out", "x", "--convergence-budgets", "10,100000000000"],
        "10,000,000",
    ),
    "too many images": (["demo", "--out", "x", "--n-images", "10000000"], "from 1 to 540"),
    "541 images": (["demo", "--out", "x", "--n-images", "541"], "540"),
    "huge seed": (["demo", "--out", "x", "--seed", str(10**23)], "--seed"),
    "seed 2**63": (["explain", "x.png", "--out", "x", "--seed", str(2**63)], "--seed"),
    "negative seed": (["explain", "x.png", "--out", "x", "--seed", "-1"], "--seed"),
    "zero seeds": (["demo", "--out", "x", "--seeds", "0"], "--seeds"),
    "one class": (["explain", "x.png", "--out", "x", "--num-classes", "1"], "--num-classes"),
    "huge size": (["explain", "x.png", "--out", "x", "--size", "20000"], "from 8 to 4,096"),
    "tiny size": (["explain", "x.png", "--out", "x", "--size", "4"], "--size"),
    "unknown method": (["explain", "x.png", "--out", "x", "--method", "shap"], "--method"),
    "negative budget": (["explain", "x.png", "--out", "x", "--budget", "-3"], "--budget"),
    "empty weights": (["explain", "x.png", "--out", "x", "--weights", ""], "--weights"),
    "empty image": (["explain", "", "--out", "x"], "expected a file path"),
    "zero threads": (["explain", "x.png", "--out", "x", "--threads", "0"], "--threads"),
    "unknown device": (["explain", "x.png", "--out", "x", "--device", "tpu"], "'tpu'"),
    "absent device": (["demo", "--out", "x", "--device", "cuda:99"], "argument --device"),
    "absent evaluate device": (
        ["evaluate", "--data", "digits", "--out", "x", "--device", "cuda:99"],
        "'cuda:99'",
    ),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_errors_are_one_line(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv, words = USAGE_ERRORS[case]
    assert main(argv) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("captum-perturbmask: error: "), out.err
    assert words in lines[0], out.err
    assert "Traceback" not in out.err and not out.out


def test_largest_seed_is_accepted() -> None:
    from captum_perturbmask.cli import build_parser
    from captum_perturbmask.cli._common import MAX_SEED

    args = build_parser().parse_args(["demo", "--out", "x", "--seed", str(MAX_SEED)])
    assert args.seed == 2**63 - 1


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--out", "o"],
        ["explain", "x.png", "--out", "o"],
        ["evaluate", "--data", "d", "--out", "o"],
    ],
)
def test_every_command_takes_the_shared_options(argv: list[str]) -> None:
    """--out, --seed, --budget, --threads and --device on every command; a command's own
    default (demo: one thread, budget from --quick) stays its own."""
    import torch

    from captum_perturbmask.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    own = {"demo": (1, None), "explain": (None, 400), "evaluate": (None, 400)}[argv[0]]
    assert (args.threads, args.budget) == own
    assert args.out == "o" and args.seed == 0 and args.device is None
    args = parser.parse_args([*argv, "--device", "cpu", "--seed", "3", "--threads", "2"])
    assert args.device == torch.device("cpu") and args.seed == 3 and args.threads == 2


def test_demo_and_series_demo_do_not_import_each_other() -> None:
    import ast
    import importlib.util

    def imported(module: str) -> set[str]:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None
        tree = ast.parse(Path(spec.origin).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and n.module:
                names.add(n.module)
                names.update(f"{n.module}.{a.name}" for a in n.names)
        return names

    assert "captum_perturbmask.cli.series_demo" not in imported("captum_perturbmask.cli.demo")
    assert "captum_perturbmask.cli.demo" not in imported("captum_perturbmask.cli.series_demo")


def test_max_demo_images_is_the_held_out_split() -> None:
    from captum_perturbmask.cli._common import MAX_DEMO_IMAGES
    from captum_perturbmask.data import digit_split_indices

    assert MAX_DEMO_IMAGES == len(digit_split_indices("test"))


# ------------------------------------------------------------------------------- output files
def test_write_files_is_whole_or_nothing(tmp_path: Path) -> None:
    """A directory in the way of one output: no output is written, no temporary file is left."""
    (tmp_path / "b.pt").mkdir()
    with pytest.raises(CLIError, match=r"b\.pt.*directory"):
        write_files({tmp_path / "a.png": b"png", tmp_path / "b.pt": b"pt"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.pt"]

    def broken(path: str) -> None:
        Path(path).write_text("half")
        raise OSError(28, "No space left on device")

    (tmp_path / "a.png").write_bytes(b"old")
    with pytest.raises(CLIError, match="No space left"):
        write_files({tmp_path / "a.png": b"new", tmp_path / "c.csv": broken})
    assert (tmp_path / "a.png").read_bytes() == b"old"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.pt"]

    def csv(path: str) -> None:
        Path(path).write_text("x,y\n")

    write_files({tmp_path / "a.png": b"new", tmp_path / "c.md": "ü", tmp_path / "d.csv": csv})
    assert (tmp_path / "a.png").read_bytes() == b"new"
    assert (tmp_path / "c.md").read_text(encoding="utf-8") == "ü"
    assert (tmp_path / "d.csv").read_text() == "x,y\n"
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())


def test_prepare_out_unwritable(tmp_path: Path) -> None:
    """An --out that cannot be created (its parent is a regular file: refused for root too)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(CLIError, match="cannot write to --out .*a_file/out: Not a directory"):
        prepare_out(str(blocker / "out"))
    assert blocker.read_text() == "not a folder"
    with pytest.raises(CLIError, match="exists and is not a directory"):
        prepare_out(str(blocker))
