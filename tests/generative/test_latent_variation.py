"""LatentVariationGenerator on small random models: composition, determinism, hygiene, errors."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from captum_perturbmask.generative import (
    CounterfactualConfig,
    LatentVariationGenerator,
    LatentVariations,
)
from captum_perturbmask.metrics import box_to_mask, saliency_box

D_LATENT = 8
SIZE = 16
PATCH = 8


def full_generator() -> nn.Module:
    """(M, 8) -> (M, 3, 16, 16), with BatchNorm so that train mode would couple restarts."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Linear(D_LATENT, 32),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Linear(32, 3 * SIZE * SIZE),
        nn.Sigmoid(),
        nn.Unflatten(1, (3, SIZE, SIZE)),
    )


class PatchGenerator(nn.Module):
    """(M, 8, 1, 1) -> (M, 3, 8, 8) patch, DCGAN style."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.latent_dim = D_LATENT
        self.net = nn.Sequential(
            nn.ConvTranspose2d(D_LATENT, 16, 4),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 3, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def discriminator() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 1),
    )


def classifier() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
    )


def images(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))


def box_mask(n: int = 2, rows: slice = slice(5, 10), cols: slice = slice(4, 11)) -> torch.Tensor:
    m = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    m[:, rows, cols] = True
    return m


FAST: dict[str, Any] = {"n_restarts": 6, "n_keep": 3, "n_steps": 15, "seed": 0}


def outside_equal(out: LatentVariations, x: torch.Tensor) -> bool:
    keep = ~out.mask[:, None, None].expand_as(out.variants)
    ref = x[:, None].expand_as(out.variants)
    return torch.equal(out.variants[keep], ref[keep])


# --------------------------------------------------------------------------- composition
def test_full_generator_outside_b_bitwise_and_diverse_inside() -> None:
    x = images()
    mask = box_mask()
    out = LatentVariationGenerator(full_generator()).generate(x, mask=mask, **FAST)
    assert out.variants.shape == (2, 3, 3, SIZE, SIZE)
    assert out.latents.shape == (2, 3, D_LATENT)
    assert out.losses.shape == (2, 3)
    assert outside_equal(out, x)
    assert bool((out.diversity > 0).all())
    inside = out.variants[:, :, :, mask[0]]
    assert not torch.equal(inside[:, 0], inside[:, 1])
    assert bool((out.losses[:, :-1] <= out.losses[:, 1:]).all()), "sorted best first"
    assert out.confidence is None and out.accepted is None and out.realism is None
    assert out.counterfactuals is None
    assert torch.equal(out.patch_origin, torch.zeros(2, 2, dtype=torch.long))


def test_equation_one_inside_b_is_the_generation() -> None:
    x = images()
    mask = box_mask()
    gen = PatchGenerator()
    out = LatentVariationGenerator(gen, discriminator()).generate(x, mask=mask, **FAST)
    # the 8x8 patch is centred on the box rows 5:10, cols 4:11 (rounded half up) -> (4, 4)
    assert out.patch_origin.tolist() == [[4, 4], [4, 4]]
    with torch.no_grad():
        patches = gen.eval()(out.latents.reshape(-1, D_LATENT, 1, 1)).view(2, 3, 3, 8, 8)
    canvas = x[:, None].repeat(1, 3, 1, 1, 1)
    canvas[..., 4:12, 4:12] = patches
    m = mask[:, None, None].expand_as(canvas)
    expected = torch.where(m, canvas, x[:, None].expand_as(canvas))
    assert torch.equal(out.variants, expected)
    assert outside_equal(out, x)
    assert bool((out.diversity > 0).all())
    assert out.realism is not None and out.realism.shape == (2, 3)
    assert bool(((out.realism > 0) & (out.realism < 1)).all())


def test_patch_is_clamped_inside_the_image_and_explicit_origin() -> None:
    x = images(1)
    mask = box_mask(1, slice(0, 3), slice(12, 15))  # near the top-right corner
    lvg = LatentVariationGenerator(PatchGenerator())
    out = lvg.generate(x, mask=mask, **FAST)
    assert out.patch_origin.tolist() == [[0, 8]]
    assert outside_equal(out, x)
    out2 = lvg.generate(x, mask=mask, patch_origin=(0, 7), **FAST)
    assert out2.patch_origin.tolist() == [[0, 7]]
    assert outside_equal(out2, x)
    with pytest.raises(ValueError, match="patch_origin"):
        lvg.generate(x, mask=mask, patch_origin=(4, 4), **FAST)  # B not inside the patch
    with pytest.raises(ValueError, match="patch_origin"):
        lvg.generate(x, mask=mask, patch_origin=(0, 9), **FAST)  # patch leaves the image


def test_arbitrary_binary_mask_and_float_mask() -> None:
    x = images(1)
    ring = box_mask(1, slice(4, 12), slice(4, 12)) & ~box_mask(1, slice(6, 10), slice(6, 10))
    lvg = LatentVariationGenerator(full_generator())
    out = lvg.generate(x, mask=ring.float()[:, None], **FAST)
    assert torch.equal(out.mask, ring)
    assert outside_equal(out, x)
    out2d = lvg.generate(x, mask=ring[0], **FAST)
    assert torch.equal(out2d.variants, out.variants)


def test_feathered_blend_keeps_outside_exact() -> None:
    x = images(1)
    mask = box_mask(1)
    lvg = LatentVariationGenerator(full_generator())
    hard = lvg.generate(x, mask=mask, **FAST)
    soft = lvg.generate(x, mask=mask, feather=2, **FAST)
    assert outside_equal(soft, x)
    assert not torch.equal(hard.variants, soft.variants)


def test_saliency_to_box_uses_the_metrics_box() -> None:
    x = images()
    sal = torch.zeros(2, SIZE, SIZE)
    sal[0, 6:9, 5:9] = 1.0
    sal[1, 2:5, 10:14] = 2.0
    out = LatentVariationGenerator(PatchGenerator()).generate(
        x, sal, threshold=0.5, threshold_mode="value", **FAST
    )
    expected = box_to_mask(saliency_box(sal, threshold=0.5, mode="value"), (SIZE, SIZE))
    assert torch.equal(out.mask, expected)
    assert outside_equal(out, x)
    with pytest.raises(ValueError, match="does not fit"):
        LatentVariationGenerator(PatchGenerator()).generate(x, torch.rand(2, SIZE, SIZE), **FAST)


def test_context_weights_follow_yeh() -> None:
    x = images(1)
    mask = box_mask(1)
    out = LatentVariationGenerator(full_generator()).generate(
        x, mask=mask, context_kernel=5, **FAST
    )
    r = out.context_weights[0]
    assert bool((r[mask[0]] == 0).all())
    assert bool((r >= 0).all()) and bool((r <= 1).all())
    assert float(r[4, 6]) == pytest.approx(2 * 5 / 25)  # window rows 2:7 hold hole rows 5, 6
    assert float(r[0, 0]) == 0.0  # farther than s // 2 from the hole
    assert float(r[12, 6]) == 0.0


# --------------------------------------------------------------------------- randomness
def test_seeded_runs_identical_and_generator_argument() -> None:
    x = images()
    mask = box_mask()
    lvg = LatentVariationGenerator(PatchGenerator(), discriminator())
    a = lvg.generate(x, mask=mask, **FAST)
    b = lvg.generate(x, mask=mask, **FAST)
    assert torch.equal(a.variants, b.variants) and torch.equal(a.latents, b.latents)
    args = {k: v for k, v in FAST.items() if k != "seed"}
    c = lvg.generate(x, mask=mask, generator=torch.Generator().manual_seed(0), **args)
    assert torch.equal(a.variants, c.variants)
    d = lvg.generate(x, mask=mask, **{**FAST, "seed": 1})
    assert not torch.equal(a.latents, d.latents)


def test_global_rng_untouched() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    LatentVariationGenerator(full_generator()).generate(images(1), mask=box_mask(1), **FAST)
    # full_generator() seeds the global RNG itself; compare after building the model instead
    lvg = LatentVariationGenerator(full_generator())
    torch.manual_seed(123)
    before = torch.get_rng_state()
    lvg.generate(images(1), mask=box_mask(1), **FAST)
    assert torch.equal(before, torch.get_rng_state())


# --------------------------------------------------------------------------- search knobs
@pytest.mark.parametrize("projection", ["sphere", "clip"])
def test_projection_keeps_prior_support(projection: str) -> None:
    out = LatentVariationGenerator(full_generator()).generate(
        images(1), mask=box_mask(1), projection=projection, clip_value=0.5, lr=0.5, **FAST
    )
    if projection == "sphere":
        norms = out.latents.norm(dim=-1)
        assert torch.allclose(norms, torch.full_like(norms, math.sqrt(D_LATENT)), atol=1e-4)
    else:
        assert float(out.latents.abs().max()) <= 0.5


@pytest.mark.parametrize(
    "options",
    [
        {"loss": "l1"},
        {"reduction": "mean"},
        {"realism": "nonsaturating"},
        {"lam": 0.0},
        {"show_progress": True},
    ],
)
def test_loss_options_run(options: dict[str, Any]) -> None:
    x = images(1)
    out = LatentVariationGenerator(PatchGenerator(), discriminator()).generate(
        x, mask=box_mask(1), **{**FAST, **options}
    )
    assert bool(torch.isfinite(out.losses).all())
    assert outside_equal(out, x)


def test_early_stopping() -> None:
    lvg = LatentVariationGenerator(full_generator())
    args = {**FAST, "n_steps": 200, "check_every": 5}
    stopped = lvg.generate(images(1), mask=box_mask(1), tol=0.5, **args)
    assert stopped.n_steps == 10  # the first comparison of two checks passes tol=0.5
    full = lvg.generate(images(1), mask=box_mask(1), tol=0.0, **{**args, "n_steps": 30})
    assert full.n_steps == 30


def test_search_lowers_the_loss() -> None:
    lvg = LatentVariationGenerator(PatchGenerator(), discriminator())
    x = images(1)
    short = lvg.generate(x, mask=box_mask(1), **{**FAST, "n_steps": 1})
    long = lvg.generate(x, mask=box_mask(1), **{**FAST, "n_steps": 60}, lr=0.1)
    assert float(long.losses[0, 0]) < float(short.losses[0, 0])


def test_works_under_no_grad() -> None:
    with torch.no_grad():
        out = LatentVariationGenerator(full_generator()).generate(
            images(1), mask=box_mask(1), **FAST
        )
    assert out.variants.shape[1] == 3


# --------------------------------------------------------------------------- scoring
def test_scoring_with_classifier_and_features() -> None:
    x = images()
    clf = classifier()
    feats = nn.Sequential(*list(clf.children())[:-1])
    lvg = LatentVariationGenerator(
        PatchGenerator(), discriminator(), forward_func=clf, feature_func=feats
    )
    out = lvg.generate(x, mask=box_mask(), target=[1, 2], confidence_threshold=0.0, **FAST)
    assert out.confidence is not None and out.confidence.shape == (2, 3)
    assert bool(((out.confidence >= 0) & (out.confidence <= 1)).all())
    assert out.predictions is not None and out.accepted is not None
    assert out.target is not None and out.target.tolist() == [1, 2]
    assert torch.equal(out.accepted, out.predictions == out.target[:, None])
    assert out.input_confidence is not None and out.input_confidence.shape == (2,)
    assert out.feature_diversity is not None and bool((out.feature_diversity >= 0).all())
    default = lvg.generate(x, mask=box_mask(), **FAST)
    with torch.no_grad():
        assert default.target is not None
        assert default.target.tolist() == clf.eval()(x).argmax(1).tolist()
    assert 0.0 <= (default.accepted_fraction or 0.0) <= 1.0


@pytest.mark.parametrize("projection", ["sphere", "clip"])
@pytest.mark.parametrize("cf_target", [None, 3])
def test_counterfactual_respects_budget(projection: str, cf_target: int | None) -> None:
    x = images()
    lvg = LatentVariationGenerator(PatchGenerator(), discriminator(), forward_func=classifier())
    cfg = CounterfactualConfig(epsilon=1.0, weight=5.0, cf_target=cf_target, n_candidates=4)
    out = lvg.generate(
        x, mask=box_mask(), counterfactual=cfg, projection=projection, clip_value=2.0, **FAST
    )
    cf = out.counterfactuals
    assert cf is not None
    assert cf.variants.shape == (2, 4, 3, SIZE, SIZE)
    assert bool((cf.latent_distance <= 1.0 + 1e-4).all())
    keep = ~out.mask[:, None, None].expand_as(cf.variants)
    assert torch.equal(cf.variants[keep], x[:, None].expand_as(cf.variants)[keep])
    assert cf.flipped.dtype == torch.bool and cf.flipped.shape == (2, 4)
    if cf_target is None:
        assert torch.equal(cf.flipped, cf.predictions != out.target[:, None])
    else:
        assert torch.equal(cf.flipped, cf.predictions == cf_target)
    assert 0 <= cf.n_flipped_inputs <= 2
    if projection == "sphere":
        norms = cf.latents.norm(dim=-1)
        assert torch.allclose(norms, torch.full_like(norms, math.sqrt(D_LATENT)), atol=1e-4)


# --------------------------------------------------------------------------- hygiene
def _clone(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clone()


def _snapshot(models: list[nn.Module]) -> dict[str, Any]:
    return {
        "state": [{k: v.clone() for k, v in m.state_dict().items()} for m in models],
        "modes": [[s.training for s in m.modules()] for m in models],
        "flags": [[p.requires_grad for p in m.parameters()] for m in models],
        "grads": [[_clone(p.grad) for p in m.parameters()] for m in models],
        "hooks": [
            [(len(s._forward_hooks), len(s._forward_pre_hooks)) for s in m.modules()]
            for m in models
        ],
    }


def test_models_left_exactly_as_found() -> None:
    gen, disc, clf = PatchGenerator(), discriminator(), classifier()
    models = [gen, disc, clf]
    for m in models:
        m.train()
    disc[0].eval()  # a mixed-mode submodule must come back mixed
    next(clf.parameters()).requires_grad_(False)
    list(gen.parameters())[1].grad = torch.ones_like(list(gen.parameters())[1])
    calls = {"n": 0}

    def hook(*_: Any) -> None:
        calls["n"] += 1

    gen.register_forward_hook(hook)
    clf[0].register_forward_pre_hook(hook)
    before = _snapshot(models)

    lvg = LatentVariationGenerator(gen, disc, forward_func=clf, feature_func=clf[:-1])
    out = lvg.generate(
        images(), mask=box_mask(), counterfactual=CounterfactualConfig(n_steps=5), **FAST
    )
    assert calls["n"] > 0, "user hooks stay active during the call"
    after = _snapshot(models)
    for sb, sa in zip(before["state"], after["state"], strict=True):
        assert sb.keys() == sa.keys()
        assert all(torch.equal(sb[k], sa[k]) for k in sb)
    assert before["modes"] == after["modes"]
    assert before["flags"] == after["flags"]
    assert before["hooks"] == after["hooks"]
    for gb, ga in zip(before["grads"], after["grads"], strict=True):
        for b, a in zip(gb, ga, strict=True):
            assert (b is None) == (a is None)
            assert b is None or torch.equal(a, b)
    assert out.variants.requires_grad is False
    assert out.latents.requires_grad is False


def test_models_restored_after_an_error() -> None:
    gen = full_generator().train()
    disc = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 2)).train()  # 2 logits: bad
    with pytest.raises(ValueError, match="discriminator"):
        LatentVariationGenerator(gen, disc).generate(images(1), mask=box_mask(1), **FAST)
    assert all(m.training for m in gen.modules()) and all(m.training for m in disc.modules())
    assert all(p.requires_grad for p in gen.parameters())


# --------------------------------------------------------------------------- latent_dim
def test_latent_dim_inference() -> None:
    assert LatentVariationGenerator(full_generator()).latent_dim == D_LATENT
    assert LatentVariationGenerator(PatchGenerator()).latent_dim == D_LATENT
    deconv = nn.Sequential(nn.ConvTranspose2d(5, 3, 16), nn.Sigmoid())
    assert LatentVariationGenerator(deconv).latent_dim == 5
    out = LatentVariationGenerator(deconv).generate(images(1), mask=box_mask(1), **FAST)
    assert out.latents.shape == (1, 3, 5)
    with pytest.raises(ValueError, match="latent_dim"):
        LatentVariationGenerator(nn.Sequential(nn.Sigmoid()))
    with pytest.raises(ValueError, match="latent_dim"):
        LatentVariationGenerator(full_generator(), latent_dim=0)
    with pytest.raises(TypeError, match="latent_dim"):
        LatentVariationGenerator(full_generator(), latent_dim=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latent_dim"):  # wrong explicit latent_dim
        LatentVariationGenerator(full_generator(), latent_dim=7).generate(
            images(1), mask=box_mask(1), **FAST
        )


# --------------------------------------------------------------------------- bad input
def _nan_images() -> torch.Tensor:
    x = images()
    x[0, 0, 0, 0] = float("nan")
    return x


BAD_CALLS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("nan inputs", {"inputs": _nan_images()}, ValueError, "inputs"),
    ("3d inputs", {"inputs": images()[0]}, ValueError, "inputs"),
    ("int inputs", {"inputs": (images() * 10).long()}, TypeError, "inputs"),
    ("list inputs", {"inputs": [[0.0]]}, TypeError, "inputs"),
    ("no mask", {"mask": None}, ValueError, "saliency and mask"),
    ("mask and saliency", {"saliency": torch.rand(2, SIZE, SIZE)}, ValueError, "saliency"),
    ("mask shape", {"mask": box_mask()[:, :8]}, ValueError, "mask"),
    ("mask batch", {"mask": box_mask(3)}, ValueError, "mask"),
    ("mask not binary", {"mask": box_mask().float() * 0.5}, ValueError, "binary"),
    ("mask empty", {"mask": torch.zeros(2, SIZE, SIZE, dtype=torch.bool)}, ValueError, "empty"),
    ("mask numpy", {"mask": box_mask().numpy()}, TypeError, "mask"),
    ("saliency shape", {"mask": None, "saliency": torch.rand(2, 8, 8)}, ValueError, "saliency"),
    (
        "saliency nan",
        {"mask": None, "saliency": torch.full((2, SIZE, SIZE), float("nan"))},
        ValueError,
        "saliency",
    ),
    ("n_restarts", {"n_restarts": 0}, ValueError, "n_restarts"),
    ("n_restarts float", {"n_restarts": 4.0}, TypeError, "n_restarts"),
    ("n_keep", {"n_keep": 7}, ValueError, "n_keep"),
    ("n_steps", {"n_steps": 0}, ValueError, "n_steps"),
    ("lr", {"lr": -1.0}, ValueError, "lr"),
    ("lr nan", {"lr": float("nan")}, ValueError, "lr"),
    ("lam", {"lam": -0.1}, ValueError, "lam"),
    ("loss", {"loss": "huber"}, ValueError, "loss"),
    ("reduction", {"reduction": "max"}, ValueError, "reduction"),
    ("realism", {"realism": "wgan"}, ValueError, "realism"),
    ("context_kernel even", {"context_kernel": 4}, ValueError, "context_kernel"),
    ("context_kernel", {"context_kernel": 0}, ValueError, "context_kernel"),
    ("projection", {"projection": "ball"}, ValueError, "projection"),
    ("clip_value", {"clip_value": 0.0}, ValueError, "clip_value"),
    ("tol", {"tol": -1.0}, ValueError, "tol"),
    ("check_every", {"check_every": 0}, ValueError, "check_every"),
    ("feather", {"feather": -1}, ValueError, "feather"),
    ("confidence_fn", {"confidence_fn": "max"}, ValueError, "confidence_fn"),
    ("confidence_threshold", {"confidence_threshold": 1.5}, ValueError, "confidence_threshold"),
    ("seed", {"seed": "0"}, TypeError, "seed"),
    ("seed and generator", {"generator": torch.Generator()}, ValueError, "seed"),
    ("generator module", {"seed": None, "generator": nn.Linear(1, 1)}, TypeError, "generator"),
    ("counterfactual type", {"counterfactual": "yes"}, TypeError, "counterfactual"),
    ("counterfactual no clf", {"counterfactual": True}, ValueError, "forward_func"),
    ("show_progress", {"show_progress": 1}, TypeError, "show_progress"),
    ("patch_origin full", {"patch_origin": (0, 0.5)}, TypeError, "patch_origin"),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [case[1:] for case in BAD_CALLS],
    ids=[case[0] for case in BAD_CALLS],
)
def test_bad_arguments_raise(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    call: dict[str, Any] = {"inputs": images(), "mask": box_mask(), **FAST, **kwargs}
    lvg = LatentVariationGenerator(PatchGenerator())
    with pytest.raises(error, match=match):
        lvg.generate(**call)


def test_bad_models_raise() -> None:
    x, mask = images(), box_mask()
    with pytest.raises(TypeError, match="generator"):
        LatentVariationGenerator(lambda z: z)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="discriminator"):
        LatentVariationGenerator(PatchGenerator(), discriminator=lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="forward_func"):
        LatentVariationGenerator(PatchGenerator(), forward_func=3)  # type: ignore[arg-type]
    big = nn.Sequential(nn.Linear(D_LATENT, 3 * 20 * 20), nn.Unflatten(1, (3, 20, 20)))
    with pytest.raises(ValueError, match="generator output"):
        LatentVariationGenerator(big).generate(x, mask=mask, **FAST)
    gray = nn.Sequential(nn.Linear(D_LATENT, SIZE * SIZE), nn.Unflatten(1, (1, SIZE, SIZE)))
    with pytest.raises(ValueError, match="generator output"):
        LatentVariationGenerator(gray).generate(x, mask=mask, **FAST)
    flat = nn.Linear(D_LATENT, 3 * SIZE * SIZE)
    with pytest.raises(ValueError, match="generator must map"):
        LatentVariationGenerator(flat).generate(x, mask=mask, **FAST)
    bad_clf = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 4), nn.Unflatten(1, (2, 2)))
    with pytest.raises(ValueError, match="forward_func"):
        LatentVariationGenerator(PatchGenerator(), forward_func=bad_clf).generate(
            x, mask=mask, **FAST
        )
    lvg = LatentVariationGenerator(PatchGenerator(), forward_func=classifier())
    with pytest.raises(ValueError, match="target"):
        lvg.generate(x, mask=mask, target=9, **FAST)
    with pytest.raises(ValueError, match="target"):
        lvg.generate(x, mask=mask, target=[0, 1, 2], **FAST)
    with pytest.raises(TypeError, match="target"):
        lvg.generate(x, mask=mask, target=torch.tensor([0.5, 1.0]), **FAST)
    with pytest.raises(ValueError, match="epsilon"):
        lvg.generate(x, mask=mask, counterfactual=CounterfactualConfig(epsilon=-1.0), **FAST)
    with pytest.raises(ValueError, match="cf_target"):
        lvg.generate(x, mask=mask, counterfactual=CounterfactualConfig(cf_target=7), **FAST)
    with pytest.raises(ValueError, match="feature_func"):
        LatentVariationGenerator(PatchGenerator(), feature_func=lambda v: v[:1]).generate(
            x, mask=mask, **FAST
        )


# --------------------------------------------------------------------------- figure
def test_figure(tmp_path: Any) -> None:
    lvg = LatentVariationGenerator(PatchGenerator(), discriminator(), forward_func=classifier())
    out = lvg.generate(
        images(), mask=box_mask(), counterfactual=CounterfactualConfig(n_steps=3), **FAST
    )
    fig = out.to_figure(max_variants=2)
    assert len(fig.axes) == 2 * (2 + 2 + 2) + 2  # and a colour bar of R per row
    path = tmp_path / "grid.png"
    out.plot(str(path), index=1)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="index"):
        out.to_figure(index=5)


def test_patch_placement_matches_the_digits_patch_boxes() -> None:
    from captum_perturbmask.data import make_digits_clutter

    ds = make_digits_clutter("test", n=16)
    mask = box_to_mask(ds.boxes, (64, 64))
    origins, _ = LatentVariationGenerator._origins(mask, (32, 32), None)
    assert torch.equal(origins, ds.patch_boxes[:, [1, 0]].long())
