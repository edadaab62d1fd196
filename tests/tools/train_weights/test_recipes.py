"""The table of recipes."""

from __future__ import annotations

from importlib import resources

import pytest

from tools.train_weights.recipes import RECIPES, select


def test_every_shipped_weight_file_has_one_recipe() -> None:
    folder = resources.files("captum_perturbmask.data").joinpath("weights")
    shipped = sorted(p.name[:-3] for p in folder.iterdir() if p.name.endswith(".pt"))
    made = sorted(name for recipe in RECIPES.values() for name in recipe.files)
    assert made == shipped


def test_select() -> None:
    assert [r.name for r in select(None)] == list(RECIPES)
    assert [r.name for r in select(["gan", "digits", "gan"])] == ["digits", "gan"]
    with pytest.raises(ValueError, match="unknown recipe 'vae'; choose from digits"):
        select(["vae"])
