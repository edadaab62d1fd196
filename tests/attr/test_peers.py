"""HSICAttribution and SobolAttribution: closed forms, rankings, planted evidence, contract."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from captum_perturbmask import HSICAttribution, SobolAttribution
from captum_perturbmask.attr.hsic import hsic_scores
from captum_perturbmask.attr.sobol import jansen_total_indices, sobol_design
from tests.attr.planted import PlantedImageModel

#: weights of an additive model of eight cells: four that matter, clearly apart, four that don't
WEIGHTS = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0])


class Additive(nn.Module):
    """``f(x) = x @ w``: one score per example, a sum of independent cell effects."""

    def __init__(self, weights: Tensor) -> None:
        super().__init__()
        self.register_buffer("w", weights)

    def forward(self, x: Tensor) -> Tensor:
        return x.to(self.w.dtype) @ self.w


def test_sobol_total_indices_of_an_additive_model_match_the_closed_form() -> None:
    """For ``f = sum_i a_i m_i`` with independent uniform masks, S_Ti = a_i^2 / sum_j a_j^2."""
    x = torch.ones(1, len(WEIGHTS), dtype=torch.float64)
    explainer = SobolAttribution(Additive(WEIGHTS.double()), confidence="identity")
    budget = 2048 * (len(WEIGHTS) + 2)
    attr = explainer.attribute(x, baselines=0.0, budget=budget, seed=0)
    expected = WEIGHTS.double() ** 2 / (WEIGHTS.double() ** 2).sum()
    torch.testing.assert_close(attr[0], expected, atol=0.005, rtol=0)


def test_jansen_estimator_on_the_sobol_design_of_a_product_function() -> None:
    """An interaction: f = m_0 m_1 on [0, 1]^2, S_T0 = S_T1 = 4/7 (closed form)."""
    a, b = sobol_design(4096, 2, seed=1, device=torch.device("cpu"))
    a, b = a.double(), b.double()

    def f(m: Tensor) -> Tensor:
        return m[..., 0] * m[..., 1]

    c = a.expand(2, *a.shape).clone()
    c[0, :, 0], c[1, :, 1] = b[:, 0], b[:, 1]
    total = jansen_total_indices(f(a)[None], f(c)[None])
    # Var f = 7/144; E[Var(f | m_-i)] = Var(m_i) E[m_j^2] = 1/12 * 1/3 = 1/36 -> S_T = 4/7.
    torch.testing.assert_close(total, torch.full((1, 2), 4 / 7, dtype=torch.float64), atol=0.02,
                               rtol=0)  # fmt: skip


def test_hsic_ranks_the_cells_of_an_additive_model() -> None:
    x = torch.ones(1, len(WEIGHTS))
    attr = HSICAttribution(Additive(WEIGHTS), confidence="identity").attribute(
        x, baselines=0.0, budget=1024, seed=0
    )[0]
    order = attr.argsort(descending=True)
    assert order[:4].tolist() == [0, 1, 2, 3], attr
    assert float(attr[4:].max()) < float(attr[3]) / 2, attr


def test_hsic_scores_detects_a_dependence_that_no_correlation_shows() -> None:
    """Cell 0 on: y is +-1 at random; off: y = 0. y is uncorrelated with every cell, but its
    distribution depends on cell 0 (HSIC with an RBF output kernel sees it)."""
    g = torch.Generator().manual_seed(0)
    m = torch.randint(0, 2, (512, 4), generator=g).double()
    sign = torch.randint(0, 2, (512,), generator=g).double() * 2 - 1
    y = m[:, 0] * sign
    assert abs(float(torch.corrcoef(torch.stack([m[:, 0], y]))[0, 1])) < 0.1
    scores = hsic_scores(m, y[None])[0]
    assert scores[0] > 5 * scores[1:].max(), scores


@pytest.mark.parametrize("cls", [HSICAttribution, SobolAttribution], ids=["hsic", "sobol"])
def test_finds_planted_evidence(cls: type) -> None:
    model = PlantedImageModel(box=(20, 36, 16, 16), strength=4.0).eval()
    x = model.evidence_image(2, 64, torch.Generator().manual_seed(0))
    attr = cls(model, grid_size=8).attribute(x, target=0, budget=1000, seed=0)
    peak = attr.sum(1).flatten(1).argmax(1)
    rows, cols = peak // 64, peak % 64
    assert ((rows >= 20) & (rows < 36) & (cols >= 36) & (cols < 52)).all(), (rows, cols)


@pytest.mark.parametrize("cls", [HSICAttribution, SobolAttribution], ids=["hsic", "sobol"])
def test_seeded_batch_invariant_and_same_structure(cls: type, dtype: torch.dtype) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 12 * 12, 3)).to(dtype).eval()
    x = torch.rand(3, 2, 12, 12, dtype=dtype, generator=torch.Generator().manual_seed(2))
    explainer = cls(model, grid_size=3)
    one = explainer.attribute(x, target=1, budget=88, seed=5)
    assert one.shape == x.shape and one.dtype == dtype and one.device == x.device
    torch.testing.assert_close(one, explainer.attribute(x, target=1, budget=88, seed=5))
    for i in range(len(x)):  # one example at a time gives the same maps
        torch.testing.assert_close(
            explainer.attribute(x[i : i + 1], target=1, budget=88, seed=5), one[i : i + 1]
        )
    other = explainer.attribute(x, target=1, budget=88, seed=6)
    assert not torch.equal(one, other)


@pytest.mark.parametrize("cls", [HSICAttribution, SobolAttribution], ids=["hsic", "sobol"])
def test_series_and_tuple_inputs(cls: type) -> None:
    series = torch.rand(2, 3, 40)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 40, 2))
    attr = cls(model).attribute(series, target=0, budget=200, seed=0)
    assert attr.shape == series.shape
    # every channel of a time step shares its cell
    torch.testing.assert_close(attr[:, 0], attr[:, 2])


def test_sobol_refuses_a_budget_below_cells_plus_two() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2))
    with pytest.raises(ValueError, match="cells \\+ 2"):
        SobolAttribution(model, grid_size=4).attribute(torch.rand(1, 3, 16, 16), target=0,
                                                       budget=17)  # fmt: skip


def test_hsic_refuses_an_unknown_sampler() -> None:
    with pytest.raises(ValueError, match="sampler"):
        HSICAttribution(nn.Identity(), sampler="grid")


@pytest.mark.parametrize("cls", [HSICAttribution, SobolAttribution], ids=["hsic", "sobol"])
def test_docstring_states_the_forward_pass_formula_and_the_paper(cls: type) -> None:
    doc = cls.__doc__ or ""
    assert "Forward passes per input" in doc and "NeurIPS" in doc
