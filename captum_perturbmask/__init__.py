"""captum-perturbmask: perturbation-mask saliency and acceptable variations for Captum.

The flat API a newcomer needs:

* :class:`PerturbMask` - Algorithm 1 of Thakur & Fischmeister as a Captum
  :class:`~captum.attr.PerturbationAttribution`.
* :class:`RISE` - Petsiuk et al. (2018), the baseline the poster compares against.
* :mod:`captum_perturbmask.metrics` - insertion/deletion AUC, IoU, pointing game, consistency.
* :class:`LatentVariationGenerator` - the distribution of acceptable variations (Problem 2).
"""

from captum_perturbmask.attr import RISE, PerturbMask
from captum_perturbmask.generative import LatentVariationGenerator

__version__ = "0.1.0"

__all__ = ["LatentVariationGenerator", "PerturbMask", "RISE", "__version__"]
