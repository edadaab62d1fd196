"""Image files, folders and glob patterns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captum_perturbmask.loaders import LoadError, find_images, load_image


def _png(path: Path, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).convert(mode).save(path)
    return path


def test_load_image_any_mode(tmp_path: Path) -> None:
    for mode in ("RGB", "L", "RGBA", "P"):
        image = load_image(_png(tmp_path / f"{mode}.png", mode))
        assert image.shape == (3, 5, 7) and str(image.dtype) == "torch.uint8"


def test_find_images_files_folders_globs(tmp_path: Path) -> None:
    a, b = _png(tmp_path / "x" / "a.png"), _png(tmp_path / "x" / "sub" / "b.JPG")
    (tmp_path / "x" / "notes.txt").write_text("not an image")
    assert find_images(tmp_path / "x") == [a, b]  # subfolders too, by name ending
    assert find_images(str(tmp_path / "x" / "*.png")) == [a]
    assert find_images(str(tmp_path / "x" / "**" / "*.*")) == [a, b]
    assert find_images([str(b), str(tmp_path / "x")]) == [b, a]  # each once, in order
    for source, words in [
        (tmp_path / "nowhere", "does not exist"),
        (str(tmp_path / "*.gif"), "matches nothing"),
        (str(tmp_path / "x" / "*.txt"), "1 paths but no image file"),
    ]:
        with pytest.raises(LoadError, match=words):
            find_images(source)


def test_unreadable_images(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(LoadError, match=r"cannot read image \(not a PNG"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(LoadError, match="is not a file"):
        load_image(tmp_path)
