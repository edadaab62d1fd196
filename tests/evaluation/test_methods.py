""":mod:`captum_perturbmask.evaluation.methods`: the registry, the default sets, one entry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_perturbmask.evaluation import METHODS, Method, compare, default_methods, register_method
from captum_perturbmask.evaluation.methods import as_method, logged


def conv_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 3)).eval()  # fmt: skip


def test_default_sets_and_errors() -> None:
    model, x = conv_model(), torch.rand(2, 3, 16, 16)
    assert list(default_methods(model, x, budget=16)) == [
        "PerturbMask", "RISE", "GradCAM", "LIME", "Occlusion"
    ]  # fmt: skip
    series = nn.Sequential(nn.Flatten(), nn.Linear(120, 2))
    assert list(default_methods(series, torch.rand(2, 2, 60))) == [
        "PerturbMask", "RISE", "LIME", "Occlusion", "FeatureAblation", "IntegratedGradients"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="inputs"):
        default_methods(model, torch.rand(2, 48))  # neither images nor series
    with pytest.raises(ValueError, match="budget"):
        default_methods(model, x, budget=0)
    with pytest.raises(ValueError, match="does not explain series"):
        default_methods(series, torch.rand(2, 2, 60), ["GradCAM"])
    with pytest.raises(ValueError, match="cannot explain this model"):
        default_methods(nn.Sequential(nn.Flatten(), nn.Linear(768, 2)), x, ["GradCAM"])
    with pytest.warns(UserWarning, match="GradCAM left out"):
        names = list(default_methods(nn.Sequential(nn.Flatten(), nn.Linear(768, 2)), x))
    assert "GradCAM" not in names and "KernelShap" in METHODS


def test_every_registered_method_runs_on_images_and_series() -> None:
    image_model = conv_model()
    series_model = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.Flatten(), nn.Linear(90, 2))
    for model, x in ((image_model, torch.rand(2, 3, 16, 16)), (series_model.eval(),
                                                              torch.rand(2, 2, 30))):  # fmt: skip
        kind = "images" if x.ndim == 4 else "series"
        names = [n for n, m in METHODS.items() if kind in m.data]
        for name, fn in default_methods(model, x, names, budget=12).items():
            state = torch.random.get_rng_state()
            out = fn(x, torch.tensor([0, 1]), 3)
            assert torch.equal(state, torch.random.get_rng_state()), name  # global RNG untouched
            assert out.shape[0] == 2 and torch.isfinite(out).all(), name
            if name in ("LIME", "KernelShap", "PerturbMask", "RISE"):
                assert torch.equal(out, fn(x, torch.tensor([0, 1]), 3)), name  # seeded


def test_adding_a_method_is_one_entry() -> None:
    from captum.attr import Saliency

    entry = register_method(Method("Saliency", lambda s: s.captum(Saliency(s.model)), default=()))
    try:
        model, x = conv_model(), torch.rand(2, 3, 8, 8)
        result = compare(model, x, ["PerturbMask", "saliency"], budget=8, seeds=(0,), n_steps=4)
        assert [r["method"] for r in result.summary] == ["PerturbMask", "Saliency"]
        assert result["Saliency"]["forwards_per_input"] == 1
        with pytest.raises(ValueError, match="registered"):
            register_method(Method("saliency", entry.build))
    finally:
        del METHODS["Saliency"]


def test_method_entries_are_checked() -> None:
    with pytest.raises(ValueError, match="data"):
        Method("x", lambda s: None, data=("video",))
    with pytest.raises(ValueError, match="default"):
        Method("x", lambda s: None, data=("images",), default=("series",))
    with pytest.raises(TypeError, match="build"):
        Method("x", 3)


def test_as_method_and_logged() -> None:
    from captum.attr import Saliency

    model, x = conv_model(), torch.rand(1, 3, 8, 8)
    fn = as_method("s", Saliency(model))
    assert fn(x, 0, 0).shape == x.shape
    with pytest.raises(TypeError, match="methods\\['bad'\\]"):
        as_method("bad", 3)
    lines: list[str] = []
    out = logged({"abs": lambda v, t, s: v.abs()}, lines.append)["abs"](x, 0, 7)
    assert torch.equal(out, x.abs()) and lines[0].startswith("  abs         seed 7: 1 maps in")
