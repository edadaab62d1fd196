"""The README's Python example runs as written (against the installed package)."""

import re
from pathlib import Path

import matplotlib

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs() -> None:
    matplotlib.use("Agg")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    attr, x = namespace["attr"], namespace["x"]
    assert attr.shape == x.shape
    assert namespace["scores"].insertion.shape == (8,)
    assert namespace["hits"].float().mean() >= 0.75
