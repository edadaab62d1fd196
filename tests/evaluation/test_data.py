""":mod:`captum_perturbmask.evaluation.data`: items checked, blocks collated through a
``DataLoader``, the dataset mean."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from captum_perturbmask.evaluation.data import block_loader, check_item, collate, dataset_mean

from .conftest import Boxed


def test_check_item_normalises_targets_and_boxes() -> None:
    x, target, box = check_item((torch.rand(3, 4, 4), torch.tensor(2), [1, 2, 3, 4]), 7)
    assert target == 2 and box.dtype == torch.float64 and box.tolist() == [1, 2, 3, 4]
    assert check_item((torch.rand(2, 9), None), 0)[1:] == (None, None)
    with pytest.raises(ValueError, match="item 7: the box must hold 2"):
        check_item((torch.rand(2, 9), 0, [1.0, 2.0, 3.0]), 7)


def test_blocks_come_in_order_with_failures_named() -> None:
    class Flaky(Boxed):
        def __getitem__(self, i):
            if i == 3:
                raise OSError("unreadable file")
            if i == 5:
                return torch.rand(3, 5, 5), 0
            return super().__getitem__(i)

    blocks = [[0, 1, 2], [3, 4, 5], [6]]
    batches = list(block_loader(Flaky(7), blocks, torch.device("cpu")))
    assert [b.indices for b in batches] == [[0, 1, 2], [4], [6]]
    assert batches[0].inputs.shape == (3, 3, 8, 8) and batches[0].targets == [0, None, 2]
    assert batches[0].boxes.shape == (3, 4)
    failures = batches[1].failures
    assert [i for i, _ in failures] == [3, 5]
    assert isinstance(failures[0][1], OSError) and "input shape" in str(failures[1][1])


def test_collate_mixes_items_with_and_without_boxes() -> None:
    items = [
        (0, (torch.zeros(1, 4), 0, None)),
        (1, (torch.ones(1, 4), 1, torch.tensor([1.0, 3.0]))),
    ]
    batch = collate(items)
    assert batch.inputs.shape == (2, 1, 4) and torch.isnan(batch.boxes[0]).all()
    assert batch.boxes[1].tolist() == [1.0, 3.0]
    assert collate([]).inputs is None


def test_dataset_mean_is_the_same_with_workers() -> None:
    x = torch.rand(9, 2, 5, generator=torch.Generator().manual_seed(0))
    data = TensorDataset(x, torch.zeros(9, dtype=torch.long))
    blocks = [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    none = dataset_mean(block_loader(data, blocks, torch.device("cpu"), num_workers=0))
    two = dataset_mean(block_loader(data, blocks, torch.device("cpu"), num_workers=2))
    torch.testing.assert_close(none, x.double().mean(0), rtol=0, atol=1e-12)
    assert torch.equal(none, two)
