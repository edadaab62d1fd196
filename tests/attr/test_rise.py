"""RISE: reference formula, planted evidence, reproducibility, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from captum.attr import PerturbationAttribution

from captum_perturbmask import RISE
from captum_perturbmask.attr._loop import DRAW_BLOCK, block_generator

from .planted import PlantedImageModel, PlantedSeriesModel

CONFIG = ("grid_size", "keep_prob", "normalize", "confidence")


def rise(model, x, **kwargs):
    """``RISE(model, **config).attribute(x, **arguments)`` from one set of keywords."""
    config = {k: v for k, v in kwargs.items() if k in CONFIG}
    call = {k: v for k, v in kwargs.items() if k not in CONFIG}
    return RISE(model, **config).attribute(x, **call)


def test_is_perturbation_attribution() -> None:
    assert issubclass(RISE, PerturbationAttribution)


def test_shape_dtype_device(device: torch.device, dtype: torch.dtype) -> None:
    model = PlantedImageModel((2, 2, 5, 5)).to(device=device, dtype=dtype)
    x = torch.rand(2, 3, 12, 12, device=device, dtype=dtype)
    a = rise(model, x, target=0, budget=40, seed=0)
    assert a.shape == x.shape and a.dtype == dtype and a.device == x.device


def test_matches_naive_reference_formula() -> None:
    """Sum_i p(I*M_i) M_i / (N p1), with masks rebuilt by a loop from the same random draws."""
    model = PlantedImageModel((2, 3, 6, 6))
    x = model.evidence_image(2, 16, torch.Generator().manual_seed(0))
    n, s, p1 = 300, 4, 0.5  # two draw blocks
    attr = rise(model, x, target=0, budget=n, grid_size=s, keep_prob=p1, seed=5)
    cell = math.ceil(16 / s)
    sal = torch.zeros(2, 16, 16)
    for block, start in enumerate(range(0, n, DRAW_BLOCK)):  # masks drawn in blocks
        nb = min(DRAW_BLOCK, n - start)
        gen = block_generator(5, block, torch.device("cpu"))
        shifts = (torch.rand(nb, 2, generator=gen) * cell).long()
        grid = (torch.rand(nb, s * s, generator=gen) < p1).float().reshape(nb, 1, s, s)
        up = F.interpolate(grid, size=((s + 1) * cell,) * 2, mode="bilinear", align_corners=False)
        for j in range(nb):
            dy, dx = shifts[j].tolist()
            m = up[j, 0, dy : dy + 16, dx : dx + 16]
            p = torch.softmax(model(x * m), 1)[:, 0]
            sal += p[:, None, None] * m
    torch.testing.assert_close(attr[:, 0], sal / (n * p1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_planted_evidence_localised(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    t, l = torch.randint(0, 19, (2,), generator=g).tolist()
    model = PlantedImageModel((t, l, 12, 12), seed=seed)
    x = model.evidence_image(2, 32, g)
    a = rise(model, x, target=0, budget=4000, seed=seed)[:, 0]
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[t : t + 12, l : l + 12] = True
    assert (a[:, inside].mean(1) > a[:, ~inside].mean(1) + 0.01).all()
    top = a.flatten(1).topk(32, dim=1).indices  # top 3% of pixels
    assert inside.flatten()[top].float().mean() > 0.7


def test_time_series() -> None:
    x = torch.rand(2, 2, 64)
    a = rise(PlantedSeriesModel(20, 30), x, target=0, budget=500, grid_size=16, seed=0)
    peak = a[:, 0].argmax(1)
    assert a.shape == x.shape and ((peak >= 18) & (peak < 32)).all()


def test_seeded_identical_and_batching_invariant() -> None:
    model = PlantedImageModel((2, 2, 6, 6))
    x = torch.rand(3, 3, 16, 16)
    r = RISE(model)
    a = r.attribute(x, target=0, budget=70, seed=1)
    assert torch.equal(a, r.attribute(x, target=0, budget=70, seed=1))
    assert torch.equal(a, r.attribute(x, target=0, budget=70, seed=1, perturbations_per_eval=7))
    assert not torch.equal(a, r.attribute(x, target=0, budget=70, seed=2))
    state = torch.get_rng_state()
    r.attribute(x, target=0, budget=10)
    assert torch.equal(state, torch.get_rng_state())


def test_mask_sum_normalisation_bounded() -> None:
    model = PlantedImageModel((2, 2, 6, 6))
    a = rise(model, torch.rand(2, 3, 16, 16), target=0, budget=64, normalize="mask_sum")
    assert (a >= 0).all() and (a <= 1 + 1e-6).all()


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(budget=0), ValueError, "budget"),
        (dict(keep_prob=0.0), ValueError, "keep_prob"),
        (dict(keep_prob=1.5), ValueError, "keep_prob"),
        (dict(normalize="x"), ValueError, "normalize"),
        (dict(grid_size=-1), ValueError, "grid_size"),
        (dict(perturbations_per_eval=0), ValueError, "perturbations_per_eval"),
    ],
)
def test_bad_knobs(kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        rise(PlantedImageModel((1, 1, 3, 3)), torch.rand(1, 3, 8, 8), target=0, **kwargs)


def test_feature_inputs_one_cell_per_element_and_1d_refused() -> None:
    """(B, F) inputs: each element is kept with keep_prob, the same rule as PerturbMask."""
    weights = torch.tensor([[3.0, 0.0, 0.0, -3.0]])

    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x @ weights.T, torch.zeros(x.shape[0], 1)], 1)

    attr = RISE(model).attribute(torch.ones(2, 4), target=0, budget=256, seed=0)
    assert attr.shape == (2, 4)
    assert attr[0].argmax() == 0 and attr[0].argmin() == 3
    with pytest.raises(ValueError, match="inputs"):
        RISE(torch.nn.Linear(4, 2)).attribute(torch.rand(2), target=0)
