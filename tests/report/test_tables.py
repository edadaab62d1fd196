"""The tables of a report, :mod:`captum_perturbmask.report.tables`."""

from __future__ import annotations

from captum_perturbmask.evaluation import summarize
from captum_perturbmask.report.tables import (
    config_rows,
    number_cell,
    verdict,
    verdict_lines,
)

from ._page import parse


def _result():
    records = [
        {"kind": "run", "index": i, "method": m, "seed": 0, "status": "ok", "insertion": v,
         "deletion": d, "forwards": 1.0, "seconds": 0.1}
        for i in range(4)
        for m, v, d in (("ref", 0.5 + i / 100, 0.2), ("up", 0.7 + i / 50, 0.2 + (-1) ** i / 100),
                        ("down", 0.1 + i / 100, 0.5 - i / 100))
    ]  # fmt: skip
    return summarize(records)


def test_verdicts_follow_the_direction_and_the_interval() -> None:
    assert verdict(-0.1, 0.05, False) == "better" and verdict(-0.1, 0.05, True) == "worse"
    assert verdict(0.1, None, True) == "tie" and verdict(0.1, 0.05, None) == "tie"
    assert verdict(0.05, 0.05, True) == "tie"  # an interval that touches zero
    lines = verdict_lines(_result())
    assert lines == [
        "up vs ref: better on insertion; no clear difference on deletion.",
        "down vs ref: worse on insertion, deletion.",
    ]


def test_number_cell_puts_the_interval_on_its_own_line() -> None:
    doc = parse(number_cell(0.51234, 0.0312, 3, "best", {"value": 0.51234}).render())
    cell = doc.find("td")
    assert cell.text() == "0.512 ± 0.031" and cell.find("span").attrs["class"] == "ci"
    assert parse(number_cell(None, None, 3).render()).find("td").text() == "–"


def test_config_rows_in_order_with_the_reference_method() -> None:
    result = _result()
    result.config = {"extra_knob": 2 / 3, "seeds": [0, 1], "model": "m"}
    assert config_rows(result) == [
        ("model", "m"),
        ("seeds", "0, 1"),
        ("reference method (paired differences)", "ref"),
        ("extra knob", "0.6667"),
    ]
