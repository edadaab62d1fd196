"""``captum-perturbmask demo``: every output file, from a tiny offline run."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import torch

from captum_perturbmask.cli import main

from ._util import is_png, one_error_line


def assert_only_announced_seeds(err: str, seeds: list[int]) -> None:
    """Every seed a progress line names is one the demo announced (never a derived seed)."""
    assert f"seeds {seeds}" in err
    shown = {int(s) for s in re.findall(r"\bseed (\d+)", err)}
    assert shown and shown <= set(seeds), shown


TINY = ["--quick", "--n-images", "2", "--budget", "8", "--seeds", "2"]


@pytest.mark.slow
def test_demo_quick_writes_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", *TINY, "--convergence-budgets", "4,8", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "[1/4" in captured.err and "[4/4" in captured.err  # one line per stage
    assert_only_announced_seeds(captured.err, [0, 1])
    for name in ("maps.png", "convergence.png", "variations.png", "variations_distribution.png"):
        assert is_png(out / name), name
    for name in ("metrics.md", "metrics.csv", "convergence.csv"):
        assert (out / name).stat().st_size > 0, name
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "maps.png",
            "convergence.png",
            "variations.png",
            "variations_distribution.png",
            "metrics.md",
            "metrics.csv",
            "convergence.csv",
            "report.html",
        ]
    )  # and no temporary file left
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('<article class="example"') == 2 and 'id="paired"' in page
    with open(out / "metrics.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == ["PerturbMask", "RISE", "GradCAM", "LIME", "Occlusion"]
    for row in rows:
        for key in ("insertion", "deletion", "iou", "pointing", "seconds_per_input"):
            assert 0 <= float(row[key]) < 1e3, (row["method"], key)
    assert float(rows[0]["forwards_per_input"]) == 8 + 1  # the budget, and one clean pass
    assert rows[0]["spearman"] and not rows[2]["spearman"]  # stochastic vs deterministic
    with open(out / "convergence.csv", encoding="utf-8") as fh:
        conv = list(csv.DictReader(fh))
    assert {(r["method"], r["budget"]) for r in conv} == {
        (m, b) for m in ("PerturbMask", "RISE") for b in ("4", "8")
    }
    for r in conv:  # compare counted the forwards: the budget plus one clean pass
        assert float(r["forwards_per_input"]) == int(r["budget"]) + 1
        assert r["runs"] == "2" and float(r["insertion_sem"]) >= 0
    md = (out / "metrics.md").read_text(encoding="utf-8")
    assert "insertion ↑" in md and "IoU ↑" in md and "Accepted fraction" in md
    assert "## Convergence" in md


def test_demo_bad_out_is_one_line(files: dict[str, Path], capsys) -> None:
    rc = main(["demo", *TINY, "--out", str(files["a_file"])])
    one_error_line(rc, capsys, "not a directory")
    rc = main(["demo", *TINY, "--out", str(files["a_file"] / "below")])
    one_error_line(rc, capsys, "cannot write to --out")


# ------------------------------------------------------------------------------ --data gunpoint
SERIES_TINY = ["--data", "gunpoint", "--quick", "--n-images", "2", "--budget", "8", "--seeds", "2"]


@pytest.mark.slow
def test_series_demo_writes_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "series"
    assert main(["demo", *SERIES_TINY, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "[1/4" in captured.err and "[4/4" in captured.err
    assert_only_announced_seeds(captured.err, [0, 1])
    for name in ("series_maps.png", "planted_maps.png", "variations.png"):
        assert is_png(out / name), name
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "series_maps.png",
            "planted_maps.png",
            "variations.png",
            "metrics.md",
            "metrics.csv",
            "report.html",
        ]
    )  # and no temporary file left
    page = (out / "report.html").read_text(encoding="utf-8")
    for anchor in ("gunpoint", "planted-motifs", "planted-motifs-example-1"):
        assert f'id="{anchor}"' in page, anchor
    assert "(Point)" in page or "(Gun)" in page  # the class names
    with open(out / "metrics.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    methods = ["PerturbMask", "RISE", "LIME", "Occlusion", "FeatureAblation", "IntegratedGradients"]
    assert [(r["data"], r["method"]) for r in rows] == [
        (bed, m) for bed in ("gunpoint", "planted") for m in methods
    ]
    for row in rows:
        for key in ("insertion", "deletion", "seconds_per_input"):
            assert 0 <= float(row[key]) < 1e3, (row["data"], row["method"], key)
        planted = row["data"] == "planted"
        assert bool(row["iou"]) == planted and bool(row["pointing"]) == planted  # spans known
        if planted:
            hits = 4 * float(row["pointing"])  # 2 series x 2 seeds: quarters
            assert 0 <= float(row["iou"]) <= 1 and 0 <= hits <= 4 and hits == round(hits)
    assert float(rows[0]["forwards_per_input"]) == 8 + 1  # the budget, and one clean pass
    assert float(rows[4]["forwards_per_input"]) == 20  # one per segment (19) and a clean pass
    md = (out / "metrics.md").read_text(encoding="utf-8")
    assert "## GunPoint" in md and "## Planted motifs" in md and "Accepted fraction" in md
    assert "IoU ↑" in md and "pointing ↑" in md


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--convergence-budgets", "4,8"], ("--convergence-budgets", "digits")),
        (["--n-images", "151"], ("--n-images", "150")),
    ],
)
def test_series_demo_refuses_digits_options(tmp_path: Path, capsys, extra, words) -> None:
    rc = main(["demo", *SERIES_TINY, *extra, "--out", str(tmp_path / "x")])
    one_error_line(rc, capsys, *words)
    assert not (tmp_path / "x").exists()  # refused before anything is written


def test_peak_span_mask_is_the_salient_run_around_the_peak() -> None:
    from captum_perturbmask.cli.series_demo import peak_span_mask
    from captum_perturbmask.metrics import saliency_mask

    saliency = torch.rand(6, 2, 50, generator=torch.Generator().manual_seed(0))
    mask = peak_span_mask(saliency, 0.8)
    salient = saliency_mask(saliency.sum(1, keepdim=True), 0.8)[:, 0]
    peak = saliency.sum(1).argmax(1)
    for b in range(6):
        steps = mask[b].nonzero().flatten()
        assert bool(mask[b, peak[b]]) and bool((salient[b] | ~mask[b]).all())  # B ⊆ salient
        assert int(steps.max() - steps.min() + 1) == len(steps)  # one run
        lo, hi = int(steps.min()), int(steps.max())  # and a maximal one
        assert (lo == 0 or not salient[b, lo - 1]) and (hi == 49 or not salient[b, hi + 1])
