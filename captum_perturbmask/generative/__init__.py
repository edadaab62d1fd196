"""Generative companions: the distribution of acceptable variations (Problem 2)."""

from captum_perturbmask.generative.latent_variation import (
    CounterfactualConfig,
    CounterfactualVariations,
    LatentVariationGenerator,
    LatentVariations,
)

__all__ = [
    "CounterfactualConfig",
    "CounterfactualVariations",
    "LatentVariationGenerator",
    "LatentVariations",
]
