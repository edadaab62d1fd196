"""Evaluation beds: models and data the attribution methods are judged on (offline, CPU-sized).

HELD-OUT BED: ``photos``. It was decided before any design experiment ran that ``photos`` stays
out of all tuning: no design, knob or default was chosen by looking at attributions on it. Its
classifier was trained (and its accuracy checked) before the design study; the study tuned on
``digits``, ``digits-b`` and ``planted-32/96/224`` only, and ``photos`` is reported last, once,
as the held-out check. ``photos`` differs from every tuning bed in three ways at once: real
photographic statistics, a 96 x 96 input and a classifier of another family.

Every bed is a callable ``bed(n_images) -> Bed(model, inputs, targets, boxes, name)``:

* ``digits``: the shipped digits-in-clutter CNN on the held-out split (the bed the earlier
  defaults were tuned on), ink boxes.
* ``digits-b``: scikit-learn's real 8 x 8 digits rendered differently (48 x 48 canvas, dark ink
  on a light grating background, bicubic scaling to 14-26 px, distractor strokes) and a small
  residual network with strided convolutions trained by ``train_beds.py``; ink boxes.
* ``planted-32``, ``planted-96``, ``planted-224``: planted-evidence models (class-k logit =
  strength_k x the correlation of the input with a fixed +-1 pattern inside box k; boxes a
  quarter of the side, at places that do not line up with any mask grid; strengths 2, 4, 8).
* ``photos``: 96 x 96 crops of scikit-image's bundled photos with an inset cut from one of five
  other photos; the class is the photo the inset comes from, the box is the inset. A small
  strided CNN trained by ``train_beds.py``.
* ``series``: the shipped GunPoint models, once ``captum_perturbmask.data.series`` exists
  (raises ``BedUnavailable`` until then; :func:`available` skips it).

Bed models are trained by ``python benchmarks/train_beds.py`` (seeded, about 1-3 minutes each on
one core); the weights are cached under ``benchmarks/.cache/`` (git-ignored) and retrained when
missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

CACHE = Path(__file__).parent / ".cache"
HELD_OUT = "photos"


class Bed(NamedTuple):
    model: nn.Module
    inputs: Tensor
    targets: Tensor
    boxes: Tensor | None
    name: str


class BedUnavailable(RuntimeError):
    """A bed whose model or data is not available in this checkout."""


# --------------------------------------------------------------------------------------------
# digits (shipped)


def digits(n: int = 100) -> Bed:
    from captum_perturbmask.data import load_default_classifier, make_digits_clutter

    data = make_digits_clutter("test", n=n, seed=0)
    return Bed(load_default_classifier().eval(), data.images, data.labels, data.boxes, "digits")


# --------------------------------------------------------------------------------------------
# digits-b: another rendering, another architecture

DIGITS_B_SIZE = 48


def render_digits_b(split: str, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` images ``(n, 3, 48, 48)``, labels ``(n,)`` and ink boxes ``(n, 4)`` (xyxy)."""
    from captum_perturbmask.data.digits import _load_digits, digit_split_indices

    images, labels = _load_digits()
    idx = digit_split_indices(split)
    rng = np.random.default_rng(seed)
    s = DIGITS_B_SIZE
    order = idx[np.arange(n) % len(idx)]
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    out = np.empty((n, 3, s, s), np.float32)
    boxes = np.empty((n, 4), np.float32)
    for i, d in enumerate(order):
        # light background: an oriented grating plus low-frequency shading and noise
        theta, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.6)
        phase = rng.uniform(0, 2 * np.pi)
        grating = np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)
        base = rng.uniform(0.6, 0.85, size=3).astype(np.float32)
        bg = base[:, None, None] + 0.08 * grating[None] + 0.03 * rng.standard_normal((3, s, s))
        # distractor strokes: short dark line segments, independent of the label
        for _ in range(rng.integers(1, 4)):
            x0, y0 = rng.uniform(0, s, 2)
            ang, length = rng.uniform(0, np.pi), rng.uniform(6, 14)
            t = np.clip(((xx - x0) * np.cos(ang) + (yy - y0) * np.sin(ang)) / length, 0.0, 1.0)
            dist = np.hypot(xx - x0 - t * length * np.cos(ang), yy - y0 - t * length * np.sin(ang))
            a = np.clip(1.2 - dist, 0.0, 1.0) * rng.uniform(0.3, 0.6)
            bg = bg * (1 - a[None]) + 0.25 * a[None]
        # the digit: bicubic to a random size, dark ink of a random tint
        size = int(rng.integers(14, 27))
        tile = F.interpolate(
            torch.from_numpy(images[d])[None, None], size=(size, size), mode="bicubic",
            align_corners=False,
        )[0, 0].clamp(0, 1).numpy()  # fmt: skip
        alpha = np.clip((tile - 0.15) * 1.6, 0.0, 1.0)
        top, left = rng.integers(0, s - size + 1, 2)
        full = np.zeros((s, s), np.float32)
        full[top : top + size, left : left + size] = alpha
        ink = rng.uniform(0.0, 0.3, size=3).astype(np.float32)
        img = bg * (1 - full[None]) + ink[:, None, None] * full[None]
        out[i] = np.clip(img, 0, 1)
        rows, cols = np.where(full > 0.2)
        boxes[i] = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    return torch.from_numpy(out), torch.from_numpy(labels[order].copy()), torch.from_numpy(boxes)


class _Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.body(x))


def _down(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=2, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(),
    )  # fmt: skip


class ResNetB(nn.Module):
    """A small residual net with strided convolutions, 48 x 48 inputs, 10 classes."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _down(3, 24), _Res(24), _down(24, 48), _Res(48), _down(48, 96), _Res(96)
        )
        self.fc = nn.Linear(96, num_classes)

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.features[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def _load_or_train(name: str) -> nn.Module:
    path = CACHE / f"{name}.pt"
    if not path.exists():
        import train_beds  # noqa: PLC0415 (beside this file)

        train_beds.train(name)
    model = {"digits-b": ResNetB, "photos": PhotoNet}[name]()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def digits_b(n: int = 100) -> Bed:
    x, y, boxes = render_digits_b("test", n, seed=1)
    return Bed(_load_or_train("digits-b"), x, y, boxes, "digits-b")


# --------------------------------------------------------------------------------------------
# planted-evidence models at other sizes


class _Evidence(nn.Module):
    """``(B, K, H, W)``: channel k = ``sum_c (x - 0.5) * pattern_k`` (the Grad-CAM layer)."""

    def __init__(self, patterns: Tensor) -> None:
        super().__init__()
        self.register_buffer("patterns", patterns)

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("bchw,kchw->bkhw", x - 0.5, self.patterns)


class PlantedMulti(nn.Module):
    """Class-k logit = ``strength[k] * 2 / (3 h w) * sum((x - 0.5) * pattern_k)`` over box k;
    a last class has logit 0. Linear in the input: the evidence of class k is exactly box k."""

    def __init__(self, size: int, boxes: list[tuple[int, int, int, int]], strengths, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        pats = torch.zeros(len(boxes), 3, size, size)
        scale = []
        for k, (t, l, h, w) in enumerate(boxes):
            pats[k, :, t : t + h, l : l + w] = torch.randint(0, 2, (3, h, w), generator=g) * 2.0 - 1
            scale.append(2.0 * strengths[k] / (3 * h * w))
        self.register_buffer("patterns", pats)
        self.register_buffer("scale", torch.tensor(scale))
        self.boxes = boxes
        self.evidence = _Evidence(pats)

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.evidence

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():  # through the layer, so Grad-CAM can hook it
            ev = self.evidence(x).sum((2, 3)) * self.scale
        else:  # the same number without the (B, K, H, W) intermediate
            ev = torch.einsum("bchw,kchw->bk", x - 0.5, self.patterns) * self.scale
        return torch.cat([ev, torch.zeros_like(ev[:, :1])], 1)


def planted(size: int) -> Callable[[int], Bed]:
    def bed(n: int = 60) -> Bed:
        g = torch.Generator().manual_seed(4321 + size)
        side = size // 4
        boxes = []
        for _ in range(3):
            t, l = torch.randint(1, size - side - 1, (2,), generator=g).tolist()
            # off any power-of-two grid: nudge away from multiples of size / 8
            cell = size // 8
            t, l = (t + 1 if t % cell == 0 else t), (l + 1 if l % cell == 0 else l)
            boxes.append((t, l, side, side))
        model = PlantedMulti(size, boxes, [2.0, 4.0, 8.0], seed=size).eval()
        y = torch.arange(n) % 3
        x = torch.rand(n, 3, size, size, generator=g) * 0.5
        xyxy = torch.empty(n, 4)
        for i in range(n):
            t, l, h, w = boxes[int(y[i])]
            x[i, :, t : t + h, l : l + w] = (
                model.patterns[y[i], :, t : t + h, l : l + w] > 0
            ).float()
            xyxy[i] = torch.tensor([l, t, l + w, t + h], dtype=torch.float32)
        return Bed(model, x, y, xyxy, f"planted-{size}")

    return bed


# --------------------------------------------------------------------------------------------
# photos (HELD OUT): real photographic statistics

PHOTO_SIZE = 96
#: Photos the inset (the evidence) is cut from: the class is the index in this list.
INSET_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
#: Photos the background is cut from (never a class).
BACKGROUND_PHOTOS = (
    "hubble_deep_field", "retina", "camera", "coins", "brick", "grass", "gravel", "moon",
    "clock", "page", "text", "colorwheel",
)  # fmt: skip


@lru_cache(maxsize=1)
def _photos() -> dict[str, np.ndarray]:
    try:
        from skimage import data as skdata
    except ImportError as e:  # benchmark-only dependency (pyproject's `dev` extra)
        raise BedUnavailable("the photos bed needs scikit-image (pip install scikit-image)") from e
    out = {}
    for name in INSET_PHOTOS + BACKGROUND_PHOTOS:
        im = np.asarray(getattr(skdata, name)())
        if im.dtype == bool:
            im = im.astype(np.uint8) * 255
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, -1)
        im = im[..., :3].astype(np.float32) / 255.0
        # at most 512 px on the long side, so crops hold structure at the 96 px scale
        scale = 512 / max(im.shape[:2])
        if scale < 1:
            t = torch.from_numpy(im).permute(2, 0, 1)[None]
            t = F.interpolate(t, scale_factor=scale, mode="area")
            im = t[0].permute(1, 2, 0).numpy()
        out[name] = np.ascontiguousarray(im)
    return out


def _crop(rng: np.random.Generator, im: np.ndarray, side: int, split: str) -> np.ndarray:
    """A random ``side`` crop, ``(3, side, side)``: train from the left 70% of the photo's
    columns, test from the right 30% (crops of the two splits never overlap)."""
    h, w = im.shape[:2]
    cut = int(0.7 * w)
    lo, hi = (0, cut - side) if split == "train" else (cut, w - side)
    if hi < lo:  # narrow photo: fall back to the whole width
        lo, hi = 0, w - side
    x0 = int(rng.integers(lo, hi + 1))
    y0 = int(rng.integers(0, h - side + 1))
    return im[y0 : y0 + side, x0 : x0 + side].transpose(2, 0, 1)


def render_photos(split: str, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` images ``(n, 3, 96, 96)``, classes ``(n,)`` and inset boxes ``(n, 4)`` (xyxy)."""
    photos = _photos()
    rng = np.random.default_rng(seed)
    s = PHOTO_SIZE
    out = np.empty((n, 3, s, s), np.float32)
    labels = np.empty(n, np.int64)
    boxes = np.empty((n, 4), np.float32)
    for i in range(n):
        bg = photos[BACKGROUND_PHOTOS[rng.integers(len(BACKGROUND_PHOTOS))]]
        img = _crop(rng, bg, s, split).copy()
        k = int(rng.integers(len(INSET_PHOTOS)))
        side = int(rng.integers(24, 41))
        src = photos[INSET_PHOTOS[k]]
        big = int(side * rng.uniform(1.0, 1.6))  # a little scale jitter
        patch = _crop(rng, src, min(big, min(src.shape[:2])), split)
        patch = F.interpolate(torch.from_numpy(patch.copy())[None], size=(side, side),
                              mode="area")[0].numpy()  # fmt: skip
        top, left = rng.integers(0, s - side + 1, 2)
        img[:, top : top + side, left : left + side] = patch
        out[i], labels[i] = img, k
        boxes[i] = [left, top, left + side, top + side]
    return torch.from_numpy(out), torch.from_numpy(labels), torch.from_numpy(boxes)


class PhotoNet(nn.Module):
    """A plain strided CNN (5x5 stem, no residuals), 96 x 96 inputs, 5 classes."""

    def __init__(self, num_classes: int = len(INSET_PHOTOS)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _down(3, 24, 5), _down(24, 48), _down(48, 64), _down(64, 96),
            nn.Conv2d(96, 96, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.fc = nn.Linear(96, num_classes)

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.features[-2]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).amax((2, 3)))


def photos(n: int = 100) -> Bed:
    x, y, boxes = render_photos("test", n, seed=2)
    return Bed(_load_or_train("photos"), x, y, boxes, "photos")


# --------------------------------------------------------------------------------------------
# series (hook)


def series(n: int = 100) -> Bed:
    """GunPoint models shipped by ``captum_perturbmask.data.series`` (when it exists)."""
    try:
        from captum_perturbmask.data import series as s  # type: ignore[attr-defined]
    except ImportError as e:
        raise BedUnavailable("captum_perturbmask.data.series is not in this checkout") from e
    # expected: s.load_gunpoint("test") -> (x (N, 1, T), y (N,)) and s.load_default_series_model()
    x, y = s.load_gunpoint("test")[:2]
    return Bed(s.load_default_series_model().eval(), x[:n], y[:n], None, "series")


# --------------------------------------------------------------------------------------------

BEDS: dict[str, Callable[[int], Bed]] = {
    "digits": digits,
    "digits-b": digits_b,
    "planted-32": planted(32),
    "planted-64": planted(64),
    "planted-96": planted(96),
    "planted-224": planted(224),
    "photos": photos,
    "series": series,
}
#: Beds the design study tuned on (the held-out bed comes last, separately).
TUNING = ("digits", "digits-b", "planted-32", "planted-96", "planted-224")


def get(name: str, n: int) -> Bed:
    if name not in BEDS:
        raise ValueError(f"unknown bed {name!r}; choose from {sorted(BEDS)}")
    return BEDS[name](n)


def available() -> list[str]:
    """Names of the beds that can be built here (``series`` only once its module exists)."""
    out = []
    for name in BEDS:
        if name == "series":
            try:
                import captum_perturbmask.data.series  # noqa: F401
            except ImportError:
                continue
        out.append(name)
    return out


def box_quantile(bed: Bed) -> float:
    """Saliency quantile whose top area equals the bed's mean box area (for box IoU)."""
    b = bed.boxes
    area = float(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).mean())
    return 1 - area / math.prod(bed.inputs.shape[2:])
