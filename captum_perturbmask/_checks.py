"""Argument checks and the Gaussian blur shared by the attribution methods and the metrics."""

from __future__ import annotations

import math
from numbers import Real

import torchvision.transforms.functional as TF
from torch import Tensor


def check_int(x: object, name: str, minimum: int = 1) -> int:
    """Return ``x`` as ``int`` if it is an integer ``>= minimum``, else raise."""
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"`{name}` must be an int, got {type(x).__name__}.")
    if x < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {x}.")
    return int(x)


def check_fraction(
    x: object, name: str, low: float = 0.0, high: float = 1.0, low_open: bool = False
) -> float:
    """Return ``x`` as ``float`` if it is a real number in ``[low, high]`` (or ``(low, high]``)."""
    if isinstance(x, bool) or not isinstance(x, Real):
        raise TypeError(f"`{name}` must be a float, got {type(x).__name__}.")
    x = float(x)
    bad_low = x <= low if low_open else x < low
    if bad_low or x > high or math.isnan(x):
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"`{name}` must be in {interval}, got {x}.")
    return x


def blur(inputs: Tensor, kernel_size: object, sigma: object) -> Tensor:
    """Gaussian blur of images (2-D) or series (1-D along time), reflect padding."""
    kernel_size = check_int(kernel_size, "blur_kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"`blur_kernel_size` must be odd, got {kernel_size}.")
    if isinstance(sigma, bool) or not isinstance(sigma, Real):
        raise TypeError(f"`blur_sigma` must be a float, got {type(sigma).__name__}.")
    if not float(sigma) > 0 or not math.isfinite(float(sigma)):
        raise ValueError(f"`blur_sigma` must be a positive finite float, got {sigma}.")
    sigma = float(sigma)
    # Reflect padding needs pad < size: shrink the kernel on tiny inputs.
    largest = 2 * min(inputs.shape[2:]) - 1
    kernel_size = min(kernel_size, largest)
    if inputs.ndim == 4:
        return TF.gaussian_blur(inputs, [kernel_size, kernel_size], [sigma, sigma])
    blurred = TF.gaussian_blur(inputs.unsqueeze(2), [kernel_size, 1], [sigma, sigma])
    return blurred.squeeze(2)
