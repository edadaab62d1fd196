"""Tests for run consistency (pairwise Spearman and top-k IoU across seeds)."""

import itertools
import math

import pytest
import scipy.stats
import torch

from captum_perturbmask.metrics import average_ranks, run_consistency


def test_smoke_shapes_and_identical_runs(device, dtype) -> None:
    maps = torch.rand(3, 4, 2, 5, 5, dtype=dtype, device=device)
    res = run_consistency(maps)
    assert res.spearman.shape == (4,) and res.top_k_iou.shape == (4,)
    assert res.spearman.dtype == dtype and res.spearman.device.type == device.type
    same = run_consistency([maps[0], maps[0].clone()])
    torch.testing.assert_close(same.spearman, torch.ones(4, dtype=dtype, device=device))
    torch.testing.assert_close(same.top_k_iou, torch.ones(4, dtype=dtype, device=device))


def test_average_ranks_matches_scipy() -> None:
    values = torch.randint(0, 5, (6, 30), generator=torch.Generator().manual_seed(0)).double()
    expected = torch.from_numpy(scipy.stats.rankdata(values.numpy(), axis=1))
    torch.testing.assert_close(average_ranks(values), expected)


@pytest.mark.parametrize("ties", [False, True])
def test_spearman_matches_scipy(ties: bool, dtype, tol) -> None:
    g = torch.Generator().manual_seed(1)
    maps = torch.randn(4, 3, 6, 7, generator=g, dtype=dtype)  # S=4 runs, B=3, (H, W)
    if ties:
        maps = (maps * 2).round()
    res = run_consistency(maps)
    for b in range(3):
        pairs = [
            scipy.stats.spearmanr(maps[i, b].flatten().numpy(), maps[j, b].flatten().numpy())[0]
            for i, j in itertools.combinations(range(4), 2)
        ]
        torch.testing.assert_close(
            res.spearman[b], torch.tensor(sum(pairs) / 6, dtype=dtype), **tol
        )


@pytest.mark.parametrize("top_k", [0.05, 0.3, 1.0, 1, 7])
def test_top_k_iou_matches_sets(top_k) -> None:
    g = torch.Generator().manual_seed(2)
    maps = torch.rand(3, 2, 4, 20, generator=g)  # time series (B, C, T), N = 80
    res = run_consistency(list(maps), top_k=top_k)
    k = top_k if isinstance(top_k, int) else max(1, math.ceil(top_k * 80))
    for b in range(2):
        sets = [set(torch.topk(maps[s, b].flatten(), k).indices.tolist()) for s in range(3)]
        ious = [len(a & c) / len(a | c) for a, c in itertools.combinations(sets, 2)]
        assert res.top_k_iou[b].item() == pytest.approx(sum(ious) / 3, abs=1e-6)


def test_hand_values_and_constant_maps() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    res = run_consistency([a, b], top_k=2)
    torch.testing.assert_close(res.spearman, torch.tensor([-1.0]))
    torch.testing.assert_close(res.top_k_iou, torch.tensor([0.0]))
    constant = run_consistency([torch.ones(1, 4), torch.ones(1, 4)], top_k=2)
    assert torch.isnan(constant.spearman).all()  # as scipy.stats.spearmanr
    torch.testing.assert_close(constant.top_k_iou, torch.tensor([1.0]))  # same tie-break


def test_sequence_and_stacked_agree() -> None:
    maps = torch.rand(3, 2, 8, 8)
    stacked, listed = run_consistency(maps), run_consistency(list(maps))
    assert torch.equal(stacked.spearman, listed.spearman)
    assert torch.equal(stacked.top_k_iou, listed.top_k_iou)


@pytest.mark.parametrize(
    ("attributions", "kwargs", "error", "match"),
    [
        (torch.rand(1, 2, 5), {}, ValueError, "at least 2 runs"),
        ([torch.rand(2, 5)], {}, ValueError, "at least 2 runs"),
        ([torch.rand(2, 5), torch.rand(2, 6)], {}, ValueError, "share one shape"),
        ([torch.rand(2, 5), "map"], {}, TypeError, r"attributions\[1\]"),
        (torch.ones(2, 2, 5, dtype=torch.long), {}, TypeError, "floating point"),
        (torch.full((2, 2, 5), math.nan), {}, ValueError, "finite"),
        (torch.rand(2, 5), {}, ValueError, "feature dim"),
        ("maps", {}, TypeError, "attributions"),
        (torch.rand(2, 2, 5), {"top_k": 0.0}, ValueError, "top_k"),
        (torch.rand(2, 2, 5), {"top_k": 1.5}, ValueError, "top_k"),
        (torch.rand(2, 2, 5), {"top_k": 6}, ValueError, "top_k"),
        (torch.rand(2, 2, 5), {"top_k": 0}, ValueError, "top_k"),
        (torch.rand(2, 2, 5), {"top_k": True}, TypeError, "top_k"),
        (torch.rand(2, 2, 5), {"top_k": "5%"}, TypeError, "top_k"),
    ],
)
def test_bad_inputs(attributions, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        run_consistency(attributions, **kwargs)


@pytest.mark.parametrize("shape", [(2, 1, 0), (2, 3, 3, 0)])
def test_empty_maps_are_refused(shape: tuple) -> None:
    with pytest.raises(ValueError, match="at least one feature"):
        run_consistency(torch.rand(*shape))
