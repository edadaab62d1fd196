"""LatentVariationGenerator on time series (N, C, T) with tiny synthetic 1-D generators."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from torch import nn

from captum_perturbmask.generative import (
    CounterfactualConfig,
    LatentVariationGenerator,
    VariationSettings,
)
from captum_perturbmask.metrics import saliency_span

from .models import (
    CHANNELS_1D,
    D_LATENT,
    FAST,
    LENGTH,
    WINDOW,
    ConvSeriesGenerator,
    assert_same_snapshot,
    outside_equal,
    run_args,
    series,
    series_classifier,
    series_discriminator,
    series_generator,
    snapshot,
    span_mask,
)


def test_full_length_generator_shapes_and_equation_one_exact() -> None:
    x, mask = series(), span_mask()
    gen = series_generator()
    out = LatentVariationGenerator(gen).generate(x, mask=mask, **FAST)
    assert out.variants.shape == (2, 3, CHANNELS_1D, LENGTH)
    assert out.latents.shape == (2, 3, D_LATENT)
    assert out.losses.shape == (2, 3) and bool((out.losses[:, :-1] <= out.losses[:, 1:]).all())
    assert out.mask.shape == (2, LENGTH) and torch.equal(out.mask, mask)
    assert out.context_weights.shape == (2, LENGTH)
    assert torch.equal(out.patch_origin, torch.zeros(2, 1, dtype=torch.long))
    assert outside_equal(out, x)  # X' = X outside B, bitwise
    with torch.no_grad():
        g = gen(out.latents.reshape(-1, D_LATENT)).view(2, 3, CHANNELS_1D, LENGTH)
    inside = mask[:, None, None].expand_as(out.variants)
    assert torch.equal(out.variants[inside], g[inside])  # B * G(z') inside, bitwise
    assert bool((out.diversity > 0).all())
    assert out.realism is None and out.confidence is None


def test_inpainting_recovers_a_held_out_span_the_generator_can_represent() -> None:
    """x = G(z*): the context outside B pins z* down, so the search restores B itself."""
    gen = series_generator()
    z_star = torch.randn(2, D_LATENT, generator=torch.Generator().manual_seed(3))
    z_star = z_star / z_star.norm(dim=1, keepdim=True) * math.sqrt(D_LATENT)  # on the sphere
    with torch.no_grad():
        x = gen(z_star)
    out = LatentVariationGenerator(gen).generate(
        x,
        mask=span_mask(),
        seed=0,
        settings=VariationSettings(
            n_restarts=8, n_keep=1, n_steps=200, lam=0.0, tol=0.0, context_kernel=9
        ),
    )
    assert float((out.variants[:, 0] - x)[..., 9:15].abs().max()) < 1e-3
    assert float((out.latents[:, 0] - z_star).norm(dim=1).max()) < 1e-3


def test_window_generator_is_placed_on_b_with_a_discriminator() -> None:
    x = series()
    mask = span_mask(start=9, stop=15)
    gen, disc = ConvSeriesGenerator(), series_discriminator()
    lvg = LatentVariationGenerator(gen, disc, latent_dim=D_LATENT)
    out = lvg.generate(x, mask=mask, **FAST)
    # the 10-step window is centred on steps 9:15, rounded half up: (9 + 15 - 10 + 1) // 2 = 7
    assert out.patch_origin.tolist() == [[7], [7]]
    with torch.no_grad():
        g = gen.eval()(out.latents.reshape(-1, D_LATENT, 1)).view(2, 3, CHANNELS_1D, WINDOW)
    expected = x[:, None].repeat(1, 3, 1, 1)
    window = expected[..., 7 : 7 + WINDOW]
    expected[..., 7 : 7 + WINDOW] = torch.where(mask[:, None, None, 7 : 7 + WINDOW], g, window)
    assert torch.equal(out.variants, expected)
    assert out.realism is not None and out.realism.shape == (2, 3)
    assert bool(((out.realism > 0) & (out.realism < 1)).all())
    # explicit and clamped placements
    late = span_mask(start=20, stop=23)
    assert lvg.generate(x, mask=late, **FAST).patch_origin.tolist() == [[14], [14]]
    explicit = lvg.generate(x, mask=mask, patch_origin=5, **FAST)
    assert explicit.patch_origin.tolist() == [[5], [5]] and outside_equal(explicit, x)
    per_input = lvg.generate(x, mask=mask, patch_origin=torch.tensor([5, 6]), **FAST)
    assert per_input.patch_origin.tolist() == [[5], [6]] and outside_equal(per_input, x)
    with pytest.raises(ValueError, match="does not fit"):
        lvg.generate(x, mask=span_mask(start=2, stop=20), **FAST)
    with pytest.raises(ValueError, match="patch_origin"):
        lvg.generate(x, mask=mask, patch_origin=10, **FAST)  # B starts before the window


def test_context_weights_use_a_1d_box() -> None:
    out = LatentVariationGenerator(series_generator()).generate(
        series(1), mask=span_mask(1, 9, 15), **run_args(context_kernel=5)
    )
    r = out.context_weights[0]
    assert bool((r[9:15] == 0).all())
    assert float(r[8]) == pytest.approx(2 / 5)  # window 6:11 holds hole steps 9, 10
    assert float(r[7]) == pytest.approx(1 / 5)
    assert float(r[16]) == pytest.approx(1 / 5)
    assert float(r[6]) == 0.0 and float(r[17]) == 0.0


def test_mask_forms_and_saliency_span() -> None:
    x = series()
    lvg = LatentVariationGenerator(series_generator())
    ref = lvg.generate(x, mask=span_mask(), **FAST)
    for form in (span_mask()[0], span_mask()[:, None], span_mask().long(), span_mask().double()):
        assert torch.equal(lvg.generate(x, mask=form, **FAST).variants, ref.variants)
    sal = torch.rand(2, CHANNELS_1D, LENGTH, generator=torch.Generator().manual_seed(4))
    out = lvg.generate(x, sal, **run_args(threshold=0.9))
    span = saliency_span(sal, threshold=0.9).long()
    steps = torch.arange(LENGTH)
    assert torch.equal(out.mask, (steps >= span[:, :1]) & (steps < span[:, 1:]))
    assert outside_equal(out, x)
    out2d = lvg.generate(x, sal.sum(1), **run_args(threshold=0.9))
    assert torch.equal(out2d.mask, out.mask)


def test_scoring_by_a_classifier() -> None:
    x, mask = series(), span_mask()
    clf = series_classifier(3)
    out = LatentVariationGenerator(series_generator(), forward_func=clf).generate(
        x, mask=mask, **run_args(confidence_threshold=0.0)
    )
    with torch.no_grad():
        logits = clf(out.variants.flatten(0, 1)).view(2, 3, 3)
        clean = clf(x)
    assert out.target is not None and out.target.tolist() == clean.argmax(1).tolist()
    assert out.confidence is not None and out.predictions is not None
    expected = logits.softmax(-1).gather(2, out.target.view(2, 1, 1).expand(2, 3, 1))[..., 0]
    assert torch.allclose(out.confidence, expected, atol=1e-6)
    assert torch.equal(out.predictions, logits.argmax(-1))
    assert out.accepted is not None
    assert torch.equal(out.accepted, out.predictions == out.target[:, None])
    assert out.input_confidence is not None
    assert torch.allclose(out.input_confidence, clean.softmax(1).amax(1), atol=1e-6)


def test_scoring_by_a_single_logit_with_a_sigmoid() -> None:
    x, mask = series(), span_mask()
    clf = series_classifier(1)
    out = LatentVariationGenerator(series_generator(), forward_func=clf).generate(
        x, mask=mask, **FAST
    )
    with torch.no_grad():
        p = torch.sigmoid(clf(out.variants.flatten(0, 1))).view(2, 3)
    assert out.confidence is not None and torch.allclose(out.confidence, p)
    assert out.accepted is not None and torch.equal(out.accepted, p >= 0.5)


@pytest.mark.parametrize("cf_target", [None, 2])
def test_counterfactual_mode(cf_target: int | None) -> None:
    x, mask = series(), span_mask()
    lvg = LatentVariationGenerator(
        series_generator(), forward_func=series_classifier(3), feature_func=lambda v: v.flatten(1)
    )
    cfg = CounterfactualConfig(epsilon=1.5, weight=5.0, cf_target=cf_target, n_candidates=4)
    out = lvg.generate(x, mask=mask, counterfactual=cfg, **FAST)
    cf = out.counterfactuals
    assert cf is not None and out.target is not None
    assert cf.variants.shape == (2, 4, CHANNELS_1D, LENGTH)
    assert bool((cf.latent_distance <= 1.5 + 1e-4).all())
    norms = cf.latents.norm(dim=-1)
    assert torch.allclose(norms, torch.full_like(norms, math.sqrt(D_LATENT)), atol=1e-4)
    keep = ~mask[:, None, None].expand_as(cf.variants)
    assert torch.equal(cf.variants[keep], x[:, None].expand_as(cf.variants)[keep])
    if cf_target is None:
        assert torch.equal(cf.flipped, cf.predictions != out.target[:, None])
    else:
        assert torch.equal(cf.flipped, cf.predictions == cf_target)
    assert out.feature_diversity is not None and bool((out.feature_diversity > 0).all())


def test_seeded_and_models_left_as_found() -> None:
    gen, disc, clf = (
        ConvSeriesGenerator().train(),
        series_discriminator().train(),
        series_classifier(),
    )
    list(gen.parameters())[0].grad = torch.ones_like(list(gen.parameters())[0])
    models = [gen, disc, clf]
    before = snapshot(models)
    lvg = LatentVariationGenerator(gen, disc, latent_dim=D_LATENT, forward_func=clf)
    a = lvg.generate(
        series(), mask=span_mask(), counterfactual=CounterfactualConfig(n_steps=3), **FAST
    )
    b = lvg.generate(
        series(), mask=span_mask(), counterfactual=CounterfactualConfig(n_steps=3), **FAST
    )
    assert torch.equal(a.variants, b.variants)
    assert a.counterfactuals is not None and b.counterfactuals is not None
    assert torch.equal(a.counterfactuals.variants, b.counterfactuals.variants)
    assert_same_snapshot(before, snapshot(models))


def test_nan_from_a_1d_generator_raises() -> None:
    class _NaNGen(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = series_generator()

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.inner(z) * torch.where(z[:, :1, None] > 0.5, float("nan"), 1.0)

    with pytest.raises(ValueError, match="generator returned NaN"):
        LatentVariationGenerator(_NaNGen(), latent_dim=D_LATENT).generate(
            series(), mask=span_mask(), **FAST
        )


def _image_generator() -> nn.Module:
    return nn.Sequential(
        nn.Linear(D_LATENT, CHANNELS_1D * 16), nn.Unflatten(1, (CHANNELS_1D, 4, 4))
    )


BAD_SERIES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("image mask", {"mask": torch.ones(2, 4, LENGTH, dtype=torch.bool)}, ValueError, "mask"),
    ("mask length", {"mask": torch.ones(2, LENGTH + 1, dtype=torch.bool)}, ValueError, "mask"),
    ("mask batch", {"mask": span_mask(3)}, ValueError, "mask"),
    ("mask channel", {"mask": span_mask()[:, None].expand(2, 2, LENGTH)}, ValueError, "mask"),
    ("mask values", {"mask": span_mask().float() * 3}, ValueError, "binary"),
    ("mask empty", {"mask": torch.zeros(LENGTH, dtype=torch.bool)}, ValueError, "empty"),
    (
        "saliency image",
        {"mask": None, "saliency": torch.rand(2, 4, 4, LENGTH)},
        ValueError,
        "saliency",
    ),  # fmt: skip
    (
        "saliency length",
        {"mask": None, "saliency": torch.rand(2, LENGTH - 1)},
        ValueError,
        "saliency",
    ),  # fmt: skip
    (
        "saliency nan",
        {"mask": None, "saliency": torch.full((2, LENGTH), float("nan"))},
        ValueError,
        "saliency",
    ),  # fmt: skip
    ("patch_origin pair", {"patch_origin": (0, 0)}, TypeError, "patch_origin"),
    ("patch_origin float", {"patch_origin": 1.0}, TypeError, "patch_origin"),
    ("patch_origin bool", {"patch_origin": True}, TypeError, "patch_origin"),
    (
        "patch_origin (N, 2)",
        {"patch_origin": torch.zeros(2, 2).long()},
        ValueError,
        "patch_origin",
    ),  # fmt: skip
    ("context_kernel even", {"context_kernel": 2}, ValueError, "context_kernel"),
    ("feather float", {"feather": 1.0}, TypeError, "feather"),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [case[1:] for case in BAD_SERIES],
    ids=[case[0] for case in BAD_SERIES],
)
def test_bad_series_arguments_raise(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    fields = {f.name for f in dataclasses.fields(VariationSettings)}
    knobs = {k: v for k, v in kwargs.items() if k in fields}
    rest = {k: v for k, v in kwargs.items() if k not in fields}
    lvg = LatentVariationGenerator(ConvSeriesGenerator(), latent_dim=D_LATENT)
    with pytest.raises(error, match=match):  # a bad knob fails in VariationSettings
        lvg.generate(**{"inputs": series(), "mask": span_mask(), **run_args(**knobs), **rest})


def test_bad_series_generators_raise() -> None:
    x, mask = series(), span_mask()
    with pytest.raises(ValueError, match="generator must map.*series"):
        LatentVariationGenerator(_image_generator()).generate(x, mask=mask, **FAST)
    too_long = series_generator(LENGTH + 4)
    with pytest.raises(ValueError, match="generator output"):
        LatentVariationGenerator(too_long).generate(x, mask=mask, **FAST)
    one_channel = nn.Sequential(nn.Linear(D_LATENT, LENGTH), nn.Unflatten(1, (1, LENGTH)))
    with pytest.raises(ValueError, match="generator output"):
        LatentVariationGenerator(one_channel).generate(x, mask=mask, **FAST)
    with pytest.raises(ValueError, match="generator must map"):  # image inputs, 1-D generator
        LatentVariationGenerator(series_generator()).generate(
            torch.rand(2, CHANNELS_1D, 4, LENGTH), mask=torch.ones(4, LENGTH), **FAST
        )
