"""Image beds of the benchmark suite beyond ``beds.py``: objects on textures, a vision
transformer on digits-in-clutter and planted evidence with small boxes.

* **objects** (``objects-cnn``, ``objects-resnet``): an object cut from one of six photos that
  ship with scikit-image (the astronaut's face, the coffee cup, Chelsea the cat's face, the
  rocket, the cameraman, the horse silhouette) pasted at a random place and scale (18-30 px)
  on a 64 x 64 crop of a texture (brick, grass, gravel, the moon's surface), tinted at random.
  The class is the object, the box is where it was pasted. Texture crops of the training
  images come from the left 70% of each texture, those of the test images from the right 30%;
  the object is jittered (a random 85-100% sub-crop, a random horizontal flip, brightness).
* **digits-vit**: the 32 x 32 patches around the digits of the shipped digits-in-clutter
  images (clutter included) and a small vision transformer (8 x 8 patches from a linear patch
  embedding, 16 tokens, 4 blocks of width 64, 4 heads, a class token).
  It has no convolution, so Grad-CAM does not apply to it.
* **planted-small** (``planted-96-small``, ``planted-224-small``): the planted-evidence model of
  ``beds.py`` with evidence boxes smaller than one cell of a 6 x 6 mask grid (10 x 10 px at
  96 px, 24 x 24 px at 224 px).

Renderers share the signature of ``beds.py``'s: ``render(split, n, seed) -> (x, y, boxes)``
with ``x`` ``(n, 3, S, S)`` in ``[0, 1]``, ``y`` ``(n,)`` and ``boxes`` ``(n, 4)`` xyxy pixels.
"""

from __future__ import annotations

import math
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
import beds  # noqa: E402

# --------------------------------------------------------------------------------------------
# objects on textures

OBJECT_SIZE = 64
#: name -> (photo, rows, columns) of the cut-out in the scikit-image photo.
OBJECTS = {
    "astronaut": ("astronaut", (20, 200), (130, 290)),
    "coffee": ("coffee", (30, 300), (130, 450)),
    "cat": ("chelsea", (20, 300), (80, 380)),
    "rocket": ("rocket", (60, 400), (330, 530)),
    "cameraman": ("camera", (60, 450), (20, 300)),
    "horse": ("horse", (30, 320), (20, 370)),
}
TEXTURES = ("brick", "grass", "gravel", "moon")


def _as_rgb(im: np.ndarray) -> np.ndarray:
    im = np.asarray(im)
    if im.dtype == bool:
        im = im.astype(np.uint8) * 255
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, -1)
    return np.ascontiguousarray(im[..., :3].astype(np.float32) / 255.0)


@lru_cache(maxsize=1)
def _object_sources() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The object crops ``(h, w, 3)`` and the textures ``(h, w, 3)``, float32 in [0, 1]."""
    try:
        from skimage import data as skdata
    except ImportError as e:
        raise beds.BedUnavailable("the objects beds need scikit-image") from e
    objects = []
    for photo, (r0, r1), (c0, c1) in OBJECTS.values():
        objects.append(_as_rgb(getattr(skdata, photo)())[r0:r1, c0:c1])
    textures = []
    for name in TEXTURES:
        im = _as_rgb(getattr(skdata, name)())
        t = torch.from_numpy(im).permute(2, 0, 1)[None]
        t = F.interpolate(t, scale_factor=0.5, mode="area")  # texture grain at the 64 px scale
        textures.append(np.ascontiguousarray(t[0].permute(1, 2, 0).numpy()))
    return objects, textures


def render_objects(split: str, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` images ``(n, 3, 64, 64)``, object classes ``(n,)`` and boxes ``(n, 4)`` (xyxy)."""
    objects, textures = _object_sources()
    rng = np.random.default_rng(seed)
    s = OBJECT_SIZE
    out = np.empty((n, 3, s, s), np.float32)
    labels = rng.integers(len(objects), size=n)
    boxes = np.empty((n, 4), np.float32)
    for i in range(n):
        tex = textures[int(rng.integers(len(textures)))]
        bg = beds._crop(rng, tex, s, split)
        tint = rng.uniform(0.6, 1.0, size=3).astype(np.float32)
        img = np.clip(bg * tint[:, None, None] + rng.uniform(-0.1, 0.1), 0, 1)
        obj = objects[int(labels[i])]
        h, w = obj.shape[:2]
        frac = rng.uniform(0.85, 1.0)
        ch, cw = int(h * frac), int(w * frac)
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        patch = obj[y0 : y0 + ch, x0 : x0 + cw].transpose(2, 0, 1)
        if rng.random() < 0.5:
            patch = patch[:, :, ::-1]
        side = int(rng.integers(18, 31))
        patch = F.interpolate(torch.from_numpy(patch.copy())[None], size=(side, side),
                              mode="area")[0].numpy()  # fmt: skip
        patch = np.clip(patch * rng.uniform(0.8, 1.2), 0, 1)
        top, left = (int(v) for v in rng.integers(0, s - side + 1, 2))
        img[:, top : top + side, left : left + side] = patch
        out[i] = img
        boxes[i] = [left, top, left + side, top + side]
    return torch.from_numpy(out), torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(boxes)


class ObjectsCNN(nn.Module):
    """A plain strided CNN (no residuals, max-pooled head), 64 x 64 inputs, 6 classes."""

    def __init__(self, num_classes: int = len(OBJECTS)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            beds._down(3, 32, 5), beds._down(32, 64), beds._down(64, 96),
            nn.Conv2d(96, 96, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.fc = nn.Linear(96, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).amax((2, 3)))


class ObjectsResNet(nn.Module):
    """A small residual network (the ``digits-b`` family, narrower), 6 classes."""

    def __init__(self, num_classes: int = len(OBJECTS)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            beds._down(3, 16), beds._Res(16), beds._down(16, 32), beds._Res(32),
            beds._down(32, 64), beds._Res(64),
        )  # fmt: skip
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).mean((2, 3)))


# --------------------------------------------------------------------------------------------
# digits-vit


def render_digits(split: str, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """The shipped digits-in-clutter images ``(n, 3, 64, 64)``, labels and ink boxes."""
    from captum_perturbmask.data import make_digits_clutter

    d = make_digits_clutter(split, n=n, seed=seed)
    return d.images, d.labels, d.boxes


def render_digit_patches(split: str, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """The 32 x 32 patches around the digits of the shipped digits-in-clutter images
    (``DigitsClutter.patches``: clutter included, the digit anywhere inside), ``(n, 3, 32,
    32)``, labels and the ink boxes in patch pixels."""
    from captum_perturbmask.data import make_digits_clutter

    d = make_digits_clutter(split, n=n, seed=seed)
    offset = d.patch_boxes[:, [0, 1, 0, 1]]
    return d.patches(), d.labels, (d.boxes - offset).clamp(0, 32)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A small vision transformer: ``patch x patch`` patches (a linear embedding of the
    unfolded pixels, no convolution), learned positions, a class token, ``depth`` pre-norm
    blocks; 32 x 32 inputs, 10 classes."""

    def __init__(
        self, num_classes: int = 10, size: int = 32, patch: int = 8, dim: int = 64,
        depth: int = 4, heads: int = 4,
    ) -> None:  # fmt: skip
        super().__init__()
        self.patch = patch
        tokens = (size // patch) ** 2
        self.embed = nn.Linear(3 * patch * patch, dim)
        self.pos = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.blocks = nn.Sequential(*[_Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        p = F.unfold(x, self.patch, stride=self.patch).transpose(1, 2)  # (B, tokens, 3 p p)
        z = self.embed(p)
        z = torch.cat([self.cls.expand(len(z), -1, -1), z], 1) + self.pos
        return self.head(self.norm(self.blocks(z))[:, 0])


# --------------------------------------------------------------------------------------------
# planted evidence with small boxes

#: size -> box side (smaller than one cell of a 6 x 6 grid: 16 px at 96, 37 px at 224).
SMALL_SIDE = {96: 10, 224: 24}


@lru_cache(maxsize=4)
def planted_small_model(size: int) -> beds.PlantedMulti:
    """The planted-evidence model with three ``SMALL_SIDE[size]`` px boxes that do not
    overlap and do not line up with a power-of-two grid."""
    side = SMALL_SIDE[size]
    g = torch.Generator().manual_seed(8765 + size)
    boxes: list[tuple[int, int, int, int]] = []
    while len(boxes) < 3:
        t, l = torch.randint(1, size - side - 1, (2,), generator=g).tolist()
        cell = size // 8
        t, l = (t + 1 if t % cell == 0 else t), (l + 1 if l % cell == 0 else l)
        if all(abs(t - bt) > side or abs(l - bl) > side for bt, bl, _, _ in boxes):
            boxes.append((t, l, side, side))
    return beds.PlantedMulti(size, boxes, [2.0, 4.0, 8.0], seed=size + 1).eval()


@lru_cache(maxsize=8)
def planted_model(size: int, small: bool) -> beds.PlantedMulti:
    """The cached model of ``planted-<size>`` (as ``beds.planted`` builds it) or ``-small``."""
    if small:
        return planted_small_model(size)
    return beds.planted(size)(1).model


def render_planted(model: beds.PlantedMulti, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` inputs of a planted model (uniform ``[0, 0.5]`` background, the class's
    pattern as 0/1 inside its box), classes ``0, 1, 2, 0, ...`` and boxes."""
    size = model.patterns.shape[-1]
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.rand(n, 3, size, size, generator=g) * 0.5
    xyxy = torch.empty(n, 4)
    for i in range(n):
        t, l, h, w = model.boxes[int(y[i])]
        x[i, :, t : t + h, l : l + w] = (model.patterns[y[i], :, t : t + h, l : l + w] > 0).float()
        xyxy[i] = torch.tensor([l, t, l + w, t + h], dtype=torch.float32)
    return x, y, xyxy


def planted_mean(model: beds.PlantedMulti) -> Tensor:
    """The exact mean input of a planted model's inputs ``(3, S, S)``: 0.25 outside the
    boxes; inside box k a third of the inputs hold the 0/1 pattern."""
    size = model.patterns.shape[-1]
    mean = torch.zeros(3, size, size)
    for k, (t, l, h, w) in enumerate(model.boxes):
        own = torch.full((3, size, size), 0.25)
        own[:, t : t + h, l : l + w] = (model.patterns[k, :, t : t + h, l : l + w] > 0).float()
        mean += own / 3
    return mean


def box_area_fraction(boxes: Tensor, shape: tuple[int, ...]) -> float:
    """Mean box area over the image area."""
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).mean()
    return float(area) / math.prod(shape)
