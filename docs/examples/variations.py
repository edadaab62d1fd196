"""Acceptable variations and counterfactuals of the salient region, with the shipped GAN.

Run ``python variations.py [OUT_DIR]`` (default: ``$EXAMPLES_OUT`` or a temporary folder).
Offline. The search is short here (``N_STEPS``) so that the script is quick; the demo uses
16 restarts x 100 steps.
"""

import os
import sys
import tempfile
from pathlib import Path

from captum_perturbmask import LatentVariationGenerator, PerturbMask
from captum_perturbmask.data import load_default_classifier, load_default_gan, make_digits_clutter
from captum_perturbmask.generative import CounterfactualConfig, VariationSettings

out = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EXAMPLES_OUT") or tempfile.mkdtemp()
)
out.mkdir(parents=True, exist_ok=True)
N_STEPS = 40  # Adam steps of the latent search (the demo: 100)

model = load_default_classifier()
generator, discriminator = load_default_gan()  # a DCGAN of 32x32 digit patches, latent size 64
data = make_digits_clutter("test", n=2)
x, y = data.images, data.labels

# 1. Where is the evidence? B = the box around the top 2% of the PerturbMask map.
attr = PerturbMask(model).attribute(x, target=y, seed=0)

# 2. Which contents of B keep the decision? Search latent codes z' whose G(z') fits the context
#    around B, compose X' = X * (1 - B) + B * G(z') (the poster's equation 1) and score X'.
lvg = LatentVariationGenerator(generator, discriminator, forward_func=model)
result = lvg.generate(
    x,
    attr,
    target=y,
    seed=0,
    counterfactual=CounterfactualConfig(n_candidates=2),
    settings=VariationSettings(threshold=0.98, n_restarts=8, n_keep=4, n_steps=N_STEPS),
)
print(f"accepted (keep the class, confidence >= 0.5): {result.accepted_fraction:.2f}")
print(f"confidence of each variant in its image's class:\n{result.confidence}")
print(f"diversity inside B (mean pairwise L2): {result.diversity}")
cf = result.counterfactuals
print(f"images with a decision-flipping variant: {cf.n_flipped_inputs} of {len(x)}")
print(f"their classes: {cf.predictions.tolist()}; flipped: {cf.flipped.tolist()}")
result.plot(out / "variations.png")
print(f"wrote {out / 'variations.png'}")
