"""Generative companions: the distribution of acceptable variations (Problem 2).

* :mod:`~captum_perturbmask.generative.latent_variation`: :class:`LatentVariationGenerator`,
  the latent search for images and time series.
* :mod:`~captum_perturbmask.generative.inpainting`: :class:`ContextInpainter`
  :math:`G(z, \\text{context}, \\text{hole})` and :class:`InpaintingCritic`, the context-aware
  generators that fill :math:`B` from its surroundings (shipped for the digits).
* :mod:`~captum_perturbmask.generative.settings`: :class:`VariationSettings`, the search's
  knobs in one checked object (``LatentVariationGenerator(..., settings=...)``).
* :mod:`~captum_perturbmask.generative.results`: what it returns (:class:`LatentVariations`,
  :class:`CounterfactualVariations`) and the counterfactual knobs
  (:class:`CounterfactualConfig`).
"""

from captum_perturbmask.generative.inpainting import ContextInpainter, InpaintingCritic
from captum_perturbmask.generative.latent_variation import LatentVariationGenerator
from captum_perturbmask.generative.results import (
    CounterfactualConfig,
    CounterfactualVariations,
    LatentVariations,
)
from captum_perturbmask.generative.settings import VariationSettings

__all__ = [
    "ContextInpainter",
    "CounterfactualConfig",
    "CounterfactualVariations",
    "InpaintingCritic",
    "LatentVariationGenerator",
    "LatentVariations",
    "VariationSettings",
]
