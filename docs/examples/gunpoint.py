"""Explain a real time-series classifier: UCR GunPoint, its shipped 1-D CNN, variations.

Run ``python gunpoint.py [OUT_DIR]`` (default: ``$EXAMPLES_OUT`` or a temporary folder).
Offline; needs the ``timeseries`` extra (``pip install 'captum-perturbmask[timeseries]'``),
whose aeon wheel carries the GunPoint files. The series are real recordings of a hand drawing
a gun or pointing (150 steps, z-normalised); a second shipped model reads planted motifs whose
span is known, so the maps can be scored against ground truth.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch

from captum_perturbmask import RISE, PerturbMask
from captum_perturbmask.data import (
    load_gunpoint,
    load_series_classifier,
    load_series_generator,
    make_planted_series,
)
from captum_perturbmask.data.series import GUNPOINT_CLASSES, PLANTED_CLASSES
from captum_perturbmask.generative import LatentVariationGenerator, VariationSettings
from captum_perturbmask.metrics import insertion_deletion, pointing_game, saliency_span, span_iou
from captum_perturbmask.viz import plot_series_maps, plot_variations

out = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EXAMPLES_OUT") or tempfile.mkdtemp()
)
out.mkdir(parents=True, exist_ok=True)

# --- real series and the shipped classifier ---------------------------------------------------
test = load_gunpoint("test")  # 150 held-out series, (N, 1, 150), labels 0 = Gun, 1 = Point
model = load_series_classifier("gunpoint")  # eval mode, (B, 1, T) -> (B, 2) logits
x, y = test.series[:6], test.labels[:6]
with torch.no_grad():
    accuracy = (model(test.series).argmax(1) == test.labels).float().mean()
print(f"GunPoint test accuracy of the shipped model: {accuracy:.3f}")

# --- maps over time: 400 forward passes per series, as for images ------------------------------
maps = {
    "PerturbMask": PerturbMask(model).attribute(x, target=y, budget=400, seed=0),
    "RISE": RISE(model).attribute(x, target=y, budget=400, seed=0),
}
for name, attr in maps.items():
    # insertion starts from zeros (each z-normalised series' mean); deletion ends there
    scores = insertion_deletion(model, x, attr, target=y)
    print(f"{name:>11s}: insertion {scores.insertion.mean():.3f}, "
          f"deletion {scores.deletion.mean():.3f}")  # fmt: skip
plot_series_maps(maps, x, targets=y, class_names=GUNPOINT_CLASSES, indices=(0, 1),
                 path=str(out / "gunpoint_maps.png"), dpi=80)  # fmt: skip

# --- planted motifs: the evidence span is known, so localisation is scored ---------------------
planted = make_planted_series("test", n=8, seed=0)  # a motif of 16-24 steps decides the class
planted_model = load_series_classifier("planted")
pm = PerturbMask(planted_model).attribute(planted.series, target=planted.labels, budget=400, seed=0)
found = saliency_span(pm, threshold=0.85)  # span of the top 15% steps, (B, 2)
print(f"planted: span IoU {span_iou(found, planted.spans).mean():.2f}, "
      f"pointing {pointing_game(pm, planted.spans).float().mean():.2f}")  # fmt: skip
plot_series_maps({"PerturbMask": pm}, planted.series, planted.spans, targets=planted.labels,
                 class_names=PLANTED_CLASSES, indices=(0, 1),
                 path=str(out / "planted_maps.png"), dpi=80)  # fmt: skip

# --- acceptable variations of the salient span B (Problem 2 on series) -------------------------
lvg = LatentVariationGenerator(load_series_generator(), forward_func=model)
result = lvg.generate(
    x[:2],
    saliency=maps["PerturbMask"][:2],
    target=y[:2],
    seed=0,
    settings=VariationSettings(threshold=0.9, n_restarts=16, n_keep=4, n_steps=100),
)
# equation (1): X' = X (1 - B) + B G(z'), so every variant equals X outside B, bit for bit
outside = ~result.mask[:, None, None, :]  # (N, 1, 1, T) against variants (N, K, C, T)
same = torch.where(outside, result.variants == x[:2, None], True)
assert bool(same.all()), "equation (1) must hold outside B"
print(f"B covers {result.mask.sum(1).tolist()} of {x.shape[-1]} steps")
print(f"accepted fraction (class kept, p >= 0.5): {result.accepted_fraction:.2f}")
plot_variations(result, x[:2], class_names=GUNPOINT_CLASSES,
                path=str(out / "gunpoint_variations.png"))  # fmt: skip
print(f"wrote the figures to {out}")
