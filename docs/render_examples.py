"""Run the documentation's examples and copy the figures and tables the pages show.

``python docs/render_examples.py`` (from the repository root, with the package installed) runs
every ``docs/examples/*.py`` into a temporary folder and copies the files listed in
:data:`SHOWN` to ``docs/_static/examples/``, so every figure in the documentation is drawn by
the code printed next to it. ``tests/test_docs.py`` checks that each shown file is one the
examples write.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
#: example script -> files it writes that a page shows (paths relative to its output folder)
SHOWN = {
    "quickstart.py": ["quickstart.png"],
    "torchvision_photo.py": ["torchvision_photo.png"],
    "compare_methods.py": ["compare.md", "compare_maps.png"],
    "variations.py": ["variations.png"],
    "evaluate_dataset.py": ["evaluation/summary.md", "evaluation/curves.png"],
    "timeseries.py": ["timeseries.png"],
    "gunpoint.py": ["gunpoint_maps.png", "gunpoint_variations.png"],
    "extending.py": ["extending.md"],
    "byom.py": ["byom.md"],
}


def main() -> int:
    target = DOCS / "_static" / "examples"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    for script, files in SHOWN.items():
        with tempfile.TemporaryDirectory() as tmp:
            print(f"running {script}", flush=True)
            subprocess.run(
                [sys.executable, str(DOCS / "examples" / script), tmp], check=True, env=env
            )
            for name in files:
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(tmp) / name, target / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
