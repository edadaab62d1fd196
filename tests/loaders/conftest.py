"""Fixtures of the loader tests: TinyNet's model files, written once."""

from __future__ import annotations

from pathlib import Path

import pytest

from .tinynet import write_model_files


@pytest.fixture(scope="package")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_model_files(tmp_path_factory.mktemp("models"))
