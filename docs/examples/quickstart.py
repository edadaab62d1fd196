"""Quick start: explain one image with PerturbMask, save a figure, score the map.

Run ``python quickstart.py [OUT_DIR]``; figures go to OUT_DIR (default: the folder in the
``EXAMPLES_OUT`` environment variable, else a new temporary folder). Offline; a few seconds.
"""

import os
import sys
import tempfile
from pathlib import Path

out = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EXAMPLES_OUT") or tempfile.mkdtemp()
)
out.mkdir(parents=True, exist_ok=True)

# --- explain one image ------------------------------------------------------------------------
from captum_perturbmask import PerturbMask
from captum_perturbmask.data import load_default_classifier, make_digits_clutter

model = load_default_classifier()  # a small CNN shipped with the package, in eval mode
data = make_digits_clutter("test", n=1)  # one held-out digit pasted into a cluttered image
attr = PerturbMask(model).attribute(data.images, target=data.labels, seed=0)

# --- see it -----------------------------------------------------------------------------------
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

image, label, box = data[0]  # (3, 64, 64) in [0, 1], the class, the digit's box (x1, y1, x2, y2)
saliency = attr[0].sum(0)  # (64, 64): the three channels share one mask
fig = Figure(figsize=(6.4, 3), layout="constrained")
ax_image, ax_map = fig.subplots(1, 2)
ax_image.imshow(image.permute(1, 2, 0).numpy())  # matplotlib wants (H, W, 3)
ax_image.set_title(f"input: digit {int(label)}")
shown = ax_map.imshow(saliency.numpy(), cmap="inferno")
x1, y1, x2, y2 = box.tolist()  # pixel edges: pixel i covers [i - 0.5, i + 0.5] in imshow
ax_map.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="cyan"))
ax_map.set_title("PerturbMask (cyan: the digit's box)")
fig.colorbar(shown, ax=ax_map)
fig.savefig(out / "quickstart.png", dpi=80)

# --- score it ---------------------------------------------------------------------------------
from captum_perturbmask.metrics import insertion_deletion, pointing_game

scores = insertion_deletion(model, data.images, attr, target=data.labels)
hits = pointing_game(attr, data.boxes)  # is each map's peak on its digit?
print(f"insertion AUC {scores.insertion.item():.3f} (higher is better)")
print(f"deletion AUC  {scores.deletion.item():.3f} (lower is better)")
print(f"peak on the digit: {bool(hits[0])}")
print(f"wrote {out / 'quickstart.png'}")
