"""Make the repository's ``tools`` package importable (it is not installed).

Only ``tools`` is registered, from its folder; the repository root is not put on
``sys.path``, so ``captum_perturbmask`` is still the installed package the other tests use.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"


def _register_tools() -> None:
    loaded = sys.modules.get("tools")
    if loaded is not None and Path(loaded.__file__ or "").resolve().parent == TOOLS:
        return
    spec = importlib.util.spec_from_file_location(
        "tools", TOOLS / "__init__.py", submodule_search_locations=[str(TOOLS)]
    )
    assert spec is not None and spec.loader is not None, f"no tools package in {ROOT}"
    module = importlib.util.module_from_spec(spec)
    sys.modules["tools"] = module
    spec.loader.exec_module(module)


_register_tools()
