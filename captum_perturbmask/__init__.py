"""captum-perturbmask: perturbation-mask saliency and acceptable variations for Captum.

The flat API a newcomer needs:

* :class:`PerturbMask` - Algorithm 1 of Thakur & Fischmeister as a Captum
  :class:`~captum.attr.PerturbationAttribution`.
* :class:`RISE` - Petsiuk et al. (2018), the baseline the poster compares against.
* :class:`HSICAttribution` and :class:`SobolAttribution` - the strongest black-box peers
  (Novello et al. 2022; Fel et al. 2021).
* :func:`evaluate` and :func:`compare` - saliency methods scored on a dataset or on one batch
  (:mod:`captum_perturbmask.evaluation`).
* :mod:`captum_perturbmask.metrics` - insertion/deletion AUC, ROAD, IoU, pointing game,
  consistency.
* :class:`LatentVariationGenerator` - the distribution of acceptable variations (Problem 2).
* :mod:`captum_perturbmask.viz` - the figures.

The names are imported on first use, so ``import captum_perturbmask`` (and the command line's
``--help``) does not pay for torch and Captum until they are needed.
"""

import typing as _typing

from captum_perturbmask._version import __version__

if _typing.TYPE_CHECKING:
    from captum_perturbmask.attr import RISE, HSICAttribution, PerturbMask, SobolAttribution
    from captum_perturbmask.evaluation import compare, evaluate
    from captum_perturbmask.generative import LatentVariationGenerator

_LAZY = {
    "PerturbMask": "captum_perturbmask.attr",
    "RISE": "captum_perturbmask.attr",
    "HSICAttribution": "captum_perturbmask.attr",
    "SobolAttribution": "captum_perturbmask.attr",
    "LatentVariationGenerator": "captum_perturbmask.generative",
    "evaluate": "captum_perturbmask.evaluation",
    "compare": "captum_perturbmask.evaluation",
}

__all__ = [
    "HSICAttribution",
    "LatentVariationGenerator",
    "PerturbMask",
    "RISE",
    "SobolAttribution",
    "__version__",
    "compare",
    "evaluate",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
