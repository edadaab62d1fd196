"""Generative companions: the distribution of acceptable variations (Problem 2).

* :mod:`~captum_perturbmask.generative.latent_variation`: :class:`LatentVariationGenerator`,
  the latent search for images and time series.
* :mod:`~captum_perturbmask.generative.results`: what it returns (:class:`LatentVariations`,
  :class:`CounterfactualVariations`) and the counterfactual knobs
  (:class:`CounterfactualConfig`).
"""

from captum_perturbmask.generative.latent_variation import LatentVariationGenerator
from captum_perturbmask.generative.results import (
    CounterfactualConfig,
    CounterfactualVariations,
    LatentVariations,
)

__all__ = [
    "CounterfactualConfig",
    "CounterfactualVariations",
    "LatentVariationGenerator",
    "LatentVariations",
]
