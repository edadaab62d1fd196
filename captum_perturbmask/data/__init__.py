"""Embedded default data and weights (offline): digits-in-clutter, a CNN and a small GAN;
GunPoint time series (through the optional ``aeon``), a planted-motif variant, a 1-D CNN and a
series generator."""

from captum_perturbmask.data.digits import (
    DigitsClutter,
    digit_split_indices,
    make_digits_clutter,
    paste_patches,
)
from captum_perturbmask.data.models import (
    DigitsCNN,
    Discriminator,
    Generator,
    SeriesCNN,
    SeriesGenerator,
    load_default_classifier,
    load_default_gan,
    load_series_classifier,
    load_series_generator,
)
from captum_perturbmask.data.series import SeriesSet, load_gunpoint, make_planted_series

__all__ = [
    "DigitsCNN",
    "DigitsClutter",
    "Discriminator",
    "Generator",
    "SeriesCNN",
    "SeriesGenerator",
    "SeriesSet",
    "digit_split_indices",
    "load_default_classifier",
    "load_default_gan",
    "load_gunpoint",
    "load_series_classifier",
    "load_series_generator",
    "make_digits_clutter",
    "make_planted_series",
    "paste_patches",
]
