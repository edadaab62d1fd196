""":mod:`captum_perturbmask.evaluation.scoring`: the metric registry, settings and one batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_perturbmask.evaluation import METRICS, Column, Metric, compare, register_metric
from captum_perturbmask.evaluation.scoring import (
    ScoreSettings,
    default_metrics,
    fit_to_inputs,
    score_batch,
)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 3)).eval()


def test_default_metrics_and_settings() -> None:
    assert default_metrics() == ("insertion", "deletion", "iou", "pointing")
    assert "road" in METRICS and not METRICS["road"].default
    assert ScoreSettings().metrics == default_metrics()
    for kwargs, error in (
        ({"metrics": ("nope",)}, ValueError),
        ({"metrics": ("iou", "iou")}, ValueError),
        ({"confidence": "softest"}, ValueError),
        ({"box_mode": "mean"}, ValueError),
        ({"reference": "blur"}, ValueError),
        ({"reference": True}, TypeError),
    ):
        with pytest.raises(error):
            ScoreSettings(**kwargs)
    described = ScoreSettings(reference=torch.ones(3, 1, 1)).describe()
    assert described["metrics"] == list(default_metrics())
    assert described["reference"].startswith("tensor(3, 1, 1)")


def test_adding_a_metric_is_one_entry(tmp_path) -> None:
    def energy(b):  # share of the positive saliency in the top 10% of pixels
        flat = b.attributions.clamp_min(0).flatten(1)
        top = flat.topk(max(1, flat.shape[1] // 10), dim=1).values.sum(1)
        return {"energy": top / flat.sum(1).clamp_min(1e-12)}

    register_metric(Metric("energy", (Column("energy", "top-10% energy"),), energy,
                           default=False))  # fmt: skip
    try:
        x = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(0))
        methods = {"pixels": lambda v, t, s: v, "flat": lambda v, t, s: torch.ones_like(v)}
        result = compare(model(), x, methods, seeds=(0,), metrics=("energy", "deletion"),
                         n_steps=4)  # fmt: skip
        assert result["flat"]["energy"] == pytest.approx(4 / 48, rel=1e-5)  # 4 of 48 values
        assert "energy" in next(result.records())
        lines = result.to_markdown().splitlines()
        assert "| top-10% energy ↑ |" in lines[0] and "Δ top-10% energy ↑" in lines[-3]
        with pytest.raises(ValueError, match="registered"):
            register_metric(Metric("energy2", (Column("energy", "again"),), energy))
    finally:
        del METRICS["energy"]


def test_fit_to_inputs() -> None:
    x = torch.rand(2, 3, 8, 8)
    assert fit_to_inputs("m", (torch.rand(2, 1, 4, 4),), x).shape == (2, 1, 8, 8)
    with pytest.raises(TypeError, match="'m' must return a tensor"):
        fit_to_inputs("m", [1.0], x)
    with pytest.raises(ValueError, match="NaN"):
        fit_to_inputs("m", torch.full((2, 1, 8, 8), float("nan")), x)


def test_score_batch_detects_deterministic_methods_and_keeps_maps() -> None:
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    fns = {
        "same": lambda v, t, s: v.clone(),
        "seeded": lambda v, t, s: torch.rand(v.shape, generator=torch.Generator().manual_seed(s)),
    }
    records, maps = score_batch(model(), fns, x, torch.tensor([0, 1]), [4, 5], [0, 1, 2],
                                ScoreSettings(n_steps=4), keep_maps=True)  # fmt: skip
    runs = [r for r in records if r["kind"] == "run"]
    assert sum(r["method"] == "same" for r in runs) == 2 and len(maps["same"]) == 1
    assert sum(r["method"] == "seeded" for r in runs) == 6 and len(maps["seeded"]) == 3
    assert {r["index"] for r in runs} == {4, 5}
    cons = [r for r in records if r["kind"] == "consistency"]
    assert [r["method"] for r in cons] == ["seeded", "seeded"] and cons[0]["seeds"] == [0, 1, 2]
