"""Mask designs: keep-probabilities of cells from a map over the fine features."""

from __future__ import annotations

import torch

from captum_perturbmask.attr._masks import MaskDesign


def test_keep_probability_reads_the_map_at_cell_centres() -> None:
    """A fine map that is a ramp along x is read at each cell's centre after the shift."""
    x = torch.zeros(1, 1, 12, 12)
    design = MaskDesign((x,), None, (3, 3), (6, 6), torch.float32)
    q = torch.arange(6.0).repeat(6)[None]  # value = fine column j, centred at pixel 2j + 1
    shifts = torch.tensor([[0, 0], [0, 3]])
    got = design.keep_probability(q, shifts, 2).reshape(1, 2, 3, 3)
    # cell i's centre: (i + 0.5) * 16 / 3 - shift (upsampled to 16 px, cropped); ramp x / 2 - 0.5
    want = torch.tensor([[5 / 6, 3.5, 5.0], [0.0, 2.0, 14 / 3]])
    torch.testing.assert_close(got[0, :, 0, :], want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[0, :, 0, :], got[0, :, 2, :])  # rows see the same ramp


def _reference_render(cells, shifts, grid, spatial):
    """RISE's recipe written directly: bilinear upsampling to (g + 1) * cell, then a crop."""
    import math

    import torch.nn.functional as F

    cell = [math.ceil(s / g) for s, g in zip(spatial, grid, strict=True)]
    up = [(g + 1) * c for g, c in zip(grid, cell, strict=True)]
    mode = "bilinear" if len(grid) == 2 else "linear"
    big = F.interpolate(cells.reshape(-1, 1, *grid), size=up, mode=mode, align_corners=False)
    out = []
    for m, s in zip(big, shifts, strict=True):
        sl = [slice(int(o), int(o) + n) for o, n in zip(s, spatial, strict=True)]
        out.append(m[(slice(None), *sl)])
    return torch.stack(out)


def test_table_rendering_equals_upsample_and_crop() -> None:
    """Masks and features from the interpolation tables equal F.interpolate + crop + pooling."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    for shape, grid, fine in (((1, 3, 29, 23), (5, 4), (10, 8)), ((1, 2, 37), (6,), (12,))):
        x = torch.zeros(shape, dtype=torch.float64)
        design = MaskDesign((x,), None, grid, fine, torch.float64)
        cells = torch.rand(7, design.n_cells, generator=g, dtype=torch.float64)
        shifts = design.sample_shifts(7, g)
        (masks,), feats = design.render(cells, shifts)
        want = _reference_render(cells, shifts, grid, shape[2:])
        torch.testing.assert_close(masks, want)
        pool = F.adaptive_avg_pool2d if len(grid) == 2 else F.adaptive_avg_pool1d
        torch.testing.assert_close(feats, pool(want, fine).flatten(1))
        (plain,), _ = design.render(cells, None)  # no shift: plain upsampling to the input
        mode = "bilinear" if len(grid) == 2 else "linear"
        ref = F.interpolate(cells.reshape(7, 1, *grid), size=shape[2:], mode=mode)
        torch.testing.assert_close(plain, ref)


def test_grid_laplacian_is_the_total_variation() -> None:
    """s^T L s equals the sum of squared differences between 4-neighbours."""
    from captum_perturbmask.attr._masks import grid_laplacian

    s = torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    lap = grid_laplacian((4, 5), torch.device("cpu"), torch.float64)
    tv = (s[1:] - s[:-1]).square().sum() + (s[:, 1:] - s[:, :-1]).square().sum()
    torch.testing.assert_close(s.reshape(-1) @ lap @ s.reshape(-1), tv)
    assert grid_laplacian((4, 5), torch.device("cpu"), torch.float64) is lap  # cached


def test_feature_mask_laplacian_links_neighbouring_groups_per_example() -> None:
    """Per-example groups: edges between touching groups only, none inside a group."""
    fm = torch.tensor([[[[0, 0, 1], [2, 2, 1]]], [[[0, 1, 1], [0, 1, 2]]]])  # (2, 1, 2, 3)
    x = torch.zeros(2, 1, 2, 3)
    design = MaskDesign((x,), (fm,), None, None, torch.float32)
    lap = design.laplacian()
    assert lap.shape == (2, 3, 3)
    adj = -lap.clone()
    adj.diagonal(dim1=-2, dim2=-1).zero_()
    assert adj[0].tolist() == [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    assert adj[1].tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    torch.testing.assert_close(lap.sum(-1), torch.zeros(2, 3))
