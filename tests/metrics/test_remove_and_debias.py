"""ROAD (:mod:`captum_perturbmask.metrics.remove_and_debias`): the imputation on hand cases
and against a dense solve, and the curves on a planted model."""

from __future__ import annotations

import pytest
import torch

from captum_perturbmask.metrics import noisy_linear_imputation, road


def test_a_removed_step_between_two_kept_ones_gets_their_mean() -> None:
    x = torch.tensor([[[2.0, 9.0, 4.0], [1.0, -5.0, 1.0]]], dtype=torch.float64)
    removed = torch.tensor([[False, True, False]])
    filled = noisy_linear_imputation(x, removed, noise=0.0)
    torch.testing.assert_close(filled, torch.tensor([[[2.0, 3.0, 4.0], [1.0, 1.0, 1.0]]],
                                                    dtype=torch.float64))  # fmt: skip


def test_a_removed_pixel_with_kept_neighbours_gets_their_weighted_mean() -> None:
    x = torch.arange(9.0, dtype=torch.float64).reshape(1, 1, 3, 3)
    removed = torch.zeros(1, 3, 3, dtype=torch.bool)
    removed[0, 1, 1] = True
    filled = noisy_linear_imputation(x, removed, noise=0.0)
    direct = (x[0, 0, 0, 1] + x[0, 0, 1, 0] + x[0, 0, 1, 2] + x[0, 0, 2, 1]) / 6
    diagonal = (x[0, 0, 0, 0] + x[0, 0, 0, 2] + x[0, 0, 2, 0] + x[0, 0, 2, 2]) / 12
    assert float(filled[0, 0, 1, 1]) == pytest.approx(float(direct + diagonal))
    kept = ~removed[0]
    assert kept.sum() == 8 and torch.equal(filled[0, 0][kept], x[0, 0][kept])


def _dense_solution(x: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """The imputation as a dense linear system, one pixel at a time (a 2-D image)."""
    h, w = removed.shape
    weights = {(-1, 0): 1 / 6, (1, 0): 1 / 6, (0, -1): 1 / 6, (0, 1): 1 / 6,
               (-1, -1): 1 / 12, (-1, 1): 1 / 12, (1, -1): 1 / 12, (1, 1): 1 / 12}  # fmt: skip
    unknown = [(i, j) for i in range(h) for j in range(w) if removed[i, j]]
    where = {p: k for k, p in enumerate(unknown)}
    a = torch.zeros(len(unknown), len(unknown), dtype=torch.float64)
    b = torch.zeros(len(unknown), dtype=torch.float64)
    for k, (i, j) in enumerate(unknown):
        for (di, dj), wt in weights.items():
            u, v = i + di, j + dj
            if 0 <= u < h and 0 <= v < w:
                a[k, k] += wt
                if removed[u, v]:
                    a[k, where[(u, v)]] -= wt
                else:
                    b[k] += wt * x[u, v]
    out = x.clone()
    for (i, j), value in zip(unknown, torch.linalg.solve(a, b), strict=True):
        out[i, j] = value
    return out


def test_imputation_solves_the_linear_system() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 2, 7, 6, generator=g, dtype=torch.float64)
    removed = torch.rand(2, 7, 6, generator=g) < 0.6
    removed[1, :4, :4] = True  # a large hole
    filled = noisy_linear_imputation(x, removed, noise=0.0)
    for n in range(2):
        for c in range(2):
            torch.testing.assert_close(filled[n, c], _dense_solution(x[n, c], removed[n]))


def test_noise_only_on_removed_pixels_and_seeded() -> None:
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    removed = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(2)) < 0.5
    clean = noisy_linear_imputation(x, removed, noise=0.0)
    noisy = noisy_linear_imputation(x, removed, noise=0.1)
    keep = ~removed[:, None].expand_as(x)
    assert torch.equal(noisy[keep], x[keep])
    spread = (noisy - clean)[~keep].std()
    assert 0.07 < float(spread) < 0.13
    assert torch.equal(noisy, noisy_linear_imputation(x, removed, noise=0.1))
    other = noisy_linear_imputation(
        x, removed, noise=0.1, generator=torch.Generator().manual_seed(5)
    )
    assert not torch.equal(noisy, other)


class Planted(torch.nn.Module):
    """Class-0 logit: the mean of a planted 4 x 4 box (bright in the inputs); class 1: 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        box = x[:, :, 2:6, 2:6].mean(dim=(1, 2, 3))
        return torch.stack([8 * box, torch.full_like(box, 4.0)], 1)


def planted_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.3
    x[:, :, 2:6, 2:6] = 1.0
    perfect = torch.zeros(3, 1, 8, 8)
    perfect[:, :, 2:6, 2:6] = 1 + torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    return x, perfect


def test_curves_are_monotone_for_a_planted_model() -> None:
    x, perfect = planted_inputs()
    fractions = (0.05, 0.1, 0.15, 0.2, 0.25)  # up to the box's share of the pixels
    res = road(Planted(), x, perfect, target=0, fractions=fractions, noise=0.0)
    assert res.morf_curve.shape == (3, 5) and res.fractions.tolist() == pytest.approx(fractions)
    assert bool((res.morf_curve.diff(dim=1) < 0).all())  # every removed box pixel costs
    torch.testing.assert_close(res.lerf_curve, res.lerf_curve[:, :1].expand(3, 5))  # box kept
    assert bool((res.morf < res.lerf).all())
    inverted = road(Planted(), x, -perfect, target=0, fractions=fractions, noise=0.0)
    assert bool((inverted.morf > res.morf).all())


def test_one_order_chunking_and_areas() -> None:
    x, perfect = planted_inputs()
    both = road(Planted(), x, perfect, target=0, noise=0.0)
    morf = road(Planted(), x, perfect, target=0, order="morf", noise=0.0, batch_size=5)
    assert morf.lerf is None and morf.lerf_curve is None
    torch.testing.assert_close(morf.morf_curve, both.morf_curve)
    expected = torch.trapezoid(both.morf_curve, x=both.fractions, dim=1) / 0.8
    torch.testing.assert_close(both.morf, expected)
    single = road(Planted(), x, perfect, target=0, fractions=(0.3,), order="lerf")
    assert single.lerf.shape == (3,) and single.morf is None


def test_road_on_the_device(device: torch.device) -> None:
    x, perfect = planted_inputs()
    res = road(Planted().to(device), x.to(device), perfect.to(device), target=0)
    assert res.morf.device.type == device.type and bool(torch.isfinite(res.morf).all())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fractions": ()}, ValueError, "fractions"),
        ({"fractions": (0.5, 0.2)}, ValueError, "fractions"),
        ({"fractions": (0.5, 1.5)}, ValueError, "fractions"),
        ({"fractions": 0.5}, TypeError, "fractions"),
        ({"order": "up"}, ValueError, "order"),
        ({"noise": -1.0}, ValueError, "noise"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"attributions": torch.rand(3, 1, 7, 8)}, ValueError, "attributions"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    x, perfect = planted_inputs()
    args = {"attributions": perfect, **kwargs}
    with pytest.raises(error, match=match):
        road(Planted(), x, target=0, **args)


def test_imputation_bad_arguments() -> None:
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(TypeError, match="removed"):
        noisy_linear_imputation(x, torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="removed"):
        noisy_linear_imputation(x, torch.zeros(1, 4, 5, dtype=torch.bool))
