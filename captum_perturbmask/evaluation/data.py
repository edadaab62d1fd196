"""Dataset items into batches: a ``torch.utils.data.DataLoader`` over blocks of indices.

The evaluation explains fixed blocks of consecutive dataset indices (the unit of seeding,
sharding and resuming). ``block_loader`` loads the blocks it is given through a
``DataLoader`` (``batch_sampler`` = the blocks, ``collate`` checks every item), with worker
processes and pinned memory when the evaluation runs on a GPU, so items load while the device
computes. A batch never depends on the number of workers: the same blocks, in the same order,
each collated from its items in index order.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

__all__ = ["Batch", "IndexedItems", "block_loader", "check_item", "collate", "dataset_mean"]


def check_item(item: Any, index: int) -> tuple[Tensor, int | None, Tensor | None]:
    """``(input, target, box)`` of dataset item ``index``, checked.

    Raises:
        ValueError: the item is not ``(input, target)`` or ``(input, target, box)`` with a
            floating-point input :math:`(C, H, W)` or :math:`(C, T)`, an int (or one-element
            integer tensor, or ``None``) target and a box of 4 (images) or 2 (series) finite
            numbers; the message names the index.
    """
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
        kind = type(item).__name__ + (f" of length {len(item)}" if isinstance(item, (tuple, list))
                                      else "")  # fmt: skip
        raise ValueError(
            f"dataset item {index} must be (input, target) or (input, target, box), got a {kind}"
        )
    x, target = item[0], item[1]
    box = item[2] if len(item) == 3 else None
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() not in (2, 3):
        what = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else (
            type(x).__name__)  # fmt: skip
        raise ValueError(
            f"dataset item {index}: the input must be a floating-point tensor (C, H, W) or "
            f"(C, T), got a {what}"
        )
    if isinstance(target, Tensor):
        if target.numel() != 1 or target.is_floating_point() or target.dtype == torch.bool:
            raise ValueError(
                f"dataset item {index}: the target must be an int, a one-element integer tensor "
                f"or None, got a {target.dtype} tensor of shape {tuple(target.shape)}"
            )
        target = int(target.item())
    elif target is not None and (isinstance(target, bool) or not isinstance(target, int)):
        raise ValueError(
            f"dataset item {index}: the target must be an int, a one-element integer tensor or "
            f"None, got {type(target).__name__}"
        )
    if box is not None:
        box = torch.as_tensor(box, dtype=torch.float64).flatten()
        expected = 4 if x.dim() == 3 else 2
        if box.numel() != expected or not bool(torch.isfinite(box).all()):
            raise ValueError(
                f"dataset item {index}: the box must hold {expected} finite numbers "
                f"({'x1, y1, x2, y2' if expected == 4 else 'start, end'}), got {box.tolist()}"
            )
    return x, target, box


@dataclass
class _Failed:
    """An item that could not be loaded or checked: its index and the error."""

    index: int
    error: BaseException


class IndexedItems(Dataset):
    """``dataset`` whose item ``i`` is ``(i, checked item)``, or the error it raised (so a
    failing item reaches the main process with its index, from a worker too)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, Any] | _Failed:
        try:
            return index, check_item(self.dataset[index], index)
        except Exception as err:  # noqa: BLE001 - handed to the runner, which decides
            if torch.utils.data.get_worker_info() is not None:
                try:
                    pickle.dumps(err)
                except Exception:  # noqa: BLE001 - an error that cannot cross processes
                    err = RuntimeError(f"{type(err).__name__}: {err}")
            return _Failed(index, err)


@dataclass
class Batch:
    """One block of items, collated.

    Attributes:
        indices: Dataset index of every loaded example.
        inputs: The inputs :math:`(B, C, *S)`, or ``None`` when no item of the block loaded.
        targets: Target of every example (``None``: the model's prediction).
        boxes: Boxes :math:`(B, 4)` or spans :math:`(B, 2)`, NaN rows for items without one;
            ``None`` when no item has one.
        failures: ``(index, error)`` of every item that failed, in index order.
    """

    indices: list[int]
    inputs: Tensor | None
    targets: list[int | None]
    boxes: Tensor | None
    failures: list[tuple[int, BaseException]] = field(default_factory=list)

    def pin_memory(self) -> Batch:
        """Pinned copies of the tensors (the ``DataLoader``'s ``pin_memory`` hook)."""
        self.inputs = None if self.inputs is None else self.inputs.pin_memory()
        return self


def collate(items: Sequence[tuple[int, Any] | _Failed]) -> Batch:
    """The ``Batch`` of one block's items (the ``DataLoader``'s ``collate_fn``); an input
    whose shape differs from the block's first is a failure of that item."""
    xs: list[Tensor] = []
    targets: list[int | None] = []
    boxes: list[Tensor | None] = []
    indices: list[int] = []
    failures: list[tuple[int, BaseException]] = []
    for item in items:
        if isinstance(item, _Failed):
            failures.append((item.index, item.error))
            continue
        index, (x, target, box) = item
        if xs and x.shape != xs[0].shape:
            failures.append((index, ValueError(
                f"dataset item {index}: input shape {tuple(x.shape)} differs from the batch's "
                f"{tuple(xs[0].shape)} (use a transform that gives one size)"
            )))  # fmt: skip
            continue
        indices.append(index)
        xs.append(x)
        targets.append(target)
        boxes.append(box)
    if not xs:
        return Batch(indices, None, targets, None, failures)
    box_t = None
    if any(b is not None for b in boxes):
        width = next(b for b in boxes if b is not None).numel()
        nan = torch.full((width,), float("nan"), dtype=torch.float64)
        box_t = torch.stack([nan if b is None else b for b in boxes])
    return Batch(indices, torch.stack(xs), targets, box_t, failures)


def _workers(device: torch.device, world: int) -> int:
    """Worker processes: none on the CPU (the model needs the cores), up to 4 per rank when a
    GPU computes."""
    if device.type != "cuda":
        return 0
    return max(0, min(4, (os.cpu_count() or 1) // max(world, 1) - 1))


def block_loader(
    dataset: Any,
    blocks: Sequence[Sequence[int]],
    device: torch.device,
    num_workers: int | None = None,
    world: int = 1,
    items_on_cpu: bool = True,
) -> DataLoader:
    """A ``DataLoader`` yielding one ``Batch`` per block, in the order of ``blocks``.

    Args:
        dataset: A map-style dataset of ``(input, target[, box])`` items.
        blocks: Lists of dataset indices.
        device: Where the batches go (CUDA: pinned memory, and workers by default).
        num_workers: Worker processes; ``None``: 0 on the CPU, up to 4 per rank on CUDA.
        world: Processes sharing this machine (the workers' share of the cores).
        items_on_cpu: The items are CPU tensors (items already on a GPU are neither pinned
            nor loaded by workers by default).
    """
    if num_workers is None:
        num_workers = _workers(device, world) if items_on_cpu else 0
    return DataLoader(
        IndexedItems(dataset),
        batch_sampler=[list(b) for b in blocks],
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=device.type == "cuda" and items_on_cpu,
        # the workers' seeds come from this generator, never from the global RNG
        generator=torch.Generator().manual_seed(0),
        prefetch_factor=2 if num_workers else None,
    )


def dataset_mean(loader: DataLoader) -> Tensor:
    """The mean input :math:`(C, *S)` over the batches of ``loader`` (float64 sums in index
    order, so every rank and worker count gives the same bits).

    Raises:
        ValueError: a failing item (the mean would depend on what failed), or no item.
    """
    total: Tensor | None = None
    count = 0
    for batch in loader:
        if batch.failures:
            index, err = batch.failures[0]
            raise ValueError(f"reference='mean': dataset item {index} failed: {err}") from err
        if batch.inputs is None:
            continue
        part = batch.inputs.double().sum(0)
        total = part if total is None else total + part
        count += batch.inputs.shape[0]
    if total is None:
        raise ValueError("reference='mean' needs at least one dataset item")
    return total / count
