"""``captum-perturbmask evaluate``: digits, .npz and image folders, resume, torchrun, errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from captum_perturbmask.cli import main

from ._util import one_error_line

FAST = ["--n-examples", "4", "--budget", "8", "--batch-size", "2"]


def _records(folder: Path) -> list[dict]:
    out = []
    for path in sorted(folder.glob("records-rank*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            r.pop("seconds", None)
            out.append(r)
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))


def test_digits_run_writes_records_summary_and_figure(tmp_path: Path, capsys) -> None:
    rc = main(
        ["evaluate", "--data", "digits", "--methods", "perturbmask", "occlusion", "--seeds",
         "2", "--box-threshold", "0.9", "--out", str(tmp_path), *FAST]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "| PerturbMask | 4 |" in out and "| Occlusion | 4 |" in out
    for name in ("summary.md", "summary.csv", "curves.png", "config.json", "report.html"):
        assert (tmp_path / name).is_file(), name
    assert _example_ids(tmp_path) == [f"example-{i}" for i in range(4)]  # --n-examples 4
    recs = _records(tmp_path)
    runs = [r for r in recs if r["kind"] == "run"]
    assert {r["method"] for r in runs} == {"PerturbMask", "Occlusion"}
    assert all(r["iou"] is not None for r in runs)  # the digits carry their boxes
    assert any(r["kind"] == "consistency" for r in recs)


def test_resume_is_explicit(tmp_path: Path, capsys) -> None:
    args = ["evaluate", "--data", "digits", "--methods", "rise", "--out", str(tmp_path), *FAST]
    assert main(args) == 0
    before = _records(tmp_path)
    capsys.readouterr()
    one_error_line(main(args), capsys, "--resume")
    assert main([*args, "--resume"]) == 0
    assert _records(tmp_path) == before  # nothing left to do, nothing recomputed


def test_metrics_and_reference_flags(tmp_path: Path, capsys) -> None:
    rc = main(
        ["evaluate", "--data", "digits", "--methods", "Occlusion", "--metrics", "deletion",
         "ROAD", "--reference", "mean", "--out", str(tmp_path), "--n-examples", "2", "--budget",
         "8"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "deletion ↓" in out and "ROAD MoRF ↓" in out and "insertion" not in out
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["metrics"] == ["deletion", "road"] and config["reference"].startswith("tensor")


def test_npz_series_with_spans(tmp_path: Path, capsys) -> None:
    g = np.random.default_rng(0)
    path = tmp_path / "series.npz"
    np.savez(path, inputs=g.standard_normal((4, 2, 40)).astype("float32"),
             targets=np.array([0, 1, 0, 1]), boxes=np.tile([[5.0, 15.0]], (4, 1)))  # fmt: skip
    # a torchvision model cannot read series: the error says which model is needed
    one_error_line(
        main(["evaluate", "--data", str(path), "--out", str(tmp_path / "o"), *FAST]), capsys,
        "--model",
    )  # fmt: skip


def test_image_folder_with_a_local_weights_file(tmp_path: Path, files, capsys) -> None:
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(2):
            pixels = (np.random.default_rng(i).random((40, 30, 3)) * 255).astype("uint8")
            Image.fromarray(pixels).save(tmp_path / "data" / cls / f"{i}.png")
    torch.manual_seed(0)
    from torchvision.models import resnet18

    weights = tmp_path / "two.pt"
    torch.save(resnet18(weights=None, num_classes=2).state_dict(), weights)
    rc = main(
        ["evaluate", "--data", str(tmp_path / "data"), "--model", "resnet18", "--weights",
         str(weights), "--num-classes", "2", "--size", "32", "--methods", "perturbmask",
         "gradcam", "--out", str(tmp_path / "out"), *FAST]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "centre-cropped to 32 x 32" in captured.err
    runs = [r for r in _records(tmp_path / "out") if r["kind"] == "run"]
    assert sorted({r["target"] for r in runs}) == [0, 1]  # the folder labels
    assert all(r["iou"] is None for r in runs)  # no boxes in an image folder


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--data", "nowhere"], ["--data", "nowhere"]),
        (["--data", "digits", "--methods", "rise", "shap"], ["--methods shap", "kernelshap"]),
        (["--data", "digits", "--metrics", "auc"], ["--metrics auc", "road"]),
        (["--data", "digits", "--reference", "grey"], ["--reference", "mean"]),
        (["--data", "digits", "--device", "tpu"], ["--device", "tpu"]),
        (["--data", "digits", "--box-threshold", "1.5"], ["--box-threshold"]),
        (["--data", "digits", "--budget", "0"], ["--budget"]),
        (["--data", "digits", "--methods", "shap"], ["--methods"]),
    ],
)
def test_bad_arguments_are_one_line(extra: list[str], words: list[str], tmp_path, capsys) -> None:
    one_error_line(main(["evaluate", *extra, "--out", str(tmp_path / "o")]), capsys, *words)


@pytest.mark.slow
def test_torchrun_writes_the_same_table_as_one_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    args = ["-m", "captum_perturbmask", "evaluate", "--data", "digits", "--methods",
            "perturbmask", "rise", "--n-examples", "8", "--budget", "16", "--batch-size", "2",
            "--seeds", "2", "--threads", "1"]  # fmt: skip
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], check=True, env=env,
                   capture_output=True, timeout=300)  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         *args, "--out", str(tmp_path / "two")],
        check=True, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    assert len(list((tmp_path / "two").glob("records-rank*.jsonl"))) == 2
    assert _records(tmp_path / "one") == _records(tmp_path / "two")

    def table(folder: Path) -> list[str]:  # the summary without the seconds column
        lines = (folder / "summary.md").read_text().splitlines()
        return [line.rsplit("|", 2)[0] if line.startswith("| ") else line for line in lines]

    assert table(tmp_path / "one") == table(tmp_path / "two")
    # both ranks stored their kept examples; rank 0's page shows all of them
    assert (
        _example_ids(tmp_path / "one")
        == _example_ids(tmp_path / "two")
        == [f"example-{i}" for i in range(8)]
    )


def _example_ids(folder: Path) -> list[str]:
    html = (folder / "report.html").read_text(encoding="utf-8")
    return re.findall(r'<article class="example" id="([^"]+)"', html)


# ------------------------------------------------------------------------- your model, your data
def _tiny_spec() -> str:
    from ..loaders import tinynet

    return f"{Path(tinynet.__file__)}:tiny_factory"


def test_data_the_model_cannot_take_is_one_line(tmp_path: Path, capsys) -> None:
    """Series for an image model, NaN images, 2-channel images: one line before any work."""
    g = np.random.default_rng(0)
    cases = {
        "series.npz": (g.standard_normal((4, 2, 40)), ["--model resnet18", "(1, 2, 40)", "series"]),
        "nan.npz": (np.full((4, 3, 16, 16), np.nan), ["nan.npz", "NaN", "finite"]),
        "two.npz": (g.random((4, 2, 16, 16)), ["--model resnet18", "3 channels", "2-channel"]),
    }
    for name, (inputs, words) in cases.items():
        np.savez(tmp_path / name, inputs=inputs.astype("float32"))
        out = tmp_path / f"out-{name}"
        argv = ["evaluate", "--data", str(tmp_path / name), "--model", "resnet18"]
        one_error_line(main([*argv, "--out", str(out), *FAST]), capsys, *words)
        assert not out.exists()


def test_weights_apply_to_the_shipped_model(tmp_path: Path, files, capsys) -> None:
    """--weights with the shipped classifier is loaded (and checked), never ignored."""
    argv = ["evaluate", "--data", "digits", "--methods", "occlusion", *FAST]
    one_error_line(
        main([*argv, "--weights", str(files["text_pt"]), "--out", str(tmp_path / "a")]),
        capsys, "--weights", "it holds text",
    )  # fmt: skip
    one_error_line(
        main([*argv, "--weights", str(files["weights"]), "--out", str(tmp_path / "b")]),
        capsys, "does not fit the model", "missing keys",
    )  # fmt: skip
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unreadable_image_is_skipped_and_recorded(tmp_path: Path, capsys) -> None:
    """An unreadable first file: one line without --skip-errors; with it, a failure record
    naming the file and why, and the other images scored."""
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "data" / cls / "1.png")
    (tmp_path / "data" / "cat" / "0.png").write_bytes(b"\x89PNG broken")
    argv = ["evaluate", "--data", str(tmp_path / "data"), "--model", _tiny_spec(), "--size",
            "16", "--methods", "occlusion", "--budget", "4"]  # fmt: skip
    one_error_line(main([*argv, "--out", str(tmp_path / "a")]), capsys, "0.png", "--skip-errors")
    assert main([*argv, "--skip-errors", "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    records = _records(tmp_path / "b")
    failed = [r for r in records if r.get("status") != "ok"]
    assert len(failed) == 1 and failed[0]["index"] == 0
    assert "0.png" in failed[0]["error"] and "cannot read image" in failed[0]["error"]
    assert sorted(r["index"] for r in records if r.get("status") == "ok") == [1, 2]


def test_every_kind_of_model(tmp_path: Path, capsys) -> None:
    from ..loaders.tinynet import write_model_files

    files = write_model_files(tmp_path)
    np.savez(tmp_path / "x.npz", inputs=np.random.default_rng(0).random((2, 3, 16, 16)),
             targets=np.array([0, 2]))  # fmt: skip
    tables = []
    for spec in (_tiny_spec(), str(files["export"]), str(files["export_static"]),
                 str(files["torchscript"])):  # fmt: skip
        out = tmp_path / f"out-{len(tables)}"
        argv = [
            "evaluate",
            "--data",
            str(tmp_path / "x.npz"),
            "--model",
            spec,
            "--methods",
            "occlusion",
            "--budget",
            "4",
            "--metrics",
            "deletion",
            "--out",
            str(out),
        ]
        assert main(argv) == 0, capsys.readouterr().err
        tables.append([r["deletion"] for r in _records(out) if r["kind"] == "run"])
    for other in tables[1:]:
        assert other == pytest.approx(tables[0], abs=1e-5)  # one model, four files
    np.savez(tmp_path / "y.npz", inputs=np.zeros((2, 3, 16, 16)), targets=np.array([0, 5]))
    one_error_line(
        main(["evaluate", "--data", str(tmp_path / "y.npz"), "--model", _tiny_spec(),
              "--out", str(tmp_path / "y")]), capsys, "class 5", "3 outputs",
    )  # fmt: skip


@pytest.mark.slow
def test_kill_and_resume_gives_the_records_of_one_run(tmp_path: Path) -> None:
    """A run killed with SIGKILL mid-way and continued with --resume writes the records an
    uninterrupted run writes, and the same report."""

    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    args = [sys.executable, "-m", "captum_perturbmask", "evaluate", "--data", "digits",
            "--methods", "perturbmask", "--n-examples", "12", "--budget", "64", "--batch-size",
            "2", "--seeds", "2", "--threads", "1"]  # fmt: skip
    subprocess.run([*args, "--out", str(tmp_path / "whole")], check=True, env=env,
                   capture_output=True, timeout=300)  # fmt: skip
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(killed)], env=env, stderr=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lines = sum(len(p.read_text().splitlines()) for p in killed.glob("records-rank*.jsonl"))
        if lines >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert 0 < len(_records(killed)) < len(_records(tmp_path / "whole"))
    subprocess.run([*args, "--resume", "--out", str(killed)], check=True, env=env,
                   capture_output=True, timeout=300)  # fmt: skip
    assert _records(killed) == _records(tmp_path / "whole")
    # the kept examples (--report-examples, 8 by default) survive the kill too
    assert (
        _example_ids(killed)
        == _example_ids(tmp_path / "whole")
        == [f"example-{i}" for i in range(8)]
    )
