"""Run every ``Example:`` block of the tools."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tools

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(tools.__path__, prefix="tools.")
    if not m.name.endswith("__main__")
)


def test_modules_found() -> None:
    assert "tools.train_weights.recipes" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
