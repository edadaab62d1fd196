"""Property-based tests: every call ends in a correct result or a clear error.

Over input shapes (1-D to 5-D), dtypes, batch sizes, target forms, baselines, feature masks,
knob edges and misbehaving models, a call of :class:`PerturbMask` or :class:`RISE` either
returns finite attributions of exactly the input's shape and dtype, or raises a ``TypeError`` /
``ValueError`` whose message names the offending argument (Captum's own ``AssertionError`` /
``IndexError`` for targets). Models, the global RNGs and the inputs come back untouched.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

from captum_perturbmask import RISE, PerturbMask

ARGUMENT_NAMES = (
    "inputs", "baselines", "target", "feature_mask", "n_iter", "n_chains", "grid_size",
    "keep_prob", "eta", "budget", "forward_func", "fine_grid_size", "seed", "design",
    "features", "n1", "n2", "random_shift", "show_progress", "perturbations_per_eval",
)  # fmt: skip
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.bool,
          torch.complex64]  # fmt: skip


class Scorer(nn.Module):
    """3 class logits from the mean of the first features; misbehaves on request."""

    def __init__(self, behaviour: str) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 3)
        self.behaviour = behaviour
        self.calls = 0

    def forward(self, x: torch.Tensor) -> object:
        self.calls += 1
        out = self.lin(x.reshape(x.shape[0], -1).float().mean(1, keepdim=True))
        if self.behaviour == "nan":
            return out * float("nan")
        if self.behaviour == "inf":
            return out + float("inf")
        if self.behaviour == "tuple":
            return (out,)
        if self.behaviour == "raise" and self.calls > 1:
            raise RuntimeError("model failure mid-run")
        if self.behaviour == "nan-when-masked" and self.calls > 1:
            return out * float("nan")
        return out


@st.composite
def calls(draw: st.DrawFn) -> dict:
    ndim = draw(st.sampled_from([1, 2, 3, 3, 4, 4, 5]))
    batch = draw(st.sampled_from([0, 1, 7, 7]))
    shape = (batch, *draw(st.lists(st.integers(1, 5), min_size=ndim - 1, max_size=ndim - 1)))
    dtype = draw(st.sampled_from(DTYPES + [torch.float32] * 4))
    n_features = math.prod(shape[1:])
    target = draw(
        st.sampled_from(
            [None, None, 0, 2, 5, (1,), "tensor", "list", "bad-list", 1.5, "float-tensor"]
        )
    )
    baselines = draw(
        st.sampled_from([None, None, 0.5, float("nan"), "tensor", "blur", True, "row"])
    )
    feature_mask = draw(
        st.sampled_from([None, None, None, "random", "one-group", "negative", "float"])
    )
    knobs: dict = {}
    method = draw(st.sampled_from(["PerturbMask", "RISE"]))
    if method == "PerturbMask":
        knobs["design"] = draw(st.sampled_from(["random", "random", "chain", "sequential"]))
        if knobs["design"] == "chain":
            knobs["n_iter"] = draw(st.sampled_from([1, 2, 2, 0]))
        knobs["budget"] = draw(st.sampled_from([1, 3, 6, 0]))
        knobs["keep_prob"] = draw(st.sampled_from([0.5, 0.5, 0.0, 1.0, 1.5]))
        knobs["eta"] = draw(st.sampled_from([None, None, 0.0, 3.0, float("inf"), float("nan")]))
    else:
        knobs["budget"] = draw(st.sampled_from([1, 5, 5, 0]))
        knobs["keep_prob"] = draw(st.sampled_from([0.5, 0.5, 1.0, 0.0]))
    knobs["grid_size"] = draw(st.sampled_from([None, None, None, 1, 2, 50, 2.0, True]))
    behaviour = draw(
        st.sampled_from(["ok"] * 6 + ["nan", "inf", "tuple", "raise", "nan-when-masked"])
    )
    return dict(
        shape=shape, dtype=dtype, n_features=n_features, target=target, baselines=baselines,
        feature_mask=feature_mask, knobs=knobs, method=method, behaviour=behaviour,
        seed=draw(st.integers(0, 3)),
    )  # fmt: skip


def _build(call: dict) -> tuple:
    g = torch.Generator().manual_seed(call["seed"])
    shape, dtype = call["shape"], call["dtype"]
    if dtype.is_complex:
        x = torch.randn(shape, generator=g, dtype=torch.float32).to(dtype)
    elif dtype == torch.bool:
        x = torch.rand(shape, generator=g) > 0.5
    elif dtype == torch.int64:
        x = torch.randint(0, 5, shape, generator=g)
    else:
        x = torch.rand(shape, generator=g).to(dtype)
    batch = shape[0]
    target = call["target"]
    if target == "tensor":
        target = torch.randint(0, 3, (batch,), generator=g)
    elif target == "list":
        target = [int(v) for v in torch.randint(0, 3, (batch,), generator=g)]
    elif target == "bad-list":
        target = [0] * (batch + 1)
    elif target == "float-tensor":
        target = torch.zeros(batch)
    baselines = call["baselines"]
    if baselines == "tensor":
        baselines = torch.rand(shape[1:], generator=g).to(dtype) if shape[1:] else 0.0
    elif baselines == "row":
        baselines = torch.rand(1, generator=g)  # broadcasts only when the last dim is 1
    fm = call["feature_mask"]
    if fm is not None and len(shape) < 2:
        fm = None
    if fm == "random":
        fm = torch.randint(0, 4, (1, *shape[1:]), generator=g) * 7 + 3  # non-contiguous ids
    elif fm == "one-group":
        fm = torch.zeros((1, *shape[1:]), dtype=torch.long)
    elif fm == "negative":
        fm = torch.randint(-3, 3, (1, *shape[1:]), generator=g)
    elif fm == "float":
        fm = torch.zeros((1, *shape[1:]))
    return x, target, baselines, fm


def _snapshot(model: nn.Module) -> tuple:
    return (
        model.training,
        [(p.requires_grad, None if p.grad is None else p.grad.clone(), p.detach().clone())
         for p in model.parameters()],
        dict(model._forward_hooks), dict(model._forward_pre_hooks),
    )  # fmt: skip


def _same(a: tuple, b: tuple) -> bool:
    if a[0] != b[0] or a[2] != b[2] or a[3] != b[3]:
        return False
    for (ra, ga, pa), (rb, gb, pb) in zip(a[1], b[1], strict=True):
        if ra != rb or (ga is None) != (gb is None) or not torch.equal(pa, pb):
            return False
    return True


#: configuration knobs (the constructor's); the rest are attribute's keywords
CONFIG = ("design", "n_iter", "keep_prob", "eta", "n1", "n2", "grid_size")


def _explain(cls: type, model: nn.Module, x: torch.Tensor, call: dict, **kwargs: object) -> object:
    config = {k: v for k, v in call["knobs"].items() if k in CONFIG}
    rest = {k: v for k, v in call["knobs"].items() if k not in CONFIG}
    return cls(model, **config).attribute(x, seed=0, **kwargs, **rest)


def _run(call: dict) -> None:
    x, target, baselines, fm = _build(call)
    model = Scorer(call["behaviour"]).eval()
    for p in model.parameters():
        p.requires_grad_(True)
    before = _snapshot(model)
    x_before = x.clone()
    rng = (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    cls = PerturbMask if call["method"] == "PerturbMask" else RISE
    try:
        out = _explain(cls, model, x, call, baselines=baselines, target=target, feature_mask=fm)
    except (TypeError, ValueError) as err:
        message = str(err)
        event(f"{type(err).__name__}: {message[:40]}")
        assert any(name in message for name in ARGUMENT_NAMES), message
        if call["behaviour"] == "ok":  # a well-behaved model is never blamed
            assert "forward_func" not in message or "must return" in message, message
    except (AssertionError, IndexError) as err:  # Captum's target errors
        assert call["target"] not in (None, 0, 2) or "target" in str(err).lower(), err
        assert (
            call["target"] in (5, (1,), "bad-list")
            or call["shape"][0] == 0
            or len(call["shape"]) < 2
        ), err
    except RuntimeError as err:
        assert call["behaviour"] == "raise", err
    else:
        event("result")
        assert call["behaviour"] in ("ok", "raise"), "a misbehaving model must not pass"
        assert out.shape == x.shape and out.dtype == x.dtype
        assert bool(torch.isfinite(out.float()).all())
    assert _same(before, _snapshot(model)), "the model changed"
    assert torch.equal(x, x_before), "the inputs changed"
    assert torch.equal(torch.random.get_rng_state(), rng[0])
    assert np.array_equal(np.random.get_state()[1], rng[1])
    assert random.getstate() == rng[2]


@SETTINGS
@given(calls())
def test_every_call_ends_in_a_result_or_a_clear_error(call: dict) -> None:
    _run(call)


@st.composite
def valid_calls(draw: st.DrawFn) -> dict:
    """Calls that must succeed: the valid edges of every argument."""
    call = draw(calls())
    ndim = draw(st.integers(2, 5))
    call["shape"] = (
        draw(st.sampled_from([1, 7])),
        *draw(st.lists(st.integers(1, 5), min_size=ndim - 1, max_size=ndim - 1)),
    )
    call["dtype"] = draw(st.sampled_from([torch.float16, torch.bfloat16, torch.float32,
                                          torch.float64]))  # fmt: skip
    call["target"] = draw(st.sampled_from([None, 0, 2, "tensor", "list", -1]))
    call["baselines"] = draw(st.sampled_from([None, 0.5, -3, "tensor"]))
    call["feature_mask"] = draw(st.sampled_from([None, "random", "one-group", "negative"]))
    call["behaviour"] = "ok"
    if call["method"] == "PerturbMask":
        call["knobs"] = dict(
            design="chain",
            n_iter=draw(st.sampled_from([1, 2])),
            budget=draw(st.sampled_from([1, 3, 6])),
            keep_prob=draw(st.sampled_from([0.0, 0.5, 1.0])),
            eta=draw(st.sampled_from([None, 0.0, 3.0])),
            n1=draw(st.sampled_from([0.0, 1.0])),
            n2=draw(st.sampled_from([0.0, 1.0])),
        )
    else:
        call["knobs"] = dict(
            budget=draw(st.sampled_from([1, 5])), keep_prob=draw(st.sampled_from([0.5, 1.0]))
        )
    call["knobs"]["grid_size"] = draw(st.sampled_from([None, 1, 2, 50]))
    return call


@SETTINGS
@given(valid_calls())
def test_valid_calls_give_finite_maps_of_the_input_shape_and_dtype(call: dict) -> None:
    x, target, baselines, fm = _build(call)
    model = Scorer("ok").eval()
    cls = PerturbMask if call["method"] == "PerturbMask" else RISE
    out = _explain(cls, model, x, call, baselines=baselines, target=target, feature_mask=fm)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert bool(torch.isfinite(out.float()).all())


@pytest.mark.parametrize("method", [PerturbMask, RISE])
def test_a_model_that_raises_mid_run_is_left_as_it_was(method) -> None:
    model = Scorer("raise").train()
    model.lin.weight.grad = torch.ones_like(model.lin.weight)
    handle = model.register_forward_hook(lambda *a: None)
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match="mid-run"):
        method(model).attribute(torch.rand(2, 3, 4, 4), target=0, budget=8)
    assert _same(before, _snapshot(model))
    handle.remove()


@pytest.mark.parametrize("method", [PerturbMask, RISE])
def test_two_threads_with_different_seeds_get_the_sequential_results(method) -> None:
    import threading

    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3)).eval()
    x = torch.rand(2, 3, 4, 4)
    explainer = method(model)
    expected = {s: explainer.attribute(x, target=1, budget=64, seed=s) for s in (3, 4)}
    got: dict[int, torch.Tensor] = {}

    def run(seed: int) -> None:
        got[seed] = explainer.attribute(x, target=1, budget=64, seed=seed)

    threads = [threading.Thread(target=run, args=(s,)) for s in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in (3, 4):
        torch.testing.assert_close(got[s], expected[s], rtol=0, atol=0)
