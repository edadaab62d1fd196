"""Result types and CounterfactualConfig: checks at construction, defaults, summaries, figure."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch

from captum_perturbmask.generative import (
    CounterfactualConfig,
    CounterfactualVariations,
    LatentVariationGenerator,
    LatentVariations,
)

from .models import FAST, PatchGenerator, box_mask, classifier, discriminator, images

NAN = float("nan")
INF = float("inf")

BAD_FIELDS: list[tuple[str, dict[str, Any], type[Exception]]] = [
    ("epsilon", {"epsilon": 0.0}, ValueError),
    ("epsilon", {"epsilon": -1.0}, ValueError),
    ("epsilon", {"epsilon": NAN}, ValueError),
    ("epsilon", {"epsilon": INF}, ValueError),
    ("epsilon", {"epsilon": True}, TypeError),
    ("epsilon", {"epsilon": "1"}, TypeError),
    ("weight", {"weight": 0.0}, ValueError),
    ("weight", {"weight": NAN}, ValueError),
    ("weight", {"weight": INF}, ValueError),
    ("weight", {"weight": True}, TypeError),
    ("weight", {"weight": None}, TypeError),
    ("margin", {"margin": -0.5}, ValueError),
    ("margin", {"margin": NAN}, ValueError),
    ("margin", {"margin": INF}, ValueError),
    ("margin", {"margin": False}, TypeError),
    ("n_candidates", {"n_candidates": 0}, ValueError),
    ("n_candidates", {"n_candidates": 2.0}, TypeError),
    ("n_candidates", {"n_candidates": True}, TypeError),
    ("n_steps", {"n_steps": 0}, ValueError),
    ("n_steps", {"n_steps": True}, TypeError),
    ("n_steps", {"n_steps": 1.5}, TypeError),
    ("lr", {"lr": 0.0}, ValueError),
    ("lr", {"lr": NAN}, ValueError),
    ("lr", {"lr": INF}, ValueError),
    ("lr", {"lr": True}, TypeError),
    ("cf_target", {"cf_target": True}, TypeError),
    ("cf_target", {"cf_target": 1.5}, TypeError),
    ("cf_target", {"cf_target": "cat"}, TypeError),
    ("cf_target", {"cf_target": (1, 2)}, TypeError),
    ("cf_target", {"cf_target": -1}, ValueError),
    ("cf_target", {"cf_target": [1, 1.5]}, TypeError),
    ("cf_target", {"cf_target": [1, True]}, TypeError),
    ("cf_target", {"cf_target": []}, TypeError),
    ("cf_target", {"cf_target": [0, -2]}, ValueError),
    ("cf_target", {"cf_target": torch.tensor([0.5])}, TypeError),
    ("cf_target", {"cf_target": torch.tensor([True])}, TypeError),
    ("cf_target", {"cf_target": torch.zeros(2, 2, dtype=torch.long)}, ValueError),
    ("cf_target", {"cf_target": torch.tensor([], dtype=torch.long)}, ValueError),
    ("cf_target", {"cf_target": torch.tensor([1, -1])}, ValueError),
]


@pytest.mark.parametrize(
    ("field", "kwargs", "error"),
    BAD_FIELDS,
    ids=[f"{f}={next(iter(k.values()))!r}" for f, k, _ in BAD_FIELDS],
)
def test_counterfactual_config_checks_every_field(
    field: str, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error, match=f"CounterfactualConfig.{field}"):
        CounterfactualConfig(**kwargs)


def test_counterfactual_config_defaults_and_resolution() -> None:
    cfg = CounterfactualConfig(cf_target=[1, 2])
    assert (cfg.epsilon, cfg.weight, cfg.margin, cfg.n_candidates) == (None, 1.0, 1.0, None)
    done = cfg.resolved(latent_dim=16, n_keep=5, n_steps=40, lr=0.2)
    assert done.epsilon == pytest.approx(0.25 * math.sqrt(16))
    assert (done.n_candidates, done.n_steps, done.lr, done.cf_target) == (5, 40, 0.2, [1, 2])
    explicit = CounterfactualConfig(epsilon=2, n_candidates=3, n_steps=7, lr=1).resolved(
        16, 5, 40, 0.2
    )
    assert (explicit.epsilon, explicit.n_candidates, explicit.n_steps, explicit.lr) == (
        2.0,
        3,
        7,
        1.0,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.weight = 2.0  # type: ignore[misc]
    CounterfactualConfig(cf_target=torch.tensor(3))  # a scalar tensor is fine


def test_summaries() -> None:
    base: dict[str, Any] = {
        "variants": torch.zeros(2, 2, 1, 4),
        "latents": torch.zeros(2, 2, 3),
        "losses": torch.zeros(2, 2),
        "mask": torch.ones(2, 4, dtype=torch.bool),
        "context_weights": torch.zeros(2, 4),
        "patch_origin": torch.zeros(2, 1, dtype=torch.long),
        "diversity": torch.zeros(2),
    }
    assert LatentVariations(**base).accepted_fraction is None
    accepted = torch.tensor([[True, False], [True, True]])
    assert LatentVariations(**base, accepted=accepted).accepted_fraction == 0.75
    cf = CounterfactualVariations(
        variants=torch.zeros(2, 3, 1, 4),
        latents=torch.zeros(2, 3, 3),
        anchors=torch.zeros(2, 3),
        latent_distance=torch.zeros(2, 3),
        losses=torch.zeros(2, 3),
        predictions=torch.zeros(2, 3, dtype=torch.long),
        confidence=torch.zeros(2, 3),
        flipped=torch.tensor([[False, False, False], [True, True, False]]),
        realism=None,
        cf_target=None,
        epsilon=1.0,
    )
    assert cf.n_flipped_inputs == 1


def test_figure(tmp_path: Any) -> None:
    lvg = LatentVariationGenerator(PatchGenerator(), discriminator(), forward_func=classifier())
    out = lvg.generate(
        images(), mask=box_mask(), counterfactual=CounterfactualConfig(n_steps=3), **FAST
    )
    fig = out.to_figure(max_variants=2)
    assert len(fig.axes) == 2 * (2 + 2 + 2) + 2  # and a colour bar of R per row
    path = tmp_path / "grid.png"
    out.plot(str(path), index=1)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="index"):
        out.to_figure(index=5)
