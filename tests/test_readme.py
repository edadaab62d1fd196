"""The README's Python example runs as written (against the installed package)."""

import re
from pathlib import Path

import matplotlib
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # the example saves its figure in the working directory
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    attr, x = namespace["attr"], namespace["x"]
    assert attr.shape == x.shape
    assert namespace["scores"].insertion.shape == (8,)
    assert namespace["hits"].float().mean() >= 0.75
    assert (tmp_path / "saliency.png").stat().st_size > 0


def test_install_puts_the_cpu_only_torch_first() -> None:
    """The first install command is the CPU-only torch; the set-up commands after it install
    the package into that environment without pulling another torch."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    torch_step, demo, tests = blocks[:3]
    assert "pip install torch==" in torch_step and "download.pytorch.org/whl/cpu" in torch_step
    for command in (demo, tests):
        assert command.startswith(". .venv/bin/activate && pip install ") and "torch" not in command
    assert "captum-perturbmask demo" in demo and '".[test]" && pytest' in tests
