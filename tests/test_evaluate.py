"""Tests for :mod:`captum_perturbmask.evaluate`: records, resume, sharding, bad items, summary."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from captum_perturbmask import PerturbMask
from captum_perturbmask.evaluate import (
    CURVE_GRID,
    evaluate,
    mean_ci,
    read_records,
    summarize,
)
from captum_perturbmask.metrics import insertion_deletion


def tiny_model() -> nn.Module:
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 3))  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 2)
    return model.eval()


class Boxed(Dataset):
    """(image, target, box) items; target None for odd indices (the model's prediction)."""

    def __init__(self, n: int = 10) -> None:
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(n, 3, 8, 8, generator=g)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int):
        return self.x[i], (i % 3 if i % 2 == 0 else None), torch.tensor([1.0, 2.0, 5.0, 7.0])


def methods(model: nn.Module) -> dict:
    return {
        "PerturbMask": lambda x, target, seed: PerturbMask(model).attribute(
            x, target=target, budget=40, seed=seed
        ),
        "noise": lambda x, target, seed: torch.rand(
            x.shape, generator=torch.Generator().manual_seed(seed)
        ),
        "pixels": lambda x, target, seed: x.clone(),
    }


def _strip(records):
    """Records without wall-clock seconds, in a canonical order."""
    out = []
    for r in records:
        r = dict(r)
        r.pop("seconds", None)
        out.append(json.dumps(r, sort_keys=True))
    return sorted(out)


def test_records_and_summary_in_memory() -> None:
    model = tiny_model()
    data = Boxed(6)
    res = evaluate(model, data, methods(model), seeds=(0, 1), batch_size=4, n_steps=8,
                   show_progress=False)  # fmt: skip
    runs = [r for r in res.records() if r["kind"] == "run"]
    # PerturbMask and noise: 2 seeds x 6; pixels is deterministic: 1 record x 6
    assert len(runs) == 6 * 2 + 6 * 2 + 6
    assert {r["method"] for r in runs if r["deterministic"]} == {"pixels"}
    cons = [r for r in res.records() if r["kind"] == "consistency"]
    assert {r["method"] for r in cons} == {"PerturbMask", "noise"} and len(cons) == 12
    for r in runs:
        assert r["iou"] is not None and r["pointing"] in (0.0, 1.0)
        assert len(r["curve_insertion"]) == len(CURVE_GRID)
        assert r["target"] in (0, 1, 2)
    pm = [r for r in runs if r["method"] == "PerturbMask"]
    assert all(r["forwards"] == pytest.approx(40 + 1) for r in pm)
    assert res["pixels"]["forwards_per_input"] == 0
    assert res.reference == "PerturbMask"
    assert {p["method"] for p in res.paired} == {"noise", "pixels"}
    text = res.to_markdown()
    assert "PerturbMask" in text and "Paired differences" in text


def test_records_match_the_metric_functions() -> None:
    model = tiny_model()
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 0])
    res = evaluate(model, TensorDataset(x, y), {"pixels": lambda v, t, s: v.clone()},
                   batch_size=4, n_steps=8, show_progress=False)  # fmt: skip
    expected = insertion_deletion(model, x, x, y, n_steps=8)
    got = sorted((r for r in res.records() if r["kind"] == "run"), key=lambda r: r["index"])
    torch.testing.assert_close(
        torch.tensor([r["insertion"] for r in got]).float(), expected.insertion, rtol=0,
        atol=1e-6,
    )  # fmt: skip
    torch.testing.assert_close(
        torch.tensor([r["deletion"] for r in got]).float(), expected.deletion, rtol=0,
        atol=1e-6,
    )  # fmt: skip


def test_summary_intervals_match_a_reference_computation() -> None:
    import numpy as np

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
    res = summarize(records, reference="ref")
    per_example = np.array([np.mean(vs) for vs in values.values()])
    mean = per_example.mean()
    half = 1.96 * per_example.std(ddof=1) / math.sqrt(len(per_example))
    row = res["a"]
    assert row["insertion"] == pytest.approx(mean) and row["insertion_ci"] == pytest.approx(half)
    diffs = per_example - np.array(list(ref_values.values()))
    paired = next(p for p in res.paired if p["metric"] == "insertion")
    assert paired["diff"] == pytest.approx(diffs.mean())
    assert paired["ci"] == pytest.approx(1.96 * diffs.std(ddof=1) / math.sqrt(4))
    assert mean_ci([])[2] == 0 and math.isnan(mean_ci([1.0])[1])


def test_streaming_files_and_resume_after_a_kill(tmp_path: Path) -> None:
    """A run killed mid-way (an error in batch 3, a half-written last line) and resumed gives
    the records of an uninterrupted run."""
    model = tiny_model()
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
    assert _strip(read_records(killed)) == _strip(read_records(full))
    # nothing is recomputed when everything is recorded
    before = path.read_text()
    evaluate(model, data, methods(model), seeds=(0, 1), batch_size=2, n_steps=8, out=killed,
             show_progress=False)  # fmt: skip
    assert path.read_text() == before


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    model = tiny_model()
    data = Boxed(2)
    m = {"pixels": lambda x, t, s: x.clone()}
    evaluate(model, data, m, n_steps=4, out=tmp_path, show_progress=False)
    with pytest.raises(ValueError, match="n_steps"):
        evaluate(model, data, m, n_steps=8, out=tmp_path, show_progress=False)
    evaluate(model, data, m, n_steps=8, out=tmp_path, resume=False, show_progress=False)


class Broken(Dataset):
    def __init__(self, bad):
        self.bad = bad

    def __len__(self):
        return 4

    def __getitem__(self, i):
        if i == 2:
            return self.bad
        return torch.rand(3, 8, 8), 0


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"image": 1}, "item 2 must be \\(input, target\\)"),
        ((torch.rand(3, 8, 8),), "item 2 must be \\(input, target\\)"),
        ((torch.ones(3, 8, 8, dtype=torch.long), 0), "item 2: the input"),
        ((torch.rand(3, 8, 8), 0.5), "item 2: the target"),
        ((torch.rand(3, 8, 8), torch.tensor([0, 1])), "item 2: the target"),
        ((torch.rand(3, 8, 8), 0, [1.0, 2.0]), "item 2: the box"),
        ((torch.rand(3, 9, 9), 0), "item 2: input shape"),
    ],
)
def test_malformed_items_name_the_index(bad, match: str) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match=match):
        evaluate(model, Broken(bad), {"p": lambda x, t, s: x}, batch_size=4, show_progress=False)


def test_on_error_skip_records_failures_and_goes_on() -> None:
    model = tiny_model()

    def fails(x, target, seed):
        raise RuntimeError("method broke")

    res = evaluate(model, Broken({"x": 1}), {"ok": lambda x, t, s: x.clone(), "bad": fails},
                   batch_size=2, on_error="skip", show_progress=False)  # fmt: skip
    recs = list(res.records())
    bad_item = [r for r in recs if r["index"] == 2]
    assert bad_item and all(r["status"] == "error" for r in bad_item)
    assert "item 2" in bad_item[0]["error"]
    failed = [r for r in recs if r["method"] == "bad"]
    assert len(failed) == 3 and all("method broke" in r["error"] for r in failed)
    ok = [r for r in recs if r["method"] == "ok" and r["status"] == "ok"]
    assert sorted(r["index"] for r in ok) == [0, 1, 3]
    assert res["bad"]["errors"] == 3 and res["ok"]["n"] == 3


def test_bad_arguments() -> None:
    model = tiny_model()
    data = Boxed(2)
    for kwargs, error in (
        (dict(on_error="ignore"), ValueError),
        (dict(seeds=()), ValueError),
        (dict(seeds=(0, 0)), ValueError),
        (dict(batch_size=0), ValueError),
        (dict(metrics=("auc",)), ValueError),
        (dict(out=""), ValueError),
        (dict(indices=[]), ValueError),
        (dict(show_progress="yes"), TypeError),
    ):
        with pytest.raises(error):
            evaluate(model, data, {"p": lambda x, t, s: x}, **kwargs)
    with pytest.raises(TypeError, match="map-style"):
        evaluate(model, iter([]), {"p": lambda x, t, s: x})


def test_series_dataset_with_spans_and_default_targets() -> None:
    g = torch.Generator().manual_seed(0)
    series = torch.randn(6, 2, 40, generator=g)
    model = nn.Sequential(nn.Flatten(), nn.Linear(80, 2)).eval()
    spans = torch.tensor([[5.0, 15.0]]).expand(6, 2)

    class Series(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return series[i], None, spans[i]

    res = evaluate(model, Series(), {"PerturbMask": PerturbMask(model)}, batch_size=3,
                   show_progress=False)  # fmt: skip
    runs = [r for r in res.records() if r["kind"] == "run"]
    assert len(runs) == 6 and all(r["iou"] is not None for r in runs)
    assert all(0 <= r["iou"] <= 1 and r["pointing"] in (0.0, 1.0) for r in runs)


_WORKER = """
import json, sys, torch
from torch.utils.data import TensorDataset
from captum_perturbmask import PerturbMask, RISE
from captum_perturbmask.evaluate import evaluate
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                            torch.nn.Linear(16, 3)).eval()
with torch.no_grad():
    for p in model.parameters():
        p.copy_(torch.randn(p.shape, generator=g))
data = TensorDataset(torch.rand(10, 3, 8, 8, generator=g), torch.randint(0, 3, (10,), generator=g))
methods = {"PerturbMask": PerturbMask(model), "RISE": RISE(model)}
evaluate(model, data, methods, budget=40, seeds=(0, 1), batch_size=2, n_steps=8,
         out=sys.argv[1], show_progress=False)
"""


@pytest.mark.slow
def test_two_torchrun_ranks_write_the_same_records_and_summary(tmp_path: Path) -> None:
    """One process and a 2-process gloo run (torchrun) give identical records and summary."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(_WORKER))
    for budget_line in ("budget=40",):
        assert budget_line in _WORKER
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, str(script), str(one)], check=True, env=env, timeout=300)
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(two)],
        check=True, env=env, timeout=300, capture_output=True,
    )  # fmt: skip
    assert len(list(two.glob("records-rank*.jsonl"))) == 2
    ranks = [{json.loads(line)["index"] for line in p.read_text().splitlines()}
             for p in sorted(two.glob("records-rank*.jsonl"))]  # fmt: skip
    assert ranks[0].isdisjoint(ranks[1]) and ranks[0] | ranks[1] == set(range(10))
    assert _strip(read_records(one)) == _strip(read_records(two))

    def table(folder: Path) -> list[str]:  # the summary without the seconds column
        lines = (folder / "summary.md").read_text().splitlines()
        return [line.rsplit("|", 2)[0] if line.startswith("| ") else line for line in lines]

    assert table(one) == table(two)
