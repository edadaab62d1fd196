""":mod:`captum_perturbmask.evaluation.records`: streaming to disk, a kill and a resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from captum_perturbmask.evaluation import evaluate, read_records
from captum_perturbmask.evaluation.records import (
    append_records,
    completed,
    drop_partial_line,
    records_path,
)

from .conftest import Boxed, methods, strip


def test_streaming_files_and_resume_after_a_kill(tiny_model: nn.Module, tmp_path: Path) -> None:
    """A run killed mid-way (an error in batch 3, a half-written last line) and resumed gives
    the records of an uninterrupted run."""
    model = tiny_model
    data = Boxed(10)
    full = tmp_path / "full"
    evaluate(model, data, methods(model), seeds=(0, 1), batch_size=2, n_steps=8, out=full,
             show_progress=False)  # fmt: skip
    assert (full / "summary.md").exists() and (full / "summary.csv").exists()
    assert (full / "curves.png").exists() and (full / "config.json").exists()

    calls = {"n": 0}

    def flaky(x, target, seed):
        calls["n"] += 1
        if calls["n"] == 5:  # third batch (one call per seed)
            raise KeyboardInterrupt
        return torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))

    killed = tmp_path / "killed"
    m = methods(model)
    m["noise"] = flaky
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, data, m, seeds=(0, 1), batch_size=2, n_steps=8, out=killed,
                 show_progress=False)  # fmt: skip
    path = next(killed.glob("records-rank*.jsonl"))
    written = path.read_text().splitlines()
    assert 0 < len(written) < len(list(read_records(full)))
    with open(path, "a") as fh:
        fh.write('{"kind": "run", "index": 4, "meth')  # a line cut by the kill
    evaluate(model, data, methods(model), seeds=(0, 1), batch_size=2, n_steps=8, out=killed,
             show_progress=False)  # fmt: skip
    assert strip(read_records(killed)) == strip(read_records(full))
    # nothing is recomputed when everything is recorded
    before = path.read_text()
    evaluate(model, data, methods(model), seeds=(0, 1), batch_size=2, n_steps=8, out=killed,
             show_progress=False)  # fmt: skip
    assert path.read_text() == before


def test_resume_refuses_other_settings(tiny_model: nn.Module, tmp_path: Path) -> None:
    data = Boxed(2)
    m = {"pixels": lambda x, t, s: x.clone()}
    evaluate(tiny_model, data, m, n_steps=4, out=tmp_path, show_progress=False)
    with pytest.raises(ValueError, match="n_steps"):
        evaluate(tiny_model, data, m, n_steps=8, out=tmp_path, show_progress=False)
    with pytest.raises(ValueError, match="metrics"):
        evaluate(tiny_model, data, m, n_steps=4, metrics=("insertion",), out=tmp_path,
                 show_progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="reference"):
        evaluate(tiny_model, data, m, n_steps=4, reference=0.5, out=tmp_path,
                 show_progress=False)  # fmt: skip
    evaluate(tiny_model, data, m, n_steps=8, out=tmp_path, resume=False, show_progress=False)


def test_a_cut_line_is_dropped_and_skipped(tmp_path: Path) -> None:
    path = records_path(tmp_path, 3)
    append_records(path, [{"kind": "run", "index": 0}, {"kind": "run", "index": 1}])
    with open(path, "a") as fh:
        fh.write('{"kind": "ru')
    assert [r["index"] for r in read_records(tmp_path)] == [0, 1]
    drop_partial_line(path)
    assert path.read_text().endswith('"index": 1}\n')
    drop_partial_line(path)  # a complete file is left alone
    assert len(path.read_text().splitlines()) == 2


def test_completed_pairs() -> None:
    ok = {"kind": "run", "status": "ok"}
    records = [
        {**ok, "index": 0, "method": "a", "seed": 0},
        {**ok, "index": 0, "method": "a", "seed": 1},
        {**ok, "index": 1, "method": "a", "seed": 0},  # one seed of two
        {**ok, "index": 1, "method": "d", "seed": 0, "deterministic": True},
        {"kind": "run", "status": "error", "index": 2, "method": "a", "seed": 0},
    ]
    assert completed(records, [0, 1]) == {(0, "a"), (1, "d")}
