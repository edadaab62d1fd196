"""Dataset-scale evaluation: every example, every method, every seed, scored and summarised.

One process: ``python evaluate_dataset.py [OUT_DIR]``. Several processes on one machine:
``torchrun --nproc_per_node 2 evaluate_dataset.py OUT_DIR`` (each rank takes a disjoint shard;
rank 0 writes the summary). OUT_DIR defaults to ``$EXAMPLES_OUT`` or a temporary folder.
Offline; the dataset and the budget are small here so that the script is quick.
"""

import os
import sys
import tempfile
from pathlib import Path

from captum_perturbmask import RISE, PerturbMask, evaluate
from captum_perturbmask.data import load_default_classifier, make_digits_clutter

out = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EXAMPLES_OUT") or tempfile.mkdtemp()
)
BUDGET = 50  # forward passes per image and method
is_rank0 = int(os.environ.get("RANK", "0")) == 0  # torchrun sets RANK; one process is rank 0

model = load_default_classifier()
# Any map-style dataset whose items are (input, target) or (input, target, box) works, e.g. a
# torchvision ImageFolder; the shipped digits give (image (3, 64, 64), class, digit box).
dataset = make_digits_clutter("test", n=6)

# A method is fn(inputs, target, seed) -> map, or a Captum Attribution object.
methods = {
    "PerturbMask": lambda x, target, seed: PerturbMask(model).attribute(
        x, target=target, budget=BUDGET, seed=seed
    ),
    "RISE": lambda x, target, seed: RISE(model).attribute(
        x, target=target, budget=BUDGET, seed=seed
    ),
}

result = evaluate(
    model,
    dataset,
    methods,
    seeds=(0, 1),  # two runs per stochastic method give run-to-run consistency records
    batch_size=3,  # examples explained together; also the unit of sharding and of resuming
    out=out / "evaluation",  # records-rank*.jsonl, config.json, summary.md/.csv, curves.png
    resume=True,  # a second run skips every (example, method, seed) already recorded
    on_error="skip",  # a failing item is recorded with its message; the run goes on
    box_threshold=0.9,  # IoU of the top-10% box: a digit covers about a tenth of the image
    show_progress=False,
)

if is_rank0:
    print(result.to_markdown())  # mean ± 95% interval per method, paired differences
    print(f"PerturbMask insertion: {result['PerturbMask']['insertion']:.3f}")

    # The records are JSON Lines: one per (example, method, seed), plus consistency records.
    import pandas as pd

    records = pd.concat(
        pd.read_json(path, lines=True)
        for path in sorted((out / "evaluation").glob("records-rank*.jsonl"))
    )
    runs = records[(records.kind == "run") & (records.status == "ok")]
    per_example = runs.groupby(["method", "index"])[["insertion", "deletion", "iou"]].mean()
    print("PerturbMask's three worst examples by deletion (look at these images next):")
    print(per_example.loc["PerturbMask"].sort_values("deletion", ascending=False).head(3))
    print(f"wrote {out / 'evaluation'}")
