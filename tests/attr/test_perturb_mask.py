"""PerturbMask: Captum contract, planted evidence, reproducibility, model hygiene, errors."""

from __future__ import annotations

import io
import sys

import matplotlib
import pytest
import torch
from captum.attr import PerturbationAttribution
from captum.attr import visualization as viz
from captum.metrics import infidelity, sensitivity_max
from torch import nn

from captum_perturbmask import PerturbMask
from captum_perturbmask.attr._designs import chain_step
from captum_perturbmask.attr._masks import grid_laplacian
from captum_perturbmask.attr.estimators import AverageEstimator, RegressionEstimator

from .planted import PlantedImageModel, PlantedSeriesModel

matplotlib.use("Agg")
#: a short chain run (6 steps x 8 chains): exercises the per-example path of the loop
FAST = dict(design="chain", n_iter=6, budget=48)
CALL = ("baselines", "target", "additional_forward_args", "feature_mask", "budget",
        "perturbations_per_eval", "show_progress", "seed")  # fmt: skip


def run(model, x, **kwargs):
    """``PerturbMask(model, **config).attribute(x, **arguments)`` from one set of keywords."""
    config = {k: v for k, v in kwargs.items() if k not in CALL}
    call = {k: v for k, v in kwargs.items() if k in CALL}
    return PerturbMask(model, **config).attribute(x, **call)


def _planted(seed: int = 0, size: int = 32, strength: float = 4.0):
    g = torch.Generator().manual_seed(seed)
    t, l = torch.randint(0, size - 13, (2,), generator=g).tolist()
    model = PlantedImageModel((t, l, 12, 12), seed=seed, strength=strength)
    return model, model.evidence_image(2, size, g)


def _argmax_rc(attr: torch.Tensor) -> list[tuple[int, int]]:
    m = attr.sum(1)
    idx = m.flatten(1).argmax(1)
    return [(int(i) // m.shape[-1], int(i) % m.shape[-1]) for i in idx]


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        return self.fc(h) * scale


def test_is_captum_perturbation_attribution() -> None:
    assert issubclass(PerturbMask, PerturbationAttribution)


def test_smoke_shape_dtype_device(device: torch.device, dtype: torch.dtype) -> None:
    model = ConvNet().to(device=device, dtype=dtype).eval()
    x = torch.rand(3, 3, 12, 12, device=device, dtype=dtype)
    attr = run(model, x, target=2, seed=0, **FAST)
    assert attr.shape == x.shape and attr.dtype == dtype and attr.device == x.device
    assert torch.isfinite(attr).all()
    # the same value in every channel of a pixel
    assert torch.equal(attr[:, 0], attr[:, 1])


def test_tuple_inputs_and_additional_forward_args() -> None:
    class Two(nn.Module):
        def forward(self, a, b, w):
            return torch.stack([(a.mean((1, 2, 3)) + b.mean((1, 2))) * w, -a.mean((1, 2, 3))], 1)

    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 2, 20)
    out = run(Two(), (a, b), target=0, additional_forward_args=(2.0,), seed=0)
    assert isinstance(out, tuple) and out[0].shape == a.shape and out[1].shape == b.shape


def test_time_series_planted_region() -> None:
    model = PlantedSeriesModel(30, 40)
    x = torch.rand(3, 2, 64)
    attr = run(model, x, target=0, seed=0, grid_size=16)
    assert attr.shape == x.shape
    peak = attr[:, 0].argmax(1)
    assert ((peak >= 30) & (peak < 40)).all(), peak


def test_tabular_inputs_each_feature_is_a_cell() -> None:
    w = torch.tensor([3.0, 0.0, -3.0, 0.0])
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.copy_(torch.stack([w, -w]))
        model.bias.zero_()
    x = torch.ones(2, 4)
    attr = run(model, x, target=0, seed=0)
    assert attr.shape == x.shape
    assert (attr[:, 0] > attr[:, 1]).all() and (attr[:, 1] > attr[:, 2]).all()


@pytest.mark.parametrize("strength", [1.0, 4.0, 80.0])
@pytest.mark.parametrize("seed", range(6))
def test_planted_evidence_pointing(seed: int, strength: float) -> None:
    """Default settings point into the planted box, also when the softmax saturates."""
    model, x = _planted(100 + seed, strength=strength)
    t, l, h, w = model.box
    attr = run(model, x, target=0, seed=seed)
    for r, c in _argmax_rc(attr):
        assert t <= r < t + h and l <= c < l + w, (r, c, model.box)


def test_seed_reproducible_and_seed_matters() -> None:
    model, x = _planted(1)
    for kw in (FAST, dict(budget=48)):
        a = run(model, x, target=0, seed=3, **kw)
        assert torch.equal(a, run(model, x, target=0, seed=3, **kw))
        assert not torch.equal(a, run(model, x, target=0, seed=4, **kw))


def test_global_rng_untouched() -> None:
    model, x = _planted(2)
    state = torch.get_rng_state()
    run(model, x, target=0, **FAST)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize(
    "config",
    [dict(), dict(design="chain", n_iter=6), dict(design="sequential"), dict(variant="literal")],
    ids=["random", "chain", "sequential", "literal"],
)
def test_batch_and_chunking_invariance(config: dict) -> None:
    """Maps do not depend on the batch or on perturbations_per_eval (also across draw
    blocks: 600 masks are three blocks)."""
    model = PlantedImageModel((2, 3, 8, 8), seed=1)  # row-wise exact: batch-free arithmetic
    x = model.evidence_image(4, 16, torch.Generator().manual_seed(0))
    pm = PerturbMask(model, **config)
    kw = dict(target=0, seed=7, budget=600 if not config else 48)
    full = pm.attribute(x, perturbations_per_eval=512, **kw)
    torch.testing.assert_close(full, pm.attribute(x, perturbations_per_eval=5, **kw))
    for k in range(4):
        single = pm.attribute(x[k : k + 1], **kw)[0]
        torch.testing.assert_close(single, full[k], rtol=1e-4, atol=1e-5)


def test_model_left_untouched() -> None:
    model = ConvNet().train()
    model.conv.weight.requires_grad_(False)
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 8, 8)
    with pytest.warns(UserWarning, match="training mode"):
        run(model, x, target=0, seed=0, **FAST)
    assert model.training and model.bn.training
    assert not model.conv.weight.requires_grad and model.fc.bias.requires_grad
    assert torch.equal(model.fc.weight.grad, torch.ones_like(model.fc.weight))
    assert model.conv.weight.grad is None
    assert list(model._forward_hooks) == [handle.id] and len(calls) > 0
    for k, v in model.state_dict().items():
        if "running" not in k and "num_batches" not in k:  # BN stats move in train mode
            assert torch.equal(v, before[k]), k
    handle.remove()


def test_works_with_captum_visualization_and_metrics() -> None:
    model = ConvNet().eval()
    x = torch.rand(2, 3, 10, 10)
    pm = PerturbMask(model, design="chain", n_iter=6)
    attr = pm.attribute(x, target=1, seed=0, budget=48)
    fig, _ = viz.visualize_image_attr(
        attr[0].permute(1, 2, 0).numpy(),
        x[0].permute(1, 2, 0).numpy(),
        "blended_heat_map",
        sign="all",
        use_pyplot=False,
    )
    assert fig is not None

    def perturb(inp):
        noise = torch.randn_like(inp) * 0.01
        return noise, inp - noise

    inf = infidelity(model, perturb, x, attr, target=1, n_perturb_samples=4)
    assert inf.shape == (2,) and torch.isfinite(inf).all()
    sens = sensitivity_max(pm.attribute, x, target=1, seed=0, n_perturb_samples=2, budget=48)
    assert sens.shape == (2,) and torch.isfinite(sens).all()


def test_feature_mask_groups_share_a_value() -> None:
    model, x = _planted(3)
    fm = torch.arange(16).reshape(4, 4).repeat_interleave(8, 0).repeat_interleave(8, 1)
    attr = run(model, x, target=0, feature_mask=fm[None, None], seed=0)
    blocks = attr[:, 0].reshape(2, 4, 8, 4, 8)
    assert torch.allclose(blocks, blocks[:, :, :1, :, :1].expand_as(blocks))


def test_per_example_feature_mask() -> None:
    model = ConvNet().eval()
    x = torch.rand(2, 3, 8, 8)
    fm = torch.stack([torch.zeros(8, 8), torch.ones(8, 8)]).long()
    fm[0, :, 4:] = 1
    attr = run(model, x, target=0, feature_mask=fm[:, None], seed=0, **FAST)
    assert attr.shape == x.shape
    assert torch.unique(attr[1]).numel() == 1  # a single group for example 1


class RowRecorder(nn.Module):
    """Records every row it scores (and its extra argument); logits from the row mean."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[torch.Tensor] = []
        self.extra: list[object] = []

    def forward(self, x: torch.Tensor, *extra: object) -> torch.Tensor:
        self.rows.append(x.detach().clone())
        self.extra.append(extra)
        m = x.flatten(1).mean(1)
        return torch.stack([m, -m], 1)


@pytest.mark.parametrize("form", ["scalar", "tensor", "batch-1", "no-batch", "blur", "none"])
def test_each_baseline_form_perturbs_rows_as_documented(form: str) -> None:
    """Every perturbed row is ``b + m * (x - b)`` with one mask ``m`` in [0, 1] shared by the
    channels, ``b`` the documented baseline, and some positions fully masked (``m = 0``)."""
    from captum_perturbmask._core.ops import blur

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 12, 12, generator=g) + 2.0
    per_pixel = torch.rand(2, 3, 12, 12, generator=g)
    baselines, b = {
        "scalar": (-1.5, torch.full_like(x, -1.5)),
        "tensor": (per_pixel, per_pixel),
        "batch-1": (per_pixel[:1], per_pixel[:1].expand_as(x)),
        "no-batch": (per_pixel[0], per_pixel[0].expand_as(x)),
        "blur": ("blur", blur(x, 11, 5.0)),
        "none": (None, torch.zeros_like(x)),
    }[form]
    model = RowRecorder()
    run(model, x, baselines=baselines, target=0, design="chain", n_iter=2, budget=8, seed=0)
    rows = torch.cat(model.rows[1:])  # after the clean pass
    example = torch.arange(rows.shape[0]) % 2  # 2 steps x 4 chains, mask-major rows
    m = (rows - b[example]) / (x[example] - b[example])
    torch.testing.assert_close(m, m[:, :1].expand_as(m), rtol=1e-4, atol=1e-4)
    assert m.min() >= -1e-4 and m.max() <= 1 + 1e-4
    assert (m[:, 0] < 1e-4).any() and (m[:, 0] > 1 - 1e-4).any()


def test_the_forward_argument_arrives_with_each_row() -> None:
    """Per-example tensors are gathered per row; other arguments arrive unchanged."""
    x = torch.stack([torch.full((3, 8, 8), float(i + 1)) for i in range(3)])
    tag = torch.tensor([1.0, 2.0, 3.0])
    model = RowRecorder()
    run(
        model, x, target=0, additional_forward_args=(tag, "unchanged"), budget=12,
        perturbations_per_eval=2, seed=0,
    )  # fmt: skip
    assert len(model.rows) > 2
    for rows, (row_tag, word) in zip(model.rows, model.extra, strict=True):
        assert word == "unchanged"
        assert row_tag.shape == (rows.shape[0],)
        # a row of example i is a mix of the constant i + 1 and the zero baseline
        assert (rows.flatten(1).amax(1) <= row_tag + 1e-6).all()
    clean_rows, (clean_tag, _) = model.rows[0], model.extra[0]
    torch.testing.assert_close(clean_rows.flatten(1).amax(1), clean_tag)


def test_regression_estimator_matches_an_independent_least_squares_solution() -> None:
    """eta > 0: the closed form equals lstsq on the augmented system
    [X_c / sqrt(N); sqrt(eta v) D; sqrt(ridge v) I] s = [y_c / sqrt(N); 0; 0], with D the
    neighbour-difference matrix of the grid (s^T L s = |D s|^2)."""
    from captum_perturbmask.attr._masks import grid_laplacian

    g = torch.Generator().manual_seed(0)
    grid = (3, 4)
    f = 12
    x = torch.rand(1, 200, f, generator=g, dtype=torch.float64)
    y = x[0] @ torch.randn(f, generator=g, dtype=torch.float64) + 0.1 * torch.randn(
        200, generator=g, dtype=torch.float64
    )
    eta, ridge = 2.0, 0.01
    est = RegressionEstimator(eta=eta, ridge=ridge, link="identity")
    est.reset(1, f, torch.device("cpu"), torch.float64)
    est.update(x[:, :120], y[None, :120])
    est.update(x[:, 120:], y[None, 120:])  # sums over two updates
    lap = grid_laplacian(grid, torch.device("cpu"), torch.float64)
    got = est.solve(lap)[0]

    xc = x[0] - x[0].mean(0)
    yc = y - y.mean()
    v = xc.var(0, unbiased=False).mean()
    idx = torch.arange(f).reshape(grid)
    pairs = [(a, b) for a, b in zip(idx[:, :-1].flatten(), idx[:, 1:].flatten(), strict=True)]
    pairs += [(a, b) for a, b in zip(idx[:-1].flatten(), idx[1:].flatten(), strict=True)]
    d = torch.zeros(len(pairs), f, dtype=torch.float64)
    for r, (a, b) in enumerate(pairs):
        d[r, a], d[r, b] = 1.0, -1.0
    torch.testing.assert_close(d.T @ d, lap)
    a = torch.cat([xc / 200**0.5, (eta * v) ** 0.5 * d, (ridge * v) ** 0.5 * torch.eye(f)])
    rhs = torch.cat([yc / 200**0.5, torch.zeros(len(pairs) + f, dtype=torch.float64)])
    expected = torch.linalg.lstsq(a, rhs[:, None]).solution[:, 0]
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-8)


def test_baseline_equal_to_input_gives_flat_map() -> None:
    model, x = _planted(5)
    attr = run(model, x, target=0, baselines=x, seed=0, **FAST)
    assert attr.abs().max() < 1e-4


@pytest.mark.parametrize("estimator", ["average", AverageEstimator(), RegressionEstimator(eta=1)])
def test_estimators_pluggable(estimator) -> None:
    model, x = _planted(6)
    attr = run(model, x, target=0, estimator=estimator, seed=0)
    t, l, h, w = model.box
    for r, c in _argmax_rc(attr):
        assert t - 2 <= r < t + h + 2 and l - 2 <= c < l + w + 2


def test_literal_variant_runs_and_is_finite() -> None:
    model, x = _planted(7)
    attr = run(model, x, target=0, variant="literal", seed=0, **FAST)
    assert attr.shape == x.shape and torch.isfinite(attr).all()


def test_target_none_explains_predicted_class() -> None:
    model = ConvNet().eval()
    x = torch.rand(3, 3, 8, 8)
    pred = model(x).argmax(1)
    a = run(model, x, seed=0, **FAST)
    b = run(model, x, target=pred, seed=0, **FAST)
    assert torch.equal(a, b)


def test_progress_bar_exact_total(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    model, x = _planted(8)
    run(
        model, x, target=0, design="chain", n_iter=5, budget=20, perturbations_per_eval=3,
        show_progress=True, seed=0,
    )  # fmt: skip
    # 3 perturbations of each of the 2 inputs per call: 8 rows per iteration in 6-row calls
    # -> 2 forward calls x 5 iterations
    assert "10/10" in err.getvalue()


def test_chain_step_sizes() -> None:
    on = torch.zeros(1000, 64, dtype=torch.bool)
    on[:, :32] = True
    keys = torch.rand(1000, 64, generator=torch.Generator().manual_seed(0))
    p = torch.full((1000,), 0.5)
    new = chain_step(on, p, keys, n1=0.3, n2=0.7)
    # round(0.3*0.5*64)=10 from the on-set, round(0.7*0.5*64)=22 from the off-set
    assert (new[:, :32].sum(1) == 10).all() and (new[:, 32:].sum(1) == 22).all()


BAD = [
    (dict(n_iter=0), ValueError, "n_iter"),
    (dict(n_iter=2.5), TypeError, "n_iter"),
    (dict(budget=0), ValueError, "budget"),
    (dict(perturbations_per_eval="many"), ValueError, "perturbations_per_eval"),
    (dict(grid_size=0), ValueError, "grid_size"),
    (dict(grid_size=(2, 2, 2)), ValueError, "grid_size"),
    (dict(n1=1.5), ValueError, "n1"),
    (dict(n2=-0.1), ValueError, "n2"),
    (dict(eta=-1.0), ValueError, "eta"),
    (dict(keep_prob=2.0), ValueError, "keep_prob"),
    (dict(variant="nope"), ValueError, "variant"),
    (dict(initial_mask="nope"), ValueError, "initial_mask"),
    (dict(estimator="nope"), ValueError, "estimator"),
    (dict(estimator=object()), TypeError, "estimator"),
    (dict(confidence="nope"), ValueError, "confidence"),
    (dict(perturbations_per_eval=0), ValueError, "perturbations_per_eval"),
    (dict(seed="a"), TypeError, "seed"),
    (dict(baselines="nope"), ValueError, "baselines"),
    (dict(baselines=torch.zeros(3, 3, 8, 8)), ValueError, "baselines"),
    (dict(feature_mask=torch.zeros(1, 1, 8, 8)), TypeError, "feature_mask"),
    (dict(feature_mask=torch.zeros(3, 1, 8, 8, dtype=torch.long)), ValueError, "feature_mask"),
]


@pytest.mark.parametrize(("kwargs", "exc", "match"), BAD)
def test_bad_knobs(kwargs, exc, match) -> None:
    model = ConvNet().eval()
    kw = dict(target=0, **FAST)
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        run(model, torch.rand(2, 3, 8, 8), **kw)


def test_bad_inputs() -> None:
    pm = PerturbMask(ConvNet().eval())
    with pytest.raises(ValueError, match="empty batch"):
        pm.attribute(torch.rand(0, 3, 8, 8), target=0)
    x = torch.rand(2, 3, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pm.attribute(x, target=0)
    with pytest.raises(TypeError, match="floating"):
        pm.attribute(torch.ones(2, 3, 8, 8, dtype=torch.long), target=0)
    with pytest.raises(ValueError, match="batch dimension"):
        pm.attribute(torch.rand(5), target=0)
    with pytest.raises(ValueError, match="batch size"):
        PerturbMask(lambda a, b: a.flatten(1)[:, :2]).attribute(
            (torch.rand(2, 3, 4, 4), torch.rand(3, 3, 4, 4)), target=0
        )


def test_target_out_of_range_follows_captum() -> None:
    pm = PerturbMask(ConvNet().eval())
    with pytest.raises(IndexError):
        pm.attribute(torch.rand(2, 3, 8, 8), target=7, budget=8)
    with pytest.raises(AssertionError):
        pm.attribute(torch.rand(2, 3, 8, 8), target=[0, 1, 2], budget=8)


def test_outputs_must_give_one_value_per_example() -> None:
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="one value per example"):
        run(lambda v: v[:, :, :2, 0], x, target=0, **FAST)
    with pytest.raises(ValueError, match="target"):
        run(lambda v: v[:, :, :2, 0], x, **FAST)  # N-d output, no target
    with pytest.raises(TypeError, match="tensor"):
        run(lambda v: (v.sum((1, 2, 3)),), x, **FAST)
    attr = run(lambda v: v[:, :, :2, 0], x, target=(1, 0), **FAST)
    assert attr.shape == x.shape


def test_non_finite_model_output_is_an_error() -> None:
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="clean inputs"):
        run(
            lambda v: torch.stack([v.mean((1, 2, 3)) * float("nan")] * 2, 1), x,
            confidence="identity", target=0, **FAST,
        )  # fmt: skip

    def nan_when_masked(v: torch.Tensor) -> torch.Tensor:  # finite only on the clean inputs
        out = torch.stack([v.mean((1, 2, 3))] * 2, 1)
        clean = (v[:, None] == x[None]).flatten(2).all(2).any(1, keepdim=True)
        return torch.where(clean, out, float("nan"))

    with pytest.raises(ValueError, match="not finite"):
        run(nan_when_masked, x, target=0, **FAST)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    "config", [dict(), dict(design="chain", n_iter=4)], ids=["random", "chain"]
)
def test_cuda_maps_agree_with_the_cpu(config: dict) -> None:
    """CUDA draws its masks from CUDA generators, so maps are compared as estimates of the same
    map: at 2,000 masks both localise the planted box and agree closely."""
    model, x = _planted(11)
    cpu = run(model, x, target=0, seed=0, budget=2000, **config)
    gpu = run(model.cuda(), x.cuda(), target=0, seed=0, budget=2000, **config)
    assert gpu.is_cuda and gpu.shape == x.shape and gpu.dtype == x.dtype
    a, b = cpu.flatten(1), gpu.cpu().flatten(1)
    corr = torch.nn.functional.cosine_similarity(a - a.mean(1, keepdim=True),
                                                 b - b.mean(1, keepdim=True))  # fmt: skip
    assert (corr > 0.95).all(), corr
    assert _argmax_rc(cpu) == _argmax_rc(gpu.cpu())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_estimator_solve_matches_the_cpu() -> None:
    """The same statistics solved in float32 on CUDA and float64 on the CPU."""
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(400, 144, generator=g) < 0.7).float()
    y = x @ torch.randn(144, generator=g) / 10 + 0.05 * torch.randn(2, 400, generator=g)
    out = []
    for device in ("cpu", "cuda"):
        est = RegressionEstimator(eta=10.0)
        est.reset(2, 144, torch.device(device), torch.float32)
        est.update(x.to(device), torch.sigmoid(y).to(device), y.to(device))
        lap = grid_laplacian((12, 12), torch.device(device), torch.float32)
        out.append(est.solve(lap).cpu())
    torch.testing.assert_close(out[1], out[0], rtol=1e-3, atol=1e-4 * out[0].abs().max())


def test_one_column_softmax_is_refused_and_auto_is_sigmoid() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1))
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="sigmoid"):
        run(model, x, confidence="softmax", target=0, **FAST)
    auto = run(model, x, seed=0, **FAST)
    sigmoid = run(model, x, confidence="sigmoid", target=0, seed=0, **FAST)
    torch.testing.assert_close(auto, sigmoid)


def test_blur_baseline_on_tiny_inputs() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    attr = run(model, torch.rand(2, 3, 4, 4), target=0, baselines="blur", **FAST)
    assert attr.shape == (2, 3, 4, 4)


def test_too_many_features_is_a_clear_error() -> None:
    model = nn.Linear(5000, 2)
    with pytest.raises(ValueError, match="feature_mask"):
        run(model, torch.rand(1, 5000), target=0, **FAST)


def test_custom_estimator_with_eta_warns() -> None:
    model, x = _planted(9)
    with pytest.warns(UserWarning, match="eta"):
        attr = run(model, x, target=0, estimator=AverageEstimator(), eta=1.0, **FAST)
    assert attr.shape == x.shape


# --- mask designs: random (default), sequential, chain -------------------------------------


def test_default_design_is_random_and_sequential_differs() -> None:
    model, x = _planted(3)
    rnd = run(model, x, target=0, budget=40, seed=1)
    assert torch.equal(rnd, run(model, x, target=0, budget=40, seed=1, design="random"))
    assert torch.equal(rnd, run(model, x, target=0, budget=40, seed=1, n_iter=1))
    seq = run(model, x, target=0, budget=40, seed=1, design="sequential")
    # the first halves share their draws; the second halves differ
    assert not torch.equal(seq, rnd)
    chain = run(model, x, target=0, design="chain", n_iter=2, budget=40, seed=1)
    assert torch.equal(chain, run(model, x, target=0, budget=40, seed=1, design="chain"))
    one_step = run(model, x, target=0, design="chain", n_iter=1, budget=40, seed=1)
    assert torch.equal(one_step, rnd)  # a one-step chain is the random design


def test_sequential_uses_the_budget_exactly() -> None:
    from captum_perturbmask._core.forward import CountForwards

    model, x = _planted(4)
    for budget in (1, 2, 37):
        with CountForwards(model) as counter:
            run(model, x, target=0, budget=budget, seed=0, design="sequential")
        assert counter.rows == x.shape[0] * (budget + 1)


class _Recorder(nn.Module):
    """Logit of the mean of the input inside a box; records every row it sees."""

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.box, self.rows = box, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(x.detach().clone())
        t, l, h, w = self.box
        ev = 8.0 * x[:, :, t : t + h, l : l + w].mean((1, 2, 3)) - 4.0
        return torch.stack([ev, -ev], 1)


def test_sequential_second_half_follows_the_first_fit() -> None:
    """The second half keeps settled regions (90%) and perturbs the border of the top set."""
    model = _Recorder((10, 10, 12, 12)).eval()
    x = torch.ones(1, 1, 32, 32)  # rows are the masks themselves (zero baseline)
    run(
        model,
        x,
        target=0,
        budget=200,
        seed=0,
        perturbations_per_eval=100,
        design="sequential",
        keep_prob=0.7,
    )
    rows = torch.cat(model.rows[1:])  # drop the clean pass
    first, second = rows[:100], rows[100:]
    assert abs(float(first.mean()) - 0.7) < 0.05  # keep_prob
    assert float(second.mean()) > float(first.mean()) + 0.08  # most cells settled: kept 90%
    inside = second[:, :, 10:22, 10:22].mean()
    far = torch.cat([second[:, :, :, :4].flatten(), second[:, :, :, -4:].flatten()]).mean()
    assert float(far) > float(inside) + 0.1  # the evidence box's cells are perturbed more


def test_sequential_keep_reference_values() -> None:
    from captum_perturbmask.attr._designs import sequential_keep

    s = torch.tensor([[0.0, 1.0, 2.0, 3.0, 10.0]])
    q = sequential_keep(s, torch.full_like(s, 0.5), top=0.4)  # threshold: the 2nd largest, 3
    expected = 0.9 - 0.4 * torch.exp(-0.5 * ((s - 3.0) / 0.5) ** 2)
    torch.testing.assert_close(q, expected)
    assert float(q[0, 3]) == pytest.approx(0.5) and float(q[0, 0]) == pytest.approx(0.9)
    assert ((q >= 0.5 - 1e-6) & (q <= 0.9 + 1e-6)).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(design="bogus"), "design"),
        (dict(design="random", n_iter=3), "n_iter"),
        (dict(design="sequential", n_iter=2), "n_iter"),
        (dict(design="sequential", estimator="average"), "sequential"),
    ],
)
def test_bad_designs(kwargs, match) -> None:
    model, _ = _planted(5)
    with pytest.raises(ValueError, match=match):
        PerturbMask(model, **kwargs)


def test_average_estimator_defaults_to_the_random_design() -> None:
    model, x = _planted(6)
    a = run(model, x, target=0, budget=30, seed=2, estimator="average")
    assert torch.equal(a, run(model, x, target=0, budget=30, seed=2, estimator="average",
                              design="random"))  # fmt: skip


# --- mask densities, samplers and scales ----------------------------------------------------


def test_keep_prob_range_draws_a_density_per_mask() -> None:
    """``keep_prob=(lo, hi)``: each mask keeps its own share of cells, spread over the range."""
    model = _Recorder((10, 10, 12, 12)).eval()
    x = torch.ones(1, 1, 32, 32)  # rows are the masks themselves (zero baseline)
    run(model, x, target=0, budget=256, seed=0, keep_prob=(0.1, 0.9), random_shift=False)
    share = torch.cat(model.rows[1:]).mean((1, 2, 3))
    assert share.min() < 0.25 and share.max() > 0.75  # sparse and dense contexts
    assert abs(float(share.mean()) - 0.5) < 0.05


def test_lhs_sampler_keeps_every_cell_as_often() -> None:
    """A Latin-hypercube block keeps each cell in (almost) exactly keep_prob of the masks."""
    from captum_perturbmask.attr._designs import DesignRun, DesignSettings

    class _Design:
        n_cells, device = 36, torch.device("cpu")

    spread = {}
    for sampler in ("lhs", "uniform"):
        run_ = DesignRun.__new__(DesignRun)
        run_.s = DesignSettings(keep_prob=0.5, sampler=sampler)
        run_.design, run_.device = _Design(), torch.device("cpu")
        counts = run_._cells(200, torch.Generator().manual_seed(0)).sum(0)
        spread[sampler] = int((counts - 100).abs().max())
    assert spread["lhs"] <= 1 < spread["uniform"], spread


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(keep_prob=(0.8, 0.2)), "lo <= hi"),
        (dict(keep_prob=(0.1, 0.5, 0.9)), "range"),
        (dict(keep_prob=(0.1, 1.5)), "keep_prob"),
        (dict(sampler="sobol"), "sampler"),
        (dict(scales=()), "scales"),
        (dict(scales=(1, -2)), "scales"),
    ],
)
def test_bad_density_knobs(kwargs, match) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        PerturbMask(ConvNet(), **kwargs)


def test_scales_split_the_budget_and_share_the_features() -> None:
    """Masks on a coarse and a fine grid are fitted together: the budget is exact and the map
    still points into the planted box."""
    from captum_perturbmask._core.forward import CountForwards

    model, x = _planted(3)
    with CountForwards(model) as counter:
        attr = run(model, x, target=0, budget=300, seed=0, scales=(0.5, 1.0, 2.0))
    assert counter.rows == x.shape[0] * 301
    t, l, h, w = model.box
    for r, c in _argmax_rc(attr):
        assert t <= r < t + h and l <= c < l + w


def test_budget_auto_stops_when_the_top_set_is_stable() -> None:
    """Clear evidence: the two halves' top 5% agree after a few blocks; the masks used are
    reported and equal the forward passes spent."""
    from captum_perturbmask._core.forward import CountForwards

    model, x = _planted(1)
    pm = PerturbMask(model)
    with CountForwards(model) as counter:
        attr = pm.attribute(x, target=0, budget="auto", seed=0)
    used = pm.last_budget
    assert 256 <= used <= 1024 and used % 256 == 0
    assert counter.rows == x.shape[0] * (used + 1)
    fixed = pm.attribute(x, target=0, budget=used, seed=0)
    torch.testing.assert_close(attr, fixed)  # the same masks as a fixed budget


@pytest.mark.parametrize("kwargs", [dict(design="chain"), dict(variant="literal")])
def test_budget_auto_needs_the_random_design(kwargs) -> None:
    model, x = _planted(1)
    with pytest.raises(ValueError, match="auto"):
        run(model, x, target=0, budget="auto", **kwargs)
    with pytest.raises(ValueError, match="budget"):
        run(model, x, target=0, budget="many")
