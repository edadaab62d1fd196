"""Real recorded time series, offline: UCR GunPoint and a planted-motif variant of it.

**GunPoint** (Ratanamahatana & Keogh, 2005; UCR archive, Dau et al., *The UCR Time Series
Archive*, 2019) holds the x-coordinate of an actor's right hand, tracked in video,
while the actor either draws a replica gun from a hip holster and points it at a target
(``"Gun"``, label 0 here, ``1`` in the archive) or points with the index finger (``"Point"``,
label 1 here, ``2`` in the archive): univariate, length 150, 50 training and 150 test series.
The series are read from the copy that ships inside the ``aeon`` wheel
(``aeon/datasets/data/GunPoint/GunPoint_{TRAIN,TEST}.ts``) with aeon's own ``.ts`` reader; nothing
is ever downloaded. ``aeon`` is an optional dependency
(``pip install 'captum-perturbmask[timeseries]'``), imported only when a loader runs.

**Planted motifs** (:func:`~captum_perturbmask.data.make_planted_series`) put a known evidence
span into real series: a class-specific motif is added to real GunPoint series whose own label
is ignored, so the label is decided by the motif alone and the evidence is exactly where it was
placed.

Spans are ``(start, end)`` with ``end`` exclusive: the single step ``t`` has the span
``(t, t + 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import torch

from captum_perturbmask._core.checks import check_choice, check_int

__all__ = [
    "GUNPOINT_1NN_DTW_ACCURACY",
    "GUNPOINT_CLASSES",
    "MOTIF_LENGTHS",
    "PLANTED_CLASSES",
    "SERIES_LENGTH",
    "SeriesSet",
    "load_gunpoint",
    "make_planted_series",
    "motif",
]

SERIES_LENGTH: int = 150
"""Number of time steps of every GunPoint series."""
GUNPOINT_CLASSES: tuple[str, str] = ("Gun", "Point")
"""Class names of GunPoint labels 0 and 1 (archive labels ``1`` and ``2``)."""
GUNPOINT_1NN_DTW_ACCURACY: float = 0.907
"""The published test accuracy of 1-nearest-neighbour DTW with a full window on GunPoint, the
archive's reference classifier (error 0.093; Dau et al., *The UCR Time Series Archive*, 2019)."""
PLANTED_CLASSES: tuple[str, str] = ("square pulse", "sine burst")
"""Class names of the planted-motif labels 0 and 1."""
MOTIF_LENGTHS: tuple[int, int] = (16, 24)
"""Smallest and largest motif length in steps (both included)."""

_AMPLITUDE = (1.0, 1.5)
_SINE_PERIODS = 3
_INSTALL_HINT = "pip install 'captum-perturbmask[timeseries]'"


@dataclass
class SeriesSet:
    """A set of univariate series with labels (see :func:`load_gunpoint`,
    :func:`~captum_perturbmask.data.make_planted_series`).

    Attributes:
        series: The series, shape :math:`(N, 1, T)`, float32.
        labels: Classes 0 or 1, shape :math:`(N,)`, int64.
        index: Index of each series' source series in its GunPoint split, shape :math:`(N,)`,
            int64.
        spans: Evidence spans ``(start, end)`` with exclusive ``end``, shape :math:`(N, 2)`,
            int64; ``None`` for sets without a known evidence span (plain GunPoint).
    """

    series: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    spans: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(series, label)`` of item ``i``: shapes :math:`(1, T)` and ()."""
        return self.series[i], self.labels[i]

    def span_masks(self) -> torch.Tensor:
        """The evidence spans as boolean masks.

        Returns:
            ``True`` inside each span, shape :math:`(N, T)`, bool.

        Raises:
            ValueError: If the set has no spans.

        Example:
            >>> ds = make_planted_series("test", n=3, seed=0)
            >>> m = ds.span_masks()
            >>> m.shape, bool((m.sum(1) == ds.spans[:, 1] - ds.spans[:, 0]).all())
            (torch.Size([3, 150]), True)
        """
        if self.spans is None:
            raise ValueError("this SeriesSet has no evidence spans (spans is None)")
        t = torch.arange(self.series.shape[-1])
        return (t >= self.spans[:, :1]) & (t < self.spans[:, 1:])


def _aeon_ts_reader() -> Any:
    """aeon's ``.ts`` reader, or an ImportError saying how to install the extra."""
    try:
        from aeon.datasets import load_from_ts_file
    except ImportError as exc:
        raise ImportError(
            f"The GunPoint loaders read the copy bundled with aeon; install it with {_INSTALL_HINT}"
        ) from exc
    return load_from_ts_file


@lru_cache(maxsize=2)
def _read_gunpoint(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The bundled GunPoint split: series ``(N, 150)`` float64 as stored, labels 0/1."""
    reader = _aeon_ts_reader()
    name = f"GunPoint_{split.upper()}.ts"
    res = resources.files("aeon.datasets").joinpath("data", "GunPoint", name)
    if not res.is_file():
        raise FileNotFoundError(
            f"the aeon installation has no bundled {name} (looked at {res}); "
            f"reinstall aeon with {_INSTALL_HINT}"
        )
    with resources.as_file(res) as path:
        x, y = reader(str(path))
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1:] != (1, SERIES_LENGTH):
        raise ValueError(f"{name}: expected series of shape (1, {SERIES_LENGTH}), got {x.shape}")
    labels = np.asarray(y).astype(np.int64) - 1  # archive labels 1, 2 -> 0, 1
    return x[:, 0], labels


def load_gunpoint(split: str = "test") -> SeriesSet:
    """The UCR GunPoint series of a split, z-normalised per series.

    Each series is z-normalised on its own: :math:`(x - \\bar x) / \\sigma_x` with the
    population standard deviation (``ddof=0``), so every series has mean 0 and standard
    deviation 1 (the archive stores them normalised with ``ddof=1``; the two differ by the
    factor :math:`\\sqrt{149/150}`). Labels: 0 = ``"Gun"``, 1 = ``"Point"``
    (``GUNPOINT_CLASSES``). The archive's order is kept.

    Args:
        split: ``"train"`` (50 series) or ``"test"`` (150 series).

    Returns:
        A :class:`SeriesSet` with series :math:`(N, 1, 150)` float32, labels :math:`(N,)` int64,
        ``index`` :math:`0 .. N-1` and ``spans=None``.

    Raises:
        ValueError: If ``split`` is not ``"train"`` or ``"test"``.
        ImportError: If ``aeon`` (the ``timeseries`` extra) is not installed.

    Example:
        >>> ds = load_gunpoint("train")
        >>> ds.series.shape, ds.labels.shape, ds.labels.unique().tolist()
        (torch.Size([50, 1, 150]), torch.Size([50]), [0, 1])
        >>> x = ds.series.double()
        >>> mean, std = x.mean(-1), x.std(-1, unbiased=False)
        >>> bool(mean.abs().max() < 1e-6), bool((std - 1).abs().max() < 1e-6)
        (True, True)
    """
    check_choice(split, "split", ("train", "test"))
    x, labels = _read_gunpoint(split)
    x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    return SeriesSet(
        series=torch.from_numpy(x[:, None].astype(np.float32)),
        labels=torch.from_numpy(labels.copy()),
        index=torch.arange(len(labels), dtype=torch.int64),
    )


def motif(label: int, length: int, amplitude: float = 1.0) -> torch.Tensor:
    """The planted motif of a class (see :func:`~captum_perturbmask.data.make_planted_series`).

    * label 0, ``"square pulse"``: ``amplitude`` over the whole span (sharp edges, flat top);
    * label 1, ``"sine burst"``: ``amplitude * sin(2 pi 3 t / length)``, three full periods.

    Args:
        label: 0 or 1.
        length: Motif length in steps, an int in ``MOTIF_LENGTHS`` (16 .. 24).
        amplitude: Height of the motif.

    Returns:
        The motif, shape :math:`(\\text{length},)`, float32.

    Raises:
        ValueError: If ``label`` or ``length`` is out of range.
        TypeError: If ``label`` or ``length`` is not an int.

    Example:
        >>> motif(0, 16).unique().tolist()
        [1.0]
        >>> m = motif(1, 24, amplitude=2.0)
        >>> m.shape, float(m.abs().max()), abs(float(m.sum())) < 1e-5
        (torch.Size([24]), 2.0, True)
    """
    check_int(label, "label", 0, 1)
    check_int(length, "length", *MOTIF_LENGTHS)
    shape = _motifs(np.array([label]), np.array([length]), np.array([amplitude]))
    return torch.from_numpy(shape[0, :length].copy())


def _motifs(labels: np.ndarray, lengths: np.ndarray, amplitudes: np.ndarray) -> np.ndarray:
    """Motifs of a batch, zero-padded to the longest: ``(n, max_length)`` float32."""
    t = np.arange(MOTIF_LENGTHS[1])[None, :]
    inside = t < lengths[:, None]
    sine = np.sin(2.0 * np.pi * _SINE_PERIODS * t / lengths[:, None])
    shape = np.where(labels[:, None] == 0, 1.0, sine)
    return (amplitudes[:, None] * shape * inside).astype(np.float32)


def make_planted_series(split: str = "test", n: int | None = None, seed: int = 0) -> SeriesSet:
    """Real GunPoint series with a planted class motif: the label is decided by the motif alone.

    The z-normalised series of ``split`` (:func:`load_gunpoint`) are used in order and cycled
    when ``n`` exceeds their number; their own Gun/Point label is ignored. Each one gets a label
    (balanced: a seeded permutation of ``0, 1, 0, 1, ...``) and that class's motif
    (:func:`~captum_perturbmask.data.series.motif`) is *added* at a seeded random place:

    * class 0: a **square pulse** (flat top, sharp edges), class 1: a **sine burst** (three
      periods). A GunPoint series is a slow hand trajectory (rest, one rise, a plateau, one
      fall, rest), so neither shape occurs in it;
    * length uniform in 16 .. 24 steps, amplitude uniform in :math:`[1, 1.5]` (the series have
      standard deviation 1), start uniform over every place where the motif fits, ends
      included (``0`` .. ``150 - length``).

    Outside its span a planted series equals the real z-normalised series exactly (it is not
    normalised again), so ``series - load_gunpoint(split).series[index]`` is the motif inside
    the span and zero elsewhere. All randomness comes from ``numpy.random.default_rng(seed)``.

    Args:
        split: ``"train"`` or ``"test"``; the two use the disjoint GunPoint splits.
        n: Number of series, a positive int, or ``None`` for one per split series
            (50 for ``"train"``, 150 for ``"test"``).
        seed: Seed of the labels, motif lengths, amplitudes and places.

    Returns:
        A :class:`SeriesSet` with series :math:`(N, 1, 150)` float32, labels :math:`(N,)`,
        ``index`` (the source series in the split) and ``spans`` :math:`(N, 2)` int64.

    Raises:
        ValueError: If ``split`` is unknown or ``n`` is not positive.
        TypeError: If ``n`` or ``seed`` is not an int.
        ImportError: If ``aeon`` (the ``timeseries`` extra) is not installed.

    Example:
        >>> ds = make_planted_series("test", n=4, seed=0)
        >>> ds.series.shape, ds.labels.tolist(), ds.spans.shape
        (torch.Size([4, 1, 150]), [0, 0, 1, 1], torch.Size([4, 2]))
        >>> real = load_gunpoint("test").series[ds.index]
        >>> bool(((ds.series != real)[:, 0] <= ds.span_masks()).all())  # changed only in spans
        True
    """
    check_choice(split, "split", ("train", "test"))
    if n is not None:
        n = check_int(n, "n", 1)
    seed = check_int(seed, "seed", 0)
    base = load_gunpoint(split)
    n_base = len(base)
    n = n_base if n is None else n
    index = np.arange(n) % n_base
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    lengths = rng.integers(MOTIF_LENGTHS[0], MOTIF_LENGTHS[1] + 1, size=n)
    amplitudes = rng.uniform(*_AMPLITUDE, size=n)
    starts = rng.integers(0, SERIES_LENGTH - lengths + 1)
    shapes = _motifs(labels, lengths, amplitudes)  # (n, 24), zero past each length

    # Add each motif at its start: scatter the padded motif into a zero canvas.
    added = np.zeros((n, SERIES_LENGTH + MOTIF_LENGTHS[1]), dtype=np.float32)
    cols = starts[:, None] + np.arange(MOTIF_LENGTHS[1])[None, :]
    added[np.arange(n)[:, None], cols] = shapes
    series = base.series[index].numpy()[:, 0] + added[:, :SERIES_LENGTH]

    return SeriesSet(
        series=torch.from_numpy(series[:, None].astype(np.float32)),
        labels=torch.from_numpy(labels.astype(np.int64)),
        index=torch.from_numpy(index.astype(np.int64)),
        spans=torch.from_numpy(np.stack([starts, starts + lengths], axis=1).astype(np.int64)),
    )
