""":mod:`captum_perturbmask.evaluation.results`: the summary, its intervals, tables and figure."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from captum_perturbmask.evaluation import EvaluationResult, summarize


def _records() -> tuple[list[dict], dict, dict]:
    values = {0: [0.2, 0.4], 1: [0.9], 2: [0.5, 0.7], 3: [0.1, 0.1]}
    ref_values = {0: 0.3, 1: 0.5, 2: 0.2, 3: 0.4}
    records = []
    for i, vs in values.items():
        for s, v in enumerate(vs):
            records.append(
                {"kind": "run", "index": i, "method": "a", "seed": s, "insertion": v,
                 "status": "ok", "forwards": 1.0, "seconds": 0.1}
            )  # fmt: skip
        records.append(
            {"kind": "run", "index": i, "method": "ref", "seed": 0, "insertion": ref_values[i],
             "status": "ok", "forwards": 1.0, "seconds": 0.1}
        )  # fmt: skip
    return records, values, ref_values


def test_summary_intervals_match_a_reference_computation() -> None:
    records, values, ref_values = _records()
    res = summarize(records, reference_method="ref")
    per_example = np.array([np.mean(vs) for vs in values.values()])
    half = 1.96 * per_example.std(ddof=1) / math.sqrt(len(per_example))
    row = res["a"]
    assert row["insertion"] == pytest.approx(per_example.mean())
    assert row["insertion_ci"] == pytest.approx(half) and row["insertion_n"] == 4
    diffs = per_example - np.array(list(ref_values.values()))
    paired = next(p for p in res.paired if p["metric"] == "insertion")
    assert paired["diff"] == pytest.approx(diffs.mean()) and paired["reference_method"] == "ref"
    assert paired["ci"] == pytest.approx(1.96 * diffs.std(ddof=1) / math.sqrt(4))
    assert "deletion" not in row and row["spearman"] is None and row["spearman_n"] == 0
    assert res.columns == ["insertion", "spearman", "top_k_iou"]  # what the records hold


def test_duplicates_count_once_and_bad_reference() -> None:
    records, _, _ = _records()
    once = summarize(records)
    twice = summarize(records + records)
    assert once.summary == twice.summary
    with pytest.raises(ValueError, match="reference_method"):
        summarize(records, reference_method="nope")


def test_markdown_csv_and_missing_values(tmp_path: Path) -> None:
    records, _, _ = _records()
    records.append({"kind": "run", "index": 9, "method": "solo", "seed": 0, "insertion": 0.5,
                    "iou": None, "status": "ok", "forwards": None, "seconds": 0.2})  # fmt: skip
    res = summarize(records, methods=["ref", "a", "solo"])
    assert isinstance(res, EvaluationResult) and res.reference_method == "ref"
    solo = res["solo"]
    assert solo["insertion"] == 0.5 and solo["insertion_ci"] is None  # one example: no interval
    assert solo["iou"] is None and solo["forwards_per_input"] is None
    lines = res.to_markdown().splitlines()
    assert lines[0] == "| method | n | insertion ↑ | forwards/input | s/input |"  # no IoU column
    assert lines[4] == "| solo | 1 | 0.500 | – | 0.2 |"
    assert str(res) == res.to_markdown()
    res.to_csv(tmp_path / "s.csv")
    with open(tmp_path / "s.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == ["ref", "a", "solo"] and rows[2]["insertion_ci"] == ""
    with pytest.raises(KeyError, match="solo"):
        res["nobody"]


def test_plot_draws_the_curve_columns(tmp_path: Path) -> None:
    records = [
        {"kind": "run", "index": i, "method": m, "seed": 0, "insertion": 0.5, "deletion": 0.2,
         "curve_insertion": [0.5] * 21, "curve_deletion": [0.2] * 21, "status": "ok",
         "forwards": 1.0, "seconds": 0.1}
        for i in range(3) for m in ("a", "b")
    ]  # fmt: skip
    res = summarize(records, keep_records=True)
    assert set(res.curves["a"]) == {"insertion", "deletion"}
    fig = res.plot(tmp_path / "c.png")
    assert len(fig.axes) == 4 and (tmp_path / "c.png").stat().st_size > 0
    with pytest.raises(ValueError, match="no curve"):
        summarize([{**r, "curve_insertion": None, "curve_deletion": None} for r in records]).plot()
