"""Retrain and compare with the shipped weight files, tensor by tensor (:func:`torch.equal`)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from captum_perturbmask.data.models import load_weights
from tools.train_weights.recipes import Options, Recipe, train
from tools.train_weights.settings import cpu_capability, log_line

__all__ = ["check", "differences", "state_digest"]


def differences(made: Mapping[str, torch.Tensor], shipped: Mapping[str, torch.Tensor]) -> list[str]:
    """What differs between two state dicts: missing or extra keys, and per tensor its dtype,
    shape or values (with the largest absolute difference); empty when they are equal.

    Example:
        >>> a = {"w": torch.zeros(2), "b": torch.ones(1)}
        >>> differences(a, dict(a))
        []
        >>> differences({"w": torch.tensor([0.0, 1e-7])}, a)
        ['b: missing', 'w: values differ (largest difference 1e-07)']
    """
    problems = [f"{k}: missing" for k in shipped if k not in made]
    problems += [f"{k}: not in the shipped file" for k in made if k not in shipped]
    for key in (k for k in shipped if k in made):
        a, b = made[key], shipped[key]
        if a.dtype != b.dtype:
            problems.append(f"{key}: dtype {a.dtype} vs {b.dtype}")
        elif a.shape != b.shape:
            problems.append(f"{key}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
        elif not torch.equal(a, b):
            largest = float((a.double() - b.double()).abs().max())
            problems.append(f"{key}: values differ (largest difference {largest:.3g})")
    return sorted(problems)


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict (keys, dtypes, shapes and bytes, in key order): equal digests
    mean bitwise-equal tensors.

    Example:
        >>> state_digest({"w": torch.zeros(2)}) == state_digest({"w": torch.zeros(2)})
        True
        >>> state_digest({"w": torch.zeros(2)}) == state_digest({"w": -torch.zeros(2)})
        False
    """
    digest = hashlib.sha256()
    for key, tensor in state.items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _shipped_loader(against: Path | None) -> Callable[[str], dict[str, torch.Tensor]]:
    if against is None:
        return load_weights
    return lambda name: torch.load(against / f"{name}.pt", map_location="cpu", weights_only=True)


def check(
    recipes: list[Recipe],
    opts: Options | None = None,
    against: Path | None = None,
    threads: int | None = None,
) -> bool:
    """Retrain each recipe (without the log's extra measurements) and compare its state dicts
    with the shipped files (or those in ``against``); one line per file.

    Args:
        recipes: The recipes to check.
        opts: Seed and lengths (default: the recipes' own, seed 0).
        against: A folder of ``<name>.pt`` files instead of the package's weights.
        threads: CPU threads instead of each recipe's own.

    Returns:
        Whether every file was reproduced bit for bit.
    """
    opts = opts or Options()
    load = _shipped_loader(against)
    log_line(f"torch {torch.__version__}, CPU kernels {cpu_capability()}")
    ok = True
    for recipe in recipes:
        start = time.perf_counter()
        result = train(recipe, opts, measure=False, threads=threads)
        seconds = time.perf_counter() - start
        n = threads or recipe.threads
        for name in recipe.files:
            problems = differences(result.states[name], load(name))
            if problems:
                ok = False
                shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
                log_line(f"DIFFERS {name}.pt: {len(problems)} tensors ({shown})")
            else:
                log_line(
                    f"same    {name}.pt: {len(result.states[name])} tensors equal "
                    f"({recipe.name}, {seconds:.1f} s on {n} thread{'s' if n > 1 else ''})"
                )
    return ok
