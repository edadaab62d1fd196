"""LatentVariationGenerator on small image models: composition, determinism, scoring, hygiene,
concurrency, NaN handling and argument errors. Series are in test_latent_variation_series.py."""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from captum_perturbmask.generative import (
    CounterfactualConfig,
    LatentVariationGenerator,
    VariationSettings,
)
from captum_perturbmask.metrics import box_to_mask, saliency_box

from .models import (
    D_LATENT,
    FAST,
    SIZE,
    PatchGenerator,
    assert_same_snapshot,
    box_mask,
    classifier,
    discriminator,
    full_generator,
    images,
    outside_equal,
    run_args,
    snapshot,
)


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
    out3 = lvg.generate(x, mask=mask, patch_origin=torch.tensor([[0, 7]]), **FAST)
    assert torch.equal(out3.variants, out2.variants)
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
    soft = lvg.generate(x, mask=mask, **run_args(feather=2))
    assert outside_equal(soft, x)
    assert not torch.equal(hard.variants, soft.variants)


def test_saliency_to_box_uses_the_metrics_box() -> None:
    x = images()
    sal = torch.zeros(2, SIZE, SIZE)
    sal[0, 6:9, 5:9] = 1.0
    sal[1, 2:5, 10:14] = 2.0
    out = LatentVariationGenerator(PatchGenerator()).generate(
        x, sal, **run_args(threshold=0.5, threshold_mode="value")
    )
    expected = box_to_mask(saliency_box(sal, threshold=0.5, mode="value"), (SIZE, SIZE))
    assert torch.equal(out.mask, expected)
    assert outside_equal(out, x)
    # a saliency box larger than the window is cut to it (the default never raises) ...
    wide = LatentVariationGenerator(PatchGenerator()).generate(
        x, torch.rand(2, SIZE, SIZE), **run_args(threshold=0.5)
    )
    assert outside_equal(wide, x)
    assert wide.mask.flatten(1).any(1).all()
    # ... an explicit mask that does not fit still raises
    with pytest.raises(ValueError, match="does not fit"):
        LatentVariationGenerator(PatchGenerator()).generate(
            x, mask=torch.ones(SIZE, SIZE, dtype=torch.bool), **FAST
        )


def test_context_weights_follow_yeh() -> None:
    x = images(1)
    mask = box_mask(1)
    out = LatentVariationGenerator(full_generator()).generate(
        x, mask=mask, **run_args(context_kernel=5)
    )
    r = out.context_weights[0]
    assert bool((r[mask[0]] == 0).all())
    assert bool((r >= 0).all()) and bool((r <= 1).all())
    assert float(r[4, 6]) == pytest.approx(2 * 5 / 25)  # window rows 2:7 hold hole rows 5, 6
    assert float(r[0, 0]) == 0.0  # farther than s // 2 from the hole
    assert float(r[12, 6]) == 0.0


# --------------------------------------------------------------------------- randomness
def test_seeded_runs_identical_and_rng_argument() -> None:
    x = images()
    mask = box_mask()
    lvg = LatentVariationGenerator(PatchGenerator(), discriminator())
    a = lvg.generate(x, mask=mask, **FAST)
    b = lvg.generate(x, mask=mask, **FAST)
    assert torch.equal(a.variants, b.variants) and torch.equal(a.latents, b.latents)
    args = {k: v for k, v in FAST.items() if k != "seed"}
    c = lvg.generate(x, mask=mask, rng=torch.Generator().manual_seed(0), **args)
    assert torch.equal(a.variants, c.variants)
    d = lvg.generate(x, mask=mask, **run_args(seed=1))
    assert not torch.equal(a.latents, d.latents)


def test_global_rngs_untouched() -> None:
    lvg = LatentVariationGenerator(PatchGenerator(), discriminator(), forward_func=classifier())
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    cfg = CounterfactualConfig(n_steps=3)
    lvg.generate(images(1), mask=box_mask(1), counterfactual=cfg, **FAST)
    lvg.generate(images(1), mask=box_mask(1), **run_args(seed=None))  # fresh private seed
    after = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    assert torch.equal(before[0], after[0])
    assert all(np.array_equal(u, v) for u, v in zip(before[1], after[1], strict=True))
    assert before[2] == after[2]


# --------------------------------------------------------------------------- search knobs
@pytest.mark.parametrize("projection", ["sphere", "clip"])
def test_projection_keeps_prior_support(projection: str) -> None:
    out = LatentVariationGenerator(full_generator()).generate(
        images(1), mask=box_mask(1), **run_args(projection=projection, clip_value=0.5, lr=0.5)
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
    progress = options.pop("show_progress", False)
    out = LatentVariationGenerator(PatchGenerator(), discriminator()).generate(
        x, mask=box_mask(1), **run_args(**options), show_progress=progress
    )
    assert bool(torch.isfinite(out.losses).all())
    assert outside_equal(out, x)


def test_early_stopping() -> None:
    lvg = LatentVariationGenerator(full_generator())
    stopped = lvg.generate(
        images(1), mask=box_mask(1), **run_args(n_steps=200, check_every=5, tol=0.5)
    )
    assert stopped.n_steps == 10  # the first comparison of two checks passes tol=0.5
    full = lvg.generate(images(1), mask=box_mask(1), **run_args(n_steps=30, check_every=5, tol=0.0))
    assert full.n_steps == 30


def test_search_lowers_the_loss() -> None:
    lvg = LatentVariationGenerator(PatchGenerator(), discriminator())
    x = images(1)
    short = lvg.generate(x, mask=box_mask(1), **run_args(n_steps=1))
    long = lvg.generate(x, mask=box_mask(1), **run_args(n_steps=60, lr=0.1))
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
    out = lvg.generate(x, mask=box_mask(), target=[1, 2], **run_args(confidence_threshold=0.0))
    assert out.confidence is not None and out.confidence.shape == (2, 3)
    assert bool(((out.confidence >= 0) & (out.confidence <= 1)).all())
    assert out.predictions is not None and out.accepted is not None
    assert out.target is not None and out.target.tolist() == [1, 2]
    assert torch.equal(out.accepted, out.predictions == out.target[:, None])
    assert out.input_confidence is not None and out.input_confidence.shape == (2,)
    assert out.feature_diversity is not None and bool((out.feature_diversity >= 0).all())
    with torch.no_grad():
        logits = clf.eval()(out.variants.flatten(0, 1)).view(2, 3, 5)
        ref = logits.softmax(-1).gather(2, out.target.view(2, 1, 1).expand(2, 3, 1))[..., 0]
        clean = clf(x).softmax(-1).gather(1, out.target[:, None])[:, 0]
    assert torch.allclose(out.confidence, ref, atol=1e-6)
    assert torch.equal(out.predictions, logits.argmax(-1))
    assert torch.allclose(out.input_confidence, clean, atol=1e-6)
    default = lvg.generate(x, mask=box_mask(), **FAST)
    with torch.no_grad():
        assert default.target is not None
        assert default.target.tolist() == clf.eval()(x).argmax(1).tolist()
    assert 0.0 <= (default.accepted_fraction or 0.0) <= 1.0


def test_confidence_knob() -> None:
    x, mask = images(), box_mask()
    clf = classifier()
    new = LatentVariationGenerator(PatchGenerator(), forward_func=clf, confidence="identity")
    out_new = new.generate(x, mask=mask, **run_args(confidence_threshold=-100.0))
    with torch.no_grad():
        logits = clf.eval()(out_new.variants.flatten(0, 1)).view(2, 3, 5)
    assert out_new.target is not None and out_new.confidence is not None
    ref = logits.gather(2, out_new.target.view(2, 1, 1).expand(2, 3, 1))[..., 0]
    assert torch.allclose(out_new.confidence, ref)
    with pytest.raises(ValueError, match="confidence"):
        LatentVariationGenerator(PatchGenerator(), forward_func=clf, confidence="max")


def test_single_logit_classifier_scored_with_a_sigmoid() -> None:
    """A binary classifier with one logit (B,): target None = the output itself."""
    x = images()
    with torch.random.fork_rng():
        torch.manual_seed(11)
        head = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 1), nn.Flatten(0))
    lvg = LatentVariationGenerator(PatchGenerator(), forward_func=head)
    out = lvg.generate(x, mask=box_mask(), **run_args(confidence_threshold=0.4))
    with torch.no_grad():
        p = torch.sigmoid(head(out.variants.flatten(0, 1))).view(2, 3)
        p0 = torch.sigmoid(head(x))
    assert out.confidence is not None and torch.allclose(out.confidence, p)
    assert out.input_confidence is not None and torch.allclose(out.input_confidence, p0)
    assert out.target is not None and out.target.tolist() == [0, 0]
    assert out.accepted is not None and torch.equal(out.accepted, p >= 0.4)
    assert out.predictions is not None and torch.equal(out.predictions, (p >= 0.4).long())


def test_nd_output_with_a_tuple_target() -> None:
    """(M, 5, 2, 2) outputs: a tuple target picks class 3 at cell (1, 0) for every input."""
    x = images()
    with torch.random.fork_rng():
        torch.manual_seed(12)
        seg = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.AdaptiveAvgPool2d(2))
    lvg = LatentVariationGenerator(PatchGenerator(), forward_func=seg)
    with pytest.raises(ValueError, match="target"):
        lvg.generate(x, mask=box_mask(), **FAST)  # N-d outputs need a target
    out = lvg.generate(x, mask=box_mask(), target=(3, 1, 0), **run_args(confidence_threshold=0.0))
    with torch.no_grad():
        cell = seg(out.variants.flatten(0, 1))[:, :, 1, 0].view(2, 3, 5)
    assert out.confidence is not None and out.predictions is not None
    assert torch.allclose(out.confidence, cell.softmax(-1)[..., 3], atol=1e-6)
    assert torch.equal(out.predictions, cell.argmax(-1))
    assert out.accepted is not None and torch.equal(out.accepted, out.predictions == 3)


@pytest.mark.parametrize("projection", ["sphere", "clip"])
@pytest.mark.parametrize("cf_target", [None, 3])
def test_counterfactual_respects_budget(projection: str, cf_target: int | None) -> None:
    x = images()
    lvg = LatentVariationGenerator(PatchGenerator(), discriminator(), forward_func=classifier())
    cfg = CounterfactualConfig(epsilon=1.0, weight=5.0, cf_target=cf_target, n_candidates=4)
    out = lvg.generate(
        x, mask=box_mask(), counterfactual=cfg, **run_args(projection=projection, clip_value=2.0)
    )
    cf = out.counterfactuals
    assert cf is not None
    assert cf.variants.shape == (2, 4, 3, SIZE, SIZE)
    assert bool((cf.latent_distance <= 1.0 + 1e-4).all())
    keep = ~out.mask[:, None, None].expand_as(cf.variants)
    assert torch.equal(cf.variants[keep], x[:, None].expand_as(cf.variants)[keep])
    assert cf.flipped.dtype == torch.bool and cf.flipped.shape == (2, 4)
    assert out.target is not None
    if cf_target is None:
        assert torch.equal(cf.flipped, cf.predictions != out.target[:, None])
        assert cf.cf_target is None
    else:
        assert torch.equal(cf.flipped, cf.predictions == cf_target)
        assert cf.cf_target is not None and cf.cf_target.tolist() == [3, 3]
    assert 0 <= cf.n_flipped_inputs <= 2
    if projection == "sphere":
        norms = cf.latents.norm(dim=-1)
        assert torch.allclose(norms, torch.full_like(norms, math.sqrt(D_LATENT)), atol=1e-4)


def test_counterfactual_pushes_a_single_logit_below_the_threshold() -> None:
    """One logit: flipping means the confidence falls below confidence_threshold."""
    x = images()
    with torch.random.fork_rng():
        torch.manual_seed(13)
        head = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 1))
    lvg = LatentVariationGenerator(full_generator(), forward_func=head)
    cfg = CounterfactualConfig(epsilon=2.0, weight=10.0, n_candidates=3, n_steps=20, lr=0.2)
    out = lvg.generate(x, mask=box_mask(), counterfactual=cfg, **FAST)
    cf = out.counterfactuals
    assert cf is not None and out.confidence is not None
    with torch.no_grad():
        p = torch.sigmoid(head(cf.variants.flatten(0, 1))).view(2, 3)
    assert torch.allclose(cf.confidence, p)
    assert torch.equal(cf.flipped, p < 0.5)
    assert torch.equal(cf.predictions, (p >= 0.5).long())
    # the margin term pulls the confidence down from the best reconstruction
    assert float(cf.confidence.mean()) < float(out.confidence[:, 0].mean())
    with pytest.raises(ValueError, match="cf_target"):
        lvg.generate(x, mask=box_mask(), counterfactual=CounterfactualConfig(cf_target=1), **FAST)


# --------------------------------------------------------------------------- hygiene
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
    before = snapshot(models)

    lvg = LatentVariationGenerator(gen, disc, forward_func=clf, feature_func=clf[:-1])
    out = lvg.generate(
        images(), mask=box_mask(), counterfactual=CounterfactualConfig(n_steps=5), **FAST
    )
    assert calls["n"] > 0, "user hooks stay active during the call"
    assert_same_snapshot(before, snapshot(models))
    assert out.variants.requires_grad is False
    assert out.latents.requires_grad is False


def test_models_restored_after_an_error() -> None:
    gen = full_generator().train()
    disc = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 2)).train()  # 2 logits: bad
    with pytest.raises(ValueError, match="discriminator"):
        LatentVariationGenerator(gen, disc).generate(images(1), mask=box_mask(1), **FAST)
    assert all(m.training for m in gen.modules()) and all(m.training for m in disc.modules())
    assert all(p.requires_grad for p in gen.parameters())


class _RaisesOnCall(nn.Module):
    """A classifier that raises on its ``fail_on``-th call."""

    def __init__(self, fail_on: int) -> None:
        super().__init__()
        self.net = classifier()
        self.calls = 0
        self.fail_on = fail_on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("classifier failed")
        return self.net(x)


@pytest.mark.parametrize("counterfactual", [False, True])
def test_a_model_raising_mid_run_leaves_every_model_as_found(counterfactual: bool) -> None:
    gen, disc = PatchGenerator().train(), discriminator().train()
    # 2nd call: scoring the variants; 3rd: the first step of the counterfactual search
    clf = _RaisesOnCall(fail_on=3 if counterfactual else 2).train()
    clf.net[1].eval()
    next(disc.parameters()).requires_grad_(False)
    list(gen.parameters())[0].grad = torch.full_like(list(gen.parameters())[0], 2.0)
    gen.register_forward_pre_hook(lambda *_: None)
    models = [gen, disc, clf]
    before = snapshot(models)
    lvg = LatentVariationGenerator(gen, disc, forward_func=clf)
    with pytest.raises(RuntimeError, match="classifier failed"):
        lvg.generate(images(), mask=box_mask(), counterfactual=counterfactual, **FAST)
    assert clf.calls == clf.fail_on
    assert_same_snapshot(before, snapshot(models))


class _Gate(nn.Module):
    """Generator wrapper that orders two threads: "first" enters, "second" enters while "first"
    runs and finishes only after "first" has returned (the interleaving that broke per-call
    save/restore: "second" saved the frozen flags and restored them last)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.latent_dim = D_LATENT
        self.first_in = threading.Event()
        self.second_in = threading.Event()
        self.first_done = threading.Event()
        self.seen: set[str] = set()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        name = threading.current_thread().name
        if name not in self.seen:
            self.seen.add(name)
            if name == "first":
                self.first_in.set()
                assert self.second_in.wait(30)
            elif name == "second":
                assert self.first_in.wait(30)
                self.second_in.set()
                assert self.first_done.wait(30)
        return self.inner(z)


def test_concurrent_calls_leave_models_as_found_and_match_sequential_results() -> None:
    gate = _Gate(PatchGenerator())
    disc, clf = discriminator(), classifier()
    models = [gate, disc, clf]
    for m in models:
        m.train()
        for p in m.parameters():
            p.requires_grad_(True)
    before = snapshot(models)
    lvg = LatentVariationGenerator(gate, disc, forward_func=clf)
    x, mask = images(), box_mask()
    sequential = [lvg.generate(x, mask=mask, **run_args(seed=s)) for s in (0, 1)]
    assert_same_snapshot(before, snapshot(models))

    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def run(name: str, seed: int) -> None:
        try:
            results[name] = lvg.generate(x, mask=mask, **run_args(seed=seed))
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            errors.append(err)
        finally:
            if name == "first":
                gate.first_done.set()

    threads = [
        threading.Thread(target=run, args=("first", 0), name="first"),
        threading.Thread(target=run, args=("second", 1), name="second"),
    ]
    threads[0].start()
    assert gate.first_in.wait(30)  # "first" holds the models before "second" starts
    threads[1].start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert all(m.training for model in models for m in model.modules())
    assert all(p.requires_grad for model in models for p in model.parameters())
    assert all(p.grad is None for model in models for p in model.parameters())
    assert_same_snapshot(before, snapshot(models))  # BatchNorm statistics untouched too
    for name, ref in zip(("first", "second"), sequential, strict=True):
        got = results[name]
        assert torch.equal(got.variants, ref.variants)
        assert torch.equal(got.latents, ref.latents)
        assert torch.equal(got.confidence, ref.confidence)


# --------------------------------------------------------------------------- NaN outputs
class _NaNWhere(nn.Module):
    """Wraps a model; its output is NaN (or inf) for rows whose first latent/pixel is large."""

    def __init__(self, inner: nn.Module, value: float = float("nan"), latent: bool = True):
        super().__init__()
        self.inner = inner
        self.latent_dim = D_LATENT
        self.value = value
        self.latent = latent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        key = x.flatten(1)[:, 0] > (0.5 if self.latent else -1.0)
        shape = (-1,) + (1,) * (out.dim() - 1)
        return torch.where(key.view(shape), torch.full_like(out, self.value), out)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_generator_returning_nan_raises(value: float) -> None:
    lvg = LatentVariationGenerator(_NaNWhere(full_generator(), value))
    with pytest.raises(ValueError, match="generator returned NaN or infinite"):
        lvg.generate(images(), mask=box_mask(), **FAST)


def test_discriminator_returning_nan_raises() -> None:
    disc = _NaNWhere(discriminator(), latent=False)  # NaN for every generation
    lvg = LatentVariationGenerator(PatchGenerator(), disc)
    with pytest.raises(ValueError, match="discriminator returned NaN or infinite"):
        lvg.generate(images(), mask=box_mask(), **FAST)


class _NaNAfter(nn.Module):
    """A classifier returning NaN from its ``after``-th call on."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.net = classifier()
        self.calls = 0
        self.after = after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.net(x)
        return out * float("nan") if self.calls >= self.after else out


@pytest.mark.parametrize(
    ("after", "counterfactual", "match"),
    [
        (1, False, "clean inputs"),  # NaN on the unmodified inputs
        (2, False, "variants"),  # NaN when scoring the variants
        (3, True, "forward_func returned NaN or infinite"),  # NaN in the counterfactual loss
    ],
)
def test_classifier_returning_nan_raises(after: int, counterfactual: bool, match: str) -> None:
    lvg = LatentVariationGenerator(PatchGenerator(), forward_func=_NaNAfter(after))
    with pytest.raises(ValueError, match=match):
        lvg.generate(images(), mask=box_mask(), counterfactual=counterfactual, **FAST)


def test_feature_func_returning_nan_raises() -> None:
    lvg = LatentVariationGenerator(full_generator(), feature_func=lambda v: v.flatten(1) / 0.0)
    with pytest.raises(ValueError, match="feature_func"):
        lvg.generate(images(), mask=box_mask(), **FAST)


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
    with pytest.raises(TypeError, match="latent_dim"):
        LatentVariationGenerator(full_generator(), latent_dim=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latent_dim"):  # wrong explicit latent_dim
        LatentVariationGenerator(full_generator(), latent_dim=7).generate(
            images(1), mask=box_mask(1), **FAST
        )


# --------------------------------------------------------------------------- bad input
def _nan_images() -> torch.Tensor:
    x = images()
    x[0, 0, 0, 0] = float("nan")
    return x


def _mask_with(value: float) -> torch.Tensor:
    m = box_mask().float()
    m[0, 0, 0] = value
    return m


def _one_empty_mask() -> torch.Tensor:
    m = box_mask()
    m[1] = False
    return m


NAN = float("nan")
INF = float("inf")

BAD_CALLS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("nan inputs", {"inputs": _nan_images()}, ValueError, "inputs"),
    ("inf inputs", {"inputs": images() / 0.0}, ValueError, "inputs"),
    ("2d inputs", {"inputs": images()[0, 0]}, ValueError, "inputs"),
    ("5d inputs", {"inputs": images()[None]}, ValueError, "inputs"),
    ("empty inputs", {"inputs": images()[:0]}, ValueError, "inputs"),
    ("int inputs", {"inputs": (images() * 10).long()}, TypeError, "inputs"),
    ("complex inputs", {"inputs": images().to(torch.complex64)}, TypeError, "inputs"),
    ("list inputs", {"inputs": [[0.0]]}, TypeError, "inputs"),
    ("no mask", {"mask": None}, ValueError, "saliency.*mask"),
    ("mask and saliency", {"saliency": torch.rand(2, SIZE, SIZE)}, ValueError, "saliency"),
    ("mask shape", {"mask": box_mask()[:, :8]}, ValueError, "mask"),
    ("mask batch", {"mask": box_mask(3)}, ValueError, "mask"),
    ("mask 1d", {"mask": box_mask()[0, 0]}, ValueError, "mask"),
    ("mask not binary", {"mask": box_mask().float() * 0.5}, ValueError, "binary"),
    ("mask nan", {"mask": _mask_with(NAN)}, ValueError, "binary"),
    ("mask two", {"mask": _mask_with(2.0)}, ValueError, "binary"),
    ("mask complex", {"mask": box_mask().to(torch.complex64)}, ValueError, "binary"),
    ("mask empty", {"mask": torch.zeros(2, SIZE, SIZE, dtype=torch.bool)}, ValueError, "empty"),
    ("one mask empty", {"mask": _one_empty_mask()}, ValueError, r"empty for input\(s\) \[1\]"),
    ("mask numpy", {"mask": box_mask().numpy()}, TypeError, "mask"),
    ("saliency shape", {"mask": None, "saliency": torch.rand(2, 8, 8)}, ValueError, "saliency"),
    (
        "saliency int",
        {"mask": None, "saliency": torch.ones(2, SIZE, SIZE).long()},
        TypeError,
        "saliency",
    ),  # fmt: skip
    ("saliency list", {"mask": None, "saliency": [[1.0]]}, TypeError, "saliency"),
    (
        "saliency nan",
        {"mask": None, "saliency": torch.full((2, SIZE, SIZE), NAN)},
        ValueError,
        "saliency",
    ),
    ("n_restarts", {"n_restarts": 0}, ValueError, "n_restarts"),
    ("n_restarts float", {"n_restarts": 4.0}, TypeError, "n_restarts"),
    ("n_restarts bool", {"n_restarts": True}, TypeError, "n_restarts"),
    ("n_restarts huge", {"n_restarts": 10**12}, ValueError, "n_restarts"),
    ("n_keep", {"n_keep": 7}, ValueError, "n_keep"),
    ("n_keep 0", {"n_keep": 0}, ValueError, "n_keep"),
    ("n_keep bool", {"n_keep": True}, TypeError, "n_keep"),
    ("n_steps", {"n_steps": 0}, ValueError, "n_steps"),
    ("n_steps bool", {"n_steps": True}, TypeError, "n_steps"),
    ("lr", {"lr": -1.0}, ValueError, "lr"),
    ("lr 0", {"lr": 0.0}, ValueError, "lr"),
    ("lr nan", {"lr": NAN}, ValueError, "lr"),
    ("lr inf", {"lr": INF}, ValueError, "lr"),
    ("lr bool", {"lr": True}, TypeError, "lr"),
    ("lr str", {"lr": "0.1"}, TypeError, "lr"),
    ("lam", {"lam": -0.1}, ValueError, "lam"),
    ("lam nan", {"lam": NAN}, ValueError, "lam"),
    ("lam inf", {"lam": INF}, ValueError, "lam"),
    ("lam bool", {"lam": False}, TypeError, "lam"),
    ("loss", {"loss": "huber"}, ValueError, "loss"),
    ("loss none", {"loss": None}, ValueError, "loss"),
    ("reduction", {"reduction": "max"}, ValueError, "reduction"),
    ("realism", {"realism": "wgan"}, ValueError, "realism"),
    ("context_kernel even", {"context_kernel": 4}, ValueError, "context_kernel"),
    ("context_kernel", {"context_kernel": 0}, ValueError, "context_kernel"),
    ("context_kernel bool", {"context_kernel": True}, TypeError, "context_kernel"),
    ("context_kernel float", {"context_kernel": 3.0}, TypeError, "context_kernel"),
    ("projection", {"projection": "ball"}, ValueError, "projection"),
    ("clip_value", {"clip_value": 0.0}, ValueError, "clip_value"),
    ("clip_value inf", {"clip_value": INF}, ValueError, "clip_value"),
    ("clip_value nan", {"clip_value": NAN}, ValueError, "clip_value"),
    ("tol", {"tol": -1.0}, ValueError, "tol"),
    ("tol nan", {"tol": NAN}, ValueError, "tol"),
    ("tol bool", {"tol": False}, TypeError, "tol"),
    ("check_every", {"check_every": 0}, ValueError, "check_every"),
    ("check_every bool", {"check_every": True}, TypeError, "check_every"),
    ("threshold", {"threshold": 1.5}, ValueError, "threshold"),
    ("threshold nan", {"threshold": NAN}, ValueError, "threshold"),
    ("threshold bool", {"threshold": True}, TypeError, "threshold"),
    ("threshold_mode", {"threshold_mode": "top"}, ValueError, "threshold_mode"),
    ("feather", {"feather": -1}, ValueError, "feather"),
    ("feather bool", {"feather": True}, TypeError, "feather"),
    ("confidence_threshold", {"confidence_threshold": 1.5}, ValueError, "confidence_threshold"),
    (
        "confidence_threshold nan",
        {"confidence_threshold": NAN},
        ValueError,
        "confidence_threshold",
    ),  # fmt: skip
    (
        "confidence_threshold bool",
        {"confidence_threshold": True},
        TypeError,
        "confidence_threshold",
    ),  # fmt: skip
    ("seed", {"seed": "0"}, TypeError, "seed"),
    ("seed bool", {"seed": True}, TypeError, "seed"),
    ("seed negative", {"seed": -1}, ValueError, "seed"),
    ("seed and rng", {"rng": torch.Generator()}, ValueError, "seed"),
    ("rng module", {"seed": None, "rng": nn.Linear(1, 1)}, TypeError, "rng"),
    ("counterfactual type", {"counterfactual": "yes"}, TypeError, "counterfactual"),
    ("counterfactual int", {"counterfactual": 1}, TypeError, "counterfactual"),
    ("counterfactual no clf", {"counterfactual": True}, ValueError, "forward_func"),
    ("target no clf", {"target": 1}, ValueError, "target"),
    ("show_progress", {"show_progress": 1}, TypeError, "show_progress"),
    ("patch_origin float", {"patch_origin": (0, 0.5)}, TypeError, "patch_origin"),
    ("patch_origin bools", {"patch_origin": (True, False)}, TypeError, "patch_origin"),
    ("patch_origin int", {"patch_origin": 3}, TypeError, "patch_origin"),
    ("patch_origin str", {"patch_origin": "ab"}, TypeError, "patch_origin"),
    ("patch_origin triple", {"patch_origin": (1, 2, 3)}, TypeError, "patch_origin"),
    (
        "patch_origin float tensor",
        {"patch_origin": torch.tensor([1.0, 2.0])},
        TypeError,
        "patch_origin",
    ),  # fmt: skip
    (
        "patch_origin bool tensor",
        {"patch_origin": torch.tensor([True, False])},
        TypeError,
        "patch_origin",
    ),  # fmt: skip
    ("patch_origin (1,)", {"patch_origin": torch.tensor([4])}, ValueError, "patch_origin"),
    (
        "patch_origin (N, 3)",
        {"patch_origin": torch.zeros(2, 3).long()},
        ValueError,
        "patch_origin",
    ),  # fmt: skip
    (
        "patch_origin (3, 2)",
        {"patch_origin": torch.full((3, 2), 4)},
        ValueError,
        "patch_origin",
    ),  # fmt: skip
    ("patch_origin negative", {"patch_origin": (-1, 4)}, ValueError, "patch_origin"),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [case[1:] for case in BAD_CALLS],
    ids=[case[0] for case in BAD_CALLS],
)
def test_bad_arguments_raise(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    fields = {f.name for f in dataclasses.fields(VariationSettings)}
    knobs = {k: v for k, v in kwargs.items() if k in fields}
    rest = {k: v for k, v in kwargs.items() if k not in fields}
    lvg = LatentVariationGenerator(PatchGenerator())
    with pytest.raises(error, match=match):  # a bad knob fails in VariationSettings
        lvg.generate(**{"inputs": images(), "mask": box_mask(), **run_args(**knobs), **rest})


def test_bad_models_raise() -> None:
    x, mask = images(), box_mask()
    with pytest.raises(TypeError, match="generator"):
        LatentVariationGenerator(lambda z: z)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="discriminator"):
        LatentVariationGenerator(PatchGenerator(), discriminator=lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="forward_func"):
        LatentVariationGenerator(PatchGenerator(), forward_func=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="feature_func"):
        LatentVariationGenerator(PatchGenerator(), feature_func=3)  # type: ignore[arg-type]
    big = nn.Sequential(nn.Linear(D_LATENT, 3 * 20 * 20), nn.Unflatten(1, (3, 20, 20)))
    with pytest.raises(ValueError, match="generator output"):
        LatentVariationGenerator(big).generate(x, mask=mask, **FAST)
    gray = nn.Sequential(nn.Linear(D_LATENT, SIZE * SIZE), nn.Unflatten(1, (1, SIZE, SIZE)))
    with pytest.raises(ValueError, match="generator output"):
        LatentVariationGenerator(gray).generate(x, mask=mask, **FAST)
    flat = nn.Linear(D_LATENT, 3 * SIZE * SIZE)
    with pytest.raises(ValueError, match="generator must map"):
        LatentVariationGenerator(flat).generate(x, mask=mask, **FAST)
    with pytest.raises(ValueError, match="generator must map.*latent_dim=5"):
        LatentVariationGenerator(nn.Linear(3, 3), latent_dim=5).generate(x, mask=mask, **FAST)
    tupled = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 4))
    with pytest.raises(TypeError, match="forward_func"):
        LatentVariationGenerator(PatchGenerator(), forward_func=lambda v: (tupled(v),)).generate(
            x, mask=mask, **FAST
        )
    with pytest.raises(ValueError, match="forward_func"):
        LatentVariationGenerator(PatchGenerator(), forward_func=lambda v: tupled(v)[:1]).generate(
            x, mask=mask, **FAST
        )
    lvg = LatentVariationGenerator(PatchGenerator(), forward_func=classifier())
    with pytest.raises(ValueError, match="target"):
        lvg.generate(x, mask=mask, target=9, **FAST)
    with pytest.raises(ValueError, match="target"):
        lvg.generate(x, mask=mask, target=[0, 1, 2], **FAST)
    with pytest.raises(ValueError, match="target"):
        lvg.generate(x, mask=mask, target=torch.tensor([0, 5]), **FAST)
    with pytest.raises(TypeError, match="target"):
        lvg.generate(x, mask=mask, target=torch.tensor([0.5, 1.0]), **FAST)
    with pytest.raises(TypeError, match="target"):
        lvg.generate(x, mask=mask, target=True, **FAST)
    with pytest.raises(TypeError, match="target"):
        lvg.generate(x, mask=mask, target="cat", **FAST)
    with pytest.raises(ValueError, match="epsilon"):
        lvg.generate(x, mask=mask, counterfactual=CounterfactualConfig(epsilon=-1.0), **FAST)
    with pytest.raises(ValueError, match="cf_target"):
        lvg.generate(x, mask=mask, counterfactual=CounterfactualConfig(cf_target=7), **FAST)
    with pytest.raises(ValueError, match="cf_target"):
        lvg.generate(x, mask=mask, counterfactual=CounterfactualConfig(cf_target=[1, 2, 3]), **FAST)
    with pytest.raises(ValueError, match="feature_func"):
        LatentVariationGenerator(PatchGenerator(), feature_func=lambda v: v[:1]).generate(
            x, mask=mask, **FAST
        )


def test_an_index_error_inside_the_classifier_is_not_blamed_on_target() -> None:
    def broken(v: torch.Tensor) -> torch.Tensor:
        raise IndexError("inside the model")

    lvg = LatentVariationGenerator(PatchGenerator(), forward_func=broken)
    with pytest.raises(IndexError, match="inside the model"):
        lvg.generate(images(), mask=box_mask(), **FAST)
