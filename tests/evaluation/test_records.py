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


def _kept(result) -> tuple:
    ex = result.examples
    return ex.indices, ex.inputs, ex.boxes, result.maps


def _same_kept(a, b) -> None:
    assert a[0] == b[0] and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
    assert list(a[3]) == list(b[3]) and all(torch.equal(a[3][k], b[3][k]) for k in a[3])


def test_kept_examples_survive_a_kill_and_a_resume(tiny_model: nn.Module, tmp_path: Path) -> None:
    """keep_examples=3: the maps are stored before the records, so a killed and resumed run
    keeps the same examples and the records of an uninterrupted one; a run recorded without
    kept examples gets them on resume, without a record written twice."""
    model, data = tiny_model, Boxed(8)
    kw = dict(seeds=(0, 1), batch_size=2, n_steps=8, show_progress=False)
    full = evaluate(model, data, methods(model), out=tmp_path / "full", keep_examples=3, **kw)
    assert full.examples.indices == [0, 1, 2] and full.config["keep_examples"] == 3
    assert sorted(p.name for p in (tmp_path / "full" / "examples").iterdir()) == [
        "block-000000000.pt", "block-000000002.pt",
    ]  # fmt: skip
    assert torch.equal(full.examples.inputs, data.x[:3])
    assert torch.equal(full.maps["pixels"], data.x[:3])  # the method's own maps, first seed
    assert full.examples.boxes.tolist() == [[1.0, 2.0, 5.0, 7.0]] * 3
    plain = evaluate(model, data, methods(model), out=tmp_path / "plain", **kw)
    assert plain.examples is None and not (tmp_path / "plain" / "examples").exists()
    assert strip(read_records(tmp_path / "plain")) == strip(read_records(tmp_path / "full"))

    calls = {"n": 0}

    def flaky(x, target, seed):
        calls["n"] += 1
        if calls["n"] == 3:  # second batch
            raise KeyboardInterrupt
        return torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))

    killed = tmp_path / "killed"
    m = {**methods(model), "noise": flaky}
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, data, m, out=killed, keep_examples=3, **kw)
    resumed = evaluate(model, data, methods(model), out=killed, keep_examples=3, **kw)
    assert strip(read_records(killed)) == strip(read_records(tmp_path / "full"))
    _same_kept(_kept(resumed), _kept(full))

    # the run without kept examples, resumed with them: maps computed, no record added
    path = next((tmp_path / "plain").glob("records-rank*.jsonl"))
    before = path.read_text()
    again = evaluate(model, data, methods(model), out=tmp_path / "plain", keep_examples=3, **kw)
    assert path.read_text() == before
    _same_kept(_kept(again), _kept(full))
    # a fresh run in the folder starts without the old examples
    evaluate(model, data, methods(model), out=tmp_path / "plain", resume=False, **kw)
    assert not list((tmp_path / "plain" / "examples").iterdir())


def test_kept_examples_in_memory(tiny_model: nn.Module) -> None:
    data = Boxed(5)
    pixels = {"pixels": lambda x, t, s: x.clone()}
    result = evaluate(tiny_model, data, pixels, batch_size=2, n_steps=4, keep_examples=10,
                      indices=[4, 3, 1], show_progress=False)  # fmt: skip
    assert result.examples.indices == [4, 3, 1]  # evaluation order, as many as there are
    assert torch.equal(result.maps["pixels"], data.x[[4, 3, 1]])
    assert result.config["model"].startswith("Sequential (") and result.config["n_examples"] == 3
    with pytest.raises(ValueError, match="keep_examples"):
        evaluate(tiny_model, data, {"p": lambda x, t, s: x}, keep_examples=-1, show_progress=False)
