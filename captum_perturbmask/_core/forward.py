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
        self.clean_bytes_per_row = 0.0  # CUDA memory of the clean pass per row, at resolve
        self._row_index: Tensor | None = None
        self._pos_rows: Tensor | None = None
        self._not_target: Tensor | None = None

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
    def resolve(
        self, inputs: tuple[Tensor, ...], checks: Sequence[tuple[Tensor, BaseException]] = ()
    ) -> Tensor:
        """One clean forward: validate the target, fix the confidence rule, return
        the clean confidence :math:`(B,)`.

        Every check that needs a value from the device (finite inputs and baselines given in
        ``checks`` as ``(flag, error)`` pairs, the target's range, finite clean outputs) is
        decided after **one** host synchronisation; the first failing check raises.

        Raises:
            AssertionError, IndexError: an invalid ``target``, as Captum raises it.
            TypeError: a target of the wrong type or dtype.
            ValueError: an output or target that does not select one value per example, or
                non-finite clean confidences; any error of ``checks``.
        """
        device = inputs[0].device
        index = torch.arange(self.batch, device=device)
        self.autocast = caller_autocast(device)
        if device.type == "cuda":  # allocator statistics: host-side, no synchronisation
            before = torch.cuda.memory_allocated(device)
            peak0 = torch.cuda.max_memory_allocated(device)
        out = self.raw(inputs, index)
        if device.type == "cuda":
            peak = max(torch.cuda.max_memory_allocated(device), peak0)
            self.clean_bytes_per_row = max(peak - before, 0) / self.batch
        self.mode = self._mode_for(out)
        self.n_classes = out.shape[1] if out.dim() >= 2 else 1
        position, bad_target = self._positions(out)
        self.position = position
        self._row_index = self._pos_rows = self._not_target = None
        p0 = self._score(out, index)[0]
        flags = [flag for flag, _ in checks]
        errors = [err for _, err in checks]
        if bad_target is not None:
            flags.append(bad_target)
            errors.append(
                IndexError(
                    f"`target` entries must be class indices in [0, {self.n_classes}) for "
                    f"outputs of shape {tuple(out.shape)}"
                )
            )
        flags.append(~torch.isfinite(p0).all())
        errors.append(None)  # type: ignore[arg-type]
        decided = torch.stack([f.reshape(()).to(device=p0.device) for f in flags]).tolist()
        for failed, err in zip(decided, errors, strict=True):
            if not failed:
                continue
            if err is None:
                raise ValueError(
                    "`forward_func` returned NaN or infinite outputs on the clean inputs "
                    f"(confidence {p0.tolist() if p0.numel() <= 8 else 'of several examples'})"
                )
            raise err
        return p0

    def _positions(self, out: Tensor) -> tuple[Tensor, Tensor | None]:
        """The flat output position of every example's target, and (for tensor targets) a
        device flag that some entry is out of range (decided later, with the other checks).
        Tensor targets never reach the host: they are clamped into range for the gather."""
        per_example = math.prod(out.shape[1:])
        target = self.target
        if isinstance(target, Tensor) and out.dim() == 2:
            t = target.to(out.device).reshape(-1).long()
            if t.numel() == 1:
                t = t.expand(self.batch)
            if t.numel() != self.batch:
                raise ValueError(
                    f"`target` must select one value per example; got {t.numel()} targets for "
                    f"a batch of {self.batch}"
                )
            k = out.shape[1]
            clamped = t.clamp(0, k - 1)
            return clamped, (clamped != t).any()
        if target is None:
            if per_example == 1:
                target = None
            elif out.dim() == 2:
                return out.argmax(1), None
            else:
                raise ValueError(
                    f"`target` is None but the model output has shape {tuple(out.shape)} "
                    "(several values per example); pass a target selecting one value, e.g. a "
                    "tuple index into the non-batch dims"
                )
        else:
            _check_target_range(target, out)
        if isinstance(target, list) and target and isinstance(target[0], int) and out.dim() == 2:
            t = torch.tensor(target, dtype=torch.long)
            if t.numel() != self.batch:
                raise ValueError(
                    f"`target` must select one value per example; got {t.numel()} targets for "
                    f"a batch of {self.batch}"
                )
            if out.device.type == "cuda":
                return t.pin_memory().to(out.device, non_blocking=True), None
            return t.to(out.device), None
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
        return selected.reshape(self.batch).long(), None

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

    def mask_major_index(self, rows: int) -> Tensor:
        """Example of each of ``rows`` mask-major rows (row ``r * B + b`` is example ``b``)."""
        if self._row_index is None or self._row_index.shape[0] < rows:
            self._row_index = torch.arange(rows, device=self.position.device) % self.batch  # type: ignore[union-attr]
        return self._row_index[:rows]

    def score_mask_major(self, rows: tuple[Tensor, ...], masks: int) -> Tensor:
        r"""The fitted score of ``masks * B`` rows ordered mask-major, :math:`(masks, B)`:
        the target's log-odds for ``"softmax"``, ``"sigmoid"`` and callables, the value for
        ``"identity"``. Confidences are :meth:`confidence_of` these scores.

        For ``(B, K)`` logits the log-odds are :math:`z_t - \log\sum_{k \ne t} e^{z_k}`
        (the softmax probability is exactly their sigmoid): a few tensor operations per call.
        """
        n = masks * self.batch
        index = self.mask_major_index(n) if self.args else self.position
        out = self.raw(rows, index)  # type: ignore[arg-type]
        if out.dim() == 2 and self.mode in ("softmax", "sigmoid", "identity"):
            if self.mode == "softmax":
                z = _float(out).view(masks, self.batch, out.shape[1])
                if self._pos_rows is None or self._pos_rows.shape[0] < masks:
                    self._pos_rows = self.position.view(1, -1, 1).expand(  # type: ignore[union-attr]
                        max(masks, 256), -1, 1
                    )
                    not_t = torch.zeros(self.batch, out.shape[1], device=out.device,
                                        dtype=z.dtype)  # fmt: skip
                    self._not_target = not_t.scatter_(1, self.position[:, None], float("-inf"))  # type: ignore[index]
                zt = z.gather(2, self._pos_rows[:masks]).squeeze(2)
                return zt - (z + self._not_target).logsumexp(2)
            if out.shape[1] == 1:
                return _float(out).view(masks, self.batch)
        y, lo = self._score(out, self.mask_major_index(n))
        return (y if lo is None else lo).view(masks, self.batch)

    def confidence_of(self, score: Tensor) -> Tensor:
        """Confidences from :meth:`score_mask_major` scores (the sigmoid of log-odds)."""
        return score if self.mode == "identity" else torch.sigmoid(score)

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
    """Class indices of a list target must lie in ``[0, K)`` (gather would raise a bare
    ``RuntimeError``); ``IndexError`` as Captum's integer indexing raises it. Tensor targets
    are checked on the device (see :meth:`TargetForward.resolve`)."""
    if out.dim() != 2 or not isinstance(target, list) or not target:
        return
    if not isinstance(target[0], int):
        return
    k = out.shape[1]
    bad = [v for v in target if not 0 <= v < k]
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
