"""PerturbMask and RISE against the test config that ships inside Captum.

For every case of ``captum.testing.attr.helpers.test_config`` that Captum runs its perturbation
methods on (FeatureAblation / Lime cases, no NoiseTunnel) — ``(batch, classes)`` outputs and
N-d outputs with tuple targets alike — this checks what Captum's generic target tests check: a
batched call equals the per-example calls for every target form; and what its hook-removal tests
check: an invalid target raises Captum's own ``AssertionError`` and leaves no hook behind.
"""

from __future__ import annotations

import copy

import pytest
import torch
from captum.attr import FeatureAblation, Lime
from captum.testing.attr.helpers.test_config import config
from captum.testing.helpers.basic_models import BasicModel_ConvNet

from captum_perturbmask import RISE, PerturbMask

from .planted import PlantedImageModel

KW = {PerturbMask: dict(budget=16, seed=0), RISE: dict(budget=16, seed=0)}
CONFIG = {PerturbMask: dict(design="chain", n_iter=4), RISE: {}}


def _cases():
    for case in config:
        if case.get("noise_tunnel") or case.get("baseline_distr"):
            continue
        if not ({FeatureAblation, Lime} & set(case["algorithms"])):
            continue
        yield pytest.param(case, id=case["name"])


def _args(case):
    args = copy.deepcopy(case["attribute_args"])
    args.pop("perturbations_per_eval", None)
    return args


def _slice(value, i, batch):
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == batch:
        return value[i : i + 1]
    if isinstance(value, list) and len(value) == batch:
        return [value[i]]
    if isinstance(value, tuple):
        return tuple(_slice(v, i, batch) for v in value)
    return value


@pytest.mark.parametrize("method", [PerturbMask, RISE])
@pytest.mark.parametrize("case", list(_cases()))
def test_captum_config_batched_equals_per_example(case, method) -> None:
    model = case["model"]
    args = _args(case)
    inputs = args["inputs"]
    batch = (inputs[0] if isinstance(inputs, tuple) else inputs).shape[0]
    explainer = method(model, **CONFIG[method])
    full = explainer.attribute(**args, **KW[method])
    full_t = full if isinstance(full, tuple) else (full,)
    inputs_t = inputs if isinstance(inputs, tuple) else (inputs,)
    for f, x in zip(full_t, inputs_t, strict=True):
        assert f.shape == x.shape and f.dtype == x.dtype
        assert torch.isfinite(f).all()
    for i in range(batch):
        single = explainer.attribute(
            **{k: _slice(v, i, batch) for k, v in args.items()}, **KW[method]
        )
        single_t = single if isinstance(single, tuple) else (single,)
        for f, s in zip(full_t, single_t, strict=True):
            assert f.shape[1:] == s.shape[1:]
            torch.testing.assert_close(s[0], f[i], rtol=1e-4, atol=1e-5)


def test_config_covers_nd_outputs_with_tuple_targets() -> None:
    """The N-d output cases (e.g. (4, 2, 2, 2) with tuple targets) are among those checked."""
    names = [c.values[0]["name"] for c in _cases()]
    assert "basic_multiple_tuple_target" in names
    assert "basic_multiple_tuple_target_with_baselines" in names


@pytest.mark.parametrize("method", [PerturbMask, RISE])
def test_hook_removal_on_invalid_target(method) -> None:
    model = BasicModel_ConvNet()
    x = torch.rand(2, 1, 10, 10)
    hooks_before = {n: dict(m._forward_hooks) for n, m in model.named_modules()}
    pre_before = {n: dict(m._forward_pre_hooks) for n, m in model.named_modules()}
    with pytest.raises(AssertionError):
        method(model, **CONFIG[method]).attribute(x, target=(0, 0, 0), **KW[method])
    assert hooks_before == {n: dict(m._forward_hooks) for n, m in model.named_modules()}
    assert pre_before == {n: dict(m._forward_pre_hooks) for n, m in model.named_modules()}


def test_rise_batched_equals_per_example_every_target_form() -> None:
    model = PlantedImageModel((3, 4, 6, 6))
    x = model.evidence_image(3, 16, torch.Generator().manual_seed(0))
    rise = RISE(model)
    for target in (0, torch.tensor(1), torch.tensor([0, 1, 2]), [2, 0, 1]):
        full = rise.attribute(x, target=target, budget=64, seed=1)
        for i in range(3):
            t = (
                target
                if not isinstance(target, (list, torch.Tensor))
                or (isinstance(target, torch.Tensor) and target.numel() == 1)
                else target[i : i + 1]
            )
            single = rise.attribute(x[i : i + 1], target=t, budget=64, seed=1)
            torch.testing.assert_close(single[0], full[i], rtol=1e-5, atol=1e-6)
