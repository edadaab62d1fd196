"""The benchmark suite: its bed registry, the report's paired differences and tallies, and
``run_bed``'s resumable folders (on a tiny bed made here; nothing is trained)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
beds_suite = pytest.importorskip("beds_suite")
suite = pytest.importorskip("suite")
suite_report = pytest.importorskip("suite_report")


# ------------------------------------------------------------------------------ registry
def test_registry_has_the_beds_and_the_final_four() -> None:
    beds = beds_suite.BEDS
    assert len(beds) >= 16
    assert len(set(beds)) == len(beds)
    assert all(name == bed.name for name, bed in beds.items())
    for name in beds_suite.FINAL_TEST:
        assert name in beds
    assert beds_suite.FINAL_TEST == (
        "objects-resnet", "digits-vit", "arrowhead-inception", "basicmotions-gru",
    )  # fmt: skip
    assert {b.kind for b in beds.values()} == {"images", "series"}
    images = {b.arch for b in beds.values() if b.kind == "images"}
    series = {b.arch for b in beds.values() if b.kind == "series"}
    assert {"cnn", "resnet", "vit"} <= images
    assert len(series) >= 2
    assert sum(b.kind == "series" for b in beds.values()) >= 7


def test_select_groups_and_names() -> None:
    study = beds_suite.select("study")
    final = beds_suite.select("final")
    assert [b.name for b in final] == list(beds_suite.FINAL_TEST)
    assert not {b.name for b in study} & set(beds_suite.FINAL_TEST)
    assert len(study) + len(final) == len(beds_suite.select("all")) == len(beds_suite.BEDS)
    picked = beds_suite.select(["digits", "final", "digits"])
    assert [b.name for b in picked] == ["digits", *beds_suite.FINAL_TEST]
    assert [b.name for b in beds_suite.select("photos")] == ["photos"]
    with pytest.raises(ValueError, match="unknown bed 'nope'"):
        beds_suite.select(["digits", "nope"])


def test_planted_bed_loads_without_training() -> None:
    data = beds_suite.BEDS["planted-32"].load(5)
    assert data.inputs.shape == (5, 3, 32, 32)
    assert data.truth.shape == (5, 4) and data.mean.shape == (3, 32, 32)
    assert data.accuracy == 1.0
    assert torch.equal(data.model(data.inputs).argmax(1), data.targets)
    with pytest.raises(ValueError, match="`n` must be a positive int"):
        beds_suite.BEDS["planted-32"].load(0)


def test_planted_mean_is_the_mean_input() -> None:
    import beds_images

    model = beds_images.planted_model(96, True)
    x, _, _ = beds_images.render_planted(model, 3000, seed=5)
    assert torch.allclose(x.mean(0), beds_images.planted_mean(model), atol=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(beds_suite.BEDS))
def test_every_cached_bed_loads(name: str) -> None:
    bed = beds_suite.BEDS[name]
    if not bed.is_trained():
        pytest.skip(f"{name} is not trained here (python benchmarks/suite.py train)")
    data = bed.load(4)
    assert data.inputs.dtype == torch.float32 and len(data.inputs) == 4
    assert data.inputs.ndim == (4 if bed.kind == "images" else 3)
    assert data.mean.shape == data.inputs.shape[1:]
    with torch.no_grad():
        assert torch.equal(data.model(data.inputs).argmax(1), data.targets)
    assert 0.5 < data.accuracy <= 1


# ------------------------------------------------------------------------------ report logic
def _records(values: dict[str, list[float]], index=None) -> dict[str, np.ndarray]:
    n = len(next(iter(values.values())))
    out = {"index": np.arange(n) if index is None else np.asarray(index)}
    out.update({k: np.asarray(v, float) for k, v in values.items()})
    return out


def test_paired_aligns_by_index_and_uses_student_t() -> None:
    ref = _records({"insertion": [0.1, 0.2, 0.3, 0.4]})
    other = _records({"insertion": [0.5, 0.3, 0.4]}, index=[3, 1, 2])  # example 0 missing
    mean, half, n = suite_report.paired(ref, other, "insertion")
    d = np.array([0.1, 0.1, 0.1])  # 0.3 - 0.2, 0.4 - 0.3, 0.5 - 0.4
    assert n == 3 and math.isclose(mean, d.mean())
    assert half == pytest.approx(0.0, abs=1e-12)
    d = np.array([0.2, -0.1, 0.05, 0.3])
    mean, half, n = suite_report.paired(
        _records({"iou": [0, 0, 0, 0]}), _records({"iou": d.tolist()}), "iou"
    )
    assert half == pytest.approx(3.182446 * d.std(ddof=1) / 2, rel=1e-5)
    assert suite_report.paired(ref, other, "iou") is None


def test_verdicts_and_tally() -> None:
    v = suite_report.verdict
    assert v(0.05, 0.01, True) == "win" and v(0.05, 0.01, False) == "loss"
    assert v(-0.05, 0.01, True) == "loss" and v(-0.05, 0.01, False) == "win"
    assert v(0.012, 0.01, True) == "tie"  # reaches 0.002, inside the +-0.005 band
    assert v(0.016, 0.01, True) == "win"  # lower end 0.006
    assert v(0.3, math.nan, True) == "tie"
    records = {
        "bed-a": {
            "REF": _records({"insertion": [0.5] * 4, "deletion": [0.2] * 4}),
            "A": _records({"insertion": [0.7, 0.71, 0.69, 0.7], "deletion": [0.2] * 4}),
            "B": _records(
                {"insertion": [0.3, 0.31, 0.29, 0.3], "deletion": [0.1, 0.11, 0.1, 0.09]}
            ),
        },
        "bed-b": {"A": _records({"insertion": [0.1] * 4})},  # no reference: left out
    }
    table = suite_report.cells(records, "REF")
    assert {c.bed for c in table} == {"bed-a"}
    assert suite_report.tally(table) == {
        "A": {"win": 1, "tie": 1, "loss": 0},
        "B": {"win": 1, "tie": 0, "loss": 1},
    }
    md = suite_report.to_markdown(table, "REF", records)
    assert "| A | 1 | 1 | 0 |" in md and "### insertion ↑" in md and "+0.200" in md


def test_report_files_from_run_folders(tmp_path: Path, fake_bed: str) -> None:
    def shifted(k: float):
        return lambda x, t, seed: (
            x.abs() + k * torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
        )

    suite.run_bed(
        fake_bed, {"REF": shifted(0.0), "noisy": shifted(5.0)}, budget=8, n=6, seeds=[0, 1],
        out=tmp_path, log=None,
    )  # fmt: skip
    records = suite_report.collect(tmp_path, [fake_bed])
    assert set(records[fake_bed]) == {"REF", "noisy"}
    assert list(suite_report.collect(tmp_path, [fake_bed], ["noisy", "absent"])[fake_bed]) == [
        "noisy"
    ]
    table = suite_report.cells(records, "REF")
    assert {c.metric for c in table} == set(suite_report.METRICS)
    path = tmp_path / "rep"
    suite_report.write_csv(table, Path(f"{path}.csv"))
    suite_report.forest(table, "REF", Path(f"{path}_forest.png"))
    assert Path(f"{path}_forest.png").stat().st_size > 1000
    assert len(Path(f"{path}.csv").read_text().splitlines()) == len(table) + 1


# ------------------------------------------------------------------------------ run_bed
class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(2)


@pytest.fixture
def fake_bed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setattr(beds_suite, "CACHE", tmp_path / "cache")  # the accuracy record
    torch.manual_seed(0)
    model = _Tiny().eval()
    x = torch.randn(40, 2, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::5] = (y[::5] + 1) % 3  # a few wrong labels: skipped by load
    spans = torch.tensor([[4, 10]]).repeat(40, 1)
    source = beds_suite._Source(
        lambda: model, lambda: (x, y, spans), lambda: x.mean(0), trained=False
    )
    bed = beds_suite.SuiteBed("fake", "series", "fake", "cnn", "a tiny series bed", source)
    monkeypatch.setitem(beds_suite.BEDS, "fake", bed)
    return "fake"


def test_run_bed_writes_one_folder_per_method_and_resumes(tmp_path: Path, fake_bed: str) -> None:
    calls: list[int] = []

    def absolute(x, target, seed):
        calls.append(seed)
        return x.abs() + 0.1 * torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))

    status = suite.run_bed(fake_bed, {"My PM (k=2)": absolute}, budget=8, n=6, seeds=[0, 1],
                           out=tmp_path, log=None)  # fmt: skip
    assert status == {"My PM (k=2)": "done"}
    assert (tmp_path / "fake" / "my-pm-k-2" / "config.json").exists()
    first = len(calls)
    assert first == 2  # one block of 6 examples, two seeds
    suite.run_bed(fake_bed, {"My PM (k=2)": absolute}, budget=8, n=6, seeds=[0, 1],
                  out=tmp_path, log=None)  # fmt: skip
    assert len(calls) == first  # resumed: nothing explained again
    rec = suite.load_records(tmp_path, "fake", "My PM (k=2)")
    assert rec["index"].tolist() == list(range(6))
    for key in ("insertion", "deletion", "insertion_mean", "deletion_mean", "iou",
                "top5_overlap", "seconds"):  # fmt: skip
        assert rec[key].shape == (6,) and np.isfinite(rec[key]).all(), key
    data = beds_suite.BEDS[fake_bed].load(6)
    assert bool((data.model(data.inputs).argmax(1) == data.targets).all())


def test_run_bed_registered_names_skip_what_does_not_apply(tmp_path: Path, fake_bed: str) -> None:
    status = suite.run_bed(fake_bed, ["RISE-16", "GradCAM", "IntegratedGradients"], budget=8,
                           n=4, seeds=[0], out=tmp_path, log=None)  # fmt: skip
    assert status["RISE-16"] == "done" and status["IntegratedGradients"] == "done"
    assert status["GradCAM"].startswith("skipped")
    rec = suite.load_records(tmp_path, "fake", "RISE-16")
    assert rec["forwards"].min() >= 16  # RISE at its own budget (plus the clean pass)
    ig = suite.load_records(tmp_path, "fake", "IntegratedGradients")
    assert "top5_overlap" not in ig  # one seed: no run-to-run value
    with pytest.raises(ValueError, match="not registered"):
        suite.run_bed(fake_bed, ["NoSuchMethod"], out=tmp_path, log=None)
    with pytest.raises(ValueError, match="unknown bed"):
        suite.run_bed("no-bed", ["RISE"], out=tmp_path, log=None)


def test_slug_and_parse_method() -> None:
    assert suite.slug("RISE-4000") == "rise-4000"
    assert suite.slug("PM grid=6, keep 0.5") == "pm-grid-6-keep-0-5"
    assert suite.parse_method("RISE-4000", 400) == ("RISE", 4000)
    assert suite.parse_method("hsic", 400) == ("HSIC", 400)
    with pytest.raises(ValueError):
        suite.slug("***")
