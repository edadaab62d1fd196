"""Tests of the GunPoint loaders and the planted-motif series."""

import socket
import sys
from importlib import resources

import numpy as np
import pytest
import torch

from captum_perturbmask.data import series as series_module
from captum_perturbmask.data.series import (
    MOTIF_LENGTHS,
    SERIES_LENGTH,
    SeriesSet,
    load_gunpoint,
    make_planted_series,
    motif,
)


def _parse_ts(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the bundled archive file with plain text parsing (independent of aeon's reader)."""
    name = f"GunPoint_{split.upper()}.ts"
    text = resources.files("aeon.datasets").joinpath("data", "GunPoint", name).read_text()
    rows = text.split("@data", 1)[1].split()
    values, labels = zip(*(row.rsplit(":", 1) for row in rows), strict=True)
    x = np.array([[float(v) for v in vals.split(",")] for vals in values])
    return x, np.array([int(lab) for lab in labels])


@pytest.fixture(scope="module")
def planted() -> SeriesSet:
    return make_planted_series("test", seed=0)


@pytest.mark.parametrize(
    ("split", "n", "counts"), [("train", 50, [24, 26]), ("test", 150, [76, 74])]
)
def test_gunpoint_shapes_dtypes_normalisation(split: str, n: int, counts: list[int]) -> None:
    ds = load_gunpoint(split)
    assert len(ds) == n
    assert ds.series.shape == (n, 1, SERIES_LENGTH) and ds.series.dtype == torch.float32
    assert ds.labels.shape == (n,) and ds.labels.dtype == torch.int64
    assert torch.bincount(ds.labels).tolist() == counts
    assert torch.equal(ds.index, torch.arange(n)) and ds.spans is None
    x = ds.series.double()
    assert float(x.mean(-1).abs().max()) < 1e-6
    assert float((x.std(-1, unbiased=False) - 1).abs().max()) < 1e-6
    series, label = ds[3]
    assert series.shape == (1, SERIES_LENGTH) and label.shape == ()


@pytest.mark.parametrize("split", ["train", "test"])
def test_gunpoint_is_the_archive_data(split: str) -> None:
    """Values and labels equal the bundled UCR file read independently (labels 1, 2 -> 0, 1)."""
    raw, labels = _parse_ts(split)
    ds = load_gunpoint(split)
    expected = (raw - raw.mean(1, keepdims=True)) / raw.std(1, keepdims=True)
    assert np.abs(ds.series[:, 0].numpy() - expected).max() < 1e-5
    assert ds.labels.tolist() == (labels - 1).tolist()


def test_gunpoint_never_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every socket refused (and a fresh read), the loader still works: it is offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    series_module._read_gunpoint.cache_clear()
    try:
        assert len(load_gunpoint("test")) == 150
    finally:
        series_module._read_gunpoint.cache_clear()


def test_missing_aeon_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aeon", None)
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'captum-perturbmask\[timeseries\]'"):
        series_module._aeon_ts_reader()


def test_bad_args() -> None:
    for fn in (load_gunpoint, make_planted_series):
        with pytest.raises(ValueError, match="split"):
            fn("val")
    with pytest.raises(ValueError, match="n"):
        make_planted_series("test", n=0)
    with pytest.raises(TypeError, match="n"):
        make_planted_series("test", n=2.5)
    with pytest.raises(TypeError, match="seed"):
        make_planted_series("test", n=2, seed="0")
    with pytest.raises(ValueError, match="no evidence spans"):
        load_gunpoint("test").span_masks()
    with pytest.raises(ValueError, match="length"):
        motif(0, MOTIF_LENGTHS[1] + 1)
    with pytest.raises(ValueError, match="label"):
        motif(2, 20)


def test_planted_determinism() -> None:
    a = make_planted_series("train", n=80, seed=7)
    b = make_planted_series("train", n=80, seed=7)
    c = make_planted_series("train", n=80, seed=8)
    for field in ("series", "labels", "index", "spans"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert not torch.equal(a.series, c.series) and not torch.equal(a.spans, c.spans)
    # The seed moves motifs, not which real series are used (in order, cycled).
    assert torch.equal(a.index, c.index) and torch.equal(a.index, torch.arange(80) % 50)


def test_planted_shapes_and_balance(planted: SeriesSet) -> None:
    assert len(planted) == 150 and planted.series.shape == (150, 1, SERIES_LENGTH)
    assert planted.series.dtype == torch.float32 and planted.labels.dtype == torch.int64
    assert planted.spans.shape == (150, 2) and planted.spans.dtype == torch.int64
    assert torch.bincount(planted.labels).tolist() == [75, 75]
    # The label ignores the real series' own Gun/Point label: every combination occurs.
    source = load_gunpoint("test").labels[planted.index]
    pairs = {(int(s), int(p)) for s, p in zip(source, planted.labels, strict=True)}
    assert pairs == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_spans_inside_and_reach_the_ends() -> None:
    ds = make_planted_series("train", n=2000, seed=1)
    start, end = ds.spans[:, 0], ds.spans[:, 1]
    length = end - start
    assert bool((start >= 0).all() and (end <= SERIES_LENGTH).all())
    assert int(length.min()) == MOTIF_LENGTHS[0] and int(length.max()) == MOTIF_LENGTHS[1]
    assert int(start.min()) == 0 and int(end.max()) == SERIES_LENGTH  # ends included
    masks = ds.span_masks()
    assert masks.shape == (2000, SERIES_LENGTH) and torch.equal(masks.sum(1), length)


def test_motif_is_present_exactly_in_the_span(planted: SeriesSet) -> None:
    """planted - real is the class motif (some amplitude in [1, 1.5]) in the span, 0 elsewhere."""
    diff = (planted.series - load_gunpoint("test").series[planted.index])[:, 0].double()
    masks = planted.span_masks()
    assert float(diff[~masks].abs().max()) == 0.0
    for i in range(len(planted)):
        a, b = planted.spans[i].tolist()
        shape = motif(int(planted.labels[i]), b - a).double()
        inside = diff[i, a:b]
        amplitude = float(inside @ shape / (shape @ shape))
        assert 1.0 - 1e-6 <= amplitude <= 1.5 + 1e-6
        assert float((inside - amplitude * shape).abs().max()) < 1e-5
        # Not the other class's shape.
        other = motif(1 - int(planted.labels[i]), b - a).double()
        assert float((inside - float(inside @ other / (other @ other)) * other).abs().max()) > 0.3


def test_motif_shapes() -> None:
    pulse, burst = motif(0, 20, amplitude=1.2), motif(1, 24)
    assert torch.allclose(pulse, torch.full((20,), 1.2))
    t = torch.arange(24, dtype=torch.float64)
    assert torch.allclose(burst.double(), torch.sin(2 * torch.pi * 3 * t / 24), atol=1e-6)
