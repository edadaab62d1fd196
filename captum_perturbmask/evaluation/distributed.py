"""One process or many: the ``torch.distributed`` process group under ``torchrun``.

:class:`Distributed` starts the process group when ``torchrun`` (or any launcher setting its
environment) runs more than one process, tells each process its rank, and picks its device:
``cuda:LOCAL_RANK`` when CUDA is available under a launcher (one process included), else the
model's device. The evaluation and the ``evaluate`` command share one instance per run.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from captum_perturbmask._core.devices import resolve_device

__all__ = ["Distributed", "launched"]


def launched() -> bool:
    """Whether a launcher such as ``torchrun`` started this process (``LOCAL_RANK`` or
    ``WORLD_SIZE`` is set)."""
    return "LOCAL_RANK" in os.environ or "WORLD_SIZE" in os.environ


class Distributed:
    """``torch.distributed`` under a launcher with ``WORLD_SIZE`` > 1, else one process.

    The process group (gloo on CPU, nccl when CUDA is available) is started here unless it
    already is, and destroyed by :meth:`close` only if it was started here.

    Attributes:
        active: A process group is running.
        rank: This process's rank (0 without one).
        world: The number of processes (1 without a group).
        local_rank: The rank on this machine (``LOCAL_RANK``, 0 by default).

    Example:
        >>> d = Distributed()  # no launcher: one process
        >>> d.rank, d.world, d.active
        (0, 1, False)
        >>> d.close()
    """

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.created = False
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and dist.is_available() and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":  # before any collective: each rank on its own GPU
                torch.cuda.set_device(resolve_device("cuda"))
            dist.init_process_group(backend=backend)
            self.created = True
        self.active = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.active else 0
        self.world = dist.get_world_size() if self.active else 1
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    def device(self, device: object, default: torch.device | None) -> torch.device:
        """The device of this process: ``device`` checked (``"cuda"`` becomes
        ``cuda:LOCAL_RANK`` under a launcher), else ``cuda:LOCAL_RANK`` under a launcher with
        CUDA, else ``default`` (the model's), else the CPU."""
        if device is not None:
            return resolve_device(device)
        if launched() and torch.cuda.is_available():
            return resolve_device("cuda")
        return default if default is not None else torch.device("cpu")

    def barrier(self) -> None:
        """Wait for every rank (nothing without a group)."""
        if self.active:
            if self.dist.get_backend() == "nccl":
                self.dist.barrier(device_ids=[torch.cuda.current_device()])
            else:
                self.dist.barrier()

    def broadcast(self, value: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``value`` on every rank (a picklable object)."""
        if not self.active:
            return value
        box = [value]
        self.dist.broadcast_object_list(box, src=src)
        return box[0]

    def gather(self, items: list[Any]) -> list[Any]:
        """Every rank's ``items``, concatenated in rank order, on every rank."""
        if not self.active:
            return list(items)
        gathered: list[Any] = [None] * self.world
        self.dist.all_gather_object(gathered, items)
        return [x for part in gathered for x in part]

    def close(self) -> None:
        """Destroy the process group if it was started here."""
        if self.created:
            self.dist.destroy_process_group()
            self.created = False
