"""Digits-in-clutter: a tiny offline localisation bed built from scikit-learn's real digits.

Each image is a :math:`64 \\times 64` RGB canvas in :math:`[0, 1]` holding one real handwritten
digit of :func:`sklearn.datasets.load_digits` (UCI optical digits, :math:`8 \\times 8`,
values 0-16), bilinearly upscaled :math:`\\times 3` to :math:`24 \\times 24` and pasted at a
seeded random place in a random bright colour, over a smooth noise background with filled
rectangles and Gaussian blobs as class-free distractors (drawn *under* the digit, independent of
the label). The evidence box of every image is the tight box of the digit's ink pixels.

Boxes are float ``xyxy`` in the pixel-edge convention: ``x2`` and ``y2`` are exclusive, so the
single pixel at row ``r`` and column ``c`` has the box ``(c, r, c + 1, r + 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "CANVAS_SIZE",
    "DIGIT_SIZE",
    "PATCH_SIZE",
    "DigitsClutter",
    "digit_split_indices",
    "make_digits_clutter",
    "paste_patches",
]

CANVAS_SIZE: int = 64
"""Side of the square canvas in pixels."""
DIGIT_SIZE: int = 24
"""Side of the upscaled (:math:`\\times 3`) digit tile in pixels."""
PATCH_SIZE: int = 32
"""Side of the square patch centred on the digit box (the GAN's domain)."""

_SPLIT_SEED = 20240611
_TRAIN_FRACTION = 0.7
_INK_THRESHOLD = 0.2
_N_RECTS = 3
_N_BLOBS = 3


@lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    return images, bunch.target.astype(np.int64)


@lru_cache(maxsize=1)
def _digit_tiles() -> tuple[np.ndarray, np.ndarray]:
    """Upscaled ink alpha tiles ``(1797, 24, 24)`` and their ink-box offsets ``(1797, 4)``."""
    images, _ = _load_digits()
    up = F.interpolate(
        torch.from_numpy(images)[:, None],
        size=(DIGIT_SIZE, DIGIT_SIZE),
        mode="bilinear",
        align_corners=False,
    )[:, 0].numpy()
    from torchvision.ops import masks_to_boxes  # imported on first use: keeps import light

    alpha = np.clip(up * 1.25, 0.0, 1.0)
    alpha[up < _INK_THRESHOLD] = 0.0
    # Tight ink boxes; masks_to_boxes gives inclusive x2, y2, the convention here is exclusive.
    boxes = masks_to_boxes(torch.from_numpy(alpha > 0)) + torch.tensor([0.0, 0.0, 1.0, 1.0])
    return alpha.astype(np.float32), boxes.numpy().astype(np.float32)


def digit_split_indices(split: str) -> np.ndarray:
    """Indices into :func:`sklearn.datasets.load_digits` that belong to a split.

    The 1797 digits are split once, by a fixed seeded permutation, 70/30 into ``"train"``
    (1257 digits) and ``"test"`` (540 digits); the split never depends on a generation seed.

    Args:
        split: ``"train"`` or ``"test"``.

    Returns:
        The split's digit indices, shape :math:`(M,)`, int64, in the permuted order.

    Raises:
        ValueError: If ``split`` is not ``"train"`` or ``"test"``.

    Example:
        >>> len(digit_split_indices("train")), len(digit_split_indices("test"))
        (1257, 540)
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    n_total = len(_load_digits()[1])
    perm = np.random.default_rng(_SPLIT_SEED).permutation(n_total)
    n_train = int(_TRAIN_FRACTION * n_total)
    return (perm[:n_train] if split == "train" else perm[n_train:]).astype(np.int64)


@dataclass
class DigitsClutter:
    """A generated digits-in-clutter set (see :func:`make_digits_clutter`).

    Attributes:
        images: RGB canvases in :math:`[0, 1]`, shape :math:`(N, 3, 64, 64)`, float32.
        labels: Digit classes 0-9, shape :math:`(N,)`, int64.
        boxes: Tight ink boxes, float ``xyxy`` with exclusive ``x2, y2``, shape :math:`(N, 4)`.
        patch_boxes: The :math:`32 \\times 32` patch centred on each box and clamped inside the
            canvas, integer-valued float ``xyxy``, shape :math:`(N, 4)`.
        digit_index: Index of each source digit in :func:`sklearn.datasets.load_digits`,
            shape :math:`(N,)`, int64.
        masks: The digit's ink pixels (the evidence), shape :math:`(N, 64, 64)`, bool;
            :attr:`boxes` is their tight box.
    """

    images: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    patch_boxes: torch.Tensor
    digit_index: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(image, label, box)`` of item ``i``: shapes :math:`(3, 64, 64)`, (), (4,)."""
        return self.images[i], self.labels[i], self.boxes[i]

    def patches(self) -> torch.Tensor:
        """Crop every image to its :attr:`patch_boxes`.

        Returns:
            The patches, shape :math:`(N, 3, 32, 32)`, float32 in :math:`[0, 1]`.

        Example:
            >>> make_digits_clutter("test", n=2).patches().shape
            torch.Size([2, 3, 32, 32])
        """
        n, c, rows, cols = _patch_index(self.patch_boxes)
        return self.images[n, c, rows, cols]


def _patch_index(patch_boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x1 = patch_boxes[:, 0].long()
    y1 = patch_boxes[:, 1].long()
    ar = torch.arange(PATCH_SIZE, device=patch_boxes.device)
    rows = (y1[:, None] + ar)[:, None, :, None]  # (N, 1, P, 1)
    cols = (x1[:, None] + ar)[:, None, None, :]  # (N, 1, 1, P)
    n = torch.arange(patch_boxes.shape[0], device=patch_boxes.device)[:, None, None, None]
    c = torch.arange(3, device=patch_boxes.device)[None, :, None, None]
    return n, c, rows, cols


def paste_patches(
    images: torch.Tensor, patches: torch.Tensor, patch_boxes: torch.Tensor
) -> torch.Tensor:
    """Paste :math:`32 \\times 32` patches into canvases at their patch boxes (out of place).

    The inverse of :meth:`DigitsClutter.patches`; used to put generated patches back into
    their context. Differentiable with respect to ``images`` and ``patches``.

    Args:
        images: Canvases of shape :math:`(N, 3, H, W)`.
        patches: Patches of shape :math:`(N, 3, 32, 32)`.
        patch_boxes: Integer-valued ``xyxy`` boxes of side 32 inside the canvas, :math:`(N, 4)`.

    Returns:
        New canvases of shape :math:`(N, 3, H, W)`.

    Raises:
        ValueError: If the shapes do not match.

    Example:
        >>> ds = make_digits_clutter("test", n=3)
        >>> out = paste_patches(ds.images, ds.patches(), ds.patch_boxes)
        >>> torch.equal(out, ds.images)
        True
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    n_img = images.shape[0]
    if tuple(patches.shape) != (n_img, 3, PATCH_SIZE, PATCH_SIZE):
        raise ValueError(
            f"patches must have shape ({n_img}, 3, {PATCH_SIZE}, {PATCH_SIZE}), "
            f"got {tuple(patches.shape)}"
        )
    if tuple(patch_boxes.shape) != (n_img, 4):
        raise ValueError(
            f"patch_boxes must have shape ({n_img}, 4), got {tuple(patch_boxes.shape)}"
        )
    out = images.clone()
    out[_patch_index(patch_boxes)] = patches.to(out.dtype)
    return out


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Linear interpolation matrix ``(n_out, n_in)`` with aligned corners."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    lo = np.minimum(np.floor(pos).astype(np.int64), n_in - 2)
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] = 1.0 - frac
    m[np.arange(n_out), lo + 1] += frac
    return m.astype(np.float32)


def _random_colours(
    rng: np.random.Generator, shape: tuple[int, ...], s: tuple[float, float], v: tuple[float, float]
) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb  # imported on first use: keeps import light

    h = rng.random(shape)
    sat = rng.uniform(*s, size=shape)
    val = rng.uniform(*v, size=shape)
    return hsv_to_rgb(np.stack([h, sat, val], axis=-1)).astype(np.float32)


def make_digits_clutter(split: str = "test", n: int | None = None, seed: int = 0) -> DigitsClutter:
    """Generate a deterministic digits-in-clutter localisation set.

    ``data = make_digits_clutter("test", n=8)``: ``data.images`` :math:`(8, 3, 64, 64)`,
    ``data.labels`` and the digits' ``data.boxes``; ``data[i]`` is ``(image, label, box)``.

    The digits of ``split`` (see :func:`digit_split_indices`) are used in order and cycled when
    ``n`` exceeds their number, each time with a fresh placement, colour and clutter. The
    default ``n`` is one image per digit of the split (1257 for ``"train"``, 540 for
    ``"test"``). All randomness comes from ``numpy.random.default_rng(seed)``.

    Args:
        split: ``"train"`` or ``"test"``; the two use disjoint source digits.
        n: Number of images, a positive int, or ``None`` for one per split digit.
        seed: Seed of the placements, colours and clutter.

    Returns:
        A :class:`DigitsClutter` with images :math:`(N, 3, 64, 64)`, labels :math:`(N,)`,
        boxes :math:`(N, 4)` and patch boxes :math:`(N, 4)`.

    Raises:
        ValueError: If ``split`` is unknown or ``n`` is not positive.
        TypeError: If ``n`` or ``seed`` is not an int.

    Example:
        >>> ds = make_digits_clutter("test", n=4, seed=0)
        >>> ds.images.shape, ds.labels.shape, ds.boxes.shape
        (torch.Size([4, 3, 64, 64]), torch.Size([4]), torch.Size([4, 4]))
        >>> bool(ds.images.min() >= 0) and bool(ds.images.max() <= 1)
        True
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool)):
        raise TypeError(f"n must be an int or None, got {type(n).__name__}")
    if n is not None and n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")

    _, targets = _load_digits()
    tiles, tile_boxes = _digit_tiles()
    split_idx = digit_split_indices(split)
    n = len(split_idx) if n is None else int(n)
    digit_index = split_idx[np.arange(n) % len(split_idx)]
    rng = np.random.default_rng(seed)
    S, D = CANVAS_SIZE, DIGIT_SIZE

    # Smooth noise background: low-resolution noise, bilinearly upsampled, kept dark-ish.
    low = rng.random((n, 3, 5, 5), dtype=np.float32)
    interp = _interp_matrix(5, S)
    img = 0.05 + 0.4 * np.einsum("yi,ncij,xj->ncyx", interp, low, interp, optimize=True)
    img += np.float32(0.02) * rng.standard_normal(img.shape, dtype=np.float32)

    yy = np.arange(S, dtype=np.float32)[None, :, None]
    xx = np.arange(S, dtype=np.float32)[None, None, :]

    # Distractors: filled rectangles (sides 6-20 px) and Gaussian blobs, mid-brightness colours.
    for _ in range(_N_RECTS):
        w, h = rng.integers(6, 21, size=(2, n))
        x1 = rng.integers(0, S - w + 1)
        y1 = rng.integers(0, S - h + 1)
        present = rng.random(n) < 0.8
        a = (rng.uniform(0.5, 0.9, size=n) * present).astype(np.float32)
        col = _random_colours(rng, (n,), (0.2, 1.0), (0.3, 0.8))
        m = (xx >= x1[:, None, None]) & (xx < (x1 + w)[:, None, None])
        m = m & (yy >= y1[:, None, None]) & (yy < (y1 + h)[:, None, None])
        alpha = (m * a[:, None, None])[:, None]
        img = img * (1 - alpha) + col[:, :, None, None] * alpha
    for _ in range(_N_BLOBS):
        cx, cy = rng.uniform(0, S, size=(2, n)).astype(np.float32)
        sigma = rng.uniform(2.0, 6.0, size=n).astype(np.float32)
        present = rng.random(n) < 0.8
        a = (rng.uniform(0.5, 0.9, size=n) * present).astype(np.float32)
        col = _random_colours(rng, (n,), (0.2, 1.0), (0.3, 0.8))
        d2 = (xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2
        alpha = (a[:, None, None] * np.exp(-d2 / (2 * sigma[:, None, None] ** 2)))[:, None]
        img = img * (1 - alpha) + col[:, :, None, None] * alpha

    # The digit: a 24x24 ink tile at a random place, composited on top in a bright colour.
    ox = rng.integers(0, S - D + 1, size=n)
    oy = rng.integers(0, S - D + 1, size=n)
    ink_col = _random_colours(rng, (n,), (0.2, 0.9), (0.85, 1.0))
    ar = np.arange(D)
    digit_alpha = np.zeros((n, S, S), dtype=np.float32)
    digit_alpha[
        np.arange(n)[:, None, None], (oy[:, None] + ar)[:, :, None], (ox[:, None] + ar)[:, None, :]
    ] = tiles[digit_index]
    alpha = digit_alpha[:, None]
    img = img * (1 - alpha) + ink_col[:, :, None, None] * alpha
    img = np.clip(img, 0.0, 1.0).astype(np.float32)

    boxes = tile_boxes[digit_index] + np.stack([ox, oy, ox, oy], axis=1).astype(np.float32)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    p1 = np.clip(np.floor(centre - PATCH_SIZE / 2.0 + 0.5), 0, S - PATCH_SIZE)
    patch_boxes = np.concatenate([p1, p1 + PATCH_SIZE], axis=1).astype(np.float32)

    return DigitsClutter(
        images=torch.from_numpy(img),
        labels=torch.from_numpy(targets[digit_index].copy()),
        boxes=torch.from_numpy(boxes),
        patch_boxes=torch.from_numpy(patch_boxes),
        digit_index=torch.from_numpy(digit_index.copy()),
        masks=torch.from_numpy(digit_alpha > 0),
    )
