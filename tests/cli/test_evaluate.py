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


@pytest.mark.slow
def test_kill_9_and_resume_give_the_records_and_report_of_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    args = [sys.executable, "-m", "captum_perturbmask", "evaluate", "--data", "digits",
            "--methods", "perturbmask", "occlusion", "--n-examples", "16", "--budget", "8",
            "--batch-size", "2", "--threads", "1", "--report-examples", "5"]  # fmt: skip
    subprocess.run([*args, "--out", str(tmp_path / "full")], check=True, env=env,
                   capture_output=True, timeout=300)  # fmt: skip
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while proc.poll() is None:  # kill it once a few batches are recorded
            records = list(killed.glob("records-rank*.jsonl"))
            if records and len(records[0].read_text().splitlines()) >= 6:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    subprocess.run([*args, "--out", str(killed), "--resume"], check=True, env=env,
                   capture_output=True, timeout=300)  # fmt: skip
    assert _records(killed) == _records(tmp_path / "full")
    assert (
        _example_ids(killed)
        == _example_ids(tmp_path / "full")
        == [f"example-{i}" for i in range(5)]
    )
