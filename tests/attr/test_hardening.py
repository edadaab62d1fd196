"""Bad inputs found by fuzzing, one case each: a clear error naming the argument, or Captum's.

Every case used to end in a silent NaN, a result computed from a wrong reading, or an obscure
error deep in torch.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from captum_perturbmask import RISE, PerturbMask
from captum_perturbmask.evaluation import compare
from captum_perturbmask.metrics import deletion_auc, insertion_auc, run_consistency

X = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def model(x: torch.Tensor) -> torch.Tensor:
    m = x.flatten(1).mean(1)
    return torch.stack([m, 1 - m, 0.5 * m], 1)


FAST = dict(budget=8, seed=0)
CASES = [
    # silent NaN before
    (dict(baselines=math.nan), ValueError, "baselines"),
    (dict(baselines=math.inf), ValueError, "baselines"),
    (dict(eta=math.inf), ValueError, "eta"),
    (dict(eta=math.nan), ValueError, "eta"),
    # obscure errors deep in torch before
    (dict(feature_mask=torch.zeros(1, 3, 5, 5, dtype=torch.long)), ValueError, "feature_mask"),
    (dict(baselines=torch.zeros(2, 3, 8, 1, 2)), ValueError, "baselines"),
    (dict(baselines=torch.zeros(3, 3, 8, 8)), ValueError, "baselines"),
    (dict(target=[0, -1]), IndexError, "target"),
    (dict(target=torch.tensor([0, 3])), IndexError, "target"),
    (dict(target=torch.tensor([0.0, 1.0])), TypeError, "target"),
    (dict(grid_size=8.0), TypeError, "grid_size"),
    (dict(fine_grid_size=2.5), TypeError, "fine_grid_size"),
    (dict(grid_size=True), TypeError, "grid_size"),
    (dict(seed=2**64), ValueError, "seed"),
    # lax validation before
    (dict(baselines=True), TypeError, "baselines"),
    (dict(baselines=torch.zeros(1, 3, 8, 8, dtype=torch.bool)), TypeError, "baselines"),
    (dict(baselines=torch.zeros(1, 3, 8, 8, dtype=torch.complex64)), TypeError, "baselines"),
    (dict(random_shift="no"), TypeError, "random_shift"),
    (dict(show_progress="x"), TypeError, "show_progress"),
]


#: configuration knobs: given to the constructor, checked there
CONFIG = ("eta", "grid_size", "fine_grid_size", "random_shift")


def _split(kwargs: dict) -> tuple[dict, dict]:
    config = {k: v for k, v in kwargs.items() if k in CONFIG}
    call = {k: v for k, v in kwargs.items() if k not in CONFIG}
    return config, call


@pytest.mark.parametrize(("kwargs", "error", "match"), CASES)
def test_perturb_mask_bad_input(kwargs: dict, error: type, match: str) -> None:
    config, call = _split(kwargs)
    with pytest.raises(error, match=match):
        PerturbMask(model, **config).attribute(X, **{"target": 0, **FAST, **call})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [c for c in CASES if "eta" not in c[0] and "random_shift" not in c[0]
     and "fine_grid_size" not in c[0]],
)  # fmt: skip
def test_rise_bad_input(kwargs: dict, error: type, match: str) -> None:
    config, call = _split(kwargs)
    with pytest.raises(error, match=match):
        RISE(model, **config).attribute(X, **{"target": 0, **FAST, **call})


@pytest.mark.parametrize("dtype", [torch.long, torch.bool, torch.complex64])
def test_non_real_logits_are_a_type_error(dtype: torch.dtype) -> None:
    with pytest.raises(TypeError, match="forward_func"):
        PerturbMask(lambda x: model(x).to(dtype)).attribute(X, target=0, **FAST)


def test_a_model_nan_only_on_the_clean_input_is_caught_with_target_none() -> None:
    clean = {"done": False}

    def nan_first(x: torch.Tensor) -> torch.Tensor:
        out = model(x)
        if not clean["done"]:
            clean["done"] = True
            return out * math.nan
        return out

    with pytest.raises(ValueError, match="clean inputs"):
        PerturbMask(nan_first).attribute(X, **FAST)


def test_metrics_refuse_nan_substrates_and_nan_outputs() -> None:
    attr = torch.rand(2, 8, 8)
    with pytest.raises(ValueError, match="substrate"):
        insertion_auc(model, X, attr, 0, substrate=math.nan)
    with pytest.raises(ValueError, match="NaN"):
        deletion_auc(lambda x: model(x) * math.nan, X, attr, 0)


def test_metrics_and_compare_take_one_output_per_example() -> None:
    single = nn.Sequential(nn.Flatten(), nn.Linear(192, 1)).eval()
    auc = deletion_auc(single, X, torch.rand(2, 8, 8), n_steps=4)  # sigmoid of the logit
    assert auc.shape == (2,) and torch.isfinite(auc).all()
    table = compare(single, X, {"pixels": lambda x, t, s: x.abs()}, seeds=(0,), n_steps=4)
    assert 0 <= table["pixels"]["insertion"] <= 1


def test_run_consistency_on_empty_maps() -> None:
    with pytest.raises(ValueError, match="at least one feature"):
        run_consistency(torch.rand(2, 2, 0))
