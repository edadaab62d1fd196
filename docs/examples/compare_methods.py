"""Compare saliency methods side by side on the shipped digits: quality, stability, cost.

Run ``python compare_methods.py [OUT_DIR]`` (default: ``$EXAMPLES_OUT`` or a temporary folder).
Offline. ``BUDGET`` and the number of images are small so that the script is quick; the demo
(``captum-perturbmask demo``) runs the same comparison at 400 forward passes.
"""

import os
import sys
import tempfile
from pathlib import Path

from captum_perturbmask import compare
from captum_perturbmask.data import load_default_classifier, make_digits_clutter
from captum_perturbmask.viz import plot_maps

out = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EXAMPLES_OUT") or tempfile.mkdtemp()
)
out.mkdir(parents=True, exist_ok=True)
BUDGET = 64  # forward passes per image for every method that has a budget

model = load_default_classifier()
data = make_digits_clutter("test", n=3)

# methods=None runs the default set: PerturbMask, RISE, Grad-CAM, LIME and Occlusion, all at
# about BUDGET forward passes per image; each stochastic method runs once per seed.
result = compare(
    model,
    data.images,
    target=data.labels,
    boxes=data.boxes,  # enables the IoU and pointing columns
    box_threshold=0.9,  # IoU of the top-10% box: a digit covers about a tenth of the image
    budget=BUDGET,
    seeds=(0, 1),  # two runs: enough for a consistency score, not for a verdict
)
print(result.to_markdown())  # means ± 95% intervals over the 3 images, paired differences
(out / "compare.md").write_text(result.to_markdown() + "\n")
result.to_csv(out / "compare.csv")
fig = plot_maps(  # the first run's maps, one row per image, boxes drawn
    result, data.images, indices=(0, 1), targets=data.labels, boxes=data.boxes
)
fig.savefig(out / "compare_maps.png", dpi=72)

# Every summary row is a dict; a value that does not apply to a method is None.
for row in result.summary:
    kind = "stochastic" if row["stochastic"] else "deterministic (no consistency score)"
    print(f"{row['method']:>12s}: {row['forwards_per_input']:g} forward passes/image, {kind}")
