"""Attribution methods: :class:`PerturbMask` and the :class:`RISE` baseline."""

from captum_perturbmask.attr.perturb_mask import PerturbMask
from captum_perturbmask.attr.rise import RISE

__all__ = ["PerturbMask", "RISE"]
