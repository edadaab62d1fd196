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
