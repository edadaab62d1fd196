"""Series beds of the benchmark suite: real UCR/UEA sets bundled with aeon, three model families.

Every set is read from the copy inside the ``aeon`` wheel (``aeon/datasets/data/<Name>/``)
with aeon's ``.ts`` reader; nothing is downloaded. Standardisation follows
``captum_perturbmask.data.series``: univariate series are z-normalised one by one (population
standard deviation); multivariate series are standardised per channel with the training
split's mean and standard deviation (per-series normalisation would erase the amplitude that
tells standing from running). JapaneseVowels (lengths 7-29) is zero-padded at the end to 29
steps after standardisation (zero is each channel's training mean). Labels are the archive's
class names in sorted order.

Models (all take ``(B, C, T)``):

* :class:`CNN1d`: three Conv1d/BatchNorm/ReLU blocks with dilations 1, 2, 4 and global average
  pooling (the shipped ``SeriesCNN`` for any number of channels);
* :class:`GRUNet`: a one-layer bidirectional GRU, mean- and max-pooled over time;
* :class:`InceptionNet`: two InceptionTime-like modules (bottleneck, kernels 9/19/39 and a
  max-pool branch, a residual shortcut), global average pooling.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import torch
from torch import Tensor, nn

#: name -> (archive name, multivariate, padded length or None)
SETS = {
    "gunpoint": ("GunPoint", False, None),
    "italypower": ("ItalyPowerDemand", False, None),
    "osuleaf": ("OSULeaf", False, None),
    "arrowhead": ("ArrowHead", False, None),
    "acsf1": ("ACSF1", False, None),
    "basicmotions": ("BasicMotions", True, None),
    "japanesevowels": ("JapaneseVowels", True, 29),
}


def _read(archive: str, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    try:
        from aeon.datasets import load_from_ts_file
    except ImportError as e:
        raise ImportError(
            "the series beds read the sets bundled with aeon (pip install aeon)"
        ) from e
    res = resources.files("aeon.datasets").joinpath("data", archive, f"{archive}_{split}.ts")
    if not res.is_file():
        raise FileNotFoundError(f"aeon has no bundled {archive}_{split}.ts (looked at {res})")
    with resources.as_file(res) as path:
        x, y = load_from_ts_file(str(path))
    series = [np.asarray(a, dtype=np.float64) for a in x]
    return series, np.asarray(y).astype(str)


@lru_cache(maxsize=16)
def load_set(name: str) -> dict[str, Tensor]:
    """``{"x_train", "y_train", "x_test", "y_test"}``: standardised series ``(N, C, T)``
    float32 and labels ``(N,)`` int64 of bundled set ``name`` (a key of :data:`SETS`)."""
    if name not in SETS:
        raise ValueError(f"unknown series set {name!r}; choose from {sorted(SETS)}")
    archive, multivariate, pad = SETS[name]
    tr, ytr = _read(archive, "TRAIN")
    te, yte = _read(archive, "TEST")
    classes = sorted(set(ytr) | set(yte))
    out: dict[str, Tensor] = {}
    if multivariate:
        cat = np.concatenate(tr, axis=1)  # (C, total steps)
        mu, sd = cat.mean(1, keepdims=True), cat.std(1, keepdims=True) + 1e-8
    for split, xs, ys in (("train", tr, ytr), ("test", te, yte)):
        rows = []
        for a in xs:
            if multivariate:
                a = (a - mu) / sd
            else:
                a = (a - a.mean(1, keepdims=True)) / (a.std(1, keepdims=True) + 1e-8)
            if pad is not None:
                a = np.pad(a, ((0, 0), (0, pad - a.shape[1])))
            rows.append(a)
        out[f"x_{split}"] = torch.from_numpy(np.stack(rows).astype(np.float32))
        out[f"y_{split}"] = torch.tensor([classes.index(c) for c in ys], dtype=torch.int64)
    return out


def n_classes(name: str) -> int:
    d = load_set(name)
    return int(max(d["y_train"].max(), d["y_test"].max())) + 1


class CNN1d(nn.Module):
    """Three Conv1d/BatchNorm/ReLU blocks (kernels 7, 5, 3; dilations 1, 2, 4), global average
    pooling, a linear layer; any number of channels and any length."""

    def __init__(self, channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        widths = (channels, width, 2 * width, 2 * width)
        layers: list[nn.Module] = []
        for i, (k, dil) in enumerate(((7, 1), (5, 2), (3, 4))):
            layers += [
                nn.Conv1d(widths[i], widths[i + 1], k, padding=dil * (k // 2), dilation=dil),
                nn.BatchNorm1d(widths[i + 1]),
                nn.ReLU(),
            ]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).mean(2))


class GRUNet(nn.Module):
    """A one-layer bidirectional GRU over time, mean- and max-pooled, a linear layer."""

    def __init__(self, channels: int, num_classes: int, hidden: int = 48) -> None:
        super().__init__()
        self.gru = nn.GRU(channels, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(4 * hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.gru(x.transpose(1, 2))  # (B, T, 2 hidden)
        return self.fc(torch.cat([h.mean(1), h.amax(1)], 1))


class _Inception(nn.Module):
    def __init__(self, cin: int, filters: int = 16, bottleneck: int = 16) -> None:
        super().__init__()
        self.bottleneck = nn.Conv1d(cin, bottleneck, 1, bias=False) if cin > 1 else nn.Identity()
        b = bottleneck if cin > 1 else cin
        self.convs = nn.ModuleList(
            nn.Conv1d(b, filters, k, padding=k // 2, bias=False) for k in (9, 19, 39)
        )
        self.pool = nn.Sequential(nn.MaxPool1d(3, 1, 1), nn.Conv1d(cin, filters, 1, bias=False))
        self.bn = nn.BatchNorm1d(4 * filters)

    def forward(self, x: Tensor) -> Tensor:
        z = self.bottleneck(x)
        return torch.relu(self.bn(torch.cat([c(z) for c in self.convs] + [self.pool(x)], 1)))


class InceptionNet(nn.Module):
    """Two InceptionTime-like modules with a residual shortcut, global average pooling."""

    def __init__(self, channels: int, num_classes: int, filters: int = 16) -> None:
        super().__init__()
        self.block1 = _Inception(channels, filters)
        self.block2 = _Inception(4 * filters, filters)
        self.shortcut = nn.Sequential(
            nn.Conv1d(channels, 4 * filters, 1, bias=False), nn.BatchNorm1d(4 * filters)
        )
        self.fc = nn.Linear(4 * filters, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        z = torch.relu(self.block2(self.block1(x)) + self.shortcut(x))
        return self.fc(z.mean(2))


ARCHS = {"cnn": CNN1d, "gru": GRUNet, "inception": InceptionNet}


def train_series(
    name: str, arch: str, epochs: int, seed: int = 0, lr: float = 3e-3, batch: int = 16
) -> tuple[nn.Module, dict]:
    """Train ``ARCHS[arch]`` on set ``name``'s training split (AdamW, one-cycle schedule,
    Gaussian jitter and random amplitude scaling as augmentation); returns the model (eval)
    and a log."""
    import math
    import time

    import torch.nn.functional as F

    d = load_set(name)
    x, y = d["x_train"], d["y_train"]
    torch.manual_seed(seed)  # a training script: initialisation from the global RNG
    model = ARCHS[arch](x.shape[1], n_classes(name))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    steps = epochs * math.ceil(len(x) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            if len(idx) < 2:
                continue
            xb = x[idx]
            xb = xb * (1 + 0.1 * torch.randn(len(idx), 1, 1, generator=g))
            xb = xb + 0.05 * torch.randn(xb.shape, generator=g)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    seconds = round(time.perf_counter() - t0, 1)
    log = {"epochs": epochs, "seconds": seconds, "seed": seed, "train_size": len(x),
           "parameters": params}  # fmt: skip
    return model, log
