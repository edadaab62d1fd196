"""captum-perturbmask: perturbation-mask saliency and acceptable variations for Captum.

The flat API a newcomer needs:

* :class:`PerturbMask` - Algorithm 1 of Thakur & Fischmeister as a Captum
  :class:`~captum.attr.PerturbationAttribution`.
* :class:`RISE` - Petsiuk et al. (2018), the baseline the poster compares against.
* :mod:`captum_perturbmask.metrics` - insertion/deletion AUC, IoU, pointing game, consistency.
* :class:`LatentVariationGenerator` - the distribution of acceptable variations (Problem 2).
* :mod:`captum_perturbmask.viz` - the figures.

The names are imported on first use, so ``import captum_perturbmask`` (and the command line's
``--help``) does not pay for torch and Captum until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from captum_perturbmask._version import __version__

if TYPE_CHECKING:
    from captum_perturbmask.attr import RISE, HSICAttribution, PerturbMask, SobolAttribution
    from captum_perturbmask.generative import LatentVariationGenerator

_LAZY = {
    "PerturbMask": "captum_perturbmask.attr",
    "RISE": "captum_perturbmask.attr",
    "HSICAttribution": "captum_perturbmask.attr",
    "SobolAttribution": "captum_perturbmask.attr",
    "LatentVariationGenerator": "captum_perturbmask.generative",
}

__all__ = [
    "HSICAttribution",
    "LatentVariationGenerator",
    "PerturbMask",
    "RISE",
    "SobolAttribution",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
