"""The settings every recipe runs under."""

from __future__ import annotations

import pytest
import torch

from tools.train_weights.settings import recipe_settings


def test_recipe_settings_are_restored() -> None:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with recipe_settings(1):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_a_thread_count_changed_inside_the_run_is_refused() -> None:
    """What happened to the shipped planted-motif and generator runs: a library reset torch's
    thread count mid-run, so the log's thread count was not the one used."""
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="thread count changed from 1 to 2"):
        with recipe_settings(1):
            torch.set_num_threads(2)
    assert torch.get_num_threads() == threads
