"""The modules :func:`~captum_perturbmask.loaders.load_model` wraps a model in: normalisation
as the first layer (:class:`Normalize`), a ``torch.export`` program (:class:`Exported`) and
anything whose output is not a logits tensor (:class:`Logits`).

Each is a plain ``nn.Module``, so a loaded model takes forward hooks (which count forward
passes) and ``.eval()`` whatever it wraps.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Exported", "Logits", "Normalize", "logits_of"]


class Normalize(nn.Module):
    r"""Per-channel normalisation ``(x - mean) / std`` as a model's first layer.

    With it the model takes images in :math:`[0, 1]`, so masked-off pixels are black and the
    saliency map lives in pixel space.

    Args:
        mean: One value per channel.
        std: One positive value per channel.

    Shape:
        - Input: :math:`(B, C, H, W)` with ``C == len(mean)``.
        - Output: the same.

    Raises:
        ValueError: (on call) the input is not :math:`(B, C, H, W)` with ``len(mean)``
            channels.

    Example:
        >>> norm = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        >>> norm(torch.ones(1, 3, 2, 2)).flatten()[:2]
        tensor([2., 2.])
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor([float(m) for m in mean])
        std_t = torch.as_tensor([float(s) for s in std])
        if mean_t.numel() == 0 or mean_t.shape != std_t.shape or not bool((std_t > 0).all()):
            raise ValueError(
                f"`mean` and `std` must be as many values, std positive; got {list(mean)} and "
                f"{list(std)}."
            )
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        channels = self.mean.shape[1]
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(
                f"expected images (N, {channels}, H, W) with {channels} channels, got inputs of "
                f"shape {tuple(x.shape)}"
            )
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def logits_of(out: Any) -> Any:
    """The logits in a model's output: a tensor as is; ``.logits`` of a Hugging Face
    ``ModelOutput`` (or a ``"logits"`` key); the first element of a tuple or list."""
    if isinstance(out, Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(out, dict) and isinstance(out.get("logits"), Tensor):
        return out["logits"]
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    return out


class Logits(nn.Module):
    """A model or callable whose output is reduced to its logits tensor
    (:func:`~captum_perturbmask.loaders.wrappers.logits_of`).

    Used for TorchScript modules (which take no Python hooks), Hugging Face models (which
    return a ``ModelOutput`` and take ``pixel_values=``) and callables that are not modules.

    Args:
        model: The model or callable.
        keyword: Pass the input as this keyword argument (``"pixel_values"``) instead of the
            first positional one.

    Example:
        >>> wrapped = Logits(lambda x: {"logits": x.sum(1)})
        >>> wrapped(torch.ones(2, 3, 4)).shape
        torch.Size([2, 4])
    """

    def __init__(self, model: Callable[..., Any], keyword: str | None = None) -> None:
        super().__init__()
        if isinstance(model, nn.Module):
            self.net = model
        else:
            self.fn = model
        self.keyword = keyword

    def forward(self, x: Tensor) -> Any:
        call = self.net if "net" in self._modules else self.fn
        return logits_of(call(**{self.keyword: x}) if self.keyword else call(x))


class Exported(nn.Module):
    """A ``torch.export`` program as a module that takes any batch size.

    A program exported with a static batch dimension (``torch.export.export(model,
    (torch.rand(1, 3, 224, 224),))``) accepts only that batch size; this wrapper splits larger
    batches into chunks of it (the last one padded by repeating its rows) and concatenates the
    outputs, so the perturbed copies still go through. The graph was traced in the mode it was
    exported in: ``.train()`` / ``.eval()`` change only this wrapper's flag.

    Args:
        program: A ``torch.export.ExportedProgram``.

    Attributes:
        input_shape: The user input's shape with ``None`` for dynamic dimensions, e.g.
            ``(1, 3, 224, 224)`` or ``(None, 3, 224, 224)``.
    """

    def __init__(self, program: Any) -> None:
        super().__init__()
        self.graph_module = program.module()
        self.input_shape = _user_input_shape(program)

    def train(self, mode: bool = True) -> Exported:
        self.training = mode  # the graph is fixed at export; it has no modes to change
        return self

    def forward(self, x: Tensor) -> Any:
        batch = self.input_shape[0] if self.input_shape else None
        if batch is None or x.shape[0] == batch:
            return logits_of(self.graph_module(x))
        outputs = []
        for start in range(0, x.shape[0], batch):
            chunk = x[start : start + batch]
            rows = chunk.shape[0]
            if rows < batch:
                chunk = torch.cat([chunk, chunk[-1:].expand(batch - rows, *chunk.shape[1:])])
            outputs.append(logits_of(self.graph_module(chunk))[:rows])
        return torch.cat(outputs)

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}"


def _user_input_shape(program: Any) -> tuple[int | None, ...] | None:
    """The first user input's shape, ``None`` where a dimension is symbolic (dynamic)."""
    try:
        specs = program.graph_signature.input_specs
        name = next(s.arg.name for s in specs if s.kind.name == "USER_INPUT")
        node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == name)
        shape = node.meta["val"].shape
    except (StopIteration, AttributeError, KeyError):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(int(d) if isinstance(d, int) else None for d in shape)
