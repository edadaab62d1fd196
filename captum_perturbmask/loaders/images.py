"""Images from files: one file (:func:`load_image`), or every image of files, folders and glob
patterns (:func:`find_images`).

An image is read with Pillow as an RGB ``uint8`` tensor :math:`(3, H, W)`; a file that is not
an image, is truncated, or declares more than
:data:`~captum_perturbmask.loaders.images.MAX_PIXELS` pixels is refused with one
:class:`~captum_perturbmask.loaders.LoadError` (before its pixels are decoded when the header
says it is too large).
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from captum_perturbmask._core.errors import LoadError, one_line

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "find_images", "load_image"]

#: Largest image accepted, in pixels (a 50-megapixel RGB image is 150 MB as bytes; larger
#: ones are refused before their pixels are decoded).
MAX_PIXELS = 50_000_000
#: File name endings :func:`~captum_perturbmask.loaders.find_images` takes from a folder or a
#: pattern (any case).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def load_image(path: str | os.PathLike, argument: str = "image") -> Tensor:
    """Read an image file as an RGB ``uint8`` tensor :math:`(3, H, W)`.

    Args:
        path: A PNG, JPEG or other file Pillow reads (the first frame of an animation).
        argument: The name of the argument in error messages.

    Returns:
        The pixels, :math:`(3, H, W)` ``uint8``.

    Raises:
        LoadError: the file does not exist, is not an image, is corrupt or truncated, or has
            more than :data:`~captum_perturbmask.loaders.images.MAX_PIXELS` pixels.

    Example:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> path = tempfile.mkdtemp() + "/grey.png"
        >>> Image.fromarray(np.full((4, 6), 128, dtype=np.uint8)).save(path)
        >>> load_image(path).shape
        torch.Size([3, 4, 6])
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    file = Path(path)
    if not file.exists():
        raise LoadError(argument, f"{path} does not exist")
    if not file.is_file():
        raise LoadError(argument, f"{path} is not a file")
    limit = f"{MAX_PIXELS / 1e6:g} megapixels"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise LoadError(
                        argument,
                        f"{path} is {width}x{height} ({width * height / 1e6:.0f} megapixels), "
                        f"more than the {limit} accepted; downscale it first",
                    )
                img.load()
                rgb = img if img.mode == "RGB" else img.convert("RGB")
                pixels = TF.pil_to_tensor(rgb)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise LoadError(
            argument, f"{path}: refusing image, more than {limit} ({one_line(err)})"
        ) from None
    except UnidentifiedImageError:
        raise LoadError(
            argument, f"{path}: cannot read image (not a PNG, JPEG or other image)"
        ) from None
    except LoadError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as err:
        raise LoadError(
            argument, f"{path}: cannot read image, corrupt or truncated ({one_line(err)})"
        ) from None
    if pixels.shape[1] == 0 or pixels.shape[2] == 0:
        raise LoadError(argument, f"{path}: cannot read image (it has no pixels)")
    return pixels


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def find_images(sources: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Every image file named by ``sources``, in order, each once.

    A file is taken as it is (whatever its name: it is checked when it is read); a folder
    gives its image files (by name ending,
    :data:`~captum_perturbmask.loaders.images.IMAGE_SUFFIXES`; subfolders too; sorted); a
    glob pattern (``photos/*.jpg``, ``shots/**/*.png``) the image files it matches, sorted.

    Args:
        sources: One path or pattern, or several.

    Returns:
        The paths, in the order of ``sources``.

    Raises:
        LoadError: a source names nothing (no such file or folder, a pattern that matches no
            image, a folder without images).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("b.png", "a.jpg", "notes.txt"):
        ...     (folder / name).touch()
        >>> [p.name for p in find_images(folder)]
        ['a.jpg', 'b.png']
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    found: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            found.append(path)

    for source in sources:
        text = os.fspath(source)
        path = Path(text)
        if path.is_file():
            add(path)
        elif path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and _is_image_name(p))
            if not images:
                raise LoadError(
                    "image",
                    f"{text} is a folder without image files (expected names ending in "
                    f"{', '.join(IMAGE_SUFFIXES[:3])}, ...)",
                )
            for p in images:
                add(p)
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            images = [p for p in matches if p.is_file() and _is_image_name(p)]
            if not images:
                what = f"{len(matches)} paths but no image file" if matches else "nothing"
                raise LoadError("image", f"pattern {text!r} matches {what}")
            for p in images:
                add(p)
        else:
            raise LoadError("image", f"{text} does not exist")
    return found
