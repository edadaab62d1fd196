"""Start-up time of the package and its command line, against Python and torch + Captum.

Each command runs ``--repeats`` times in a fresh interpreter, interleaved (one round runs every
command once, so load on a shared machine touches all of them alike); the table gives the
median wall-clock time and its ratio to ``import torch, captum.attr``, the floor of anything
that computes a saliency map.

    python benchmarks/startup.py --repeats 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "import torch, captum.attr": ["-c", "import torch, captum.attr"],
    "import captum_perturbmask": ["-c", "import captum_perturbmask"],
    "from captum_perturbmask import PerturbMask, RISE, metrics, compare": [
        "-c",
        "from captum_perturbmask import PerturbMask, RISE, metrics, compare",
    ],
    "python -m captum_perturbmask --help": ["-m", "captum_perturbmask", "--help"],
    "python -m captum_perturbmask --version": ["-m", "captum_perturbmask", "--version"],
}
REFERENCE = "import torch, captum.attr"


def _once(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, env=env, stdout=subprocess.DEVNULL, cwd=cwd)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="folder holding captum_perturbmask (default: here)"
    )
    args = parser.parse_args()
    root = args.root.resolve()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    for cmd in COMMANDS.values():  # warm the file cache
        _once(cmd, env, root)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():
            times[name].append(_once(cmd, env, root))
    reference = statistics.median(times[REFERENCE])
    print(
        f"`python benchmarks/startup.py --repeats {args.repeats}` (median of {args.repeats} "
        f"interleaved runs, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')})\n"
    )
    print(f"| command | median (s) | min (s) | ratio to `{REFERENCE}` |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.3f} | {min(values):.3f} | {median / reference:.2f} |")


if __name__ == "__main__":
    main()
