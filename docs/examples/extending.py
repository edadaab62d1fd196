"""Extending the evaluation: one entry adds a metric, one entry adds a method.

Run ``python extending.py [OUT_DIR]`` (default: ``$EXAMPLES_OUT`` or a temporary folder).
Offline; four images and a small budget so that the script is quick.
"""

import os
import sys
import tempfile
import warnings
from pathlib import Path

from captum.attr import Saliency

from captum_perturbmask import compare
from captum_perturbmask.data import load_default_classifier, make_digits_clutter
from captum_perturbmask.evaluation import Column, Method, Metric, register_method, register_metric

out = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EXAMPLES_OUT") or tempfile.mkdtemp()
)
out.mkdir(parents=True, exist_ok=True)


# --- a metric: one entry ------------------------------------------------------------------------
def top_energy(batch):
    """Share of each map's positive saliency in its top 10% of pixels (how focused it is)."""
    saliency = batch.attributions.sum(1).clamp_min(0).flatten(1)  # (B, H * W)
    top = saliency.topk(max(1, saliency.shape[1] // 10), dim=1).values.sum(1)
    return {"top_energy": top / saliency.sum(1).clamp_min(1e-12)}  # one value per example


register_metric(
    Metric(
        "top_energy",  # the name metrics=(...) selects
        (Column("top_energy", "top-10% energy", higher_is_better=None),),  # no better direction
        top_energy,
        default=False,  # opt-in, like "road"
    )
)

# --- a method: one entry ------------------------------------------------------------------------
# build(setting) -> fn(inputs, target, seed); setting.captum wraps any Captum attribution (and
# passes perturbations_per_eval and seed where its attribute takes them); default=(): in no
# default set, run when named
register_method(Method("Saliency", lambda s: s.captum(Saliency(s.model)), default=()))

# --- both, picked up by name, next to what is built in -----------------------------------------
model = load_default_classifier()
data = make_digits_clutter("test", n=4)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # Saliency sets requires_grad on the inputs
    result = compare(
        model,
        data.images,
        ["PerturbMask", "Occlusion", "Saliency"],  # registered names
        target=data.labels,
        budget=50,
        seeds=(0,),
        metrics=("insertion", "deletion", "road", "top_energy"),  # ROAD is one entry too
    )
print(result.to_markdown())
(out / "extending.md").write_text(result.to_markdown() + "\n")
print(f"Saliency top-10% energy: {result['Saliency']['top_energy']:.2f}")
