"""Tests for insertion / deletion AUC against loop references and hand-computed curves."""

import math

import pytest
import torch
import torch.nn.functional as F

from captum_perturbmask.metrics import deletion_auc, insertion_auc, insertion_deletion

# --------------------------------------------------------------------------------------------
# helpers: tiny models and a naive, loop-based reference implementation


class Linear(torch.nn.Module):
    """A fixed random linear classifier over flattened inputs."""

    def __init__(self, n_features: int, n_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(n_classes, n_features, generator=g))

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        out = x.flatten(1) @ self.weight.t().to(x.dtype)
        return out if scale is None else out * scale.reshape(-1, 1)


def reference_curve(model, x, saliency, start, end, target, counts, apply_softmax=True):
    """Loop over steps; ``saliency`` (N,) has no ties, ``x``/``start``/``end`` are (C, *S)."""
    order = torch.argsort(saliency.flatten(), descending=True)
    scores = []
    for n in counts:
        img = start.clone().reshape(start.shape[0], -1)
        img[:, order[:n]] = end.reshape(end.shape[0], -1)[:, order[:n]]
        out = model(img.reshape(1, *x.shape))
        if apply_softmax:
            out = torch.softmax(out, dim=1)
        scores.append(out[0, target] if out.ndim == 2 else out[0])
    curve = torch.stack(scores)
    xs = [c / saliency.numel() for c in counts]
    auc = sum((xs[i + 1] - xs[i]) * (curve[i] + curve[i + 1]) / 2 for i in range(len(xs) - 1))
    return auc, curve


def reference_blur(x: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding, written from the formula."""
    half = (kernel_size - 1) / 2
    t = torch.linspace(-half, half, kernel_size, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad = kernel_size // 2
    if x.ndim == 3:
        return F.conv1d(F.pad(x, (pad, pad), mode="reflect"), k.repeat(c, 1, 1), groups=c)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, k.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


# --------------------------------------------------------------------------------------------
# smoke and shapes


def test_smoke_shapes() -> None:
    x = torch.rand(2, 3, 8, 8)
    attr = torch.rand(2, 3, 8, 8)
    model = Linear(3 * 64)
    auc = deletion_auc(model, x, attr, target=0)
    assert auc.shape == (2,)
    auc, curves = insertion_auc(model, x, attr, target=0, n_steps=5, return_curves=True)
    assert auc.shape == (2,) and curves.shape == (2, 6)
    assert torch.all((auc >= 0) & (auc <= 1))
    res = insertion_deletion(model, x, attr, target=0, step_size=10, return_curves=True)
    assert res.insertion_curve.shape == (2, 8) and res.deletion_curve.shape == (2, 8)
    assert res.fractions[0] == 0 and res.fractions[-1] == 1


def test_default_step_is_sqrt_of_pixels() -> None:
    """Default: ceil(sqrt(N)) pixels per step, i.e. 224 per step on 224 x 224 (RISE)."""
    model = Linear(36)
    _, curve = deletion_auc(
        model, torch.rand(1, 1, 6, 6), torch.rand(1, 1, 6, 6), 0, return_curves=True
    )
    assert curve.shape == (1, 7)
    _, curve = deletion_auc(
        Linear(10), torch.rand(1, 1, 10), torch.rand(1, 10), 0, return_curves=True
    )
    assert curve.shape == (1, 11)  # series: ceil(T / 100) = 1 step per point, T + 1 points
    _, curve = deletion_auc(
        Linear(251), torch.rand(1, 1, 251), torch.rand(1, 251), 0, return_curves=True
    )
    assert curve.shape == (1, 85)  # ceil(251 / 100) = 3 steps per point: ceil(251 / 3) + 1


# --------------------------------------------------------------------------------------------
# hand-computed cases


def test_known_pixel_set_deletion_curve() -> None:
    """A model returning the mean of 4 known pixels, those pixels ranked first."""
    rows, cols = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 2, 1, 0])

    def model(x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, rows, cols].mean(dim=1)

    x = torch.ones(1, 1, 4, 4)
    attr = torch.zeros(1, 4, 4)
    attr[0, rows, cols] = torch.tensor([4.0, 3.0, 2.0, 1.0])
    auc, curve = deletion_auc(model, x, attr, n_steps=16, confidence="identity", return_curves=True)
    expected = torch.tensor([1.0, 0.75, 0.5, 0.25] + [0.0] * 13)
    torch.testing.assert_close(curve[0], expected)
    # trapezoid over x in [0, 1] with dx = 1/16: (0.875 + 0.625 + 0.375 + 0.125) / 16
    torch.testing.assert_close(auc, torch.tensor([2.0 / 16]))
    # insertion from zeros: the mirror curve
    auc_ins, curve_ins = insertion_auc(
        model, x, attr, substrate=0.0, n_steps=16, confidence="identity", return_curves=True
    )
    torch.testing.assert_close(curve_ins[0], 1 - expected)
    torch.testing.assert_close(auc_ins, 1 - auc)


def test_baseline_value_and_tensor() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))

    x = torch.ones(1, 2, 2, 2)
    attr = torch.rand(1, 2, 2)
    _, curve = deletion_auc(
        model, x, attr, baselines=0.5, n_steps=4, confidence="identity", return_curves=True
    )
    torch.testing.assert_close(curve[0], torch.tensor([1.0, 0.875, 0.75, 0.625, 0.5]))
    per_channel = torch.tensor([0.0, 1.0]).reshape(2, 1, 1)  # channel 1 never changes
    _, curve = deletion_auc(
        model, x, attr, baselines=per_channel, n_steps=4, confidence="identity", return_curves=True
    )
    torch.testing.assert_close(curve[0], torch.tensor([1.0, 0.875, 0.75, 0.625, 0.5]))


def test_partial_last_step_uses_true_fractions() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2))

    x = torch.ones(1, 1, 5)
    attr = torch.arange(5.0).flip(0).reshape(1, 5)
    auc, curve = deletion_auc(
        model, x, attr, step_size=2, confidence="identity", return_curves=True
    )
    torch.testing.assert_close(curve[0], torch.tensor([1.0, 0.6, 0.2, 0.0]))
    # linear in the fraction deleted -> exactly 0.5 with the true x positions
    torch.testing.assert_close(auc, torch.tensor([0.5]))


def test_blur_substrate_matches_formula(dtype: torch.dtype, tol: dict) -> None:
    """Insertion's step-0 image is the Gaussian blur (kernel 11, sigma 5; 1-D for series)."""
    from captum_perturbmask._core.ops import blur as _blur

    img = torch.rand(2, 3, 16, 16, dtype=dtype)
    torch.testing.assert_close(_blur(img, 11, 5.0), reference_blur(img, 11, 5.0), **tol)
    series = torch.rand(2, 3, 20, dtype=dtype)
    torch.testing.assert_close(_blur(series, 11, 5.0), reference_blur(series, 11, 5.0), **tol)
    tiny = torch.rand(1, 1, 3, 3, dtype=dtype)  # kernel shrunk to 5 on a 3 x 3 image
    torch.testing.assert_close(_blur(tiny, 11, 5.0), reference_blur(tiny, 5, 5.0), **tol)


# --------------------------------------------------------------------------------------------
# agreement with the loop reference


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_matches_loop_reference_images(mode: str, device, dtype, tol) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 2, 5, 6, generator=g, dtype=dtype)
    attr = torch.randn(3, 2, 5, 6, generator=g, dtype=dtype)  # channels summed
    baseline = torch.rand(2, 1, 1, generator=g, dtype=dtype)
    model = Linear(60).to(dtype)
    target = [0, 2, 1]
    if mode == "deletion":
        fn, kwargs = deletion_auc, {"baselines": baseline.to(device)}
        starts, ends = x, baseline.expand_as(x)
    else:
        fn, kwargs = insertion_auc, {}
        starts, ends = reference_blur(x, 9, 5.0), x  # kernel shrunk: 2 * 5 - 1 = 9
    auc, curves = fn(
        model.to(device),
        x.to(device),
        attr.to(device),
        target,
        step_size=7,
        batch_size=4,
        return_curves=True,
        **kwargs,
    )
    counts = [min(7 * k, 30) for k in range(6)]
    model = model.cpu()
    for b in range(3):
        ref_auc, ref_curve = reference_curve(
            model, x[b], attr[b].sum(0), starts[b], ends[b], target[b], counts
        )
        torch.testing.assert_close(curves[b].cpu(), ref_curve.detach(), **tol)
        torch.testing.assert_close(auc[b].cpu(), ref_auc.detach(), **tol)
    assert auc.device.type == device.type and auc.dtype == dtype


@pytest.mark.parametrize("attr_shape", [(2, 3, 12), (2, 1, 12), (2, 12)])
def test_time_series_matches_loop_reference(attr_shape, device, dtype, tol) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 12, generator=g, dtype=dtype)
    attr = torch.randn(attr_shape, generator=g, dtype=dtype)
    saliency = attr.sum(1) if len(attr_shape) == 3 else attr
    model = Linear(36).to(dtype)
    res = insertion_deletion(
        model.to(device), x.to(device), attr.to(device), target=1, n_steps=5, return_curves=True
    )
    counts = [k * 12 // 5 for k in range(6)]
    model = model.cpu()
    blurred = torch.zeros_like(x)  # the default insertion start of a series: zeros
    for b in range(2):
        ref_del, _ = reference_curve(
            model, x[b], saliency[b], x[b], torch.zeros_like(x[b]), 1, counts
        )
        ref_ins, ref_curve = reference_curve(model, x[b], saliency[b], blurred[b], x[b], 1, counts)
        torch.testing.assert_close(res.deletion[b].cpu(), ref_del.detach(), **tol)
        torch.testing.assert_close(res.insertion[b].cpu(), ref_ins.detach(), **tol)
        torch.testing.assert_close(res.insertion_curve[b].cpu(), ref_curve.detach(), **tol)


def test_insertion_deletion_equals_separate_calls() -> None:
    x, attr = torch.rand(2, 3, 6, 6), torch.rand(2, 1, 6, 6)
    model = Linear(108)
    res = insertion_deletion(model, x, attr, target=1, n_steps=6, batch_size=5)
    torch.testing.assert_close(res.insertion, insertion_auc(model, x, attr, 1, n_steps=6))
    torch.testing.assert_close(res.deletion, deletion_auc(model, x, attr, 1, n_steps=6))
    assert res.insertion_curve is None and res.deletion_curve is None


def test_batch_size_invariance() -> None:
    x, attr = torch.rand(3, 1, 5, 5), torch.rand(3, 5, 5)
    model = Linear(25)
    ref = deletion_auc(model, x, attr, 0, n_steps=5, batch_size=1000)
    for batch_size in (1, 4, 7):
        torch.testing.assert_close(
            deletion_auc(model, x, attr, 0, n_steps=5, batch_size=batch_size), ref
        )


def test_identity_confidence_scores_raw_output() -> None:
    x, attr = torch.rand(2, 1, 4, 4), torch.rand(2, 4, 4)
    model = Linear(16)

    def prob_model(inp: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(inp), dim=1)

    torch.testing.assert_close(
        deletion_auc(prob_model, x, attr, 2, n_steps=4, confidence="identity"),
        deletion_auc(model, x, attr, 2, n_steps=4),
    )


# --------------------------------------------------------------------------------------------
# targets, forward args, ties


def test_target_forms_agree() -> None:
    x, attr = torch.rand(2, 1, 4, 4), torch.rand(2, 4, 4)
    model = Linear(16)
    predicted = model(x).argmax(1)
    ref = deletion_auc(model, x, attr, predicted, n_steps=4)
    torch.testing.assert_close(deletion_auc(model, x, attr, None, n_steps=4), ref)
    torch.testing.assert_close(deletion_auc(model, x, attr, predicted.tolist(), n_steps=4), ref)
    same = deletion_auc(model, x, attr, 1, n_steps=4)
    torch.testing.assert_close(deletion_auc(model, x, attr, torch.tensor(1), n_steps=4), same)
    torch.testing.assert_close(deletion_auc(model, x, attr, [1, 1], n_steps=4), same)


def test_target_tuple_for_multidim_output() -> None:
    def model(inp: torch.Tensor) -> torch.Tensor:  # (N, 2, 2)
        return inp.flatten(1)[:, :4].reshape(-1, 2, 2)

    x, attr = torch.rand(2, 1, 3, 3), torch.rand(2, 3, 3)
    auc = deletion_auc(model, x, attr, (1, 0), n_steps=3, confidence="identity")
    assert auc.shape == (2,)


def test_additional_forward_args_are_repeated_per_step() -> None:
    x, attr = torch.rand(2, 1, 4, 4), torch.rand(2, 4, 4)
    model = Linear(16)
    scale = torch.tensor([1.0, 3.0])
    auc = deletion_auc(model, x, attr, 0, (scale,), n_steps=4, batch_size=3)
    for b in range(2):
        single = deletion_auc(
            lambda inp, s=scale[b]: model(inp) * s, x[b : b + 1], attr[b : b + 1], 0, n_steps=4
        )
        torch.testing.assert_close(auc[b : b + 1], single)


def test_ties_are_deterministic_and_position_free() -> None:
    """A constant map must not be scored by pixel order (row-major would delete row 0 first)."""

    def model(inp: torch.Tensor) -> torch.Tensor:  # only the top half matters
        return inp[:, 0, :4].mean(dim=(1, 2))

    x, attr = torch.ones(1, 1, 8, 8), torch.zeros(1, 8, 8)
    kwargs = {"n_steps": 64, "confidence": "identity"}
    auc = deletion_auc(model, x, attr, **kwargs)
    torch.testing.assert_close(auc, deletion_auc(model, x, attr, **kwargs))
    row_major = torch.arange(64.0).flip(0).reshape(1, 8, 8)
    assert deletion_auc(model, x, row_major, **kwargs) < 0.26  # 0.25 for row-major order
    assert 0.35 < auc.item() < 0.65  # chance level ~0.5
    other = deletion_auc(model, x, attr, generator=torch.Generator().manual_seed(5), **kwargs)
    assert not torch.equal(other, auc)


def test_no_gradient_is_tracked() -> None:
    x = torch.rand(1, 1, 4, 4, requires_grad=True)
    auc = deletion_auc(Linear(16), x, torch.rand(1, 4, 4), 0, n_steps=2)
    assert not auc.requires_grad


# --------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"attributions": torch.rand(2, 2, 4, 4)}, ValueError, "attributions"),
        ({"attributions": torch.rand(2, 4, 5)}, ValueError, "attributions"),
        ({"attributions": torch.rand(3, 4, 4)}, ValueError, "attributions"),
        ({"attributions": torch.full((2, 4, 4), math.nan)}, ValueError, "attributions"),
        ({"attributions": torch.full((2, 4, 4), math.inf)}, ValueError, "attributions"),
        ({"attributions": torch.ones(2, 4, 4, dtype=torch.long)}, TypeError, "attributions"),
        ({"attributions": [[1.0]]}, TypeError, "attributions"),
        ({"inputs": torch.ones(2, 3, 4, 4, dtype=torch.uint8)}, TypeError, "inputs"),
        ({"inputs": torch.rand(2, 48)}, ValueError, "inputs"),
        ({"inputs": torch.full((2, 3, 4, 4), math.nan)}, ValueError, "inputs"),
        ({"n_steps": 0}, ValueError, "n_steps"),
        ({"n_steps": -3}, ValueError, "n_steps"),
        ({"n_steps": 17}, ValueError, "n_steps"),
        ({"n_steps": 2.5}, TypeError, "n_steps"),
        ({"n_steps": True}, TypeError, "n_steps"),
        ({"step_size": 0}, ValueError, "step_size"),
        ({"n_steps": 4, "step_size": 4}, ValueError, "n_steps"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"confidence": "probability"}, ValueError, "confidence"),
        ({"target": [0, 1, 2]}, AssertionError, "targets"),  # Captum's own error
        ({"target": torch.tensor([0, 1, 2])}, AssertionError, "targets"),
        ({"target": [0, 5]}, IndexError, "target"),
        ({"target": torch.tensor([-1, 0])}, IndexError, "target"),
        ({"target": torch.tensor([0.0, 1.0])}, TypeError, "target"),
        ({"target": 1.5}, TypeError, "target"),
        ({"baselines": torch.zeros(3, 3, 4, 4)}, ValueError, "baselines"),
        ({"baselines": "zeros"}, TypeError, "baselines"),
        ({"baselines": torch.tensor(math.nan)}, ValueError, "baselines"),
        ({"generator": 3}, TypeError, "generator"),
        ({"baselines": math.inf}, ValueError, "baselines"),
    ],
)
def test_deletion_bad_inputs(kwargs: dict, error: type, match: str) -> None:
    args = {"inputs": torch.rand(2, 3, 4, 4), "attributions": torch.rand(2, 4, 4), "target": 0}
    args.update(kwargs)

    def model(x: torch.Tensor, *extra: object) -> torch.Tensor:
        return x.flatten(1)[:, :3].float()

    with pytest.raises(error, match=match):
        deletion_auc(model, **args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"blur_kernel_size": 4}, ValueError, "blur_kernel_size"),
        ({"blur_kernel_size": 0}, ValueError, "blur_kernel_size"),
        ({"blur_sigma": 0.0}, ValueError, "blur_sigma"),
        ({"blur_sigma": "5"}, TypeError, "blur_sigma"),
        ({"substrate": torch.zeros(5)}, ValueError, "substrate"),
        ({"substrate": math.nan}, ValueError, "substrate"),
        ({"substrate": "mean"}, ValueError, "substrate"),
    ],
)
def test_insertion_bad_inputs(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        insertion_auc(Linear(48), torch.rand(2, 3, 4, 4), torch.rand(2, 4, 4), 0, **kwargs)


def test_single_output_model_scores_sigmoid_by_default_and_refuses_softmax() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))

    x, attr = torch.rand(1, 1, 2, 2), torch.rand(1, 2, 2)
    with pytest.raises(ValueError, match="sigmoid"):
        deletion_auc(model, x, attr, confidence="softmax")
    auto = deletion_auc(model, x, attr, n_steps=4)
    raw = deletion_auc(lambda v: torch.sigmoid(model(v)), x, attr, n_steps=4, confidence="identity")
    torch.testing.assert_close(auto, raw)


def test_target_none_on_multidim_output_raises() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :4].reshape(-1, 2, 2)

    with pytest.raises(ValueError, match="target"):
        deletion_auc(model, torch.rand(1, 1, 3, 3), torch.rand(1, 3, 3), confidence="identity")
