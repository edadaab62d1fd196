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
