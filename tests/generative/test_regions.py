"""The region B: masks, saliency boxes and spans, extents and window placement."""

from __future__ import annotations

import pytest
import torch

from captum_perturbmask.generative._regions import (
    mask_extents,
    mask_from,
    patch_origins,
)
from captum_perturbmask.metrics import box_to_mask, saliency_box


def _random_masks(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(shape, generator=g) > 0.85
    m.view(shape[0], -1)[:, 3] = True  # never empty
    return m


def test_mask_extents_match_a_direct_computation() -> None:
    for shape in [(5, 7, 9), (5, 13)]:
        m = _random_masks(shape, seed=len(shape))
        ext = mask_extents(m)
        assert ext.shape == (5, len(shape) - 1, 2) and ext.dtype == torch.long
        for i in range(5):
            for dim in range(len(shape) - 1):
                others = [d for d in range(len(shape) - 1) if d != dim]
                hit = m[i].any(dim=others[0]) if others else m[i]
                idx = hit.nonzero().flatten()
                assert ext[i, dim].tolist() == [int(idx.min()), int(idx.max()) + 1]


def test_mask_from_images_and_series() -> None:
    x = torch.zeros(2, 3, 6, 8)
    m = torch.zeros(6, 8, dtype=torch.bool)
    m[1:3, 2:5] = True
    assert torch.equal(mask_from(x, None, m, 0.5, "quantile"), m.expand(2, 6, 8))
    sal = torch.rand(2, 3, 6, 8, generator=torch.Generator().manual_seed(2))
    expected = box_to_mask(saliency_box(sal, threshold=0.9), (6, 8))
    assert torch.equal(mask_from(x, sal, None, 0.9, "quantile"), expected)

    xs = torch.zeros(2, 3, 10)
    span = torch.tensor([0, 0, 1, 1, 0, 0, 0, 0, 0, 1.0])
    assert mask_from(xs, None, span, 0.5, "quantile").tolist() == [(span == 1).tolist()] * 2
    assert torch.equal(
        mask_from(xs, None, span.expand(2, 1, 10), 0.5, "quantile"),
        (span == 1).expand(2, 10),
    )
    sal_s = torch.zeros(2, 10)
    sal_s[0, 4] = sal_s[0, 6] = 1.0
    sal_s[1, 0], sal_s[1, 1] = 2.0, 1.0
    got = mask_from(xs, sal_s, None, 0.8, "quantile")  # the top 20%: two steps each
    assert got[0].nonzero().flatten().tolist() == [4, 5, 6]
    assert got[1].nonzero().flatten().tolist() == [0, 1]
    with pytest.raises(ValueError, match="saliency"):
        mask_from(xs, torch.rand(2, 3, 6, 8), None, 0.5, "quantile")  # image saliency
    with pytest.raises(ValueError, match="mask"):
        mask_from(xs, None, torch.ones(2, 6, 8), 0.5, "quantile")  # image mask
    with pytest.raises(ValueError, match=r"empty for input\(s\) \[0, 1\]"):
        mask_from(xs, None, torch.zeros(10), 0.5, "quantile")


def test_patch_origins_centre_clamp_and_check() -> None:
    m = torch.zeros(3, 16, 16, dtype=torch.bool)
    m[0, 5:10, 4:11] = True  # centre of rows 5:10 in an 8-patch: (5 + 10 - 8 + 1) // 2 = 4
    m[1, 0:3, 12:15] = True  # clamped to the top-right corner
    m[2, 15, 0] = True
    assert patch_origins(m, (8, 8), None).tolist() == [[4, 4], [0, 8], [8, 0]]
    with pytest.raises(ValueError, match="does not fit"):
        patch_origins(m, (4, 8), None)
    assert patch_origins(m[:1], (8, 8), (2, 3)).tolist() == [[2, 3]]
    with pytest.raises(ValueError, match="not inside"):
        patch_origins(m[:1], (8, 8), (6, 3))
    with pytest.raises(ValueError, match="outside"):
        patch_origins(m[:1], (8, 8), (2, 9))

    s = torch.zeros(2, 30, dtype=torch.bool)
    s[0, 10:14] = True  # centre: (10 + 14 - 8 + 1) // 2 = 8
    s[1, 27:30] = True  # clamped to 30 - 8 = 22
    assert patch_origins(s, (8,), None).tolist() == [[8], [22]]
    for given in (9, [9], torch.tensor(9), torch.tensor([9, 9]), torch.tensor([[9], [9]])):
        assert patch_origins(s[:1].expand(2, 30), (8,), given).tolist() == [[9], [9]]
    with pytest.raises(ValueError, match="not inside"):
        patch_origins(s[:1], (8,), 11)
    with pytest.raises(ValueError, match="outside"):
        patch_origins(s[:1], (8,), -1)
    with pytest.raises(TypeError, match="patch_origin"):
        patch_origins(s[:1], (8,), 9.0)
    with pytest.raises(TypeError, match="patch_origin"):
        patch_origins(s[:1], (8,), (9, 1))
    with pytest.raises(ValueError, match="patch_origin"):
        patch_origins(s, (8,), torch.tensor([9, 9, 9]))


def test_patch_placement_matches_the_digits_patch_boxes() -> None:
    from captum_perturbmask.data import make_digits_clutter

    ds = make_digits_clutter("test", n=16)
    mask = box_to_mask(ds.boxes, (64, 64))
    assert torch.equal(patch_origins(mask, (32, 32), None), ds.patch_boxes[:, [1, 0]].long())
