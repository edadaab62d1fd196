"""Context-aware inpainters in the latent search, and the default region B."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_perturbmask.generative import (
    ContextInpainter,
    InpaintingCritic,
    LatentVariationGenerator,
    VariationSettings,
)
from captum_perturbmask.generative._regions import fit_to_window, mask_extents


class _Recorder(ContextInpainter):
    """Records the context and hole of every call."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, z, context, hole):  # noqa: ANN001, ANN201
        self.calls.append((context.detach().clone(), hole.detach().clone()))
        return super().forward(z, context, hole)


def _models(window=(16, 16), channels=3):  # noqa: ANN001, ANN202
    torch.manual_seed(0)
    return (
        _Recorder(channels, window, latent_dim=4, width=4).eval(),
        InpaintingCritic(channels, window, width=4).eval(),
    )


def test_shapes_and_checks() -> None:
    g, d = _models()
    z, ctx, hole = torch.randn(2, 4), torch.rand(2, 3, 16, 16), torch.ones(2, 16, 16)
    assert g(z, ctx, hole).shape == (2, 3, 16, 16)
    assert d(ctx).shape == (2,)
    with pytest.raises(ValueError, match="context"):
        g(z, torch.rand(2, 3, 8, 8), hole)
    with pytest.raises(ValueError, match="hole"):
        g(z, ctx, torch.ones(2, 1, 8, 8))
    with pytest.raises(ValueError, match="`z`"):
        g(torch.randn(2, 5), ctx, hole)
    with pytest.raises(ValueError, match="window"):
        ContextInpainter(3, (4, 4))
    with pytest.raises(ValueError, match="output"):
        ContextInpainter(3, 16, output="tanh")
    series = ContextInpainter(1, 150, latent_dim=3, width=4, output="linear").eval()
    assert series.sample(2).shape == (2, 1, 150)


def test_different_codes_give_different_fills() -> None:
    g, _ = _models()
    ctx, hole = torch.rand(1, 3, 16, 16).expand(2, -1, -1, -1), torch.ones(2, 1, 16, 16)
    with torch.no_grad():
        out = g(torch.randn(2, 4, generator=torch.Generator().manual_seed(0)), ctx, hole)
    assert not torch.allclose(out[0], out[1])


def test_search_passes_context_and_keeps_equation_1() -> None:
    g, d = _models()
    x = torch.rand(2, 3, 24, 24)
    mask = torch.zeros(2, 24, 24, dtype=torch.bool)
    mask[0, 4:10, 5:12] = True
    mask[1, 14:22, 10:20] = True
    clf = nn.Sequential(nn.Flatten(), nn.Linear(3 * 24 * 24, 3))
    out = LatentVariationGenerator(g, d, forward_func=clf).generate(
        x, mask=mask, seed=0, settings=VariationSettings(n_restarts=3, n_keep=2, n_steps=4)
    )
    assert out.variants.shape == (2, 2, 3, 24, 24)
    for i in range(2):
        outside = ~mask[i]
        assert torch.equal(
            out.variants[i][..., outside], x[i, None].expand(2, -1, -1, -1)[..., outside]
        )
    # the generator saw the window's context with the hole zeroed and the hole mask itself
    ctx, hole = g.calls[-1]
    assert ctx.shape == (4, 3, 16, 16) and hole.shape == (4, 1, 16, 16)
    origin = out.patch_origin.tolist()
    for i in range(2):
        r, c = origin[i]
        window = mask[i, r : r + 16, c : c + 16]
        for j in range(2):  # rows 2 i, 2 i + 1 belong to input i
            assert torch.equal(hole[2 * i + j, 0].bool(), window)
            expect = x[i, :, r : r + 16, c : c + 16] * (~window).float()
            assert torch.equal(ctx[2 * i + j], expect)
    assert out.realism is not None and out.realism.shape == (2, 2)


def test_counterfactual_with_inpainter() -> None:
    g, d = _models()
    x = torch.rand(2, 3, 24, 24)
    mask = torch.zeros(24, 24, dtype=torch.bool)
    mask[6:14, 6:14] = True
    clf = nn.Sequential(nn.Flatten(), nn.Linear(3 * 24 * 24, 3))
    out = LatentVariationGenerator(g, d, forward_func=clf).generate(
        x,
        mask=mask,
        seed=0,
        counterfactual=True,
        settings=VariationSettings(n_restarts=3, n_keep=2, n_steps=3),
    )
    cf = out.counterfactuals
    assert cf is not None and cf.variants.shape == (2, 2, 3, 24, 24)
    assert torch.equal(cf.variants[..., ~mask], x[:, None].expand(2, 2, 3, 24, 24)[..., ~mask])


def test_fit_to_window() -> None:
    b = torch.zeros(2, 20, 20, dtype=torch.bool)
    b[0, 0:20, 3:9] = True  # 20 rows into 8: rows 6:14
    b[1, 2:5, 2:5] = True  # fits: unchanged
    cut = fit_to_window(b, (8, 8))
    assert mask_extents(cut).tolist() == [[[6, 14], [3, 9]], [[2, 5], [2, 5]]]
    assert torch.equal(cut[1], b[1])


@pytest.mark.parametrize("window", [(16, 16), (24, 24)])
@pytest.mark.parametrize("kind", ["flat", "peaked", "spread"])
def test_default_region_never_raises(window: tuple[int, int], kind: str) -> None:
    """Saliency maps whose default box is larger than the window are cut to it."""
    g, d = _models(window)
    x = torch.rand(2, 3, 32, 32)
    gen = torch.Generator().manual_seed(1)
    sal = {
        "flat": torch.ones(2, 32, 32),
        "peaked": torch.zeros(2, 32, 32),
        "spread": torch.rand(2, 32, 32, generator=gen),
    }[kind]
    if kind == "peaked":
        sal[:, 3, 4] = 5.0
        sal[:, 28, 30] = 5.0  # the box of the top pixels spans the image
    out = LatentVariationGenerator(g, d).generate(
        x, sal, settings=VariationSettings(n_restarts=2, n_keep=1, n_steps=2)
    )
    ext = mask_extents(out.mask)
    lengths = ext[..., 1] - ext[..., 0]
    assert bool((lengths <= torch.tensor(window)).all())
    for i in range(2):
        assert torch.equal(out.variants[i, 0][:, ~out.mask[i]], x[i][:, ~out.mask[i]])


def test_explicit_mask_too_big_still_raises() -> None:
    g, d = _models()
    with pytest.raises(ValueError, match="does not fit"):
        LatentVariationGenerator(g, d).generate(
            torch.rand(1, 3, 32, 32),
            mask=torch.ones(32, 32),
            settings=VariationSettings(n_restarts=2, n_keep=1, n_steps=1),
        )


class _ClassRecorder(ContextInpainter):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.seen: list[torch.Tensor] = []

    def forward(self, z, context, hole, y=None):  # noqa: ANN001, ANN201
        self.seen.append(y.clone())
        return super().forward(z, context, hole, y)


def test_class_conditional_pair_gets_the_target_class() -> None:
    torch.manual_seed(0)
    g = _ClassRecorder(3, (16, 16), latent_dim=4, width=4, n_classes=3).eval()
    d = InpaintingCritic(3, (16, 16), width=4, n_classes=3).eval()
    x = torch.rand(2, 3, 24, 24)
    mask = torch.zeros(24, 24, dtype=torch.bool)
    mask[6:14, 6:14] = True
    clf = nn.Sequential(nn.Flatten(), nn.Linear(3 * 24 * 24, 3))
    out = LatentVariationGenerator(g, d, forward_func=clf).generate(
        x,
        mask=mask,
        target=[2, 0],
        seed=0,
        settings=VariationSettings(n_restarts=3, n_keep=2, n_steps=2),
    )
    assert out.variants.shape == (2, 2, 3, 24, 24)
    assert g.seen[-1].tolist() == [2, 2, 0, 0]  # n_keep rows per input
    assert any(s.tolist() == [2, 2, 2, 0, 0, 0] for s in g.seen)  # the restarts
    with pytest.raises(ValueError, match="class-conditional"):
        LatentVariationGenerator(g, d).generate(
            x, mask=mask, settings=VariationSettings(n_restarts=2, n_keep=1, n_steps=1)
        )
    with pytest.raises(ValueError, match="`y`"):
        d(torch.rand(2, 3, 16, 16))
    assert g.sample(4).shape == (4, 3, 16, 16)
    assert g.seen[-1].tolist() == [0, 1, 2, 0]
