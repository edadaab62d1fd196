"""What every recipe shares: seeded initialisation that leaves the global RNG alone, the thread
count and deterministic algorithms of a run, and progress lines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

__all__ = ["cpu_capability", "log_line", "recipe_settings", "seeded_init"]

T = TypeVar("T")


def log_line(msg: str) -> None:
    """A progress line on stdout, flushed at once."""
    print(msg, flush=True)


def seeded_init(seed: int, build: Callable[[], T]) -> T:
    """``build()`` with the global RNG seeded by ``seed`` inside a fork of it, so that the
    initial weights depend on ``seed`` alone and the caller's random state is untouched.

    Example:
        >>> state = torch.random.get_rng_state()
        >>> a = seeded_init(0, lambda: torch.nn.Linear(2, 2))
        >>> b = seeded_init(0, lambda: torch.nn.Linear(2, 2))
        >>> torch.equal(a.weight, b.weight), torch.equal(state, torch.random.get_rng_state())
        (True, True)
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@contextmanager
def recipe_settings(threads: int) -> Iterator[None]:
    """Run the enclosed training with ``threads`` CPU threads and deterministic algorithms
    (the settings a weight file is reproduced under); both are restored on exit.

    Raises:
        RuntimeError: The thread count changed inside the block (a library that starts its own
            OpenMP threads can reset it), so the run did not use the settings it records.
    """
    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
        if torch.get_num_threads() != threads:
            raise RuntimeError(
                f"the torch thread count changed from {threads} to {torch.get_num_threads()} "
                "during the run; its weights are not those of its recorded settings"
            )
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_deterministic, warn_only=old_warn)


def cpu_capability() -> str:
    """The SIMD level torch's CPU kernels use here (``"AVX2"``, ``"AVX512"``...): with the
    torch version and the thread count, what bit-for-bit reproduction depends on."""
    return str(torch.backends.cpu.get_cpu_capability())
