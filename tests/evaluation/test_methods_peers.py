"""The HSIC and Sobol entries of the method registry: built at the setting's budget, outside
the default sets."""

from __future__ import annotations

import pytest
import torch

from captum_perturbmask.attr import HSICAttribution, SobolAttribution
from captum_perturbmask.evaluation import default_methods
from captum_perturbmask.evaluation.methods import METHODS


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (2, 2, 40)], ids=["images", "series"])
def test_peers_give_maps_of_the_input_shape(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    n_in = 1
    for s in shape[1:]:
        n_in *= s
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n_in, 3)).eval()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    fns = default_methods(model, x, ["HSIC", "Sobol"], budget=200)
    assert list(fns) == ["HSIC", "Sobol"]
    for name, fn in fns.items():
        maps = fn(x, torch.tensor([0, 2]), 3)
        assert maps.shape == x.shape, name
        assert torch.isfinite(maps).all(), name
        assert torch.equal(maps, fn(x, torch.tensor([0, 2]), 3)), name  # seeded
        assert not torch.equal(maps, fn(x, torch.tensor([0, 2]), 4)), name


def test_peers_run_at_the_setting_budget() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3)).eval()
    x = torch.rand(1, 3, 16, 16)
    calls = {"rows": 0}

    def counted(inp: torch.Tensor) -> torch.Tensor:
        calls["rows"] += inp.shape[0]
        return model(inp)

    for name, cls in (("HSIC", HSICAttribution), ("Sobol", SobolAttribution)):
        calls["rows"] = 0
        default_methods(counted, x, [name], budget=132)[name](x, 0, 0)
        ours = calls["rows"]
        calls["rows"] = 0
        cls(counted).attribute(x, target=0, budget=132, seed=0)
        assert ours == calls["rows"] and 100 <= ours <= 140, name


def test_peers_are_outside_the_default_sets() -> None:
    for name in ("HSIC", "Sobol"):
        assert METHODS[name].default == () and METHODS[name].data == ("images", "series")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2))
    assert not {"HSIC", "Sobol"} & set(default_methods(model, torch.rand(2, 3, 4, 4)))
    assert not {"HSIC", "Sobol"} & set(default_methods(model, torch.rand(2, 2, 24)))
