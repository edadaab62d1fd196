"""Datasets from files, as :func:`~captum_perturbmask.evaluation.evaluate` takes them (items
``(input, target)`` or ``(input, target, box)``): arrays in an ``.npz`` file
(:class:`NpzDataset`) and a folder of class subfolders of images (:class:`ImageFolderDataset`).

Every check happens when the dataset is built, except the decoding of an image, which fails
for that item alone (with a :class:`~captum_perturbmask.loaders.LoadError`, so that an
evaluation with ``on_error="skip"`` records it and goes on).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from captum_perturbmask._core.errors import LoadError, one_line
from captum_perturbmask.loaders.images import IMAGE_SUFFIXES, load_image

__all__ = ["ImageFolderDataset", "NpzDataset"]


def _array_kind(array: Any) -> str:
    return f"{array.dtype} array of shape {tuple(array.shape)}"


class NpzDataset:
    r"""The items of an ``.npz`` file: ``inputs`` and optional ``targets`` and ``boxes``.

    ``inputs`` are images :math:`(N, C, H, W)` or series :math:`(N, C, T)` of real numbers
    (``uint8`` images are scaled to :math:`[0, 1]`; other integer types are converted as they
    are); ``targets`` :math:`(N,)` non-negative integer classes; ``boxes`` :math:`(N, 4)`
    ``x1, y1, x2, y2`` for images or spans :math:`(N, 2)` ``start, end`` for series. A
    map-style dataset (``len`` and indexing).

    Args:
        path: The ``.npz`` file (read with ``allow_pickle=False``).
        argument: The name of the argument in error messages.

    Raises:
        LoadError: the file cannot be read, or an array is missing, of the wrong type or shape,
            empty, or holds NaN or infinite values.

    Example:
        >>> import tempfile, numpy as np
        >>> path = tempfile.mkdtemp() + "/series.npz"
        >>> np.savez(path, inputs=np.zeros((3, 1, 8), np.float32), targets=np.array([0, 1, 0]))
        >>> data = NpzDataset(path)
        >>> len(data), data[1][0].shape, data[1][1]
        (3, torch.Size([1, 8]), 1)
    """

    def __init__(self, path: str | os.PathLike, argument: str = "data") -> None:
        import numpy as np

        self.path = str(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if not hasattr(data, "files"):
                    raise LoadError(
                        argument, f"{path} holds one array, not named arrays (np.savez)"
                    )
                arrays = {k: data[k] for k in data.files}
        except LoadError:
            raise
        except Exception as err:  # noqa: BLE001 - garbage, pickles, damaged zips: one line
            raise LoadError(
                argument, f"{path}: cannot read it as an .npz file of arrays ({one_line(err)})"
            ) from None
        where = f"{path}:"
        if "inputs" not in arrays:
            raise LoadError(
                argument,
                f"{where} no array 'inputs' (N, C, H, W) or (N, C, T) (optionally 'targets' "
                f"(N,) and 'boxes' (N, 4) / spans (N, 2)); it holds {sorted(arrays) or 'nothing'}",
            )
        raw = arrays["inputs"]
        if raw.dtype.kind not in "fiu":
            raise LoadError(
                argument, f"{where} 'inputs' must hold real numbers, got a {_array_kind(raw)}"
            )
        if raw.ndim not in (3, 4) or 0 in raw.shape:
            raise LoadError(
                argument,
                f"{where} 'inputs' must be images (N, C, H, W) or series (N, C, T) with no empty "
                f"dimension, got a {_array_kind(raw)}",
            )
        inputs = torch.from_numpy(np.ascontiguousarray(raw)).float()
        if raw.dtype == np.uint8:
            inputs = inputs / 255
        bad = int((~torch.isfinite(inputs)).sum())
        if bad:
            raise LoadError(
                argument,
                f"{where} 'inputs' hold {bad} NaN or infinite values (of {inputs.numel()}); "
                "every value must be finite",
            )
        self.inputs = inputs
        n = inputs.shape[0]
        self.targets: Tensor | None = None
        if "targets" in arrays:
            t = arrays["targets"]
            integral = t.dtype.kind in "iu" or (
                t.dtype.kind == "f"
                and bool(np.isfinite(t).all())
                and bool((t == np.round(t)).all())
            )
            if not integral or t.size != n or t.ndim > 2:
                raise LoadError(
                    argument,
                    f"{where} 'targets' must be {n} integer classes (N,), got a {_array_kind(t)}",
                )
            targets = torch.from_numpy(np.ascontiguousarray(t).reshape(-1).astype(np.int64))
            if bool((targets < 0).any()):
                raise LoadError(
                    argument, f"{where} 'targets' must be >= 0, got {int(targets.min())}"
                )
            self.targets = targets
        self.boxes: Tensor | None = None
        if "boxes" in arrays:
            b = arrays["boxes"]
            width = 4 if inputs.dim() == 4 else 2
            what = "boxes (N, 4)" if width == 4 else "spans (N, 2)"
            if b.dtype.kind not in "fiu" or b.shape != (n, width) or not bool(np.isfinite(b).all()):
                raise LoadError(
                    argument,
                    f"{where} 'boxes' must be finite {what} with N = {n}, got a {_array_kind(b)}",
                )
            from captum_perturbmask._core.checks import check_regions

            boxes = torch.from_numpy(np.ascontiguousarray(b)).double()
            try:
                self.boxes = check_regions(boxes, "boxes", width // 2, tuple(inputs.shape[2:]))
            except (TypeError, ValueError) as err:
                raise LoadError(argument, f"{where} {one_line(err, 200)}") from None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        target = None if self.targets is None else int(self.targets[i])
        if self.boxes is None:
            return self.inputs[i], target
        return self.inputs[i], target, self.boxes[i]


class ImageFolderDataset:
    r"""A folder of class subfolders of images (torchvision's ``ImageFolder`` layout), each
    image resized to ``size`` on its shorter side and centre-cropped to ``size x size``, in
    :math:`[0, 1]`.

    Items are ``(image (3, size, size), class index)``; classes are the subfolder names,
    sorted. An image that cannot be read raises :class:`~captum_perturbmask.loaders.LoadError`
    for its item only.

    Args:
        path: The folder.
        size: Side of the square images.
        argument: The name of the argument in error messages.

    Attributes:
        classes: The class names (subfolders), in index order.
        samples: ``(path, class index)`` of every image.

    Raises:
        LoadError: the folder does not exist, has no class subfolder or no image.
    """

    def __init__(self, path: str | os.PathLike, size: int, argument: str = "data") -> None:
        root = Path(path)
        if not root.is_dir():
            raise LoadError(argument, f"{path} is not a folder")
        self.classes = sorted(
            p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if not self.classes:
            raise LoadError(
                argument,
                f"{path} has no class subfolders; expected {path}/CLASS/IMAGE.png (torchvision "
                "ImageFolder layout)",
            )
        self.samples: list[tuple[str, int]] = []
        for index, name in enumerate(self.classes):
            for file in sorted((root / name).rglob("*")):
                if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                    self.samples.append((str(file), index))
        if not self.samples:
            raise LoadError(
                argument,
                f"{path}: its class subfolders hold no image files "
                f"({', '.join(IMAGE_SUFFIXES[:3])}, ...)",
            )
        self.size = size
        self.argument = argument

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        from torchvision.transforms.v2 import functional as TF

        file, target = self.samples[i]
        image = load_image(file, self.argument)
        image = TF.center_crop(
            TF.resize(image, [self.size], antialias=True), [self.size, self.size]
        )
        return TF.to_dtype(image, torch.float32, scale=True), target
