"""The documentation cannot rot: its examples run, and its API reference lists every public name.

The tutorial pages include ``docs/examples/*.py`` with ``literalinclude``; here each example runs
as a user would run it (a fresh interpreter, the installed package, an output folder as its
argument) and must write the files its page shows.
"""

import importlib
import os
import re
import runpy
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.py"))

#: example -> the files of its output folder that the pages show (docs/render_examples.py
#: copies them to docs/_static/examples/).
SHOWN: dict[str, list[str]] = runpy.run_path(str(DOCS / "render_examples.py"))["SHOWN"]
#: Modules whose ``__all__`` the API reference must cover.
PUBLIC_MODULES = (
    "captum_perturbmask",
    "captum_perturbmask.attr",
    "captum_perturbmask.metrics",
    "captum_perturbmask.generative",
    "captum_perturbmask.data",
    "captum_perturbmask.evaluation",
    "captum_perturbmask.viz",
    "captum_perturbmask.report",
    "captum_perturbmask.cli",
    "captum_perturbmask.loaders",
)
_DIRECTIVE = re.compile(
    r"^\s*\.\. (?:auto|py:)?(?:class|function|data|method|exception)::\s+(\S+)", re.M
)


def test_every_example_is_known() -> None:
    assert {p.name for p in EXAMPLES} == set(SHOWN), "list the example in render_examples.SHOWN"


def test_every_shown_file_comes_from_an_example() -> None:
    static = DOCS / "_static" / "examples"
    present = {p.relative_to(static).as_posix() for p in static.rglob("*") if p.is_file()}
    shown = {name for names in SHOWN.values() for name in names}
    assert present == shown, "docs/_static/examples/ must hold exactly what the examples write"


def test_every_example_is_shown_in_the_docs() -> None:
    pages = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.rst"))
    for example in EXAMPLES:
        assert f"examples/{example.name}" in pages, f"{example.name} is on no page"


def _run(example: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)  # one process, whatever launched pytest
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(example), str(out)],
        cwd=out,  # not the source tree: the installed package is what runs
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every example, run once, two at a time (each is single-threaded; CI has two cores)."""
    root = tmp_path_factory.mktemp("examples")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {p.name: pool.submit(_run, p, root / p.stem) for p in EXAMPLES}
    return {name: (future.result(), root / Path(name).stem) for name, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(example: Path, example_runs: dict) -> None:
    proc, out = example_runs[example.name]
    assert proc.returncode == 0, f"{example.name} failed:\n{proc.stdout}\n{proc.stderr}"
    for name in SHOWN[example.name]:
        assert (out / name).stat().st_size > 0, f"{example.name} did not write {name}"


def _documented() -> set[str]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.rst"))
    return set(_DIRECTIVE.findall(text))


def _resolve(path: str) -> object:
    module, _, name = path.rpartition(".")
    while module:
        try:
            obj = importlib.import_module(module)
        except ImportError:
            module, _, parent = module.rpartition(".")
            name = f"{parent}.{name}"
            continue
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj
    raise ImportError(path)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_api_reference_lists_every_public_name(module_name: str) -> None:
    documented = _documented()
    objects = {id(_resolve(path)) for path in documented if not path.endswith("__version__")}
    module = importlib.import_module(module_name)
    missing = []
    for name in module.__all__:
        qualified = f"{module_name}.{name}"
        obj = getattr(module, name)
        # a name is documented under its own path, or as the same object under another path
        # (``captum_perturbmask.PerturbMask`` is ``captum_perturbmask.attr.PerturbMask``)
        if qualified not in documented and (isinstance(obj, str) or id(obj) not in objects):
            missing.append(qualified)
    assert not missing, f"not in the API reference (docs/api.rst): {missing}"
