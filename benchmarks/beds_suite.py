"""The benchmark suite's beds: 20 models and held-out sets, images and series, five families.

Every bed is a :class:`SuiteBed`; ``bed.load(n)`` gives a :class:`BedData` with the model (eval
mode, CPU, float32, ``(N, K)`` logits), the first ``n`` held-out examples the model classifies
correctly (``targets`` are the true labels, which then equal the predictions), their evidence
boxes (images, xyxy pixels) or spans (series, ``[start, end)``) where they are known, the
training-set mean input (the neutral reference) and the model's accuracy on the whole held-out
split. Models are cached under ``benchmarks/.cache/`` (git-ignored) and trained when missing
(``python benchmarks/train_suite.py``; seeded, one thread, under about two minutes each).

Beds (``python benchmarks/suite.py list`` prints them with their accuracies):

* images, from ``beds.py``: ``digits`` (the shipped classifier), ``digits-b`` (a ResNet-like
  net), ``photos`` (a strided CNN), ``planted-32``, ``planted-96``, ``planted-224`` (planted
  evidence, boxes a quarter of the side);
* images, from ``beds_images.py``: ``planted-96-small``, ``planted-224-small`` (boxes smaller
  than a cell of a 6 x 6 mask grid), ``objects-cnn`` and ``objects-resnet`` (scikit-image
  objects pasted on textures), ``digits-vit`` (a small vision transformer);
* series, from ``beds_series.py`` (UCR/UEA sets bundled with aeon): ``gunpoint-cnn`` (the
  shipped model), ``gunpoint-inception``, ``motif-cnn`` (the shipped planted-motif model,
  spans known), ``italypower-cnn``, ``osuleaf-cnn``, ``acsf1-cnn``, ``japanesevowels-gru``,
  ``basicmotions-gru``, ``arrowhead-inception``.

``FINAL_TEST`` beds are kept out of every design decision: a study selects ``"study"`` (all
other beds) and looks at the final ones once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
import beds  # noqa: E402
import beds_images  # noqa: E402
import beds_series  # noqa: E402

CACHE = beds.CACHE
FINAL_TEST: tuple[str, ...] = (
    "objects-resnet",
    "digits-vit",
    "arrowhead-inception",
    "basicmotions-gru",
)


class BedData(NamedTuple):
    """What :meth:`SuiteBed.load` returns.

    Attributes:
        model: The classifier, eval mode, CPU, float32, ``(N, C, *S) -> (N, K)`` logits.
        inputs: ``(N, C, H, W)`` images or ``(N, C, T)`` series.
        targets: ``(N,)`` int64 true labels (the model predicts them: misclassified held-out
            examples are skipped).
        truth: Evidence boxes ``(N, 4)`` xyxy pixels (images) or spans ``(N, 2)``
            ``[start, end)`` (series); ``None`` where unknown.
        mean: The training-set mean input, shape ``inputs.shape[1:]``.
        accuracy: The model's accuracy on the whole held-out split.
    """

    model: nn.Module
    inputs: Tensor
    targets: Tensor
    truth: Tensor | None
    mean: Tensor
    accuracy: float


@dataclass(frozen=True)
class _Source:
    """How a bed is built: its model (``model()``, trains when missing), its whole held-out
    split (``test() -> (x, y, truth)``) and its training mean (``mean()``)."""

    model: Callable[[], nn.Module]
    test: Callable[[], tuple[Tensor, Tensor, Tensor | None]]
    mean: Callable[[], Tensor]
    trained: bool = True  # False: shipped or analytic, nothing to train


@dataclass(frozen=True)
class SuiteBed:
    """One bed of the suite (see the module docstring).

    Attributes:
        name: Unique name, e.g. ``"objects-resnet"``.
        kind: ``"images"`` or ``"series"``.
        family: The data family, e.g. ``"digits"``, ``"planted"``, ``"ucr"``.
        arch: The model family: ``"cnn"``, ``"resnet"``, ``"vit"``, ``"linear"`` (planted),
            ``"gru"``, ``"inception"``.
        description: One line on the data and the model.
    """

    name: str
    kind: str
    family: str
    arch: str
    description: str
    source: _Source = field(repr=False, compare=False)

    def load(self, n: int) -> BedData:
        """The first ``n`` correctly classified held-out examples (deterministic) and the
        cached model (trained first when missing).

        Raises:
            ValueError: ``n`` is not a positive int.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"`n` must be a positive int, got {n!r}.")
        model = self.source.model().float().eval()
        x, y, truth = self.source.test()
        pred = predict(model, x)
        correct = pred == y
        accuracy = float(correct.float().mean())
        _write_accuracy(self, accuracy, len(y))
        keep = correct.nonzero()[:n, 0]
        t = None if truth is None else truth[keep]
        return BedData(model, x[keep], y[keep], t, self.source.mean().float(), accuracy)

    def is_trained(self) -> bool:
        """Whether the bed's model is available without training."""
        return not self.source.trained or (CACHE / f"{self.name}.pt").exists()


def predict(model: nn.Module, x: Tensor, rows: int = 256) -> Tensor:
    """Argmax predictions ``(N,)`` of ``model`` on ``x``, ``rows`` at a time."""
    with torch.no_grad():
        return torch.cat([model(x[i : i + rows]).argmax(1) for i in range(0, len(x), rows)])


def _write_accuracy(bed: SuiteBed, accuracy: float, n_test: int) -> None:
    path = CACHE / f"suite-{bed.name}.json"
    info = {"bed": bed.name, "test_accuracy": round(accuracy, 4), "n_test": n_test}
    try:
        if path.exists() and json.loads(path.read_text()) == info:
            return
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{id(info)}")
        tmp.write_text(json.dumps(info, indent=1))
        tmp.replace(path)
    except OSError:
        pass


def recorded_accuracy(name: str) -> float | None:
    """The held-out accuracy recorded by the last :meth:`SuiteBed.load` of bed ``name``
    (``None`` when there is none, or the weights are newer than the record)."""
    path = CACHE / f"suite-{name}.json"
    weights = CACHE / f"{name}.pt"
    try:
        if weights.exists() and weights.stat().st_mtime > path.stat().st_mtime:
            return None
        return float(json.loads(path.read_text())["test_accuracy"])
    except (OSError, ValueError, KeyError):
        return None


# --------------------------------------------------------------------------------------------
# image sources

#: name -> (model class, renderer, test seed, held-out images, training-mean seed)
RENDERED = {
    "digits-b": (beds.ResNetB, beds.render_digits_b, 1, 500, 7001),
    "photos": (beds.PhotoNet, beds.render_photos, 2, 500, 7002),
    "objects-cnn": (beds_images.ObjectsCNN, beds_images.render_objects, 3, 500, 7003),
    "objects-resnet": (beds_images.ObjectsResNet, beds_images.render_objects, 3, 500, 7003),
    "digits-vit": (beds_images.TinyViT, beds_images.render_digit_patches, 0, 540, 7004),
}


def _cached_model(name: str, build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    @lru_cache(maxsize=1)
    def load() -> nn.Module:
        path = CACHE / f"{name}.pt"
        if not path.exists():
            import train_suite  # noqa: PLC0415 (beside this file)

            train_suite.train(name)
        model = build()
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()

    return load


def _rendered(name: str) -> _Source:
    cls, render, test_seed, n_test, mean_seed = RENDERED[name]

    @lru_cache(maxsize=1)
    def test() -> tuple[Tensor, Tensor, Tensor]:
        return render("test", n_test, seed=test_seed)

    @lru_cache(maxsize=1)
    def mean() -> Tensor:
        return render("train", 500, seed=mean_seed)[0].mean(0)

    return _Source(_cached_model(name, cls), test, mean)


def _digits() -> _Source:
    from captum_perturbmask.data import load_default_classifier

    @lru_cache(maxsize=1)
    def test() -> tuple[Tensor, Tensor, Tensor]:
        return beds_images.render_digits("test", 540, 0)

    @lru_cache(maxsize=1)
    def mean() -> Tensor:
        return beds_images.render_digits("train", 500, 7000)[0].mean(0)

    return _Source(lru_cache(maxsize=1)(load_default_classifier), test, mean, trained=False)


def _planted(size: int, small: bool) -> _Source:
    n_test = 300 if size < 224 else 150

    @lru_cache(maxsize=1)
    def test() -> tuple[Tensor, Tensor, Tensor]:
        if small:
            return beds_images.render_planted(beds_images.planted_model(size, True), n_test, 99)
        bed = beds.planted(size)(n_test)  # the same examples as beds.py's bed
        return bed.inputs, bed.targets, bed.boxes

    def model() -> nn.Module:
        return beds_images.planted_model(size, small)

    def mean() -> Tensor:
        return beds_images.planted_mean(beds_images.planted_model(size, small))

    return _Source(model, test, mean, trained=False)


# --------------------------------------------------------------------------------------------
# series sources


def _series(set_name: str, arch: str) -> _Source:
    name = f"{set_name}-{arch}"

    def build() -> nn.Module:
        d = beds_series.load_set(set_name)
        return beds_series.ARCHS[arch](d["x_train"].shape[1], beds_series.n_classes(set_name))

    def test() -> tuple[Tensor, Tensor, None]:
        d = beds_series.load_set(set_name)
        return d["x_test"], d["y_test"], None

    def mean() -> Tensor:
        return beds_series.load_set(set_name)["x_train"].mean(0)

    return _Source(_cached_model(name, build), test, mean)


def _gunpoint_shipped(planted: bool) -> _Source:
    from captum_perturbmask.data.models import load_series_classifier
    from captum_perturbmask.data.series import load_gunpoint, make_planted_series

    def model() -> nn.Module:
        return load_series_classifier("planted" if planted else "gunpoint")

    @lru_cache(maxsize=1)
    def test() -> tuple[Tensor, Tensor, Tensor | None]:
        if planted:
            s = make_planted_series("test", 150, seed=0)
            return s.series, s.labels, s.spans
        s = load_gunpoint("test")
        return s.series, s.labels, None

    @lru_cache(maxsize=1)
    def mean() -> Tensor:
        s = make_planted_series("train", seed=0) if planted else load_gunpoint("train")
        return s.series.mean(0)

    return _Source(lru_cache(maxsize=1)(model), test, mean, trained=False)


# --------------------------------------------------------------------------------------------
# the registry


def _beds() -> dict[str, SuiteBed]:
    img, ser = "images", "series"
    rows = [
        SuiteBed("digits", img, "digits", "cnn",
                 "digits in clutter, 64 x 64, the shipped DigitsCNN; ink boxes", _digits()),
        SuiteBed("digits-b", img, "digits", "resnet",
                 "real 8x8 digits re-rendered on gratings, 48 x 48, ResNet-like; ink boxes",
                 _rendered("digits-b")),
        SuiteBed("photos", img, "photos", "cnn",
                 "scikit-image photo insets on photo crops, 96 x 96, strided CNN; inset boxes",
                 _rendered("photos")),
        SuiteBed("planted-32", img, "planted", "linear",
                 "planted evidence, 32 x 32, boxes 8 px; exact evidence", _planted(32, False)),
        SuiteBed("planted-96", img, "planted", "linear",
                 "planted evidence, 96 x 96, boxes 24 px; exact evidence", _planted(96, False)),
        SuiteBed("planted-224", img, "planted", "linear",
                 "planted evidence, 224 x 224, boxes 56 px; exact evidence",
                 _planted(224, False)),
        SuiteBed("planted-96-small", img, "planted", "linear",
                 "planted evidence, 96 x 96, boxes 10 px (under a 6x6-grid cell)",
                 _planted(96, True)),
        SuiteBed("planted-224-small", img, "planted", "linear",
                 "planted evidence, 224 x 224, boxes 24 px (under a 6x6-grid cell)",
                 _planted(224, True)),
        SuiteBed("objects-cnn", img, "objects", "cnn",
                 "scikit-image objects pasted on textures, 64 x 64, strided CNN; object boxes",
                 _rendered("objects-cnn")),
        SuiteBed("objects-resnet", img, "objects", "resnet",
                 "scikit-image objects pasted on textures, 64 x 64, small ResNet; object boxes",
                 _rendered("objects-resnet")),
        SuiteBed("digits-vit", img, "digits", "vit",
                 "digit patches in clutter, 32 x 32, a small ViT (8 px patches); ink boxes",
                 _rendered("digits-vit")),
        SuiteBed("gunpoint-cnn", ser, "ucr", "cnn",
                 "UCR GunPoint, 1 x 150, the shipped SeriesCNN", _gunpoint_shipped(False)),
        SuiteBed("motif-cnn", ser, "planted", "cnn",
                 "GunPoint with planted motifs, 1 x 150, the shipped SeriesCNN; motif spans",
                 _gunpoint_shipped(True)),
        SuiteBed("gunpoint-inception", ser, "ucr", "inception",
                 "UCR GunPoint, 1 x 150, InceptionTime-like", _series("gunpoint", "inception")),
        SuiteBed("italypower-cnn", ser, "ucr", "cnn",
                 "UCR ItalyPowerDemand, 1 x 24, 1-D CNN", _series("italypower", "cnn")),
        SuiteBed("osuleaf-cnn", ser, "ucr", "cnn",
                 "UCR OSULeaf, 1 x 427, 6 classes, 1-D CNN", _series("osuleaf", "cnn")),
        SuiteBed("acsf1-cnn", ser, "ucr", "cnn",
                 "UCR ACSF1, 1 x 1460, 10 classes, 1-D CNN", _series("acsf1", "cnn")),
        SuiteBed("japanesevowels-gru", ser, "uea", "gru",
                 "UEA JapaneseVowels, 12 x 29 (zero-padded), 9 classes, BiGRU",
                 _series("japanesevowels", "gru")),
        SuiteBed("basicmotions-gru", ser, "uea", "gru",
                 "UEA BasicMotions, 6 x 100, 4 classes, BiGRU",
                 _series("basicmotions", "gru")),
        SuiteBed("arrowhead-inception", ser, "ucr", "inception",
                 "UCR ArrowHead, 1 x 251, 3 classes, InceptionTime-like",
                 _series("arrowhead", "inception")),
    ]  # fmt: skip
    return {b.name: b for b in rows}


BEDS: dict[str, SuiteBed] = _beds()


def select(which: str | Sequence[str]) -> list[SuiteBed]:
    """Beds by group or name: ``"study"`` (all but :data:`FINAL_TEST`), ``"final"``,
    ``"all"``, one name, or a sequence of names and groups (in that order, no repeats).

    Raises:
        ValueError: an unknown name.
    """
    items = [which] if isinstance(which, str) else list(which)
    out: list[SuiteBed] = []
    for item in items:
        if item == "all":
            group = list(BEDS.values())
        elif item == "study":
            group = [b for n, b in BEDS.items() if n not in FINAL_TEST]
        elif item == "final":
            group = [BEDS[n] for n in FINAL_TEST]
        elif item in BEDS:
            group = [BEDS[item]]
        else:
            raise ValueError(
                f"unknown bed {item!r}; choose 'study', 'final', 'all' or from {sorted(BEDS)}"
            )
        out += [b for b in group if b not in out]
    return out
