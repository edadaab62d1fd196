"""Attribution methods: :class:`PerturbMask`, the :class:`RISE` baseline and the strongest
black-box peers, :class:`HSICAttribution` and :class:`SobolAttribution`."""

from captum_perturbmask.attr.hsic import HSICAttribution
from captum_perturbmask.attr.perturb_mask import PerturbMask
from captum_perturbmask.attr.rise import RISE
from captum_perturbmask.attr.sobol import SobolAttribution

__all__ = ["HSICAttribution", "PerturbMask", "RISE", "SobolAttribution"]
