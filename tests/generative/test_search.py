"""Search internals: model freezing (nested, shared, threaded), NaN guard, context weights,
composition in 1-D and 2-D, projection and the Adam loop."""

from __future__ import annotations

import math
import threading

import pytest
import torch
from torch import nn

from captum_perturbmask.generative._search import (
    FiniteGuard,
    SearchSettings,
    SearchState,
    adam_search,
    box_filter,
    frozen,
    mean_pairwise_distance,
    project,
)


# --------------------------------------------------------------------------- frozen
def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Dropout()).train()


def test_frozen_restores_exact_flags_nested_and_shared() -> None:
    net = _net()
    net[1].eval()  # mixed modes come back mixed
    net[0].bias.requires_grad_(False)
    head = net[:2]  # a second module sharing submodules and parameters
    with frozen(net, head, lambda x: x, None):
        assert not any(m.training for m in net.modules())
        assert not any(p.requires_grad for p in net.parameters())
        with frozen(head):
            pass
        assert not any(m.training for m in net.modules()), "inner exit must not restore"
    assert [m.training for m in net.modules()] == [True, True, False, True]
    assert [p.requires_grad for p in net.parameters()] == [True, False, True, True]


def test_frozen_restores_after_an_error() -> None:
    net = _net()
    with pytest.raises(RuntimeError), frozen(net):
        raise RuntimeError("boom")
    assert all(m.training for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())


def test_frozen_is_reference_counted_across_threads() -> None:
    """Overlapping blocks (A enters, B enters, A exits, B exits) restore the flags once."""
    net = _net()
    a_in, a_out = threading.Event(), threading.Event()
    seen: list[bool] = []

    def thread_a() -> None:
        with frozen(net):
            a_in.set()
            assert a_out.wait(10)

    def thread_b() -> None:
        assert a_in.wait(10)
        with frozen(net):
            a_out.set()
            t_a.join(10)  # A has exited while B is still inside
            seen.append(net.training)

    t_a = threading.Thread(target=thread_a)
    t_b = threading.Thread(target=thread_b)
    t_a.start()
    t_b.start()
    t_b.join(20)
    assert seen == [False], "B must still see frozen models after A exits"
    assert all(m.training for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())


# --------------------------------------------------------------------------- guard
def test_finite_guard_blames_the_first_failure() -> None:
    guard = FiniteGuard()
    guard.check()  # nothing watched
    guard.watch("generator", torch.ones(3))
    guard.check()
    guard.watch("discriminator", torch.tensor([float("inf")]))
    guard.watch("generator", torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="^discriminator returned NaN or infinite"):
        guard.check()


# --------------------------------------------------------------------------- state
def test_box_filter_1d_and_2d() -> None:
    x = torch.zeros(1, 1, 7)
    x[0, 0, 3] = 1.0
    assert box_filter(x, 3)[0, 0].tolist() == pytest.approx([0, 0, 1 / 3, 1 / 3, 1 / 3, 0, 0])
    img = torch.zeros(1, 1, 5, 5)
    img[0, 0, 0, 0] = 1.0
    out = box_filter(img, 3)[0, 0]
    assert float(out[0, 0]) == pytest.approx(1 / 9) and float(out[1, 1]) == pytest.approx(1 / 9)
    assert float(out[2, 2]) == 0.0
    assert box_filter(img, 3).shape == img.shape


def test_state_series_window_context_and_exact_composition() -> None:
    x = torch.randn(2, 3, 20, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[0, 6:9] = True
    mask[1, 12:14] = True
    origins = torch.tensor([[4], [10]])
    state = SearchState.build(x, mask, origins, (6,), kernel=3, feather=0)
    assert torch.equal(state.x_patch[0, 0], x[0, :, 4:10])
    assert torch.equal(state.x_patch[1, 0], x[1, :, 10:16])
    assert torch.equal(state.mask_patch[:, 0, 0], torch.stack([mask[0, 4:10], mask[1, 10:16]]))
    # R: 1-D box of 3 steps, zero inside B: steps 5 and 9 see one hole step of three
    assert state.context_full[0].tolist() == pytest.approx(
        [0] * 5 + [1 / 3, 0, 0, 0, 1 / 3] + [0] * 10
    )
    assert float(state.weight_norm[0, 0]) == pytest.approx(3 * 2 / 3)
    g = torch.full((2 * 2, 3, 6), 7.0)
    out = state.compose(g, 2)
    assert out.shape == (2, 2, 3, 20)
    outside = ~mask[:, None, None].expand_as(out)
    assert torch.equal(out[outside], x[:, None].expand_as(out)[outside])
    assert bool((out[~outside] == 7.0).all())


def test_state_image_patch_matches_manual_placement() -> None:
    x = torch.rand(1, 2, 9, 11, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 9, 11, dtype=torch.bool)
    mask[0, 3:5, 6:8] = True
    state = SearchState.build(x, mask, torch.tensor([[2, 5]]), (4, 5), kernel=3, feather=1)
    assert torch.equal(state.x_patch[0, 0], x[0, :, 2:6, 5:10])
    g = torch.rand(3, 2, 4, 5, generator=torch.Generator().manual_seed(2))
    out = state.compose(g, 3)
    assert state.blend_patch is not None
    canvas = x[:, None].repeat(1, 3, 1, 1, 1)
    blended = state.x_patch + state.blend_patch * (g[None] - state.x_patch)
    canvas[..., 2:6, 5:10] = torch.where(state.mask_patch, blended, state.x_patch)
    assert torch.equal(out, canvas)
    outside = ~mask[:, None, None].expand_as(out)
    assert torch.equal(out[outside], x[:, None].expand_as(out)[outside])


# --------------------------------------------------------------------------- projection
def test_projection_onto_sphere_cap_and_clipped_ball() -> None:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(50, 6, generator=g) * 3
    anchor = project(torch.randn(50, 6, generator=g), SearchSettings())
    sphere = SearchSettings(projection="sphere")
    p = project(z, sphere, anchor, 1.5)
    assert torch.allclose(p.norm(dim=1), torch.full((50,), math.sqrt(6)), atol=1e-5)
    assert bool(((p - anchor).norm(dim=1) <= 1.5 + 1e-4).all())
    inside = project(anchor + 1e-3, sphere, anchor, 1.5)
    assert torch.allclose(inside, project(anchor + 1e-3, sphere), atol=1e-6)
    clip = SearchSettings(projection="clip", clip_value=1.0)
    anchor_c = anchor.clamp(-1, 1)
    q = project(z, clip, anchor_c, 0.7)
    assert bool((q.abs() <= 1.0).all())
    assert bool(((q - anchor_c).norm(dim=1) <= 0.7 + 1e-5).all())


# --------------------------------------------------------------------------- Adam loop
class _Quadratic:
    """Per-row loss |z - c|^2 with the guard attribute the loop expects."""

    def __init__(self, c: torch.Tensor) -> None:
        self.c = c
        self.guard = FiniteGuard()
        self.calls = 0

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.loss(z)
        self.guard.watch("toy", out)
        return out

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.c).square().sum(dim=1)


def test_adam_search_tracks_the_best_iterate_and_stops_early() -> None:
    c = torch.tensor([[0.5, -0.25], [0.1, 0.2]])
    settings = SearchSettings(n_steps=300, lr=0.05, tol=0.0, projection="clip", clip_value=5.0)
    z, loss, steps = adam_search(_Quadratic(c), torch.zeros(2, 2), settings)  # type: ignore[arg-type]
    assert steps == 300
    assert torch.allclose(z, c, atol=1e-2)
    assert torch.allclose(loss, (z - c).square().sum(1))
    early = settings.replace(tol=0.5, check_every=5)
    _, _, steps = adam_search(_Quadratic(c), torch.zeros(2, 2), early)  # type: ignore[arg-type]
    assert steps < 300 and steps % 5 == 0


def test_adam_search_raises_on_a_nan_loss() -> None:
    class _Bad(_Quadratic):
        def loss(self, z: torch.Tensor) -> torch.Tensor:
            out = super().loss(z)
            return out / 0.0 if self.calls > 3 else out

    settings = SearchSettings(n_steps=20, tol=0.0, check_every=5)
    with pytest.raises(ValueError, match="toy returned NaN"):
        adam_search(_Bad(torch.ones(1, 2)), torch.zeros(1, 2), settings)  # type: ignore[arg-type]


def test_mean_pairwise_distance() -> None:
    x = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]]])
    # pairs: 5, 8, 5 -> mean 6
    assert mean_pairwise_distance(x).tolist() == pytest.approx([6.0])
    assert mean_pairwise_distance(x[:, :1]).tolist() == [0.0]
