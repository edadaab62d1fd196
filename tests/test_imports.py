"""Import cost: the package pulls in only what is used (checked in fresh interpreters)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import captum_perturbmask

_REPORT = """
import sys
{code}
print(sorted(m for m in {heavy!r} if m in sys.modules))
"""


def _loaded(code: str, heavy: tuple[str, ...], cwd: Path) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _REPORT.format(code=code, heavy=heavy)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip().splitlines()[-1])


def test_import_package_is_light(tmp_path: Path) -> None:
    """``import captum_perturbmask`` loads no torch: its names are imported on first use."""
    heavy = ("torch", "torchvision", "captum", "matplotlib", "sklearn")
    assert _loaded("import captum_perturbmask", heavy, tmp_path) == []


@pytest.mark.slow
def test_library_imports_no_torchvision_or_sklearn(tmp_path: Path) -> None:
    """The whole library API costs torch and Captum, not torchvision or scikit-learn."""
    code = (
        "from captum_perturbmask import PerturbMask, RISE, LatentVariationGenerator\n"
        "from captum_perturbmask import evaluate, compare\n"
        "import captum_perturbmask.metrics, captum_perturbmask.evaluation, captum_perturbmask.viz\n"
        "import captum_perturbmask.report"
    )
    assert _loaded(code, ("torchvision", "sklearn"), tmp_path) == []


def test_lazy_names() -> None:
    from captum_perturbmask.attr import RISE, PerturbMask
    from captum_perturbmask.evaluation import compare, evaluate

    assert captum_perturbmask.PerturbMask is PerturbMask and captum_perturbmask.RISE is RISE
    assert captum_perturbmask.evaluate is evaluate and captum_perturbmask.compare is compare
    assert callable(captum_perturbmask.evaluate)  # the function, not a module
    public = {
        "PerturbMask", "RISE", "HSICAttribution", "SobolAttribution", "LatentVariationGenerator",
        "evaluate", "compare",
    }  # fmt: skip
    assert set(dir(captum_perturbmask)) == public | {"__version__"}  # nothing private
    assert captum_perturbmask.__version__.count(".") == 2
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        captum_perturbmask.nope  # noqa: B018
