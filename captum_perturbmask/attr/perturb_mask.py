r"""PerturbMask: Algorithm 1 of Thakur & Fischmeister as a Captum perturbation attribution."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from captum.attr import PerturbationAttribution
from torch import Tensor

from captum_perturbmask._captum_compat import (
    TargetType,
    TensorOrTupleOfTensorsGeneric,
    _format_output,
    _format_tensor_into_tuples,
    _is_tuple,
    progress,
)
from captum_perturbmask._checks import check_fraction, check_int
from captum_perturbmask.attr._common import (
    RowForward,
    check_inputs,
    chunks,
    format_baselines,
    make_generator,
    resolve_target,
)
from captum_perturbmask.attr._masks import MaskDesign
from captum_perturbmask.attr.estimators import AverageEstimator, Estimator, RegressionEstimator

VARIANTS = ("adaptive", "literal")
INITIAL_MASKS = ("random", "ones")


def _as_size(name: str, value: int | Sequence[int]) -> tuple[int, ...]:
    vals = (value,) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if not vals or len(vals) > 2:
        raise ValueError(f"`{name}` must be an int or a pair of ints, got {value!r}")
    for v in vals:
        check_int(v, name)
    return vals


def chain_step(on: Tensor, p: Tensor, keys: Tensor, n1: float, n2: float) -> Tensor:
    r"""Lines 4-8 of Algorithm 1: resample the preserved set :math:`\Lambda_{on}`.

    :math:`\Lambda_1` = ``round(n1 * p * K)`` random cells of :math:`\Lambda_{on}`,
    :math:`\Lambda_2` = ``round(n2 * (1 - p) * K)`` random cells of :math:`\Lambda_{off}`
    (each capped by the size of its set), :math:`\Lambda_{on} = \Lambda_1 \cup \Lambda_2`.

    Args:
        on: current preserved set, bool :math:`(..., K)`.
        p: confidence of the mask just evaluated, :math:`(...)`.
        keys: uniform random keys broadcastable to ``on``; the smallest keys are selected.
        n1: fraction of the grid drawn from :math:`\Lambda_{on}` at :math:`p = 1`.
        n2: fraction of the grid drawn from :math:`\Lambda_{off}` at :math:`p = 0`.

    Returns:
        The new preserved set, bool :math:`(..., K)`.

    Example:
        >>> on = torch.tensor([True, True, False, False])
        >>> keys = torch.tensor([0.1, 0.9, 0.2, 0.8])
        >>> chain_step(on, torch.tensor(0.5), keys, n1=0.5, n2=0.5)
        tensor([ True, False,  True, False])
    """
    k = on.shape[-1]
    keys = keys.expand_as(on)
    n_on = on.sum(-1)
    k1 = torch.minimum(torch.round(n1 * p * k).long(), n_on)
    k2 = torch.minimum(torch.round(n2 * (1 - p) * k).long(), k - n_on)
    rank_on = torch.where(on, keys, 2.0).argsort(-1).argsort(-1)
    rank_off = torch.where(on, 2.0, keys).argsort(-1).argsort(-1)
    return (on & (rank_on < k1.unsqueeze(-1))) | (~on & (rank_off < k2.unsqueeze(-1)))


class PerturbMask(PerturbationAttribution):
    r"""Perturbation-mask saliency (Thakur & Fischmeister, Algorithm 1) for any classifier.

    The model is only queried (a black box): the map says how much keeping each region of the
    input keeps the model's confidence in the target. Works for images :math:`(B, C, H, W)`
    (a 2-D grid of cells), time series :math:`(B, C, T)` (a 1-D grid, the poster's open
    question), any other tensor (each element is a cell) and user groupings (``feature_mask``).

    **Algorithm 1, line by line** (default ``variant="adaptive"``; the full table is in the
    docs, ``docs/algorithm.rst``):

    * Init :math:`M_0`: each of ``n_chains`` chains starts from a random on-set (each cell on
      with probability ``keep_prob``; ``initial_mask="ones"`` keeps all).
    * ``for i = 1 to N``: ``n_iter`` iterations; all chains of all inputs advance together.
    * :math:`M \leftarrow` upsample :math:`M_{i-1}`: the binary on-set of an ``h x w`` grid
      (``grid_size``) upsampled bilinearly with a random sub-cell shift (as in RISE).
    * :math:`p_i = f(I \odot M)`: one batched forward of :math:`I \odot M + b \odot (1 - M)`
      (``b`` = ``baselines``); ``confidence`` maps the output to :math:`[0, 1]` (softmax by
      default) and the target's log-odds come from the raw logits, so they never saturate.
    * :math:`\Delta p = |p_i - p_{i-1}|`: used by ``variant="literal"`` only; crediting it
      rewards cells present when the confidence *changes* and is no better than a random map.
    * :math:`\Lambda_1, \Lambda_2, \Lambda_{on}, \Lambda_{off}`: :func:`chain_step` draws
      ``n1 * p_i`` (fraction of the grid) cells of :math:`\Lambda_{on}` and ``n2 * (1 - p_i)``
      cells of :math:`\Lambda_{off}` for the next on-set.
    * :math:`M_i(\lambda) \leftarrow M_{i-1}(\lambda)\Delta p` / :math:`0`: the confidence
      :math:`p_i` is credited to the mask that was evaluated: the ``estimator`` receives the
      features of every evaluated mask with its :math:`p_i`.
    * :math:`V` and :math:`M_i \leftarrow M_i + \eta V M_{i-1}`: the total variation is the
      smoothness prior :math:`\eta\, s^\top L s` of the default :class:`RegressionEstimator`
      (:math:`s^\top L s = V(s)` on the feature grid).
    * ``return M``: the estimator's map, upsampled to the input shape, repeated over channels.

    ``variant="literal"`` runs the text as written (:math:`M_i = M_{i-1}\Delta p` on
    :math:`\Lambda_{on}`, 0 on :math:`\Lambda_{off}`, :math:`M_i \mathrel{+}= \eta V M_{i-1}` with
    :math:`V` the scalar total variation of :math:`M_{i-1}`, masks upsampled without shift, the
    map is the mean of the chains' :math:`M_N`); each :math:`M_i` is divided by its maximum to
    keep it finite. It degenerates (zeroed cells stay zero; :math:`V` only rescales the map) and
    is kept so that users can see why it is not the default.

    Forward passes per input: ``n_iter * n_chains + 1`` (one clean pass validates the target,
    resolves ``target=None`` and gives :math:`p_0`).

    Args:
        forward_func: the model or any callable returning ``(batch, classes)`` outputs.

    Example:
        >>> import torch
        >>> from captum_perturbmask import PerturbMask
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> attr = PerturbMask(model).attribute(x, target=1, n_iter=4, n_chains=8, seed=0)
        >>> attr.shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        super().__init__(forward_func)

    @torch.no_grad()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        baselines: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_iter: int = 2,
        n_chains: int = 200,
        grid_size: int | Sequence[int] = 8,
        n1: float = 0.5,
        n2: float = 0.5,
        eta: float | None = None,
        initial_mask: str = "random",
        keep_prob: float = 0.7,
        variant: str = "adaptive",
        estimator: str | Estimator = "regression",
        fine_grid_size: int | Sequence[int] | None = None,
        random_shift: bool = True,
        confidence: str = "softmax",
        perturbations_per_eval: int = 64,
        show_progress: bool = False,
        seed: int | None = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""Estimate the saliency map of ``inputs`` for ``target``.

        Args:
            inputs: tensor or tuple of tensors, :math:`(B, C, H, W)` images,
                :math:`(B, C, T)` series, or any :math:`(B, *)` tensor.
            target: Captum target: int, tuple, tensor or list (one per example). ``None``
                explains the class the model predicts for the clean input.
            additional_forward_args: extra arguments of ``forward_func`` (Captum convention;
                tensors with a batch dimension are gathered per perturbed row).
            baselines: what masked-off positions become: ``None`` (zeros), a scalar, a tensor
                of the input's shape or batch size 1, ``"blur"`` (Gaussian blur, kernel 11,
                :math:`\sigma` = 5), or a tuple of those.
            feature_mask: integer groups (superpixels) broadcastable to the inputs, ids shared
                across a tuple (Captum convention); replaces the default grid.
            n_iter: :math:`N`, iterations (forward passes) per chain. The default, many short
                chains (2 x 200 = 400 passes), won the ablation on the shipped digits
                (``benchmarks/ablation.py``): long chains propose correlated masks and lose
                run-to-run consistency.
            n_chains: independent chains per input, advanced in the same batches.
            grid_size: :math:`h \times w` of the low-resolution mask :math:`M_0` (an int or a
                pair; ``t`` for series).
            n1: fraction of the grid kept from :math:`\Lambda_{on}` (scaled by :math:`p_i`).
            n2: fraction of the grid drawn from :math:`\Lambda_{off}` (scaled by
                :math:`1 - p_i`).
            eta: :math:`\eta`, weight of the total-variation term :math:`V` (default 3.0 as the
                regression's smoothness prior; 0.05 for ``variant="literal"``).
            initial_mask: :math:`M_0`: ``"random"`` (each cell on with ``keep_prob``) or
                ``"ones"``.
            keep_prob: probability that a cell of :math:`M_0` is on.
            variant: ``"adaptive"`` (default, the reading that works) or ``"literal"``.
            estimator: ``"regression"`` (default, :class:`RegressionEstimator`),
                ``"average"`` (:class:`AverageEstimator`) or an estimator object.
            fine_grid_size: cells of the regression features (default ``2 * grid_size``).
            random_shift: crop the upsampled mask at a random sub-cell offset (RISE); ``False``
                upsamples without shift (cells then have fixed borders).
            confidence: ``"softmax"`` (default, for logits), ``"sigmoid"`` or ``"identity"``
                (the model already returns probabilities).
            perturbations_per_eval: most rows per forward call (bounds memory).
            show_progress: show a progress bar over forward calls.
            seed: seed of the private random generator (bit-reproducible on CPU); ``None``
                draws a fresh one. The global RNG is never touched.

        Returns:
            Attributions with exactly the structure, shape, device and dtype of ``inputs``
            (values repeated over channels for grid inputs). Higher means more important.

        Raises:
            TypeError: for inputs, knobs or outputs of the wrong type.
            ValueError: for wrong shapes, an empty batch, non-finite inputs, bad knob values,
                model outputs that are not ``(batch, classes)`` or non-finite confidences.
            AssertionError, IndexError: an invalid ``target``, exactly as Captum raises it.
        """
        is_tuple = _is_tuple(inputs)
        inputs_t = _format_tensor_into_tuples(inputs)
        check_inputs(inputs_t)
        check_int(n_iter, "n_iter")
        check_int(n_chains, "n_chains")
        check_int(perturbations_per_eval, "perturbations_per_eval")
        grid = _as_size("grid_size", grid_size)
        fine = None if fine_grid_size is None else _as_size("fine_grid_size", fine_grid_size)
        n1 = check_fraction(n1, "n1")
        n2 = check_fraction(n2, "n2")
        keep_prob = check_fraction(keep_prob, "keep_prob")
        if variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {VARIANTS}, got {variant!r}")
        if initial_mask not in INITIAL_MASKS:
            raise ValueError(f"`initial_mask` must be one of {INITIAL_MASKS}, got {initial_mask!r}")
        if eta is not None and not isinstance(estimator, str) and variant == "adaptive":
            warnings.warn(
                "`eta` is ignored when `estimator` is an object: set it on the estimator",
                stacklevel=2,
            )
        if eta is None:
            eta = 0.05 if variant == "literal" else 3.0
        eta = check_fraction(eta, "eta", 0.0, float("inf"))
        est = self._make_estimator(estimator, eta)
        if _stochastic_in_training(self.forward_func):
            warnings.warn(
                "forward_func is in training mode: BatchNorm/Dropout couple or randomise the "
                "perturbed rows; call model.eval() first (the mode is left unchanged).",
                stacklevel=2,
            )

        x0 = inputs_t[0]
        device = x0.device
        dtype = torch.float32 if x0.dtype in (torch.float16, torch.bfloat16) else x0.dtype
        fmask = None if feature_mask is None else _format_tensor_into_tuples(feature_mask)
        if fmask is not None:
            if len(fmask) != len(inputs_t):
                raise ValueError(
                    f"`feature_mask` must have one tensor per input ({len(inputs_t)}), "
                    f"got {len(fmask)}"
                )
            for i, m in enumerate(fmask):
                if not isinstance(m, Tensor) or m.is_floating_point() or m.is_complex():
                    raise TypeError(f"`feature_mask[{i}]` must be an integer tensor")
        bases = format_baselines(baselines, inputs_t)
        runner = RowForward(
            self.forward_func, inputs_t, target, additional_forward_args, confidence
        )
        p0 = resolve_target(runner, inputs_t)
        design = MaskDesign(inputs_t, fmask, grid, fine, dtype)

        batch, k = x0.shape[0], design.n_cells
        rows = batch * n_chains
        index = torch.arange(rows, device=device) // n_chains
        spans = chunks(rows, perturbations_per_eval)
        gen = make_generator(seed, device)

        if initial_mask == "ones":
            cells0 = torch.ones(n_chains, k, device=device, dtype=dtype)
        else:
            cells0 = (torch.rand(n_chains, k, generator=gen, device=device) < keep_prob).to(dtype)
        literal = variant == "literal"
        state = cells0.unsqueeze(0).expand(batch, n_chains, k).clone()  # M (literal) / on-set
        on = state > 0
        p_prev = p0.to(dtype).unsqueeze(1).expand(batch, n_chains)
        if literal:
            cell_lap = design.laplacian(cells=True)
        else:
            est.reset(batch, design.n_feat, device, dtype)

        bar = progress(
            desc=f"{type(self).__name__} attribution",
            total=n_iter * len(spans),
            disable=not show_progress,
        )
        for _ in range(n_iter):
            shifts = (
                design.sample_shifts(n_chains, gen).repeat(batch, 1)
                if random_shift and not literal
                else None
            )
            keys = torch.rand(n_chains, k, generator=gen, device=device, dtype=dtype)
            cells = (state if literal else on.to(dtype)).reshape(rows, k)
            conf = torch.empty(rows, device=device, dtype=dtype)
            lodds = torch.empty(rows, device=device, dtype=dtype)
            feats = torch.empty(rows, design.n_feat, device=device, dtype=dtype)
            for s, e in spans:
                idx = index[s:e]
                masks, feats[s:e] = design.render(
                    cells[s:e], None if shifts is None else shifts[s:e], idx
                )
                perturbed = tuple(
                    _mix(x, b, m, idx) for x, b, m in zip(inputs_t, bases, masks, strict=True)
                )
                conf[s:e], lodds[s:e] = runner.confidence_and_log_odds(perturbed, idx)
                bar.update()
            p = conf.reshape(batch, n_chains)
            new_on = chain_step(on, p, keys, n1, n2)
            if literal:
                dp = (p - p_prev).abs()
                tv = ((state @ cell_lap) * state).sum(-1)  # V(M_{i-1}), one number per chain
                new = torch.where(new_on, state * dp.unsqueeze(-1), 0.0)
                new = new + eta * tv.unsqueeze(-1) * state
                state = new / new.amax(-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
            else:
                est.update(feats.reshape(batch, n_chains, -1), p, lodds.reshape(batch, n_chains))
            on, p_prev = new_on, p
        bar.close()

        if literal:
            attrs = design.to_attr(state.mean(1), from_cells=True)
        else:
            attrs = design.to_attr(est.solve(design.laplacian()))
        out = tuple(
            a.to(x.dtype).expand_as(x).contiguous() for a, x in zip(attrs, inputs_t, strict=True)
        )
        if not all(bool(torch.isfinite(a).all()) for a in out):
            raise ValueError(
                "the attribution is not finite: `forward_func` returned NaN/inf outputs for "
                "some perturbed inputs"
            )
        return _format_output(is_tuple, out)

    @staticmethod
    def _make_estimator(estimator: str | Estimator, eta: float) -> Estimator:
        if estimator == "regression":
            return RegressionEstimator(eta=eta)
        if estimator == "average":
            return AverageEstimator()
        if isinstance(estimator, str):
            raise ValueError(
                f"`estimator` must be 'regression', 'average' or an Estimator, got {estimator!r}"
            )
        for name in ("reset", "update", "solve"):
            if not callable(getattr(estimator, name, None)):
                raise TypeError(f"`estimator` must provide a `{name}` method")
        return estimator


def _stochastic_in_training(forward_func: Callable[..., Tensor]) -> bool:
    """True when a module has BatchNorm or Dropout layers in training mode."""
    if not isinstance(forward_func, torch.nn.Module):
        return False
    kinds = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd)
    return any(m.training and isinstance(m, kinds) for m in forward_func.modules())


def _mix(x: Tensor, base: Tensor, mask: Tensor, index: Tensor) -> Tensor:
    """Rows :math:`I \\odot M + b \\odot (1 - M)` for the examples ``index`` (one fused lerp)."""
    xi = x if x.shape[0] == 1 else x.index_select(0, index)
    bi = base if base.shape[0] == 1 else base.index_select(0, index)
    rows = mask.shape[0]
    out = torch.lerp(bi.expand(rows, *x.shape[1:]), xi.expand(rows, *x.shape[1:]), mask.to(x.dtype))
    return out
