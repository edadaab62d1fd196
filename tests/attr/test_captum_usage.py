"""Captum habits that must hold exactly: argument order, perturbations_per_eval, wrappers."""

from __future__ import annotations

import threading
import warnings

import matplotlib
import pytest
import torch
from captum.attr import FeatureAblation, NoiseTunnel
from captum.attr import visualization as viz
from torch import nn

from captum_perturbmask import RISE, PerturbMask
from captum_perturbmask.attr.estimators import RegressionEstimator

from .planted import PlantedImageModel

METHODS = {PerturbMask: dict(budget=32, seed=0), RISE: dict(budget=32, seed=0)}


def _linear(features: int, classes: int = 3) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(features, classes)).eval()


# --------------------------------------------------------------------------------------------
# argument order and meanings


@pytest.mark.parametrize("method", [PerturbMask, RISE])
def test_second_positional_argument_is_the_baseline(method) -> None:
    """``attribute(x, b)`` — the FeatureAblation habit — uses ``b`` as the baseline."""
    model = _linear(3 * 8 * 8)
    x = torch.rand(2, 3, 8, 8)
    b = torch.rand(1, 3, 8, 8)
    positional = method(model).attribute(x, b, 1, None, None, **METHODS[method])
    keywords = method(model).attribute(x, baselines=b, target=1, **METHODS[method])
    torch.testing.assert_close(positional, keywords)
    zero_base = method(model).attribute(x, target=1, **METHODS[method])
    assert not torch.allclose(positional, zero_base)


@pytest.mark.parametrize("method", [PerturbMask, RISE])
def test_everything_after_the_captum_arguments_is_keyword_only(method) -> None:
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(TypeError):
        method(_linear(192)).attribute(x, None, 0, None, None, 64)


@pytest.mark.parametrize("method", [PerturbMask, RISE])
def test_a_valid_captum_call_never_warns(method) -> None:
    """``attribute(x, baselines=0, target=None)`` is plain Captum: no warning at all."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        method(_linear(192)).attribute(torch.rand(2, 3, 8, 8), 0, None, **METHODS[method])
        method(_linear(192)).attribute(torch.rand(2, 3, 8, 8), baselines=1, **METHODS[method])


@pytest.mark.parametrize("method", [PerturbMask, RISE])
@pytest.mark.parametrize("ppe", [1, 3, 50])
def test_perturbations_per_eval_is_per_example_like_captum(method, ppe) -> None:
    """At most ``perturbations_per_eval * B`` rows per forward call, as FeatureAblation."""
    rows: list[int] = []

    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(48, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows.append(x.shape[0])
            return self.lin(x.flatten(1))

    model = Recorder().eval()
    x = torch.rand(4, 3, 4, 4)
    method(model).attribute(x, target=0, perturbations_per_eval=ppe, **METHODS[method])
    perturbed = rows[1:]  # the first call is the clean pass
    assert max(perturbed) <= ppe * 4
    assert max(perturbed) == min(ppe, 32) * 4  # 32 masks per example in all
    rows.clear()
    FeatureAblation(model).attribute(x, target=0, perturbations_per_eval=ppe)
    assert max(rows[1:]) <= ppe * 4  # the same meaning in Captum


@pytest.mark.parametrize("method", [PerturbMask, RISE])
def test_result_does_not_depend_on_perturbations_per_eval(method) -> None:
    model = PlantedImageModel((3, 4, 6, 6))
    x = model.evidence_image(3, 16, torch.Generator().manual_seed(0))
    a = method(model).attribute(x, target=0, perturbations_per_eval=1, **METHODS[method])
    b = method(model).attribute(x, target=0, perturbations_per_eval=64, **METHODS[method])
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_budget_sets_the_forward_passes() -> None:
    calls = {"rows": 0}

    def model(x: torch.Tensor) -> torch.Tensor:
        calls["rows"] += x.shape[0]
        return x.flatten(1)[:, :3]

    x = torch.rand(1, 3, 8, 8)
    PerturbMask(model).attribute(x, target=0, budget=100, seed=0)
    assert calls["rows"] == 100 + 1  # 100 random masks + the clean pass
    calls["rows"] = 0
    PerturbMask(model, design="chain", n_iter=3).attribute(x, target=0, budget=90, seed=0)
    assert calls["rows"] == 90 + 1  # 3 steps x 30 chains
    calls["rows"] = 0
    RISE(model).attribute(x, target=0, budget=70, seed=0)
    assert calls["rows"] == 70 + 1


def test_the_batch_shares_its_masks_and_forward_calls() -> None:
    """Shared masks: 16 examples x 400 masks at 16 perturbations per eval take 25 forward
    calls of 256 rows, whatever the grid (per-example statistics never shrink the calls)."""
    sizes: list[int] = []

    def model(x: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0])
        return x.flatten(1)[:, :3]

    x = torch.rand(16, 3, 32, 32)
    for grid in (6, 32):
        sizes.clear()
        PerturbMask(model, grid_size=grid).attribute(
            x, target=0, budget=400, perturbations_per_eval=16, seed=0
        )
        assert sizes[1:] == [256] * 25


# --------------------------------------------------------------------------------------------
# every target form on every output shape


def _segmentation(x: torch.Tensor) -> torch.Tensor:
    """(B, 2, 4, 4) logits: class 1 wins where the top-left pixel block is bright."""
    pooled = nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), 4)
    return torch.cat([-pooled, pooled], 1)


@pytest.mark.parametrize("method", [PerturbMask, RISE])
@pytest.mark.parametrize(
    ("model", "target"),
    [
        (lambda x: x.flatten(1).sum(1), None),  # (B,): the output itself
        (lambda x: x.flatten(1).sum(1, keepdim=True), None),  # (B, 1)
        (lambda x: x.flatten(1).sum(1, keepdim=True), 0),
        (_segmentation, (1, 0, 0)),  # N-d output, tuple target
        (_segmentation, [(1, 0, 0), (0, 3, 3)]),  # list of tuples
        (lambda x: x.flatten(1)[:, :5], [4, 0]),  # list of ints
        (lambda x: x.flatten(1)[:, :5], torch.tensor([4, 0])),
        (lambda x: x.flatten(1)[:, :5], torch.tensor(2)),
        (lambda x: x.flatten(1)[:, :5], -1),  # Python indexing, as Captum
    ],
)
def test_every_target_form_on_every_output_shape(method, model, target) -> None:
    x = torch.rand(2, 3, 8, 8)
    attr = method(model).attribute(x, target=target, **METHODS[method])
    assert attr.shape == x.shape and torch.isfinite(attr).all()
    per_example = isinstance(target, list) or (
        isinstance(target, torch.Tensor) and target.numel() > 1
    )
    single = method(model).attribute(
        x[1:], target=target[1:] if per_example else target, **METHODS[method]
    )
    torch.testing.assert_close(single[0], attr[1], rtol=1e-4, atol=1e-5)


def test_confidence_rules_per_output_shape() -> None:
    """softmax over dim 1 for (B, K) and (B, K, H, W); sigmoid for one logit; raw for identity."""
    from captum_perturbmask._core.forward import TargetForward

    x = (torch.rand(2, 3),)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    runner = TargetForward(lambda v: logits, 2, [0, 2], None)
    p = runner.resolve(x)
    torch.testing.assert_close(p, torch.softmax(logits, 1)[[0, 1], [0, 2]])
    one = TargetForward(lambda v: logits[:, :1], 2, None, None)
    torch.testing.assert_close(one.resolve(x), torch.sigmoid(logits[:, 0]))
    raw = TargetForward(lambda v: logits, 2, 1, None, "identity")
    torch.testing.assert_close(raw.resolve(x), logits[:, 1])
    seg = torch.randn(2, 3, 2, 2)
    nd = TargetForward(lambda v: seg, 2, (2, 1, 0), None)
    torch.testing.assert_close(nd.resolve(x), torch.softmax(seg, 1)[:, 2, 1, 0])
    fn = TargetForward(lambda v: seg, 2, (1, 1, 0), None, lambda o: torch.softmax(o, 3))
    torch.testing.assert_close(fn.resolve(x), torch.softmax(seg, 3)[:, 1, 1, 0])
    # log-odds from the raw logits: finite where the probability rounds to 1
    sat = TargetForward(lambda v: torch.tensor([[60.0, 0.0]]), 1, 0, None)
    sat.resolve((torch.rand(1, 3),))
    p, lo = sat.confidence_and_log_odds((torch.rand(1, 3),), torch.tensor([0]))
    assert p.item() == 1.0 and lo.item() == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ([0, 7], IndexError),
        (torch.tensor([-1, 0]), IndexError),
        (torch.tensor([0.0, 1.0]), TypeError),
        (torch.tensor([True, False]), TypeError),
        ([0, 1, 2], AssertionError),  # Captum's own length check
        (1.5, TypeError),
        ("cat", TypeError),
        ((0, 0, 0), AssertionError),  # Captum: too many indices for the output
    ],
)
def test_invalid_targets_raise_captum_style_errors(target, error) -> None:
    with pytest.raises(error):
        PerturbMask(_linear(12, 3)).attribute(torch.rand(2, 3, 2, 2), target=target, budget=4)


# --------------------------------------------------------------------------------------------
# Captum wrappers and utilities


@pytest.mark.parametrize("method", [PerturbMask, RISE])
def test_noise_tunnel_wraps_the_methods(method) -> None:
    model = PlantedImageModel((3, 4, 6, 6))
    x = model.evidence_image(2, 16, torch.Generator().manual_seed(3))
    nt = NoiseTunnel(method(model))
    attr = nt.attribute(
        x, nt_type="smoothgrad", nt_samples=3, nt_samples_batch_size=2, stdevs=0.05,
        target=torch.tensor([0, 0]), **METHODS[method],
    )  # fmt: skip
    assert attr.shape == x.shape and torch.isfinite(attr).all()
    plain = method(model).attribute(x, target=0, **METHODS[method])
    assert not torch.equal(attr, plain)  # the noisy copies were explained, not the input


def test_attribution_attributes_as_captum_defines_them() -> None:
    model = _linear(12)
    assert PerturbMask(model).get_name() == "Perturb Mask"
    assert RISE(model).get_name() == "RISE"
    assert PerturbMask(model).multiplies_by_inputs is False
    assert RISE(model).multiplies_by_inputs is False
    assert FeatureAblation(model).multiplies_by_inputs is True  # the contrast Captum draws


def test_visualize_timeseries_attr_accepts_series_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Captum 0.9 calls ``matplotlib.cm.get_cmap``, removed in matplotlib 3.9: shimmed here."""
    if not hasattr(matplotlib.cm, "get_cmap"):
        monkeypatch.setattr(matplotlib.cm, "get_cmap", matplotlib.colormaps.get_cmap, False)
    series = torch.rand(2, 3, 50)
    model = _linear(150, 2)
    for method in (PerturbMask, RISE):
        attr = method(model).attribute(series, target=0, **METHODS[method])
        fig, axes = viz.visualize_timeseries_attr(
            attr[0].numpy(), series[0].numpy(), channels_last=False, use_pyplot=False
        )
        assert len(fig.axes) >= 3  # one panel per channel


# --------------------------------------------------------------------------------------------
# bounded memory and concurrency


_PEAK_SCRIPT = """
import resource, sys, torch
from captum_perturbmask import PerturbMask
torch.set_num_threads(1)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2)).eval()
x = torch.rand(1, 3, 8, 8)
PerturbMask(model).attribute(
    x, target=0, budget=int(sys.argv[1]), perturbations_per_eval=1024, seed=0
)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_huge_chain_count_does_not_allocate_the_budget() -> None:
    """Peak memory is bounded by perturbations_per_eval and the estimator, not by the budget:
    300,000 masks (features alone would be 300 MB at once) cost what 2,000 cost."""
    import subprocess
    import sys

    def peak_kib(chains: int) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _PEAK_SCRIPT, str(chains)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return int(out.stdout.split()[-1])

    small, huge = peak_kib(2_000), peak_kib(300_000)
    assert huge - small < 60 * 1024, (small, huge)


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: RISE(m).attribute(x, target=0, budget=10**12),
        lambda m, x: PerturbMask(m, design="chain", n_iter=100).attribute(
            x, target=0, budget=10**8
        ),
        lambda m, x: PerturbMask(m).attribute(x, target=0, budget=10**9),
    ],
)
def test_absurd_budgets_are_refused_before_any_work(call) -> None:
    calls = []

    def model(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return x.flatten(1)[:, :2]

    with pytest.raises(ValueError, match="10,000,000|budget"):
        call(model, torch.rand(1, 3, 8, 8))
    assert calls == []


def test_one_estimator_object_serves_concurrent_calls() -> None:
    model = PlantedImageModel((3, 4, 6, 6))
    x = model.evidence_image(2, 16, torch.Generator().manual_seed(4))
    shared = PerturbMask(model, estimator=RegressionEstimator(eta=1.0))
    expected = {s: shared.attribute(x, target=0, budget=200, seed=s) for s in (0, 1)}
    results: dict[int, torch.Tensor] = {}

    def run(seed: int) -> None:
        for _ in range(3):
            results[seed] = shared.attribute(x, target=0, budget=200, seed=seed)

    threads = [threading.Thread(target=run, args=(s,)) for s in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in (0, 1):
        torch.testing.assert_close(results[s], expected[s])


def test_rise_warns_for_a_model_in_training_mode() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.Dropout(0.1))
    with pytest.warns(UserWarning, match="training mode"):
        RISE(model).attribute(torch.rand(1, 3, 2, 2), target=0, budget=4)
    assert model.training


# --------------------------------------------------------------------------------------------
# GPU habits: autocast and channels_last


def _no_autocast_ops(x: torch.Tensor) -> torch.Tensor:
    """Elementwise ops only: its outputs are the same under autocast or not."""
    w = torch.linspace(-1, 1, x[0].numel()).reshape(x.shape[1:])
    s = (x.float() * w).flatten(1).sum(1)
    return torch.stack([s, -s, 0.5 * s], 1)


@pytest.mark.parametrize("method", [PerturbMask, RISE])
def test_autocast_reaches_the_model_but_not_the_estimator(method) -> None:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    seen = []

    def model(v: torch.Tensor) -> torch.Tensor:
        seen.append(torch.is_autocast_enabled("cpu"))
        return _no_autocast_ops(v)

    plain = method(model).attribute(x, target=0, **METHODS[method])
    seen.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = method(model).attribute(x, target=0, **METHODS[method])
    assert seen and all(seen)  # every forward ran under the caller's autocast
    assert mixed.dtype == x.dtype
    # identical model outputs: the masks and the estimator ran in float32 both times
    torch.testing.assert_close(mixed, plain)


def test_channels_last_inputs_give_channels_last_rows() -> None:
    x = torch.rand(2, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    layouts = []

    def model(v: torch.Tensor) -> torch.Tensor:
        layouts.append(v.is_contiguous(memory_format=torch.channels_last))
        return _no_autocast_ops(v)

    attr = PerturbMask(model).attribute(x, target=0, budget=16, seed=0)
    assert all(layouts)
    torch.testing.assert_close(attr, PerturbMask(model).attribute(x.contiguous(), target=0,
                                                                  budget=16, seed=0))  # fmt: skip
