""":mod:`captum_perturbmask.evaluation.distributed`: one process, devices, and two gloo ranks
that write the records of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from captum_perturbmask.evaluation import read_records
from captum_perturbmask.evaluation.distributed import Distributed, launched

from .conftest import strip


def test_one_process_and_its_device(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    d = Distributed()
    assert (d.rank, d.world, d.active) == (0, 1, False) and not launched()
    assert d.device(None, None) == torch.device("cpu")
    assert d.device("cpu", torch.device("cuda", 3)) == torch.device("cpu")
    assert d.broadcast({"a": 1}) == {"a": 1} and d.gather([1, 2]) == [1, 2]
    with pytest.raises(ValueError, match="`device`"):
        d.device("tpu", None)
    d.close()


def test_one_rank_under_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    """``torchrun --nproc_per_node 1``: no process group, and CUDA when there is one."""
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    d = Distributed()
    assert launched() and not d.active
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert d.device(None, torch.device("cpu")) == expected


_WORKER = """
import sys, torch
from torch.utils.data import TensorDataset
from captum_perturbmask import PerturbMask, RISE, evaluate
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
    assert strip(read_records(one)) == strip(read_records(two))

    def table(folder: Path) -> list[str]:  # the summary without the seconds column
        lines = (folder / "summary.md").read_text().splitlines()
        return [line.rsplit("|", 2)[0] if line.startswith("| ") else line for line in lines]

    assert table(one) == table(two)
