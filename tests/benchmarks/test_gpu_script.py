"""``benchmarks/gpu.py --device cpu --quick`` runs unchanged on a CPU and writes every section."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


def _load():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


@pytest.mark.slow
def test_quick_cpu_run_writes_every_section(tmp_path: Path, capsys) -> None:
    out = tmp_path / "gpu.md"
    assert _load().main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    text = out.read_text()
    for title in ("CUDA tests", "Ratios against a bare loop", "Host synchronisations",
                  "Peak memory", "evaluate on held-out digits"):  # fmt: skip
        assert f"## {title}" in text, title
    # two synchronisations per call at every budget, for every method
    rows = [line for line in text.splitlines() if line.startswith("| PerturbMask") and "|" in line]
    sync_rows = [r for r in rows if r.count("|") == 7]
    assert sync_rows and all(r.split("|")[5].strip() == "2" for r in sync_rows), sync_rows


def test_an_absent_device_is_one_line(capsys) -> None:
    assert _load().main(["--device", "tpu", "--quick", "--out", "unused.md"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device" in err[0]
