"""Run every ``Example:`` block of the installed package (kornia-style runnable docs)."""

import doctest
import importlib
import pkgutil

import pytest

import captum_perturbmask

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(captum_perturbmask.__path__, prefix="captum_perturbmask.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
