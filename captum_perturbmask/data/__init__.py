"""Embedded default data and weights (offline): digits-in-clutter, a CNN and a small GAN."""

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
    load_default_classifier,
    load_default_gan,
)

__all__ = [
    "DigitsCNN",
    "DigitsClutter",
    "Discriminator",
    "Generator",
    "digit_split_indices",
    "load_default_classifier",
    "load_default_gan",
    "make_digits_clutter",
    "paste_patches",
]
