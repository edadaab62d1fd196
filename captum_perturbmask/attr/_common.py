"""Shared plumbing of the perturbation methods: validation, targets, baselines, batched forwards.

Everything here is private. Inputs arrive as Captum does it (tensor or tuple of tensors,
Captum's target and ``additional_forward_args`` forms) and leave as per-row tensors that the
mask loops of :class:`~captum_perturbmask.PerturbMask` and :class:`~captum_perturbmask.RISE`
feed to the model in chunks of at most ``perturbations_per_eval`` rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_perturbmask._captum_compat import (
    _format_additional_forward_args,
    _format_baseline,
    _select_targets,
    _validate_target,
)
from captum_perturbmask._checks import blur

CONFIDENCES = ("softmax", "sigmoid", "identity")


def check_inputs(inputs: tuple[Tensor, ...]) -> None:
    """Validate a formatted tuple of input tensors (shape, dtype, batch, finiteness)."""
    if len(inputs) == 0:
        raise ValueError("`inputs` must contain at least one tensor, got an empty tuple")
    batch = None
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"`inputs[{i}]` must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2:
            raise ValueError(
                f"`inputs[{i}]` must have a batch dimension and at least one feature "
                f"dimension, e.g. (B, C, H, W) or (B, C, T); got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"`inputs[{i}]` must be a floating-point tensor, got {x.dtype}")
        if x.shape[0] == 0:
            raise ValueError(f"`inputs[{i}]` is an empty batch (shape {tuple(x.shape)})")
        if batch is None:
            batch = x.shape[0]
        elif x.shape[0] != batch:
            raise ValueError(
                f"all `inputs` must share the batch size; inputs[0] has {batch}, "
                f"inputs[{i}] has {x.shape[0]}"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"`inputs[{i}]` contains NaN or infinite values")
    if len({x.device for x in inputs}) > 1:
        raise ValueError("all `inputs` must be on the same device")


def format_baselines(
    baselines: Any, inputs: tuple[Tensor, ...], blur_kernel_size: int = 11, blur_sigma: float = 5.0
) -> tuple[Tensor, ...]:
    """Turn Captum-style ``baselines`` into tensors broadcastable to each input.

    Accepts ``None`` (zeros), a scalar, a tensor of the input's shape or with batch size 1, the
    string ``"blur"`` (a Gaussian blur of the input, the insertion metric's substrate), or a
    tuple of those, one per input tensor.
    """
    if isinstance(baselines, str):
        baselines = (baselines,) * len(inputs)
    if isinstance(baselines, tuple):  # "blur" entries become tensors; lengths checked below
        baselines = tuple(
            _named_baseline(b, inputs[i], i, blur_kernel_size, blur_sigma) if i < len(inputs) else b
            for i, b in enumerate(baselines)
        )
    formatted = _format_baseline(baselines, inputs)
    if len(formatted) != len(inputs):
        raise ValueError(
            f"`baselines` must have one entry per input tensor ({len(inputs)}), "
            f"got {len(formatted)}"
        )
    out = []
    for i, (b, x) in enumerate(zip(formatted, inputs, strict=True)):
        if isinstance(b, (int, float)):
            out.append(torch.full((1,) + x.shape[1:], float(b), dtype=x.dtype, device=x.device))
            continue
        if not isinstance(b, Tensor):
            raise TypeError(f"`baselines[{i}]` must be a tensor, a number or 'blur'")
        b = b.to(device=x.device, dtype=x.dtype)
        if b.dim() == x.dim() - 1:
            b = b.unsqueeze(0)
        if b.dim() != x.dim() or b.shape[0] not in (1, x.shape[0]):
            raise ValueError(
                f"`baselines[{i}]` must have the input's shape {tuple(x.shape)} or batch size 1, "
                f"got {tuple(b.shape)}"
            )
        try:
            torch.broadcast_shapes(b.shape[1:], x.shape[1:])
        except RuntimeError as err:
            raise ValueError(
                f"`baselines[{i}]` of shape {tuple(b.shape)} does not broadcast to the input "
                f"shape {tuple(x.shape)}"
            ) from err
        if not bool(torch.isfinite(b).all()):
            raise ValueError(f"`baselines[{i}]` contains NaN or infinite values")
        out.append(b)
    return tuple(out)


def _named_baseline(b: Any, x: Tensor, i: int, kernel_size: int, sigma: float) -> Any:
    """A string baseline (only ``"blur"``) as a tensor; anything else unchanged."""
    if not isinstance(b, str):
        return b
    if b != "blur":
        raise ValueError(f"`baselines[{i}]` string must be 'blur', got {b!r}")
    if x.dim() not in (3, 4):
        raise ValueError(
            f"'blur' baselines need (B, C, H, W) or (B, C, T) inputs, got {x.dim()}-D inputs[{i}]"
        )
    return blur(x, kernel_size, sigma)


class RowForward:
    """Runs ``forward_func`` on rows that each belong to one example of the batch.

    A row ``r`` is a perturbed copy of example ``image_index[r]``; the target and the
    ``additional_forward_args`` of that example are gathered for it, so a chunk of rows can mix
    examples. Returns the confidence of each row in its target, in ``[0, 1]`` unless
    ``confidence="identity"``.
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        inputs: tuple[Tensor, ...],
        target: Any,
        additional_forward_args: Any,
        confidence: str,
    ) -> None:
        if confidence not in CONFIDENCES:
            raise ValueError(f"`confidence` must be one of {CONFIDENCES}, got {confidence!r}")
        self.forward_func = forward_func
        self.confidence = confidence
        self.batch = inputs[0].shape[0]
        self.args = _format_additional_forward_args(additional_forward_args)
        _validate_target(self.batch, target)
        self.target = target
        self.columns = torch.zeros(self.batch, dtype=torch.long)  # set by resolve_target

    def _rows_args(self, index: Tensor) -> tuple[Any, ...]:
        if self.args is None:
            return ()
        out = []
        for a in self.args:
            if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == self.batch:
                out.append(a.index_select(0, index.to(a.device)))
            else:
                out.append(a)
        return tuple(out)

    def raw(self, rows: tuple[Tensor, ...], index: Tensor) -> Tensor:
        """Model output (N, classes) of ``rows``, validated."""
        out = self.forward_func(*rows, *self._rows_args(index))
        if not isinstance(out, Tensor):
            raise TypeError(f"`forward_func` must return a tensor, got {type(out).__name__}")
        if out.dim() != 2 or out.shape[0] != rows[0].shape[0]:
            raise ValueError(
                "`forward_func` must return a (batch, classes) tensor; for "
                f"{rows[0].shape[0]} rows it returned shape {tuple(out.shape)}"
            )
        return out

    def to_confidence(self, out: Tensor) -> Tensor:
        if self.confidence == "softmax":
            return F.softmax(
                out.float() if out.dtype in (torch.float16, torch.bfloat16) else out, 1
            )
        if self.confidence == "sigmoid":
            return torch.sigmoid(out)
        return out

    def _columns(self, index: Tensor) -> Tensor:
        """Target column of each row, ``(N, 1)`` (resolved once by :func:`resolve_target`)."""
        return self.columns.index_select(0, index).unsqueeze(1)

    def __call__(self, rows: tuple[Tensor, ...], index: Tensor) -> Tensor:
        """Confidence of each row in its example's target, ``(N,)``."""
        return self.to_confidence(self.raw(rows, index)).gather(1, self._columns(index)).squeeze(1)

    def confidence_and_log_odds(
        self, rows: tuple[Tensor, ...], index: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Confidence ``p`` and its log-odds ``log p - log(1 - p)``, the latter computed from
        the raw outputs so that it does not saturate where ``p`` rounds to 1."""
        out = self.raw(rows, index)
        col = self._columns(index)
        p = self.to_confidence(out).gather(1, col).squeeze(1)
        if self.confidence == "softmax":
            z = out.float() if out.dtype in (torch.float16, torch.bfloat16) else out
            others = torch.logsumexp(z.scatter(1, col, float("-inf")), 1)
            log_odds = z.gather(1, col).squeeze(1) - others
        elif self.confidence == "sigmoid":
            log_odds = out.gather(1, col).squeeze(1)
        else:
            q = p.clamp(1e-6, 1 - 1e-6)
            log_odds = torch.log(q) - torch.log1p(-q)
        return p, log_odds


def resolve_target(runner: RowForward, inputs: tuple[Tensor, ...]) -> Tensor:
    """Validate the target on the clean inputs; return the clean confidence ``(B,)``.

    ``target=None`` selects the model's predicted class on the clean input (documented
    convention of this package). The selection goes through Captum's ``_select_targets`` once,
    so invalid targets raise what Captum raises; afterwards the target is one column index per
    example, kept on the device, so the mask loop gathers without any host synchronisation.
    """
    index = torch.arange(runner.batch, device=inputs[0].device)
    out = runner.raw(inputs, index)
    if runner.confidence == "softmax" and out.shape[1] == 1:
        raise ValueError(
            "`forward_func` returns one column, so a softmax confidence is always 1; use "
            "confidence='sigmoid' (a logit) or confidence='identity' (a probability)"
        )
    target = out.argmax(1) if runner.target is None else runner.target
    if isinstance(target, Tensor) and target.numel() > 1:
        target = target.to(out.device)
    p0 = _select_targets(runner.to_confidence(out), target)
    if p0.dim() != 1:
        raise ValueError(
            f"`target` must select one value per example; selection has shape {tuple(p0.shape)}"
        )
    cols = torch.arange(out.shape[1], device=out.device).expand_as(out)
    runner.columns = _select_targets(cols, target).reshape(-1).long()
    return p0


def chunks(total: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(total)`` in pieces of at most ``size``."""
    return [(s, min(s + size, total)) for s in range(0, total, size)]


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A private generator on ``device``: seeded when ``seed`` is given, never the global RNG."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"`seed` must be an int or None, got {type(seed).__name__}")
        gen.manual_seed(seed)
    return gen
