"""Device strings, checked once: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"xpu"``...

Every public callable and every command that takes a device goes through
:func:`resolve_device`, so an absent or unknown device fails at the door with one message that
names the argument, instead of deep in torch.
"""

from __future__ import annotations

import os

import torch

__all__ = ["resolve_device"]


def _available(kind: str) -> tuple[bool, int]:
    """Whether a device type is usable here, and how many devices of it exist."""
    if kind == "cpu":
        return True, 1
    if kind == "cuda":
        ok = torch.cuda.is_available()
        return ok, torch.cuda.device_count() if ok else 0
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        ok = bool(mps is not None and mps.is_available())
        return ok, 1 if ok else 0
    module = getattr(torch, kind, None)  # xpu, hpu, ... expose is_available/device_count
    is_available = getattr(module, "is_available", None)
    if module is None or not callable(is_available):
        return False, 0
    ok = bool(is_available())
    count = getattr(module, "device_count", None)
    return ok, (int(count()) if ok and callable(count) else int(ok))


def resolve_device(device: object, name: str = "device") -> torch.device:
    """A checked :class:`torch.device`, with an index for CUDA (``"cuda"`` -> ``cuda:0``, or
    ``cuda:LOCAL_RANK`` under ``torchrun``).

    Args:
        device: a string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, or a
            :class:`torch.device`.
        name: the argument's name, for error messages.

    Returns:
        The device, present on this machine.

    Raises:
        TypeError: ``device`` is neither a string nor a :class:`torch.device`.
        ValueError: the string is not a torch device, its type is not available here, or its
            index is out of range.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("tpu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `device` must be a torch device such as 'cpu', 'cuda', ...; got 'tpu'
    """
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device.strip())
        except (RuntimeError, ValueError):
            raise ValueError(
                f"`{name}` must be a torch device such as 'cpu', 'cuda', 'cuda:0' or 'mps'; "
                f"got {device!r}"
            ) from None
    else:
        raise TypeError(
            f"`{name}` must be a string such as 'cpu' or 'cuda:0', or a torch.device; got "
            f"{type(device).__name__}"
        )
    ok, count = _available(dev.type)
    if not ok:
        raise ValueError(
            f"`{name}` is {str(dev)!r}, but no {dev.type} device is available on this machine"
            + (" (torch was built without CUDA or no GPU is visible)" if dev.type == "cuda" else "")
        )
    if dev.type == "cuda":
        index = dev.index
        if index is None:
            index = int(os.environ.get("LOCAL_RANK", "0")) % max(count, 1)
        if not 0 <= index < count:
            raise ValueError(
                f"`{name}` is {str(dev)!r}, but this machine has {count} CUDA device(s) "
                f"(cuda:0 to cuda:{count - 1})"
            )
        return torch.device("cuda", index)
    return dev
