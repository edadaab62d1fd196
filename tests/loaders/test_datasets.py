"""``.npz`` arrays and image folders as evaluation datasets: checked when built."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from captum_perturbmask.loaders import ImageFolderDataset, LoadError, NpzDataset


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_items(tmp_path: Path) -> None:
    images = np.full((2, 3, 4, 4), 255, np.uint8)
    data = NpzDataset(_npz(tmp_path / "a.npz", inputs=images, targets=np.array([1.0, 0.0]),
                           boxes=np.tile([[0.0, 0.0, 2.0, 2.0]], (2, 1))))  # fmt: skip
    x, target, box = data[0]
    assert float(x.max()) == 1.0 and target == 1 and box.shape == (4,)  # uint8 scaled to [0, 1]


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"x": np.zeros((2, 3, 4))}, "no array 'inputs'"),
        ({"inputs": np.zeros(5)}, "float64 array of shape (5,)"),
        ({"inputs": np.zeros((1, 1, 1, 1, 1))}, "(1, 1, 1, 1, 1)"),
        ({"inputs": np.zeros((0, 3, 4))}, "no empty dimension"),
        ({"inputs": np.zeros((2, 3, 4), bool)}, "must hold real numbers"),
        ({"inputs": np.full((2, 3, 4), np.nan)}, "24 NaN or infinite values"),
        ({"inputs": np.zeros((2, 3, 4)), "targets": np.array([0.5, 1])}, "integer classes"),
        ({"inputs": np.zeros((2, 3, 4)), "targets": np.array([0, -1])}, "must be >= 0"),
        ({"inputs": np.zeros((2, 3, 4)), "boxes": np.zeros((2, 4))}, "spans (N, 2)"),
    ],
)
def test_npz_refused_at_once(tmp_path: Path, arrays: dict, words: str) -> None:
    with pytest.raises(LoadError) as info:
        NpzDataset(_npz(tmp_path / "a.npz", **arrays))
    assert words in str(info.value) and info.value.argument == "data"


def test_npz_garbage_and_pickles(tmp_path: Path) -> None:
    (tmp_path / "g.npz").write_bytes(b"garbage bytes")
    with pytest.raises(LoadError, match="cannot read it as an .npz file"):
        NpzDataset(tmp_path / "g.npz")
    np.savez(tmp_path / "o.npz", inputs=np.array([{"a": 1}], dtype=object))
    with pytest.raises(LoadError, match="cannot read it as an .npz file"):
        NpzDataset(tmp_path / "o.npz")


def test_image_folder_fails_per_item(tmp_path: Path) -> None:
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(tmp_path / cls / "1.png")
    (tmp_path / "cat" / "0.png").write_bytes(b"unreadable")
    data = ImageFolderDataset(tmp_path, 4)
    assert data.classes == ["cat", "dog"] and len(data) == 3
    with pytest.raises(LoadError, match="0.png: cannot read image"):
        data[0]
    x, target = data[2]
    assert x.shape == (3, 4, 4) and x.dtype == torch.float32 and target == 1
    with pytest.raises(LoadError, match="no class subfolders"):
        ImageFolderDataset(tmp_path / "cat", 4)
