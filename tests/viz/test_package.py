"""The package surface of :mod:`captum_perturbmask.viz`: every figure importable from it, the
look defined once."""

from __future__ import annotations

import importlib

import pytest

from captum_perturbmask import viz
from captum_perturbmask.viz import _style

HOMES = {
    "plot_maps": "images",
    "plot_explanation": "images",
    "plot_series_maps": "series",
    "plot_variations": "variations",
    "plot_variation_distribution": "variation_distribution",
    "plot_convergence": "curves",
    "plot_perturbation_curves": "curves",
    "png_bytes": "_draw",
}


@pytest.mark.parametrize(("name", "home"), HOMES.items())
def test_figures_are_importable_from_the_package(name: str, home: str) -> None:
    module = importlib.import_module(f"captum_perturbmask.viz.{home}")
    assert getattr(viz, name) is getattr(module, name)
    assert name in viz.__all__


def test_all_is_the_public_api() -> None:
    assert sorted(viz.__all__) == sorted([*HOMES, "SALIENCY_CMAP"])


@pytest.mark.parametrize(
    "name",
    ["SALIENCY_CMAP", "BOX_COLOR", "OVERLAY_ALPHA", "SPAN_ALPHA", "TITLE_SIZE", "SAVE_DPI",
     "DISPLAY_MAX_SIDE"],
)  # fmt: skip
def test_style_constants_are_reexported_from_their_home(name: str) -> None:
    assert getattr(viz, name) is getattr(_style, name)
