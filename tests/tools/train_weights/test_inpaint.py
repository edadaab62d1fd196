"""The inpainter recipes: holes, smoke runs, determinism and the shipped inpainters' checks."""

from __future__ import annotations

import pytest
import torch

from captum_perturbmask.data import load_default_classifier
from captum_perturbmask.data.models import load_default_inpainter, load_series_inpainter
from tools.train_weights.check import state_digest
from tools.train_weights.inpaint import (
    inpainter_sanity,
    random_holes,
    random_spans,
    train_inpainter,
    train_series_inpainter,
)
from tools.train_weights.settings import recipe_settings


def test_random_holes_cover_30_to_80_percent_of_the_box() -> None:
    gen = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[4.0, 6.0, 26.0, 28.0]]).expand(500, 4)
    holes = random_holes(boxes, gen, 32, full_hole=0.0, big_hole=0.0)
    share = holes.flatten(1).sum(1) / (22 * 22)
    assert float(share.min()) >= 0.25 and float(share.max()) <= 0.85
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[6:28, 4:26] = True
    assert not bool(holes[:, 0][:, ~inside].any())  # placed inside the box
    full = random_holes(boxes, gen, 32, full_hole=1.0)
    assert bool((full == 1).all())


def test_random_spans() -> None:
    gen = torch.Generator().manual_seed(0)
    holes = random_spans(torch.tensor([[30, 50]]).expand(400, 2), 150, gen, full_hole=0.0)
    lengths = holes.flatten(1).sum(1)
    assert float(lengths.min()) >= 1 and float(lengths.max()) <= 40
    # contiguous spans
    edges = (holes[:, 0, 1:] != holes[:, 0, :-1]).sum(1)
    assert int(edges.max()) <= 2


def test_training_smoke_and_determinism() -> None:
    state = torch.random.get_rng_state()
    kw = {"steps": 3, "batch_size": 4, "pool_size": 16, "width": 4, "latent_dim": 4}
    with recipe_settings(1):
        g, d, log = train_inpainter(**kw)
        g2, d2, _ = train_inpainter(**kw)
    assert torch.equal(state, torch.random.get_rng_state())
    assert not g.training and not d.training and log["steps"] == 3 and g.n_classes == 10
    assert state_digest(g.state_dict()) == state_digest(g2.state_dict())
    assert state_digest(d.state_dict()) == state_digest(d2.state_dict())
    assert g.sample(2).shape == (2, 3, 32, 32)


@pytest.mark.slow
def test_series_training_smoke() -> None:
    with recipe_settings(1):
        g, d, log = train_series_inpainter(steps=3, batch_size=4, pool_size=16, width=4)
    assert g.n_classes == 2 and g.sample(3).shape == (3, 1, 150) and log["steps"] == 3
    assert d(g.sample(2), torch.tensor([0, 1])).shape == (2,)


def test_shipped_inpainters_load_small() -> None:
    g, d = load_default_inpainter()
    n_bytes = sum(p.numel() * p.element_size() for p in g.parameters())
    assert n_bytes < 3 * 2**20 and g.n_classes == 10 and g.window == (32, 32)
    sg, sd = load_series_inpainter()
    assert sg.window == (150,) and sg.n_classes == 2 and sg.output == "linear"


@pytest.mark.slow
def test_shipped_inpainter_sanity() -> None:
    g, _ = load_default_inpainter()
    s = inpainter_sanity(g, load_default_classifier(), n=64, n_codes=4)
    assert s["fill_kept"] >= 0.6 and s["fill_spread"] >= 0.02
    assert s["free_read_as_digit"] >= 0.5
