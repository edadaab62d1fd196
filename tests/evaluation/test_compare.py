""":func:`captum_perturbmask.evaluation.compare` on a tiny conv model and 16 x 16 images."""

import csv

import pytest
import torch
from torch import nn

from captum_perturbmask import compare, evaluate
from captum_perturbmask.evaluation import EvaluationResult
from captum_perturbmask.metrics import deletion_auc, insertion_auc


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 3),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4)
    return model.eval()


@pytest.fixture
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    boxes = torch.tensor([[2, 2, 10, 10], [4, 0, 16, 8]])
    return tiny_model(), x, boxes


def custom_methods(model: nn.Module) -> dict:
    def gradient(inputs: torch.Tensor, target, seed: int) -> torch.Tensor:
        x = inputs.clone().requires_grad_(True)
        out = model(x)
        out.gather(1, torch.as_tensor(target).reshape(-1, 1)).sum().backward()
        return x.grad.abs()

    def noisy(inputs: torch.Tensor, target, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _ in range(5):  # 5 forward passes per call
                model(inputs)
        return torch.rand(inputs.shape[0], 1, 16, 16, generator=g)

    return {"gradient": gradient, "noisy": noisy}


def test_custom_methods_table(setup, tmp_path) -> None:
    model, x, boxes = setup
    target = torch.tensor([0, 2])
    result = compare(model, x, custom_methods(model), target=target, boxes=boxes,
                     seeds=(0, 1, 2), n_steps=8)  # fmt: skip
    assert isinstance(result, EvaluationResult)
    assert [r["method"] for r in result.summary] == ["gradient", "noisy"]
    grad, noisy = result["gradient"], result["noisy"]
    # deterministic: stops after 2 identical runs, no consistency; stochastic: all seeds
    assert grad["runs"] == 1 and not grad["stochastic"] and grad["spearman"] is None
    assert noisy["runs"] == 3 and noisy["stochastic"]
    assert -1 <= noisy["spearman"] <= 1 and 0 <= noisy["top_k_iou"] <= 1
    # forward passes are counted per input (the gradient method: 1 forward of the batch)
    assert grad["forwards_per_input"] == pytest.approx(1.0)
    assert noisy["forwards_per_input"] == pytest.approx(5.0)
    for row in result.summary:
        assert 0 <= row["iou"] <= 1 and 0 <= row["pointing"] <= 1
        assert row["seconds_per_input"] >= 0
    # the metrics are those of the metric functions on the first run
    attr = result.maps["gradient"]
    expected = insertion_auc(model, x, attr, target, n_steps=8).mean().item()
    assert grad["insertion"] == pytest.approx(expected, rel=1e-5)
    expected = deletion_auc(model, x, attr, target, n_steps=8).mean().item()
    assert grad["deletion"] == pytest.approx(expected, rel=1e-5)

    lines = result.to_markdown().splitlines()
    assert lines[0].startswith("| method | n | insertion ↑ | deletion ↓ | IoU ↑ | pointing ↑")
    assert "top-5% IoU ↑" in lines[0] and "Paired differences, method minus gradient" in lines[5]
    path = tmp_path / "table.csv"
    result.to_csv(path)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == ["gradient", "noisy"]
    assert rows[0]["spearman"] == "" and float(rows[1]["forwards_per_input"]) == 5.0


def test_compare_is_evaluate_on_one_batch(setup) -> None:
    """The same records as evaluate on the same items (example i is dataset index i)."""
    from torch.utils.data import TensorDataset

    model, x, _ = setup
    y = torch.tensor([1, 2])
    kw = dict(seeds=(0, 1), n_steps=4, budget=8)
    one = compare(model, x, ["PerturbMask", "Occlusion"], target=y, **kw)
    ds = evaluate(model, TensorDataset(x, y), ["PerturbMask", "Occlusion"], batch_size=2,
                  show_progress=False, **kw)  # fmt: skip
    strip = lambda recs: sorted(  # noqa: E731
        str(sorted((k, v) for k, v in r.items() if k != "seconds")) for r in recs
    )
    assert strip(one.records()) == strip(ds.records())
    chunked = compare(model, x, ["PerturbMask"], target=y, batch_size=1, **kw)
    assert chunked.maps["PerturbMask"].shape == x.shape


def test_no_boxes_drops_localisation_columns(setup) -> None:
    model, x, _ = setup
    result = compare(model, x, custom_methods(model), seeds=(0,), n_steps=4)
    header = result.to_markdown().splitlines()[0]
    assert "IoU ↑ |" not in header.replace("top-5% IoU ↑", "") and "pointing" not in header
    assert result["noisy"]["spearman"] is None  # a single seed: no consistency


def test_captum_attribution_objects_and_layer_upsampling(setup) -> None:
    from captum.attr import LayerGradCam, Saliency

    model, x, boxes = setup
    methods = {"saliency": Saliency(model), "layer": LayerGradCam(model, model[2])}
    result = compare(model, x, methods, target=1, boxes=boxes, seeds=(0, 1), n_steps=4)
    assert result.maps["layer"].shape == (2, 1, 16, 16)
    assert result.maps["saliency"].shape == (2, 3, 16, 16)


def test_time_series_custom_methods() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.Flatten(), nn.Linear(30, 4)).eval()
    x = torch.rand(3, 2, 10)
    methods = {"abs": lambda inp, t, s: inp.abs(), "rand": lambda inp, t, s: torch.rand(3, 10)}
    result = compare(model, x, methods, seeds=(0, 1), n_steps=5)
    assert result["rand"]["stochastic"] and not result["abs"]["stochastic"]


def test_reference_mean_of_the_inputs(setup) -> None:
    model, x, _ = setup
    pixels = {"pixels": lambda inp, t, s: inp}
    mean = compare(model, x, pixels, target=0, seeds=(0,), n_steps=4, reference="mean")
    explicit = compare(model, x, pixels, target=0, seeds=(0,), n_steps=4,
                       reference=x.double().mean(0).float())  # fmt: skip
    assert mean["pixels"]["insertion"] == pytest.approx(explicit["pixels"]["insertion"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"seeds": ()}, ValueError, "seeds"),
        ({"seeds": (0.5,)}, ValueError, "seeds"),
        ({"methods": {"bad": 3}}, TypeError, "bad"),
        ({"methods": {"bad": lambda i, t, s: [1.0]}}, TypeError, "bad"),
        ({"methods": {}}, TypeError, "methods"),
        ({"inputs": [1.0]}, TypeError, "inputs"),
        ({"boxes": torch.tensor([[0, 0, 20, 4], [0, 0, 2, 2]])}, ValueError, "inside"),
        ({"boxes": torch.tensor([[0, 0, 2, 2]])}, ValueError, "boxes"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"device": "nowhere"}, ValueError, "device"),
    ],
)
def test_bad_arguments(setup, kwargs: dict, error: type, match: str) -> None:
    model, x, _ = setup
    args = {"methods": {"ok": lambda i, t, s: i}, "inputs": x, "n_steps": 2}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        compare(model, **args)


def test_default_methods_run_with_tiny_budget(setup) -> None:
    model, x, boxes = setup
    result = compare(model, x, boxes=boxes, budget=16, seeds=(0, 1), n_steps=4,
                     forward_batch_size=32)  # fmt: skip
    assert [r["method"] for r in result.summary] == [
        "PerturbMask", "RISE", "GradCAM", "LIME", "Occlusion"
    ]  # fmt: skip
    assert result["PerturbMask"]["stochastic"] and result["RISE"]["stochastic"]
    assert not result["GradCAM"]["stochastic"] and not result["Occlusion"]["stochastic"]
    # budget 16: PerturbMask and RISE 16 masks (+ a clean pass each)
    assert 16 <= result["PerturbMask"]["forwards_per_input"] <= 18
    assert 16 <= result["RISE"]["forwards_per_input"] <= 18
    assert result["GradCAM"]["forwards_per_input"] == 1
    for row in result.summary:
        assert result.maps[row["method"]].shape[-2:] == (16, 16)


def test_default_methods_on_series_mask_time_segments() -> None:
    model = nn.Sequential(
        nn.Conv1d(2, 4, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        nn.Linear(4, 2),
    ).eval()  # fmt: skip
    x = torch.randn(3, 2, 60, generator=torch.Generator().manual_seed(0))
    result = compare(model, x, budget=40, seeds=(0, 1), boxes=torch.tensor([[5.0, 20.0]] * 3))
    assert result["FeatureAblation"]["forwards_per_input"] == 8 + 1  # 8 segments + clean pass
    assert result["Occlusion"]["forwards_per_input"] <= 60
    for name, attr in result.maps.items():
        assert attr.shape == x.shape, name
        # masking along time: every channel of a step shares the value (not IG, a gradient)
        if name not in ("IntegratedGradients",):
            torch.testing.assert_close(attr[:, 0], attr[:, 1])
    assert all(0 <= r["iou"] <= 1 for r in result.summary)
