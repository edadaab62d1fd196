"""Counting what a call costs outside the model: tensor operations and host synchronisations.

:class:`OpCounter` is a :class:`~torch.utils._python_dispatch.TorchDispatchMode`: every ATen
operation dispatched inside it is counted, split into those that run inside the model (between
its forward pre-hook and hook) and those outside. It also counts the operations that would make
the host wait for a CUDA device if the tensors lived there - ``aten._local_scalar_dense``
(``.item()``, ``float(t)``, ``bool(t)``), ``nonzero``/``is_nonzero``, boolean-mask indexing,
``unique``, ``masked_select``, device-to-host copies - and calls of ``Tensor.tolist``,
``Tensor.numpy`` and ``Tensor.cpu``, which are host copies on a device. On the CPU these are
proxies for the CUDA cost that tests and benchmarks can check on any machine.

Example:
    >>> model = torch.nn.Linear(3, 2)
    >>> with OpCounter(model) as counter:
    ...     y = model(torch.rand(4, 3))
    ...     z = float(y.sum())
    >>> counter.forward_calls, counter.syncs, counter.outside > 0
    (1, 1, True)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["SYNC_OPS", "OpCounter"]

#: ATen operations that synchronise the host with the device (their output size or value is
#: needed on the host).
SYNC_OPS = frozenset(
    {
        "aten._local_scalar_dense.default",
        "aten.nonzero.default",
        "aten.is_nonzero.default",
        "aten._unique2.default",
        "aten.unique_dim.default",
        "aten.unique_consecutive.default",
        "aten.masked_select.default",
        "aten.equal.default",
        "aten.allclose.default",
    }
)
_INDEX_OPS = ("aten.index.Tensor", "aten.index_put.default", "aten.index_put_.default")
_HOST_COPIES = ("tolist", "numpy", "cpu")


def _bool_index(args: tuple[Any, ...]) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, Tensor) and i.dtype == torch.bool for i in indices or ())


class OpCounter(TorchDispatchMode):
    """Count ATen operations inside and outside ``model``, and host synchronisations.

    Args:
        model: an :class:`~torch.nn.Module` (hooks mark its forward; removed on exit) or
            ``None`` to count everything as outside.

    Attributes:
        inside, outside: operations dispatched inside / outside the model's forward.
        forward_calls: forward calls of the model.
        syncs: operations and host copies that would synchronise with a CUDA device.
        sync_kinds: the same, by name.
        kinds: every operation outside the model, by name.
    """

    def __init__(self, model: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.inside = self.outside = self.forward_calls = self.syncs = 0
        self.sync_kinds: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self._depth = 0
        self._handles: list[Any] = []
        self._patched: list[tuple[str, Callable[..., Any]]] = []

    @property
    def outside_per_call(self) -> float:
        """Operations outside the model per forward call."""
        return self.outside / max(self.forward_calls, 1)

    def _sync(self, name: str) -> None:
        self.syncs += 1
        self.sync_kinds[name] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = str(func)
        if self._depth:
            self.inside += 1
        else:
            self.outside += 1
            self.kinds[name] += 1
        if name in SYNC_OPS or (name in _INDEX_OPS and _bool_index(args)):
            self._sync(name)
        elif name in ("aten._to_copy.default", "aten.copy_.default"):
            src = args[1] if name == "aten.copy_.default" else args[0]
            dst = (kwargs or {}).get("device") if name != "aten.copy_.default" else args[0].device
            if isinstance(src, Tensor) and src.device.type != "cpu" and dst is not None:
                if torch.device(dst).type == "cpu":
                    self._sync("device-to-host copy")
        return func(*args, **(kwargs or {}))

    def _pre(self, module: nn.Module, args: Any) -> None:
        self._depth += 1
        self.forward_calls += 1

    def _post(self, module: nn.Module, args: Any, out: Any) -> None:
        self._depth -= 1

    def __enter__(self) -> OpCounter:
        if self.model is not None:
            self._handles = [
                self.model.register_forward_pre_hook(self._pre),
                self.model.register_forward_hook(self._post),
            ]
        for name in _HOST_COPIES:
            original = getattr(Tensor, name)
            self._patched.append((name, original))

            def counted(t: Tensor, *a: Any, _orig: Any = original, _n: str = name, **k: Any):
                self._sync(f"Tensor.{_n}")  # a host copy when the tensor is on a device
                return _orig(t, *a, **k)

            setattr(Tensor, name, counted)
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for name, original in self._patched:
            setattr(Tensor, name, original)
        self._patched.clear()
        for h in self._handles:
            h.remove()
        self._handles.clear()
