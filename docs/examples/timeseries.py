"""Explain a time-series classifier: maps over time, evidence spans, per-channel masks.

Run ``python timeseries.py [OUT_DIR]`` (default: ``$EXAMPLES_OUT`` or a temporary folder).
Offline. The data are synthetic, so the evidence is known: class 1 series carry a pulse in
channel 0 at a random place, and the span of that pulse is the ground truth the maps are scored
against. A small 1-D CNN is trained on them in a second or two.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import nn

from captum_perturbmask import RISE, PerturbMask, compare
from captum_perturbmask.metrics import pointing_game, saliency_span, span_iou

out = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EXAMPLES_OUT") or tempfile.mkdtemp()
)
out.mkdir(parents=True, exist_ok=True)
C, T, WIDTH = 2, 128, 16  # channels, time steps, pulse width


def make_series(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Series (n, C, T), labels (n,) and evidence spans (n, 2) = (start, end) of the pulse."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(n, C, T, generator=g)
    y = torch.arange(n) % 2
    start = torch.randint(0, T - WIDTH, (n,), generator=g)
    pulse = torch.sin(torch.linspace(0, torch.pi, WIDTH))  # a smooth bump
    for i in range(n):
        if y[i] == 1:
            x[i, 0, start[i] : start[i] + WIDTH] += 1.5 * pulse
    return x, y, torch.stack([start, start + WIDTH], 1).float()


# --- a small classifier (B, C, T) -> (B, 2) logits --------------------------------------------
torch.manual_seed(0)  # reproducible initial weights of this example's model
model = nn.Sequential(
    nn.Conv1d(C, 16, kernel_size=9, padding=4),
    nn.ReLU(),
    nn.Conv1d(16, 16, kernel_size=9, padding=4),
    nn.ReLU(),
    nn.AdaptiveMaxPool1d(1),  # the strongest response anywhere in time
    nn.Flatten(),
    nn.Linear(16, 2),
)
x_train, y_train, _ = make_series(512, seed=1)
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for step in range(150):
    batch = torch.randint(0, 512, (64,), generator=torch.Generator().manual_seed(step))
    loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
    opt.zero_grad()
    loss.backward()
    opt.step()
model.eval()

x, y, spans = make_series(16, seed=2)
x, spans = x[y == 1], spans[y == 1]  # explain the class-1 series: their evidence is known
x_test, y_test, _ = make_series(200, seed=3)
with torch.no_grad():
    accuracy = (model(x_test).argmax(1) == y_test).float().mean()
print(f"held-out accuracy: {accuracy:.2f}")

# --- maps over time: the same calls as for images ---------------------------------------------
pm = PerturbMask(model).attribute(x, target=1, budget=200, seed=0)  # (B, C, T), like x
rise = RISE(model).attribute(x, target=1, budget=200, seed=0)
# By default the mask is a 1-D grid along time shared by the channels (ceil(T/8) cells, 8..32),
# so the map is the same in every channel. Score where it points:
for name, attr in (("PerturbMask", pm), ("RISE", rise)):
    found = saliency_span(attr, threshold=0.9)  # span of the top-10% steps, (B, 2)
    iou = span_iou(found, spans).mean()
    hits = pointing_game(attr, spans).float().mean()  # peak inside the pulse?
    print(f"{name:>11s}: span IoU {iou:.2f}, pointing {hits:.2f}")

# --- which channel? a feature_mask gives every channel its own segments -----------------------
segment = torch.arange(T) // 8  # 16 segments of 8 steps
feature_mask = (torch.arange(C)[:, None] * (T // 8) + segment)[None]  # (1, C, T): channel x segment
per_channel = PerturbMask(model).attribute(
    x, target=1, feature_mask=feature_mask, budget=200, seed=0
)
share = per_channel.clamp_min(0).sum(dim=2) / per_channel.clamp_min(0).sum(dim=(1, 2))[:, None]
print(f"share of positive saliency per channel (the pulse is in channel 0): {share.mean(0)}")

# --- every series method side by side: default_methods picks the series set ------------------
result = compare(model, x, target=1, boxes=spans, budget=100, seeds=(0, 1), box_threshold=0.9)
print(result.to_markdown())

# --- figure -----------------------------------------------------------------------------------
fig = Figure(figsize=(8, 4.5), layout="constrained")
axes = fig.subplots(3, 1, sharex=True)
steps = torch.arange(T).numpy()
for c in range(C):
    axes[0].plot(steps, x[0, c].numpy(), lw=1, label=f"channel {c}")
axes[0].legend(fontsize=7, loc="upper right")
axes[0].set_title("series (shaded: the pulse, the true evidence)", fontsize=9)
axes[1].plot(steps, pm[0, 0].numpy(), lw=1.2)  # every channel holds the same map
axes[1].set_title("PerturbMask (one mask over time)", fontsize=9)
for c in range(C):
    axes[2].plot(steps, per_channel[0, c].numpy(), lw=1.2, label=f"channel {c}")
axes[2].set_title("PerturbMask with a per-channel feature_mask", fontsize=9)
for ax in axes:
    ax.axvspan(*spans[0].tolist(), color="tab:green", alpha=0.2)
axes[2].legend(fontsize=7, loc="upper right")
axes[2].set_xlabel("time step")
fig.savefig(out / "timeseries.png", dpi=80)
print(f"wrote {out / 'timeseries.png'}")
