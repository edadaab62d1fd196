"""Small tensor operations shared by the attribution methods and the metrics."""

from __future__ import annotations

from torch import Tensor

from captum_perturbmask._core.checks import check_float, check_int


def blur(inputs: Tensor, kernel_size: object, sigma: object) -> Tensor:
    """Gaussian blur of images :math:`(B, C, H, W)` or series :math:`(B, C, T)` (along time).

    ``torchvision.transforms.v2.functional.gaussian_blur`` with reflect padding; the kernel is
    shrunk to ``2 * min(spatial) - 1`` on inputs too small for it (reflect padding needs
    ``pad < size``).

    Raises:
        TypeError, ValueError: for a kernel size that is not a positive odd int or a
            ``sigma`` that is not a positive finite float.
    """
    from torchvision.transforms.v2 import functional as TF

    kernel_size = check_int(kernel_size, "blur_kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"`blur_kernel_size` must be odd, got {kernel_size}.")
    sigma = check_float(sigma, "blur_sigma", 0.0, low_open=True)
    if inputs.ndim not in (3, 4):
        raise ValueError(
            f"a blur needs images (B, C, H, W) or series (B, C, T), got shape {tuple(inputs.shape)}"
        )
    kernel_size = min(kernel_size, 2 * min(inputs.shape[2:]) - 1)
    if inputs.ndim == 4:
        return TF.gaussian_blur(inputs, [kernel_size, kernel_size], [sigma, sigma])
    blurred = TF.gaussian_blur(inputs.unsqueeze(2), [kernel_size, 1], [sigma, sigma])
    return blurred.squeeze(2)
