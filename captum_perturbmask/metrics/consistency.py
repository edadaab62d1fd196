"""Run-to-run consistency of stochastic saliency methods (Bansal et al., 2020, "SAM").

Bansal, Agarwal & Nguyen, "SAM: The Sensitivity of Attribution Methods to
Hyperparameters", CVPR 2020: a method whose maps change with the random seed is judged by
the mean pairwise Spearman rank correlation and the mean pairwise top-k IoU of its maps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import NamedTuple

import torch
from torch import Tensor

from captum_perturbmask._core.checks import check_finite, check_tensor
from captum_perturbmask._core.ranking import rank_map

__all__ = ["RunConsistency", "average_ranks", "run_consistency"]


class RunConsistency(NamedTuple):
    """Result of :func:`run_consistency`.

    Attributes:
        spearman: Mean pairwise Spearman rank correlation per input, shape :math:`(B,)`,
            in :math:`[-1, 1]`; NaN where a map is constant (as ``scipy.stats.spearmanr``).
        top_k_iou: Mean pairwise IoU of the top-k element sets per input, shape :math:`(B,)`,
            in :math:`[0, 1]`.
    """

    spearman: Tensor
    top_k_iou: Tensor


def average_ranks(values: Tensor) -> Tensor:
    """Ranks (1-based) of each row's elements, ties sharing their average rank.

    ``average_ranks(torch.tensor([[3.0, 1.0, 3.0]]))`` is ``[[2.5, 1.0, 2.5]]``.

    The ``"average"`` method of ``scipy.stats.rankdata``, batched over rows.

    Args:
        values: Tensor of shape :math:`(*, N)`.

    Returns:
        Ranks of shape :math:`(*, N)`, in ``values``' floating dtype (float32 for integers).

    Example:
        >>> import torch
        >>> average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0]]))
        tensor([[3.5000, 1.0000, 3.5000, 2.0000]])
    """
    values = check_tensor(values, "values")
    dtype = values.dtype if values.is_floating_point() else torch.get_default_dtype()
    ordered = torch.sort(values, dim=-1).values.contiguous()
    below = torch.searchsorted(ordered, values.contiguous(), right=False)
    at_most = torch.searchsorted(ordered, values.contiguous(), right=True)
    return (below + at_most + 1).to(dtype) / 2


def _stack_runs(attributions: Tensor | Sequence[Tensor]) -> Tensor:
    if isinstance(attributions, Tensor):
        runs = attributions
    elif isinstance(attributions, Sequence) and not isinstance(attributions, str):
        items = [a[0] if isinstance(a, tuple) and len(a) == 1 else a for a in attributions]
        for i, item in enumerate(items):
            if not isinstance(item, Tensor):
                raise TypeError(
                    f"`attributions[{i}]` must be a torch.Tensor, got {type(item).__name__}."
                )
            if item.shape != items[0].shape:
                raise ValueError(
                    f"`attributions` runs must share one shape, run 0 has "
                    f"{tuple(items[0].shape)} and run {i} has {tuple(item.shape)}."
                )
        if len(items) < 2:
            raise ValueError(f"`attributions` must hold at least 2 runs, got {len(items)}.")
        runs = torch.stack(items)
    else:
        raise TypeError(
            "`attributions` must be a tensor (S, B, ...) or a sequence of S tensors (B, ...), "
            f"got {type(attributions).__name__}."
        )
    if not runs.is_floating_point():
        raise TypeError(f"`attributions` must be floating point, got dtype {runs.dtype}.")
    if runs.ndim < 3:
        raise ValueError(
            "`attributions` must have shape (S, B, ...) with at least one feature dim, "
            f"got {tuple(runs.shape)}."
        )
    if runs.shape[0] < 2:
        raise ValueError(f"`attributions` must hold at least 2 runs, got {runs.shape[0]}.")
    check_finite(runs, "attributions")
    return runs


def run_consistency(
    attributions: Tensor | Sequence[Tensor],
    top_k: float | int = 0.05,
    generator: torch.Generator | None = None,
) -> RunConsistency:
    """Agreement between saliency maps of the same inputs from ``S`` runs (seeds).

    ``run_consistency([attr_seed0, attr_seed1, attr_seed2])`` gives ``.spearman`` and
    ``.top_k_iou`` per input, :math:`(B,)`; 1 means the runs rank the pixels alike.

    Every non-batch dimension is flattened into ``N`` features (sum channels first if
    pixels, not pixel-channels, should be compared). For each input and each of the
    ``S * (S - 1) / 2`` pairs of runs it computes:

    * the Spearman rank correlation (Pearson correlation of average ranks, as
      ``scipy.stats.spearmanr``);
    * the IoU of the two sets of the ``k`` most salient features, ties broken by a fixed
      pseudo-random permutation (the same for every run, as :func:`insertion_auc`);

    and averages over pairs.

    Args:
        attributions: Stacked maps :math:`(S, B, *)` or a sequence of ``S`` tensors
            :math:`(B, *)` (e.g. :math:`(B, C, H, W)`, :math:`(B, H, W)`, :math:`(B, C, T)`),
            ``S >= 2``.
        top_k: Size of the top set: a float in :math:`(0, 1]` is a fraction of ``N``
            (``k = max(1, ceil(top_k * N))``), an int ``>= 1`` a count.
        generator: Random generator for the tie-break permutation; a fixed seed by default.

    Returns:
        A :class:`RunConsistency` named tuple ``(spearman, top_k_iou)`` of tensors
        :math:`(B,)`.

    Raises:
        TypeError: If ``attributions`` is not a float tensor / sequence of tensors, or
            ``top_k`` is not a number.
        ValueError: If fewer than 2 runs are given, run shapes differ, maps hold NaN/inf, or
            ``top_k`` is out of range.

    Example:
        >>> import torch
        >>> a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
        >>> b = torch.tensor([[1.0, 3.0, 2.0, 4.0]])
        >>> run_consistency([a, b], top_k=2)
        RunConsistency(spearman=tensor([0.8000]), top_k_iou=tensor([0.3333]))
    """
    runs = _stack_runs(attributions)
    n_runs, batch = runs.shape[:2]
    flat = runs.reshape(n_runs, batch, -1)
    n = flat.shape[2]
    if n == 0:
        raise ValueError(
            f"`attributions` maps must hold at least one feature, got shape {tuple(runs.shape)}."
        )
    if isinstance(top_k, bool) or not isinstance(top_k, (Integral, Real)):
        raise TypeError(f"`top_k` must be a float fraction or an int count, got {top_k!r}.")
    if isinstance(top_k, Integral):
        if not 1 <= top_k <= n:
            raise ValueError(f"`top_k` as a count must be in [1, {n}], got {top_k}.")
        k = int(top_k)
    else:
        if not 0 < top_k <= 1:
            raise ValueError(f"`top_k` as a fraction must be in (0, 1], got {top_k}.")
        k = max(1, math.ceil(float(top_k) * n))

    ranks = average_ranks(flat)
    centred = ranks - ranks.mean(dim=-1, keepdim=True)
    normed = centred / centred.norm(dim=-1, keepdim=True)  # NaN for a constant map
    correlation = torch.einsum("sbn,tbn->bst", normed, normed)

    top = (rank_map(flat.reshape(n_runs * batch, n), generator) < k).reshape(n_runs, batch, n)
    top = top.to(flat.dtype)
    inter = torch.einsum("sbn,tbn->bst", top, top)
    iou = inter / (2 * k - inter)

    first, second = torch.triu_indices(n_runs, n_runs, offset=1, device=flat.device)
    return RunConsistency(
        spearman=correlation[:, first, second].mean(dim=1).clamp(-1, 1),
        top_k_iou=iou[:, first, second].mean(dim=1),
    )
