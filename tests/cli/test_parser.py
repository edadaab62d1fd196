"""The parser of ``captum-perturbmask``: fast start-up, range-checked arguments, one-line errors,
whole-or-nothing output files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from captum_perturbmask._version import __version__
from captum_perturbmask.cli import CLIError, main, prepare_out, write_files

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
    "argv", [["--help"], ["--version"], ["demo", "--help"], ["explain", "--help"]]
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
    "unknown method": (["explain", "x.png", "--out", "x", "--method", "lime"], "--method"),
    "negative budget": (["explain", "x.png", "--out", "x", "--budget", "-3"], "--budget"),
    "empty weights": (["explain", "x.png", "--out", "x", "--weights", ""], "--weights"),
    "empty image": (["explain", "", "--out", "x"], "expected a file path"),
    "zero threads": (["explain", "x.png", "--out", "x", "--threads", "0"], "--threads"),
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
    from captum_perturbmask.cli import MAX_SEED, build_parser

    args = build_parser().parse_args(["demo", "--out", "x", "--seed", str(MAX_SEED)])
    assert args.seed == 2**63 - 1


def test_max_demo_images_is_the_held_out_split() -> None:
    from captum_perturbmask.cli import MAX_DEMO_IMAGES
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


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_prepare_out_read_only(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(CLIError, match="cannot write to --out"):
            prepare_out(str(folder))
    finally:
        folder.chmod(0o700)
