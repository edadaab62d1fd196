"""Tests of the digits-in-clutter dataset."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from captum_perturbmask.data import (
    DigitsClutter,
    digit_split_indices,
    make_digits_clutter,
    paste_patches,
)


@pytest.fixture(scope="module")
def held_out() -> DigitsClutter:
    return make_digits_clutter("test", seed=0)


def test_shapes_dtypes_ranges(held_out: DigitsClutter) -> None:
    n = len(held_out)
    assert n == len(digit_split_indices("test")) == 540
    assert held_out.images.shape == (n, 3, 64, 64) and held_out.images.dtype == torch.float32
    assert held_out.labels.shape == (n,) and held_out.labels.dtype == torch.int64
    assert held_out.boxes.shape == (n, 4) and held_out.boxes.dtype == torch.float32
    assert held_out.patch_boxes.shape == (n, 4) and held_out.patch_boxes.dtype == torch.float32
    assert held_out.masks.shape == (n, 64, 64) and held_out.masks.dtype == torch.bool
    assert float(held_out.images.min()) >= 0.0 and float(held_out.images.max()) <= 1.0
    assert set(held_out.labels.tolist()) == set(range(10))
    img, label, box = held_out[3]
    assert img.shape == (3, 64, 64) and label.shape == () and box.shape == (4,)
    # One image per held-out digit by default.
    assert sorted(held_out.digit_index.tolist()) == sorted(digit_split_indices("test").tolist())


def test_determinism() -> None:
    a = make_digits_clutter("train", n=50, seed=7)
    b = make_digits_clutter("train", n=50, seed=7)
    c = make_digits_clutter("train", n=50, seed=8)
    for field in ("images", "labels", "boxes", "patch_boxes", "masks", "digit_index"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.boxes, c.boxes)
    # The seed moves placements and clutter, not which digits a split uses.
    assert torch.equal(a.digit_index, c.digit_index)


def test_split_disjoint_and_cycled() -> None:
    train, test = digit_split_indices("train"), digit_split_indices("test")
    assert len(train) == 1257 and len(test) == 540
    assert len(np.intersect1d(train, test)) == 0
    assert len(np.union1d(train, test)) == 1797
    ds = make_digits_clutter("train", n=1300, seed=1)
    assert set(ds.digit_index.tolist()) == set(train.tolist())  # cycles over all train digits
    assert not set(ds.digit_index.tolist()) & set(test.tolist())


def test_boxes_tight_around_ink(held_out: DigitsClutter) -> None:
    m = held_out.masks
    rows, cols = m.any(dim=2), m.any(dim=1)  # (N, 64)
    ar = torch.arange(64)
    y1 = torch.where(rows, ar, 64).min(1).values
    y2 = torch.where(rows, ar, -1).max(1).values + 1
    x1 = torch.where(cols, ar, 64).min(1).values
    x2 = torch.where(cols, ar, -1).max(1).values + 1
    expected = torch.stack([x1, y1, x2, y2], 1).float()
    assert torch.equal(held_out.boxes, expected)
    w = held_out.boxes[:, 2] - held_out.boxes[:, 0]
    h = held_out.boxes[:, 3] - held_out.boxes[:, 1]
    assert bool((w >= 1).all() and (w <= 24).all() and (h >= 1).all() and (h <= 24).all())


def test_ink_is_the_source_digit(held_out: DigitsClutter) -> None:
    """The ink mask inside each box is the upscaled source digit, thresholded (independent)."""
    src = torch.from_numpy(load_digits().images / 16.0).float()
    up = F.interpolate(src[:, None], size=(24, 24), mode="bilinear", align_corners=False)[:, 0]
    for i in range(0, len(held_out), 37):
        ink = up[held_out.digit_index[i]] >= 0.2
        r = torch.nonzero(ink.any(1)).flatten()
        c = torch.nonzero(ink.any(0)).flatten()
        tight = ink[r[0] : r[-1] + 1, c[0] : c[-1] + 1]
        x1, y1, x2, y2 = held_out.boxes[i].long().tolist()
        assert torch.equal(held_out.masks[i, y1:y2, x1:x2], tight)
        assert int(held_out.labels[i]) == int(load_digits().target[held_out.digit_index[i]])


def test_ink_is_visible(held_out: DigitsClutter) -> None:
    """Ink pixels are brighter than the background around them (max over channels)."""
    bright = held_out.images.max(dim=1).values  # (N, 64, 64)
    inside = (bright * held_out.masks).sum((1, 2)) / held_out.masks.sum((1, 2))
    outside = (bright * ~held_out.masks).sum((1, 2)) / (~held_out.masks).sum((1, 2))
    assert bool((inside > outside + 0.1).all())


def test_patch_boxes(held_out: DigitsClutter) -> None:
    pb, b = held_out.patch_boxes, held_out.boxes
    assert torch.equal(pb, pb.round())
    assert bool((pb[:, 2] - pb[:, 0] == 32).all() and (pb[:, 3] - pb[:, 1] == 32).all())
    assert bool((pb[:, :2] >= 0).all() and (pb[:, 2:] <= 64).all())
    assert bool((pb[:, :2] <= b[:, :2]).all() and (pb[:, 2:] >= b[:, 2:]).all())
    # Centred on the box unless clamped by the canvas edge.
    off = ((pb[:, :2] + pb[:, 2:]) / 2 - (b[:, :2] + b[:, 2:]) / 2).abs()
    clamped = (pb[:, :2] == 0) | (pb[:, 2:] == 64)
    assert bool((off[~clamped] <= 0.5).all())
    patches = held_out.patches()
    assert patches.shape == (len(held_out), 3, 32, 32)
    pasted = paste_patches(held_out.images, patches, held_out.patch_boxes)
    assert torch.equal(pasted, held_out.images)
    x1, y1 = int(pb[0, 0]), int(pb[0, 1])
    assert torch.equal(patches[0], held_out.images[0, :, y1 : y1 + 32, x1 : x1 + 32])


def test_paste_patches_bad_shapes(held_out: DigitsClutter) -> None:
    with pytest.raises(ValueError, match="patches"):
        paste_patches(held_out.images[:2], torch.zeros(2, 3, 16, 16), held_out.patch_boxes[:2])
    with pytest.raises(ValueError, match="patch_boxes"):
        paste_patches(held_out.images[:2], torch.zeros(2, 3, 32, 32), held_out.patch_boxes[:3])


def test_bad_args() -> None:
    with pytest.raises(ValueError, match="split"):
        make_digits_clutter("foo")
    with pytest.raises(ValueError, match="split"):
        digit_split_indices("val")
    for n in (0, -3):
        with pytest.raises(ValueError, match="n must"):
            make_digits_clutter("test", n=n)
    with pytest.raises(TypeError, match="n must"):
        make_digits_clutter("test", n=2.5)
    with pytest.raises(TypeError, match="seed"):
        make_digits_clutter("test", n=2, seed="0")


def test_large_request_cycles_through_digits() -> None:
    data = make_digits_clutter("train", n=600, seed=3)
    assert len(data) == 600 and data.images.shape == (600, 3, 64, 64)


def test_images_match_reference_values() -> None:
    """Regression guard: the generator's output is pinned (colours, boxes, clutter)."""
    ds = make_digits_clutter("test", n=4, seed=0)
    x = ds.images.double()
    assert float(x.sum()) == pytest.approx(13915.035256572068, rel=1e-9)
    assert float(x.square().sum()) == pytest.approx(4720.022952813084, rel=1e-9)
    assert ds.labels.tolist() == make_digits_clutter("test", n=4, seed=1).labels.tolist()
