""":func:`captum_perturbmask.evaluation.evaluate`: records, metrics, references, devices, bad
items and arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from captum_perturbmask import PerturbMask, evaluate
from captum_perturbmask.evaluation.scoring import CURVE_GRID
from captum_perturbmask.metrics import insertion_deletion, road

from .conftest import Boxed, methods, strip


def test_records_and_summary_in_memory(tiny_model: nn.Module) -> None:
    model = tiny_model
    res = evaluate(model, Boxed(6), methods(model), seeds=(0, 1), batch_size=4, n_steps=8,
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
    assert res["pixels"]["runs"] == 1 and res["noise"]["runs"] == 2
    assert res.reference_method == "PerturbMask"
    assert {p["method"] for p in res.paired} == {"noise", "pixels"}
    text = res.to_markdown()
    assert "PerturbMask" in text and "Paired differences" in text


def test_records_match_the_metric_functions(tiny_model: nn.Module) -> None:
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 0])
    res = evaluate(tiny_model, TensorDataset(x, y), {"pixels": lambda v, t, s: v.clone()},
                   batch_size=4, n_steps=8, show_progress=False)  # fmt: skip
    expected = insertion_deletion(tiny_model, x, x, y, n_steps=8)
    got = sorted((r for r in res.records() if r["kind"] == "run"), key=lambda r: r["index"])
    for key in ("insertion", "deletion"):
        torch.testing.assert_close(torch.tensor([r[key] for r in got]).float(),
                                   getattr(expected, key), rtol=0, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("kind", ["number", "tensor", "mean"])
def test_reference_replaces_the_substrate_and_the_baseline(kind) -> None:
    torch.manual_seed(0)
    tiny_model = nn.Sequential(nn.Flatten(), nn.Linear(192, 3)).eval()  # far from saturation
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 0])
    value = {"number": 0.5, "tensor": torch.tensor([0.1, 0.5, 0.9])[:, None, None],
             "mean": x.double().mean(0).float()}[kind]  # fmt: skip
    reference = "mean" if kind == "mean" else value
    res = evaluate(tiny_model, TensorDataset(x, y), {"pixels": lambda v, t, s: v.clone()},
                   batch_size=3, n_steps=8, reference=reference, show_progress=False)  # fmt: skip
    expected = insertion_deletion(tiny_model, x, x, y, n_steps=8, substrate=value, baselines=value)
    default = insertion_deletion(tiny_model, x, x, y, n_steps=8)
    got = sorted((r for r in res.records() if r["kind"] == "run"), key=lambda r: r["index"])
    ins = torch.tensor([r["insertion"] for r in got]).float()
    torch.testing.assert_close(ins, expected.insertion, rtol=0, atol=1e-6)
    assert not torch.allclose(ins, default.insertion, atol=1e-4)


def test_metrics_select_columns_and_road_is_one_entry(tiny_model: nn.Module) -> None:
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    y = torch.tensor([0, 1, 2])
    res = evaluate(tiny_model, TensorDataset(x, y), {"pixels": lambda v, t, s: v.clone()},
                   metrics=("deletion", "road"), show_progress=False)  # fmt: skip
    run = next(r for r in res.records() if r["kind"] == "run")
    assert "insertion" not in run and "curve_deletion" in run and "iou" not in run
    expected = road(tiny_model, x, x, y)
    got = sorted((r for r in res.records() if r["kind"] == "run"), key=lambda r: r["index"])
    for key, values in (("road_morf", expected.morf), ("road_lerf", expected.lerf)):
        torch.testing.assert_close(torch.tensor([r[key] for r in got]).float(), values,
                                   rtol=0, atol=1e-6)  # fmt: skip
    header = res.to_markdown().splitlines()[0]
    assert "ROAD MoRF ↓" in header and "ROAD LeRF ↑" in header and "insertion" not in header


def test_methods_by_registered_name(tiny_model: nn.Module) -> None:
    res = evaluate(tiny_model, Boxed(2), ["RISE", "gradcam"], budget=8, n_steps=4,
                   show_progress=False)  # fmt: skip
    assert [r["method"] for r in res.summary] == ["RISE", "GradCAM"]
    assert res["RISE"]["forwards_per_input"] == pytest.approx(8 + 1)
    with pytest.raises(ValueError, match="not registered"):
        evaluate(tiny_model, Boxed(2), ["nope"], show_progress=False)


def test_device_strings_are_resolved(tiny_model: nn.Module) -> None:
    res = evaluate(tiny_model, Boxed(2), {"p": lambda x, t, s: x.clone()}, device="cpu",
                   n_steps=4, show_progress=False)  # fmt: skip
    assert res["p"]["n"] == 2
    with pytest.raises(ValueError, match="`device`"):
        evaluate(tiny_model, Boxed(2), {"p": lambda x, t, s: x}, device="tpu")


def test_records_do_not_depend_on_the_workers(tiny_model: nn.Module) -> None:
    model = tiny_model
    kw = dict(seeds=(0, 1), batch_size=3, n_steps=8, show_progress=False)
    none = evaluate(model, Boxed(7), methods(model), num_workers=0, **kw)
    two = evaluate(model, Boxed(7), methods(model), num_workers=2, **kw)
    assert strip(none.records()) == strip(two.records())


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
def test_malformed_items_name_the_index(tiny_model: nn.Module, bad, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate(tiny_model, Broken(bad), {"p": lambda x, t, s: x}, batch_size=4,
                 show_progress=False)  # fmt: skip


def test_on_error_skip_records_failures_and_goes_on(tiny_model: nn.Module) -> None:
    def fails(x, target, seed):
        raise RuntimeError("method broke")

    res = evaluate(tiny_model, Broken({"x": 1}), {"ok": lambda x, t, s: x.clone(), "bad": fails},
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
    assert [r["method"] for r in res.summary] == ["ok", "bad"]  # an item failure is no method


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (dict(on_error="ignore"), ValueError),
        (dict(seeds=()), ValueError),
        (dict(seeds=(0, 0)), ValueError),
        (dict(batch_size=0), ValueError),
        (dict(metrics=("auc",)), ValueError),
        (dict(metrics=()), ValueError),
        (dict(reference="median"), ValueError),
        (dict(reference=[0.5]), TypeError),
        (dict(reference=float("nan")), ValueError),
        (dict(out=""), ValueError),
        (dict(indices=[]), ValueError),
        (dict(show_progress="yes"), TypeError),
        (dict(num_workers=-1), ValueError),
        (dict(forward_batch_size=0), ValueError),
    ],
)
def test_bad_arguments(tiny_model: nn.Module, kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        evaluate(tiny_model, Boxed(2), {"p": lambda x, t, s: x}, **kwargs)


def test_not_a_dataset(tiny_model: nn.Module) -> None:
    with pytest.raises(TypeError, match="map-style"):
        evaluate(tiny_model, iter([]), {"p": lambda x, t, s: x})
    with pytest.raises(TypeError, match="methods"):
        evaluate(tiny_model, Boxed(2), {})


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


def test_the_model_comes_back_where_it_was(tiny_model: nn.Module) -> None:
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state = torch.random.get_rng_state()
    evaluate(tiny_model, Boxed(2), methods(tiny_model), n_steps=4, show_progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    assert not tiny_model.training
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k])
