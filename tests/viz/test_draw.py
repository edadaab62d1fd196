"""The drawing primitives, ``captum_perturbmask.viz._draw``: the PNG export, the class labels."""

from __future__ import annotations

import io

import pytest
import torch
from matplotlib.figure import Figure

from captum_perturbmask import viz
from captum_perturbmask.viz._draw import class_label, map_np


def test_png_bytes_is_rgb() -> None:
    from PIL import Image

    fig = Figure(figsize=(8, 3.2))
    fig.subplots().plot([0, 1], [1, 0])
    data = viz.png_bytes(fig, dpi=40)
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "RGB" and img.size == (320, 128)


def test_class_label() -> None:
    assert class_label(None, ["a"]) == ""
    assert class_label(2, None) == "class 2"
    assert class_label(1, ["a", "b"]) == "class 1 (b)"
    with pytest.raises(ValueError, match="class 2 has no name: `class_names` holds 2"):
        class_label(2, ["a", "b"])


def test_map_np_sums_channels_and_names_the_argument() -> None:
    attr = torch.arange(12.0).reshape(2, 2, 3)
    assert map_np(attr, "m").tolist() == attr.sum(0).tolist()
    assert map_np(attr[0, 0], "m", ndim=1).tolist() == [0.0, 1.0, 2.0]
    assert map_np(attr[0], "m", ndim=1).tolist() == [3.0, 5.0, 7.0]
    with pytest.raises(ValueError, match=r"`m` must be a map \(T,\) or \(C, T\)"):
        map_np(attr, "m", ndim=1)
    with pytest.raises(ValueError, match=r"`m` must be a map \(H, W\) or \(C, H, W\)"):
        map_np(attr[0, 0], "m")
    with pytest.raises(TypeError, match="`m` must hold real numbers"):
        map_np(attr.bool(), "m")
    with pytest.raises(TypeError, match="`m` must be a torch.Tensor"):
        map_np([[1.0]], "m")
