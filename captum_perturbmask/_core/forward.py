r"""The one layer that calls the model: rows in, target confidences out.

Every part of the package that runs a model — the attribution methods, the insertion/deletion
metrics, the generative search and the comparison harness — goes through this module, so there
is one rule for three questions:

**Which value of the output is explained (the target)?** Captum's target forms, resolved once
on the clean inputs with Captum's own ``_select_targets`` (so an invalid target raises what
Captum raises) into one flat position per example, kept on the device:

* ``int``, ``tuple``: the same position for every example (a tuple indexes an N-d output, e.g.
  ``(k, i, j)`` of a ``(B, K, H, W)`` segmentation output);
* a tensor of shape ``()`` / ``(1,)`` or ``(B,)``, a list of ``B`` ints or of ``B`` tuples: one
  position per example;
* ``None``: the output itself when the model returns one value per example (``(B,)`` or
  ``(B, 1)``, Captum's meaning), the predicted class (arg-max over dim 1) for ``(B, K)``
  outputs; refused for N-d outputs, which need an explicit target.

**How does an output become a confidence?** One knob, ``confidence``:

* ``"auto"`` (default): ``"softmax"`` when dim 1 of the output has two or more entries,
  ``"sigmoid"`` when the model returns one value per position along dim 1 (``(B,)``,
  ``(B, 1)``, ``(B, 1, H, W)``): a softmax over one logit would always be 1.
* ``"softmax"``: softmax over **dim 1**, the class dimension of ``(B, K)`` logits and of
  ``(B, K, H, W)`` segmentation logits.
* ``"sigmoid"``: elementwise sigmoid (binary or multi-label logits).
* ``"identity"``: the raw output (scores, or a model that already returns probabilities).
* a callable ``fn(output) -> Tensor``: any other map (e.g. a softmax over another dimension);
  the target is then selected from what it returns.

**How are rows fed?** A row is a perturbed copy of one example of the batch; the example's
target and its per-example ``additional_forward_args`` (tensors whose dim 0 is the batch) are
gathered for it, so one forward call can mix examples.

The log-odds :math:`\log p - \log(1 - p)` that the regression estimator fits are computed from
the raw logits for ``"softmax"`` and ``"sigmoid"``, so they never saturate where :math:`p`
rounds to 1; ``"identity"`` has no log-odds (the estimator fits the value itself).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_perturbmask._core.captum_compat import (
    TargetType,
    _format_additional_forward_args,
    _select_targets,
    _validate_target,
)

__all__ = [
    "CONFIDENCES",
    "ConfidenceType",
    "CountForwards",
    "TargetForward",
    "check_confidence",
    "deprecated_alias",
    "gather_rows",
]

CONFIDENCES = ("auto", "softmax", "sigmoid", "identity")

#: ``"auto"``, ``"softmax"``, ``"sigmoid"``, ``"identity"`` or ``fn(output) -> Tensor``.
ConfidenceType = str | Callable[[Tensor], Tensor]


def check_confidence(confidence: object, name: str = "confidence") -> ConfidenceType:
    """Validate the ``confidence`` knob; return it unchanged."""
    if callable(confidence) and not isinstance(confidence, str):
        return confidence  # type: ignore[return-value]
    if not isinstance(confidence, str) or confidence not in CONFIDENCES:
        raise ValueError(
            f"`{name}` must be one of {CONFIDENCES} or a callable fn(output) -> Tensor, "
            f"got {confidence!r}"
        )
    return confidence


def deprecated_alias(
    confidence: ConfidenceType, old_name: str, old_value: object, mapping: dict[Any, str]
) -> ConfidenceType:
    """Map a 0.1 keyword (``apply_softmax=``, ``confidence_fn=``) to ``confidence`` with a
    :class:`FutureWarning`; ``old_value`` ``None`` means the old keyword was not given."""
    if old_value is None:
        return confidence
    import warnings

    if old_value not in mapping:
        raise ValueError(
            f"`{old_name}` must be one of {sorted(map(str, mapping))}, got {old_value!r}"
        )
    warnings.warn(
        f"`{old_name}` is deprecated; use confidence={mapping[old_value]!r} instead",
        FutureWarning,
        stacklevel=3,
    )
    return mapping[old_value]


def gather_rows(args: tuple[Any, ...] | None, index: Tensor, batch: int) -> tuple[Any, ...]:
    """The ``additional_forward_args`` of rows that belong to examples ``index``.

    Tensors whose dim 0 is the batch are indexed; every other argument is passed unchanged
    (Captum's rule for expanding ``additional_forward_args``).
    """
    if not args:
        return ()
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch:
            out.append(a.index_select(0, index.to(a.device)))
        else:
            out.append(a)
    return tuple(out)


def _float(out: Tensor) -> Tensor:
    """Half-precision logits are scored in float32 (softmax and logsumexp need the range)."""
    return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out


class TargetForward:
    """Runs ``forward_func`` on rows, one target value and one confidence per row.

    Args:
        forward_func: the model or any callable; called as
            ``forward_func(*rows, *additional_forward_args)``.
        batch: number of examples :math:`B` the rows belong to.
        target: Captum target (see the module docstring).
        additional_forward_args: Captum's extra forward arguments.
        confidence: see :func:`check_confidence`.

    Call :meth:`resolve` once on the clean inputs before any other method.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        batch: int,
        target: TargetType,
        additional_forward_args: Any,
        confidence: ConfidenceType = "auto",
    ) -> None:
        if not callable(forward_func):
            raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}")
        self.forward_func = forward_func
        self.batch = batch
        self.args = _format_additional_forward_args(additional_forward_args)
        self.confidence = check_confidence(confidence)
        _check_target_type(target)
        _validate_target(batch, target)
        self.target = target
        self.mode = "identity"
        self.n_classes = 1
        self.position: Tensor | None = None  # flat position per example, set by resolve
        self.autocast: tuple[str, bool, torch.dtype] | None = None  # the caller's, at resolve

    # ------------------------------------------------------------------ raw outputs
    def raw(self, rows: tuple[Tensor, ...], index: Tensor) -> Tensor:
        """Model output of ``rows`` (examples ``index``), checked to be a real tensor.

        The model runs under the ``torch.autocast`` state the caller had when :meth:`resolve`
        ran, even inside code that turned autocast off for its own arithmetic.
        """
        args = gather_rows(self.args, index, self.batch)
        if self.autocast is None:
            out = self.forward_func(*rows, *args)
        else:
            device_type, enabled, dtype = self.autocast
            with torch.autocast(device_type, dtype=dtype, enabled=enabled):
                out = self.forward_func(*rows, *args)
        n = rows[0].shape[0]
        if not isinstance(out, Tensor):
            raise TypeError(
                f"`forward_func` must return a tensor, got {type(out).__name__} (a model "
                "returning a tuple or dict needs a wrapper that returns the tensor to explain)"
            )
        if out.dim() == 0 or out.shape[0] != n:
            raise ValueError(
                f"`forward_func` must return one output per row, (N, ...); for {n} rows it "
                f"returned shape {tuple(out.shape)}"
            )
        if out.dtype == torch.bool or out.is_complex() or not out.is_floating_point():
            if self.confidence != "identity" or out.is_complex() or out.dtype == torch.bool:
                raise TypeError(
                    f"`forward_func` must return real floating-point outputs, got {out.dtype}"
                )
            out = out.to(torch.get_default_dtype())
        return out

    # ------------------------------------------------------------------ targets
    def resolve(self, inputs: tuple[Tensor, ...]) -> Tensor:
        """One clean forward: validate the target, fix the confidence rule, return
        the clean confidence :math:`(B,)`.

        Raises:
            AssertionError, IndexError: an invalid ``target``, as Captum raises it.
            TypeError: a target of the wrong type or dtype.
            ValueError: an output or target that does not select one value per example, or
                non-finite clean confidences.
        """
        index = torch.arange(self.batch, device=inputs[0].device)
        self.autocast = caller_autocast(inputs[0].device)
        out = self.raw(inputs, index)
        self.mode = self._mode_for(out)
        per_example = math.prod(out.shape[1:])
        self.n_classes = out.shape[1] if out.dim() >= 2 else 1
        target = self.target
        if target is None:
            if per_example == 1:
                target = None
            elif out.dim() == 2:
                target = out.argmax(1)
            else:
                raise ValueError(
                    f"`target` is None but the model output has shape {tuple(out.shape)} "
                    "(several values per example); pass a target selecting one value, e.g. a "
                    "tuple index into the non-batch dims"
                )
        else:
            _check_target_range(target, out)
        if isinstance(target, Tensor):
            target = target.to(out.device)
        grid = torch.arange(per_example, device=out.device).reshape(out.shape[1:] or (1,))
        grid = grid.expand(out.shape[0], *grid.shape) if out.dim() > 1 else grid
        if out.dim() == 1:
            grid = torch.zeros_like(out, dtype=torch.long)
        selected = _select_targets(grid, target)
        if selected.numel() != self.batch:
            raise ValueError(
                f"`target` must select one value per example; on outputs of shape "
                f"{tuple(out.shape)} it selects shape {tuple(selected.shape)}"
            )
        self.position = selected.reshape(self.batch).long()
        p0 = self._score(out, index)[0]
        if not bool(torch.isfinite(p0).all()):
            raise ValueError(
                "`forward_func` returned NaN or infinite outputs on the clean inputs "
                f"(confidence {p0.tolist() if p0.numel() <= 8 else 'of several examples'})"
            )
        return p0

    def _mode_for(self, out: Tensor) -> str:
        if callable(self.confidence):
            return "callable"
        if self.confidence != "auto":
            if self.confidence == "softmax" and (out.dim() < 2 or out.shape[1] < 2):
                raise ValueError(
                    f"confidence='softmax' needs outputs with several classes along dim 1, got "
                    f"shape {tuple(out.shape)}: a softmax over one logit is always 1; use "
                    "confidence='sigmoid' (a logit) or 'identity' (a probability or score)"
                )
            return self.confidence
        return "softmax" if out.dim() >= 2 and out.shape[1] >= 2 else "sigmoid"

    # ------------------------------------------------------------------ scoring
    def _score(self, out: Tensor, index: Tensor) -> tuple[Tensor, Tensor | None]:
        """Confidence and log-odds (``None`` for identity) of ``out`` at each row's target."""
        assert self.position is not None, "call resolve() first"
        pos = self.position.index_select(0, index.to(self.position.device)).unsqueeze(1)
        n = out.shape[0]
        if self.mode == "softmax":
            z = _float(out).reshape(n, out.shape[1], -1)  # (N, K, R)
            rest = z.shape[2]
            cls, where = pos // rest, pos % rest
            if rest > 1:
                z = z.gather(2, where.unsqueeze(1).expand(n, z.shape[1], 1))
            z = z.squeeze(2)  # (N, K): the logits at the target position
            logp = F.log_softmax(z, 1)
            p = logp.gather(1, cls).squeeze(1).exp()
            others = torch.logsumexp(z.scatter(1, cls, float("-inf")), 1)
            return p, z.gather(1, cls).squeeze(1) - others
        if self.mode == "callable":
            conf = self.confidence(out)  # type: ignore[operator]
            if not isinstance(conf, Tensor) or conf.dim() == 0 or conf.shape[0] != n:
                raise ValueError(
                    "`confidence` callable must return a tensor with one row per output row, "
                    f"got {getattr(conf, 'shape', type(conf).__name__)} for {n} rows"
                )
            p = _float(conf).reshape(n, -1).gather(1, pos).squeeze(1)
            return p, torch.logit(p.clamp(0, 1), eps=1e-6)
        value = _float(out).reshape(n, -1).gather(1, pos).squeeze(1)
        if self.mode == "sigmoid":
            return torch.sigmoid(value), value
        return value, None

    def __call__(self, rows: tuple[Tensor, ...], index: Tensor) -> Tensor:
        """Confidence of each row in its example's target, :math:`(N,)`."""
        return self._score(self.raw(rows, index), index)[0]

    def confidence_and_log_odds(
        self, rows: tuple[Tensor, ...], index: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Confidence :math:`(N,)` and its non-saturating log-odds (``None`` for identity)."""
        return self._score(self.raw(rows, index), index)

    def score_output(self, out: Tensor, index: Tensor) -> Tensor:
        """Confidence of already computed outputs (rows of examples ``index``)."""
        return self._score(out, index)[0]


def caller_autocast(device: torch.device) -> tuple[str, bool, torch.dtype]:
    """The ``torch.autocast`` state of the current code for ``device``'s type."""
    device_type = device.type if device.type in ("cuda", "cpu", "xpu", "mps") else "cpu"
    enabled = torch.is_autocast_enabled(device_type)
    dtype = torch.get_autocast_dtype(device_type)
    return device_type, enabled, dtype


def _check_target_type(target: object) -> None:
    """Types Captum accepts; a clear ``TypeError`` for the rest (floats, bools, strings)."""
    if target is None or isinstance(target, tuple):
        return
    if isinstance(target, bool):
        raise TypeError("`target` must be an int, a tuple, a tensor or a list, got a bool")
    if isinstance(target, int):
        return
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"`target` tensor must hold integers, got dtype {target.dtype}")
        if target.dim() > 1:
            raise ValueError(
                f"`target` tensor must have shape (), (1,) or (batch,), got {tuple(target.shape)}"
            )
        return
    if isinstance(target, list):
        if target and not all(
            (isinstance(t, int) and not isinstance(t, bool)) or isinstance(t, tuple) for t in target
        ):
            raise TypeError(
                "`target` list must hold ints (one class per example) or tuples, got "
                f"{[type(t).__name__ for t in target][:4]}"
            )
        return
    raise TypeError(
        f"`target` must be None, an int, a tuple, a tensor or a list, got {type(target).__name__}"
    )


def _check_target_range(target: TargetType, out: Tensor) -> None:
    """Class indices of list/tensor targets must lie in ``[0, K)`` (gather would raise a bare
    ``RuntimeError``); ``IndexError`` as Captum's integer indexing raises it."""
    if out.dim() != 2:
        return
    k = out.shape[1]
    values: list[int] | None = None
    if isinstance(target, Tensor) and target.numel() > 1:
        values = target.detach().cpu().reshape(-1).tolist()
    elif isinstance(target, list) and target and isinstance(target[0], int):
        values = list(target)
    if values is None:
        return
    bad = [v for v in values if not 0 <= v < k]
    if bad:
        raise IndexError(
            f"`target` entries must be class indices in [0, {k}) for outputs of shape "
            f"{tuple(out.shape)}; got {bad[:5]}"
        )


class CountForwards:
    """Count the rows that go through a model, inside a ``with`` block.

    A module is counted by a forward pre-hook (removed on exit, also after an error); any
    other callable is wrapped: call ``counter.forward`` instead of the callable.

    Example:
        >>> model = torch.nn.Linear(3, 2)
        >>> with CountForwards(model) as counter:
        ...     _ = counter.forward(torch.zeros(5, 3))
        ...     _ = model(torch.zeros(2, 3))
        >>> counter.rows
        7
    """

    def __init__(self, model: Callable[..., Any]) -> None:
        self.model = model
        self.rows = 0
        self._handle: Any = None
        if isinstance(model, nn.Module):
            self.forward: Callable[..., Any] = model
        else:

            def counted(*args: Any, **kwargs: Any) -> Any:
                self._count(args)
                return model(*args, **kwargs)

            self.forward = counted

    def _count(self, args: Sequence[Any]) -> None:
        if args and isinstance(args[0], Tensor) and args[0].dim() > 0:
            self.rows += int(args[0].shape[0])

    def _hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self._count(args)

    def __enter__(self) -> CountForwards:
        self.rows = 0
        if isinstance(self.model, nn.Module):
            self._handle = self.model.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
