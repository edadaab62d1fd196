"""The tests must exercise the installed package, not the source tree."""

import sysconfig
from pathlib import Path

import captum_perturbmask


def test_imported_from_site_packages() -> None:
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    here = Path(captum_perturbmask.__file__).resolve()
    assert site in here.parents, f"captum_perturbmask imported from {here}, not from {site}"


def test_package_never_imports_the_repository_tools() -> None:
    """``tools/`` (training recipes and other maintainer code) is not shipped: the package must
    not need it, and the recipes are not in it."""
    import ast
    import importlib.util

    root = Path(captum_perturbmask.__file__).resolve().parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "tools"]
    assert not offenders
    assert importlib.util.find_spec("captum_perturbmask.data.train") is None
