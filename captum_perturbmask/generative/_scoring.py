"""How a classifier scores variations: the confidence in the target and the kept decision."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_perturbmask._core.captum_compat import TargetType
from captum_perturbmask._core.forward import ConfidenceType, TargetForward
from captum_perturbmask.generative._search import FiniteGuard


class Scorer:
    """The classifier through the forward layer: one confidence and one decision per row.

    The target is resolved once on the clean inputs by :class:`TargetForward` (Captum's target
    forms, ``None`` = predicted class or the output itself). The *decision* of a row is the
    arg-max class along dim 1 at the target's position when the output has two or more
    entries there, and ``confidence >= threshold`` for one value per example.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        inputs: Tensor,
        target: TargetType,
        confidence: ConfidenceType,
        threshold: float,
    ) -> None:
        self.calls = 0
        self.out_shape: tuple[int, ...] = ()

        def model(*args: Any) -> Any:
            out = forward_func(*args)
            self.calls += 1
            if isinstance(out, Tensor):
                self.out_shape = tuple(out.shape[1:])
            return out

        n = inputs.shape[0]
        try:
            self.runner = TargetForward(model, n, target, None, confidence)
        except AssertionError as err:  # Captum's length check
            raise ValueError(f"`target` does not fit the {n} inputs: {err}") from err
        try:
            self.input_confidence = self.runner.resolve((inputs,)).detach()
        except (AssertionError, IndexError) as err:
            if self.calls == 0:
                raise  # raised inside the model
            raise ValueError(
                f"`target` does not select a value of the classifier output of shape "
                f"{(n, *self.out_shape)}: {err}"
            ) from err
        assert self.runner.position is not None
        self.threshold = threshold
        self.position = self.runner.position
        shape = self.out_shape
        self.has_classes = len(shape) >= 1 and shape[0] >= 2
        self.n_classes = shape[0] if self.has_classes else 1
        self.rest = math.prod(shape[1:]) if self.has_classes else 1
        self.target_class = self.position // self.rest
        self.where = self.position % self.rest

    def _logits(self, out: Tensor, index: Tensor) -> Tensor:
        """Output at each row's target location, :math:`(M, K)`."""
        m = out.shape[0]
        z = out.reshape(m, self.n_classes, -1)
        if self.rest > 1:
            where = self.where.index_select(0, index)
            z = z.gather(2, where.view(m, 1, 1).expand(m, self.n_classes, 1))
        return z[:, :, 0]

    def score(self, rows: Tensor, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Confidence in the target, decision and "decision kept", each :math:`(M,)`.

        Raises:
            ValueError: if the classifier returns NaN/inf.
        """
        if self.has_classes:
            out = self.runner.raw((rows,), index)
            conf = self.runner.score_output(out, index)
            pred = self._logits(out, index).argmax(dim=1)
            kept = pred == self.target_class.index_select(0, index)
        else:
            conf = self.runner((rows,), index)
            kept = conf >= self.threshold
            pred = kept.long()
        if not bool(torch.isfinite(conf).all()):
            raise ValueError(
                "forward_func returned NaN or infinite outputs on the variants; scoring needs "
                "finite outputs"
            )
        return conf, pred, kept

    def classes(self, cf_target: int | list[int] | Tensor, n: int) -> Tensor:
        """``cf_target`` (checked by :class:`CounterfactualConfig`) as classes :math:`(N,)`."""
        name = "CounterfactualConfig.cf_target"
        if not self.has_classes:
            raise ValueError(
                f"`{name}` needs a classifier with classes along dim 1 of its output, got "
                f"outputs of shape {(n, *self.out_shape)}"
            )
        t = torch.as_tensor(cf_target, dtype=torch.long).reshape(-1)
        if t.numel() == 1:
            t = t.expand(n)
        if t.numel() != n:
            raise ValueError(f"`{name}` must hold 1 or {n} classes, got {t.numel()}.")
        if bool((t >= self.n_classes).any()):
            raise ValueError(f"`{name}` must be in [0, {self.n_classes}), got {t.tolist()}.")
        return t.to(self.position.device)

    def margin(
        self, rows: Tensor, index: Tensor, toward: Tensor | None, guard: FiniteGuard
    ) -> Tensor:
        """Signed distance to the wanted decision, :math:`(M,)`; > 0 while not reached."""
        if self.has_classes:
            z = self._logits(self.runner.raw((rows,), index), index)
            cls = self.target_class.index_select(0, index) if toward is None else toward
            chosen = z.gather(1, cls[:, None])[:, 0]
            others = z.scatter(1, cls[:, None], float("-inf")).amax(dim=1)
            gap = chosen - others if toward is None else others - chosen
        else:
            conf, log_odds = self.runner.confidence_and_log_odds((rows,), index)
            if log_odds is None:
                gap = conf - self.threshold
            else:
                t = min(max(self.threshold, 1e-6), 1 - 1e-6)
                gap = log_odds - math.log(t / (1 - t))
        guard.watch("forward_func", gap)
        return gap
