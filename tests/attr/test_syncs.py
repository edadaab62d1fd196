"""What a call costs outside the model, counted with a TorchDispatchMode on any machine.

Every ATen operation that would make the host wait for a CUDA device (``.item()``,
``bool(t)``, ``nonzero``, boolean-mask indexing, ``unique``, device-to-host copies,
``tolist``) is counted: the number must be small and must not grow with the budget or the
grid. Operations outside the model per forward call are the launch overhead a GPU pays.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_perturbmask import RISE, PerturbMask
from captum_perturbmask._core.profiling import OpCounter


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


METHODS = {
    "random": lambda m, g: PerturbMask(m, grid_size=g),
    "chain": lambda m, g: PerturbMask(m, grid_size=g, design="chain"),
    "sequential": lambda m, g: PerturbMask(m, grid_size=g, design="sequential"),
    "RISE": lambda m, g: RISE(m, grid_size=g),
}


def _count(method: str, grid: int, budget: int, target: object, batch: int = 2) -> OpCounter:
    model = Net().eval()
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with OpCounter(model) as counter:
        METHODS[method](model, grid).attribute(x, target=target, budget=budget, seed=0)
    return counter


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("target", [1, torch.tensor([1, 2]), [3, 4], None])
def test_host_syncs_are_few_and_do_not_grow_with_the_budget(method: str, target) -> None:
    small = _count(method, 6, 60, target)
    large = _count(method, 6, 600, target)
    assert large.forward_calls > small.forward_calls  # more work ...
    assert large.syncs == small.syncs <= 3, (small.sync_kinds, large.sync_kinds)  # ... same syncs


@pytest.mark.parametrize("method", ["random", "RISE"])
def test_host_syncs_do_not_grow_with_the_grid(method: str) -> None:
    """Up to a 32 x 32 grid (1,024+ features: the mixed-precision solve): no extra sync."""
    counts = {g: _count(method, g, 100, 1).syncs for g in (4, 16, 32)}
    assert len(set(counts.values())) == 1 and counts[4] <= 3, counts


def test_the_counter_sees_syncs_that_item_patching_missed() -> None:
    """bool(), float(), boolean indexing and tolist synchronise without calling .item()."""
    x = torch.rand(8)
    with OpCounter() as counter:
        bool((x > 0.5).any())
        float(x.sum())
        x[x > 0.5]
        x.tolist()
    assert counter.syncs == 4, counter.sync_kinds


def test_ops_outside_the_model_per_forward_call() -> None:
    """The default design at 16 images, 400 passes, 16 perturbations per eval (26 forward
    calls): at most 20 tensor operations outside the model per call, once the interpolation
    tables and the Laplacian of the shape are built (the first call of a shape builds them)."""
    model = Net().eval()
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    PerturbMask(model).attribute(x, target=1, budget=8, seed=0)  # builds the tables
    with OpCounter(model) as counter:
        PerturbMask(model).attribute(x, target=1, budget=400, perturbations_per_eval=16, seed=0)
    assert counter.forward_calls == 26
    assert counter.outside_per_call <= 20, counter.kinds.most_common(12)
    with OpCounter(model) as rise:
        RISE(model).attribute(x, target=1, budget=400, perturbations_per_eval=16, seed=0)
    assert rise.outside_per_call <= 20, rise.kinds.most_common(12)
