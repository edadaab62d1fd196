"""The ``captum-perturbmask`` command line: demo, explain, and one-line errors (all offline)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from captum_perturbmask.cli import _fit_mask_to_patch, main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 100 and path.read_bytes()[:8] == PNG_MAGIC


def _assert_one_error_line(rc: int, capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("captum-perturbmask: error: "), err
    for word in words:
        assert word in lines[0], err
    return lines[0]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 32x32 PNG, a resnet18 state dict and a few broken files."""
    from PIL import Image
    from torchvision.models import resnet18

    root = tmp_path_factory.mktemp("cli")
    gen = torch.Generator().manual_seed(0)
    pixels = (torch.rand(32, 32, 3, generator=gen) * 255).to(torch.uint8).numpy()
    image = root / "tiny.png"
    Image.fromarray(pixels).save(image)
    jpeg = root / "tiny.jpg"
    Image.fromarray(pixels).save(jpeg)
    torch.manual_seed(0)
    model = resnet18(weights=None)
    weights = root / "resnet18.pt"
    torch.save(model.state_dict(), weights)

    out = {"image": image, "jpeg": jpeg, "weights": weights, "root": root}
    out["garbage_png"] = root / "garbage.png"
    out["garbage_png"].write_bytes(b"this is not an image")
    out["truncated_png"] = root / "truncated.png"
    out["truncated_png"].write_bytes(image.read_bytes()[:60])
    out["garbage_pt"] = root / "garbage.pt"
    out["garbage_pt"].write_bytes(b"definitely not a checkpoint")
    out["list_pt"] = root / "list.pt"
    torch.save([torch.zeros(2)], out["list_pt"])
    out["module_pt"] = root / "module.pt"
    torch.save(torch.nn.Linear(2, 2), out["module_pt"])
    sd = model.state_dict()
    out["missing_pt"] = root / "missing.pt"
    torch.save({k: v for k, v in sd.items() if not k.startswith("fc.")}, out["missing_pt"])
    out["shape_pt"] = root / "shape.pt"
    torch.save(resnet18(weights=None, num_classes=10).state_dict(), out["shape_pt"])
    out["a_file"] = root / "a_file.txt"
    out["a_file"].write_text("not a folder")
    return out


# ------------------------------------------------------------------------------------------ demo
def test_demo_quick_writes_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "[1/4" in captured.err and "[4/4" in captured.err  # one line per stage
    for name in ("maps.png", "convergence.png", "variations.png"):
        assert _is_png(out / name), name
    for name in ("metrics.md", "metrics.csv", "convergence.csv"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "metrics.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == ["PerturbMask", "RISE", "GradCAM", "LIME", "Occlusion"]
    for row in rows:
        for key in ("insertion", "deletion", "iou", "pointing", "seconds_per_input"):
            assert 0 <= float(row[key]) < 1e3, (row["method"], key)
    assert rows[0]["spearman"] and not rows[2]["spearman"]  # stochastic vs deterministic
    with open(out / "convergence.csv", encoding="utf-8") as fh:
        conv = list(csv.DictReader(fh))
    assert {(r["method"], r["budget"]) for r in conv} == {
        (m, b) for m in ("PerturbMask", "RISE") for b in ("16", "50")
    }
    md = (out / "metrics.md").read_text(encoding="utf-8")
    assert "insertion ↑" in md and "IoU ↑" in md and "Accepted fraction" in md
    assert "## Convergence" in md


def test_demo_bad_out_is_one_line(files: dict[str, Path], capsys) -> None:
    rc = main(["demo", "--quick", "--out", str(files["a_file"])])
    _assert_one_error_line(rc, capsys, "not a directory")
    rc = main(["demo", "--quick", "--out", str(files["a_file"] / "below")])
    _assert_one_error_line(rc, capsys, "cannot create")


def test_mask_fits_the_gan_patch() -> None:
    saliency = torch.zeros(1, 1, 64, 64)
    saliency[0, 0, 2:6, 2:6] = 1.0  # two far-apart hot spots: their box is 60 px wide
    saliency[0, 0, 58:62, 58:62] = 2.0
    mask = _fit_mask_to_patch(saliency, threshold=0.99, patch=32)
    rows, cols = mask[0].any(1).nonzero(), mask[0].any(0).nonzero()
    assert int(rows.max() - rows.min() + 1) <= 32 and int(cols.max() - cols.min() + 1) <= 32
    assert bool(mask[0, 60, 60])  # kept around the peak


# --------------------------------------------------------------------------------------- explain
@pytest.mark.parametrize(
    ("image", "extra"),
    [("image", ["--method", "perturbmask"]), ("jpeg", ["--method", "rise", "--target", "3"])],
)
def test_explain_writes_map_and_overlay(
    files: dict[str, Path], tmp_path: Path, capsys, image: str, extra: list[str]
) -> None:
    out = tmp_path / "explained"
    argv = ["explain", str(files[image]), "--model", "resnet18", "--weights", str(files["weights"])]
    argv += ["--size", "32", "--budget", "16", "--out", str(out), *extra]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "target: " in stdout and "confidence: " in stdout
    if "--target" in extra:
        assert "target: 3" in stdout
    assert _is_png(out / "saliency.png")
    saliency = torch.load(out / "saliency.pt", weights_only=True)
    assert isinstance(saliency, torch.Tensor) and saliency.shape == (32, 32)
    assert bool(torch.isfinite(saliency).all())


def test_explain_without_weights_warns(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    argv = ["explain", str(files["image"]), "--model", "resnet18", "--size", "32"]
    assert main([*argv, "--budget", "4", "--method", "rise", "--out", str(tmp_path)]) == 0
    assert "warning: no --weights given" in capsys.readouterr().err


def test_explain_default_weights_offline(
    files: dict[str, Path], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--weights DEFAULT`` without internet fails in one line; with weights, names the class."""
    import urllib.error

    import torchvision.models

    real = torchvision.models.get_model

    def no_network(name: str, **kwargs):
        if kwargs.get("weights") == "DEFAULT":
            raise urllib.error.URLError("Temporary failure in name resolution")
        return real(name, **kwargs)

    monkeypatch.setattr(torchvision.models, "get_model", no_network)
    argv = ["explain", str(files["image"]), "--model", "resnet18", "--weights", "DEFAULT"]
    argv += ["--size", "32", "--budget", "4", "--out", str(tmp_path)]
    _assert_one_error_line(main(argv), capsys, "cannot fetch the default weights")

    def cached(name: str, **kwargs):  # stands in for weights already in the torch hub cache
        return real(name, weights=None)

    monkeypatch.setattr(torchvision.models, "get_model", cached)
    assert main([*argv, "--target", "207"]) == 0
    assert "target: 207 (golden retriever)" in capsys.readouterr().out


ERRORS = {
    "missing image": (["explain", "{root}/nope.png"], "does not exist"),
    "corrupt image": (["explain", "{garbage_png}"], "cannot read image"),
    "truncated image": (["explain", "{truncated_png}"], "cannot read image"),
    "folder as image": (["explain", "{root}"], "not a file"),
    "unknown model": (["explain", "{image}", "--model", "resnet19"], "did you mean resnet18"),
    "missing weights": (["explain", "{image}", "--weights", "{root}/nope.pt"], "does not exist"),
    "corrupt weights": (["explain", "{image}", "--weights", "{garbage_pt}"], "cannot read weights"),
    "not a state dict": (["explain", "{image}", "--weights", "{list_pt}"], "not a state dict"),
    "pickled module": (["explain", "{image}", "--weights", "{module_pt}"], "state_dict()"),
    "missing keys": (["explain", "{image}", "--weights", "{missing_pt}"], "2 missing keys"),
    "shape mismatch": (["explain", "{image}", "--weights", "{shape_pt}"], "fc.weight: file (10"),
    "target too big": (["explain", "{image}", "--weights", "{weights}", "--target", "1000"], "out"),
    "negative target": (["explain", "{image}", "--weights", "{weights}", "--target", "-1"], "out"),
    "out is a file": (["explain", "{image}", "--out", "{a_file}"], "not a directory"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_explain_errors_are_one_line(files: dict[str, Path], tmp_path: Path, capsys, case) -> None:
    template, words = ERRORS[case]
    names = {k: str(v) for k, v in files.items()}
    argv = [arg.format(**names) for arg in template]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    if "--model" not in argv:
        argv += ["--model", "resnet18"]
    argv += ["--size", "32", "--budget", "4"]
    rc = main(argv)
    _assert_one_error_line(rc, capsys, words)
    assert not (tmp_path / "out" / "saliency.pt").exists()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["demo"],
        ["demo", "--out", "x", "--budget", "0"],
        ["demo", "--out", "x", "--convergence-budgets", "10,a"],
        ["explain", "img.png", "--out", "x", "--method", "lime"],
        ["explain", "img.png", "--out", "x", "--budget", "-3"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "captum-perturbmask" in err and "error:" in err and "Traceback" not in err


def test_python_dash_m_help(tmp_path: Path) -> None:
    # run outside the source tree, so that the installed package (or PYTHONPATH) is used
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


@pytest.mark.skipif(
    shutil.which("captum-perturbmask") is None, reason="console script not installed"
)
def test_console_script_version(tmp_path: Path) -> None:
    from captum_perturbmask import __version__

    exe = shutil.which("captum-perturbmask")
    assert exe is not None
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"captum-perturbmask {__version__}"
