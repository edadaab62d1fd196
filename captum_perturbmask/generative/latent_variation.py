r"""Acceptable variations of the important region through a generative model (Problem 2).

Thakur & Fischmeister ask, given a relevance mask and a generative model, for *the distribution
of acceptable variations of the important input samples*. :class:`LatentVariationGenerator`
answers it by semantic inpainting (Yeh et al., 2017, "Semantic image inpainting with deep
generative models"): the important region :math:`B` is removed, a latent code :math:`z'` whose
generation :math:`G(z')` agrees with the known context around :math:`B` and looks realistic to
the discriminator is searched by back-propagation, and the variant is composed with the poster's
equation (1)

.. math::

    X' = X \odot (1 - B) + B \odot G(z').

Many restarts of the search give many variants; a classifier then tells which of them are
*acceptable* (the decision is kept) and, in counterfactual mode (the poster's open question, after
Song et al., 2018, "Constructing unrestricted adversarial examples with generative models"), which
realistic variants inside a small latent budget *flip* it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_perturbmask._captum_compat import TargetType, progress

__all__ = [
    "CounterfactualConfig",
    "CounterfactualVariations",
    "LatentVariationGenerator",
    "LatentVariations",
]

_LATENT_LAYERS = (nn.Linear, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass
class CounterfactualVariations:
    r"""Realistic variants of the important region that change the classifier's decision.

    Shapes use :math:`N` inputs, :math:`K_c` candidates per input and latent size :math:`d`.

    Attributes:
        variants: composed images :math:`X'`, shape :math:`(N, K_c, C, H, W)`.
        latents: the latent codes :math:`z'`, shape :math:`(N, K_c, d)`.
        anchors: the best reconstruction :math:`z_0` the budget is centred on, :math:`(N, d)`.
        latent_distance: :math:`\|z' - z_0\|_2`, shape :math:`(N, K_c)`, at most ``epsilon``.
        losses: reconstruction + realism loss of each candidate, :math:`(N, K_c)`.
        predictions: the classifier's arg-max class, :math:`(N, K_c)`.
        confidence: confidence in the original target, :math:`(N, K_c)`.
        flipped: the decision moved away from the target (or onto ``cf_target`` when targeted),
            bool :math:`(N, K_c)`.
        realism: sigmoid of the discriminator, :math:`(N, K_c)`, ``None`` without a
            discriminator.
        cf_target: the class pushed toward, :math:`(N,)`, ``None`` for the untargeted mode.
        epsilon: the latent budget.
    """

    variants: Tensor
    latents: Tensor
    anchors: Tensor
    latent_distance: Tensor
    losses: Tensor
    predictions: Tensor
    confidence: Tensor
    flipped: Tensor
    realism: Tensor | None
    cf_target: Tensor | None
    epsilon: float

    @property
    def n_flipped_inputs(self) -> int:
        """Number of inputs with at least one flipping variant."""
        return int(self.flipped.any(dim=1).sum())


@dataclass
class LatentVariations:
    r"""The acceptable variations found by :meth:`LatentVariationGenerator.generate`.

    Shapes use :math:`N` inputs, :math:`K` kept restarts (``n_keep``) and latent size :math:`d`.
    Variants are sorted by loss, best first.

    Attributes:
        variants: composed images :math:`X'`, shape :math:`(N, K, C, H, W)`; bitwise equal to
            the input outside ``mask``.
        latents: the latent codes :math:`z'`, shape :math:`(N, K, d)`.
        losses: final search loss (reconstruction + :math:`\lambda` contextual) per variant,
            :math:`(N, K)`.
        mask: the region :math:`B` that was replaced, bool :math:`(N, H, W)`.
        context_weights: the weights :math:`R` of the reconstruction loss, :math:`(N, H, W)`.
        patch_origin: top-left corner ``(row, col)`` of the generator's output in the image,
            :math:`(N, 2)` (zeros for full-image generators).
        diversity: mean pairwise :math:`L_2` distance between the variants of an input inside
            :math:`B`, in pixel space, :math:`(N,)` (0 when :math:`K = 1`).
        confidence: confidence of the classifier in ``target`` for every variant,
            :math:`(N, K)`; ``None`` without a classifier.
        accepted: variant keeps the predicted class *and* reaches the confidence threshold,
            bool :math:`(N, K)`; ``None`` without a classifier.
        predictions: arg-max class of every variant, :math:`(N, K)`; ``None`` without a
            classifier.
        target: the class scored, :math:`(N,)`; ``None`` without a classifier.
        input_confidence: confidence in ``target`` on the unmodified input, :math:`(N,)`.
        realism: sigmoid of the discriminator on :math:`G(z')`, :math:`(N, K)`; ``None`` without
            a discriminator.
        feature_diversity: as ``diversity`` in the space of ``feature_func``, :math:`(N,)`.
        n_steps: optimisation steps actually run (early stopping may end the search sooner).
        counterfactuals: the decision-flipping variants, or ``None`` outside counterfactual mode.
    """

    variants: Tensor
    latents: Tensor
    losses: Tensor
    mask: Tensor
    context_weights: Tensor
    patch_origin: Tensor
    diversity: Tensor
    confidence: Tensor | None = None
    accepted: Tensor | None = None
    predictions: Tensor | None = None
    target: Tensor | None = None
    input_confidence: Tensor | None = None
    realism: Tensor | None = None
    feature_diversity: Tensor | None = None
    n_steps: int = 0
    counterfactuals: CounterfactualVariations | None = None

    @property
    def accepted_fraction(self) -> float | None:
        """Share of all variants that were accepted, ``None`` without a classifier."""
        if self.accepted is None:
            return None
        return float(self.accepted.float().mean())

    def to_figure(self, index: int | Sequence[int] | None = None, max_variants: int = 8) -> Any:
        """Draw inputs, masks, variants (and counterfactuals) as a grid.

        See :func:`captum_perturbmask.viz.plot_variations`, which this calls.

        Args:
            index: input(s) to draw; all inputs (at most 8) when ``None``.
            max_variants: at most this many variants (and counterfactuals) per row.

        Returns:
            a :class:`matplotlib.figure.Figure`.
        """
        from captum_perturbmask.viz import plot_variations

        return plot_variations(self, index=index, max_variants=max_variants)

    def plot(self, path: str | None = None, **kwargs: Any) -> Any:
        """Draw the grid of :meth:`to_figure` and optionally save it to ``path``.

        Args:
            path: file to save to (any format matplotlib knows); not saved when ``None``.
            **kwargs: forwarded to :func:`captum_perturbmask.viz.plot_variations`.

        Returns:
            the :class:`matplotlib.figure.Figure`.
        """
        from captum_perturbmask.viz import plot_variations

        return plot_variations(self, path=path, **kwargs)


@dataclass(frozen=True)
class CounterfactualConfig:
    r"""Knobs of the counterfactual search (pass to ``generate(counterfactual=...)``).

    The search starts near the best reconstruction :math:`z_0` of each input and minimises the
    search loss plus ``weight`` times a margin loss on the classifier logits :math:`f`,
    :math:`\max(f_t - \max_{j \ne t} f_j, -\kappa)` away from the target :math:`t` (or
    :math:`\max(\max_{j \ne c} f_j - f_c, -\kappa)` toward ``cf_target`` :math:`c`), while
    :math:`z'` is projected onto :math:`\{\|z' - z_0\|_2 \le \epsilon\}` intersected with the
    prior's support.

    Args:
        epsilon: latent budget :math:`\epsilon`; ``None`` means :math:`0.25 \sqrt{d}` (a cap of
            about 14 degrees on the sphere of radius :math:`\sqrt{d}`).
        weight: weight of the classifier term.
        cf_target: class(es) to push toward, int or :math:`(N,)`; ``None`` pushes away from the
            target.
        margin: :math:`\kappa \ge 0`; the classifier term stops pushing past this logit margin.
        n_candidates: candidates per input; ``None`` means ``n_keep``.
        n_steps: optimisation steps; ``None`` means the main search's ``n_steps``.
        lr: Adam step size; ``None`` means the main search's ``lr``.
    """

    epsilon: float | None = None
    weight: float = 1.0
    cf_target: int | Tensor | None = None
    margin: float = 1.0
    n_candidates: int | None = None
    n_steps: int | None = None
    lr: float | None = None


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
class _Frozen:
    """Put modules in eval mode without parameter gradients; restore everything on exit."""

    def __init__(self, *modules: Any) -> None:
        seen: set[int] = set()
        self.modules: list[nn.Module] = []
        for m in modules:
            if isinstance(m, nn.Module) and id(m) not in seen:
                seen.add(id(m))
                self.modules.append(m)

    def __enter__(self) -> _Frozen:
        self.modes = [(s, s.training) for m in self.modules for s in m.modules()]
        self.flags = [(p, p.requires_grad) for m in self.modules for p in m.parameters()]
        for m in self.modules:
            m.eval()
        for p, _ in self.flags:
            p.requires_grad_(False)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, mode in self.modes:
            s.training = mode
        for p, flag in reversed(self.flags):
            p.requires_grad_(flag)


def _infer_latent_dim(generator: nn.Module) -> int | None:
    dim = getattr(generator, "latent_dim", None)
    if isinstance(dim, int) and not isinstance(dim, bool):
        return dim
    for m in generator.modules():
        if isinstance(m, nn.Linear):
            return int(m.in_features)
        if isinstance(m, _LATENT_LAYERS):
            return int(m.in_channels)  # type: ignore[union-attr]
    return None


def _box_filter(x: Tensor, size: int) -> Tensor:
    """Mean over a ``size`` x ``size`` window (zero padding), ``x`` is :math:`(N, 1, H, W)`."""
    return F.avg_pool2d(x, size, stride=1, padding=size // 2, count_include_pad=True)


def _as_targets(target: Any, n: int, name: str, n_classes: int | None) -> Tensor:
    if isinstance(target, bool):
        raise TypeError(f"{name} must be an int, a sequence of ints or a Tensor, got a bool")
    if isinstance(target, int):
        t = torch.full((n,), target, dtype=torch.long)
    elif isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer classes, got dtype {target.dtype}")
        if target.numel() == 1:
            t = target.reshape(1).long().expand(n).clone()
        elif target.dim() == 1 and target.numel() == n:
            t = target.long()
        else:
            raise ValueError(
                f"{name} must be a scalar or have shape ({n},), got {tuple(target.shape)}"
            )
    elif isinstance(target, Sequence) and not isinstance(target, str):
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in target)
        if len(target) != n or not ok:
            raise ValueError(f"{name} as a sequence must hold {n} ints, got {target!r}")
        t = torch.tensor(list(target), dtype=torch.long)
    else:
        raise TypeError(
            f"{name} must be an int, a sequence of ints or a Tensor, got {type(target).__name__}"
        )
    if n_classes is not None and (bool((t < 0).any()) or bool((t >= n_classes).any())):
        raise ValueError(f"{name} must be in [0, {n_classes}), got {t.tolist()}")
    return t


def _check_int(value: Any, name: str, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def _check_float(value: Any, name: str, low: float, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (value <= low if strict else value < low):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be finite and {op} {low}, got {value}")
    return value


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _mean_pairwise_distance(x: Tensor) -> Tensor:
    """Mean off-diagonal :math:`L_2` distance, ``x`` is :math:`(N, K, F)`; 0 when ``K == 1``."""
    k = x.shape[1]
    if k < 2:
        return x.new_zeros(x.shape[0])
    d = torch.cdist(x.double(), x.double())
    return (d.sum(dim=(1, 2)) / (k * (k - 1))).to(x.dtype)


# --------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------
class LatentVariationGenerator:
    r"""Acceptable variations of the salient region :math:`B` by latent search in a GAN.

    For every input :math:`X` the important region :math:`B` (a box around the thresholded
    saliency map, or any binary mask) is replaced by generations of ``generator`` whose latent
    codes were fitted to the context of :math:`B` (Yeh et al., 2017). ``n_restarts`` codes per
    input are optimised at once on the batch axis with Adam on the loss

    .. math::

        L(z') = \underbrace{\sum_{c,i,j} R_{ij}\,\rho\big(X_{c,ij} - G(z')_{c,ij}\big)}_{
        L_\text{reconstruction}} + \lambda\, L_\text{contextual}(z'),

    with :math:`\rho(e) = e^2` (the poster's MSE; ``loss="l1"`` gives :math:`|e|`) and the
    context weights of Yeh et al.,
    :math:`R = (1 - B) \odot (k_s * B)` with :math:`k_s` the normalised :math:`s \times s` box
    kernel: a known pixel weighs by the share of hole pixels in its :math:`s \times s` window (the
    poster's "inverted and convolved :math:`B`"). :math:`L_\text{contextual}` is Yeh's realism
    term :math:`\log(1 - D(G(z')))` (``realism="yeh"``, :math:`\lambda = 0.003` as in the paper),
    the non-saturating :math:`-\log D(G(z'))` (``realism="nonsaturating"``) or, without a
    discriminator, the Gaussian prior penalty :math:`\|z'\|^2 / 2`. After every step :math:`z'`
    is projected onto the prior's support: the sphere of radius :math:`\sqrt{d}`
    (``projection="sphere"``, where a standard normal prior concentrates) or the cube
    :math:`[-c, c]^d` (``projection="clip"``). The best ``n_keep`` restarts by loss are composed
    with the poster's equation (1),
    :math:`X' = X \odot (1 - B) + B \odot G(z')`.

    **Generators.** ``generator`` is any module mapping latents :math:`(M, d)` or
    :math:`(M, d, 1, 1)` (detected with a probe call) to images :math:`(M, C, h, w)`: either the
    full input size :math:`(h, w) = (H, W)` or a *patch* of it. A patch is placed centred on the
    bounding box of :math:`B` and clamped inside the image (the box must fit into the patch), or
    at an explicit ``patch_origin``; the reconstruction loss and the discriminator then see only
    the patch.

    The models are left as found: during a call they are in eval mode (BatchNorm must not couple
    restarts) with ``requires_grad=False`` on their parameters; modes and flags are restored
    afterwards, no ``.grad`` is written, and parameters and buffers are untouched.

    Args:
        generator: the generator :math:`G`.
        discriminator: the discriminator :math:`D` mapping :math:`G`'s output to logits
            :math:`(M,)` or :math:`(M, 1)`; optional.
        latent_dim: size :math:`d` of the latent code; inferred from ``generator.latent_dim`` or
            the first ``Linear``/``ConvTranspose`` layer when ``None``.
        forward_func: the classifier :math:`f` mapping :math:`(M, C, H, W)` to logits
            :math:`(M, n_\text{classes})`, used to score variants; optional.
        feature_func: optional map of images :math:`(M, C, H, W)` to features :math:`(M, F)`
            (e.g. the classifier's penultimate layer) for ``feature_diversity``.

    Raises:
        TypeError: if ``generator``/``discriminator`` is not an ``nn.Module`` or
            ``forward_func``/``feature_func`` is not callable.
        ValueError: if ``latent_dim`` is not a positive int or cannot be inferred.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> G = nn.Sequential(nn.Linear(8, 3 * 8 * 8), nn.Sigmoid(), nn.Unflatten(1, (3, 8, 8)))
        >>> x = torch.rand(1, 3, 8, 8)
        >>> mask = torch.zeros(1, 8, 8, dtype=torch.bool)
        >>> mask[:, 2:6, 2:6] = True
        >>> out = LatentVariationGenerator(G).generate(
        ...     x, mask=mask, n_restarts=4, n_keep=2, n_steps=5, seed=0)
        >>> out.variants.shape
        torch.Size([1, 2, 3, 8, 8])
        >>> bool((out.variants[..., ~mask[0]] == x[:, None][..., ~mask[0]]).all())
        True
        >>> bool(out.diversity[0] > 0)
        True
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        latent_dim: int | None = None,
        forward_func: Callable[..., Tensor] | None = None,
        feature_func: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if not isinstance(generator, nn.Module):
            raise TypeError(f"generator must be an nn.Module, got {type(generator).__name__}")
        if discriminator is not None and not isinstance(discriminator, nn.Module):
            raise TypeError(
                f"discriminator must be an nn.Module or None, got {type(discriminator).__name__}"
            )
        if forward_func is not None and not callable(forward_func):
            raise TypeError(f"forward_func must be callable, got {type(forward_func).__name__}")
        if feature_func is not None and not callable(feature_func):
            raise TypeError(f"feature_func must be callable, got {type(feature_func).__name__}")
        if latent_dim is None:
            latent_dim = _infer_latent_dim(generator)
            if latent_dim is None:
                raise ValueError(
                    "latent_dim is None and cannot be inferred: the generator has no int "
                    "`latent_dim` attribute and no Linear/ConvTranspose layer; pass latent_dim"
                )
        _check_int(latent_dim, "latent_dim", 1)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.forward_func = forward_func
        self.feature_func = feature_func

    # ---------------------------------------------------------------- preparation
    def _probe(self, like: Tensor) -> tuple[tuple[int, ...], tuple[int, int, int]]:
        """Latent shape accepted by the generator and its output shape :math:`(C, h, w)`."""
        d = self.latent_dim
        errors = []
        for shape in ((d,), (d, 1, 1)):
            z = like.new_zeros((2, *shape))
            try:
                with torch.no_grad():
                    out = self.generator(z)
            except Exception as err:  # noqa: BLE001 - report both attempts below
                errors.append(f"{shape}: {type(err).__name__}: {err}")
                continue
            if not isinstance(out, Tensor) or out.dim() != 4 or out.shape[0] != 2:
                raise ValueError(
                    "generator must map latents (M, d) or (M, d, 1, 1) to images (M, C, h, w), "
                    f"got output {getattr(out, 'shape', type(out))} for latents {tuple(z.shape)}"
                )
            return shape, (int(out.shape[1]), int(out.shape[2]), int(out.shape[3]))
        raise ValueError(
            f"generator accepts neither latents (M, {d}) nor (M, {d}, 1, 1) (latent_dim={d}): "
            + "; ".join(errors)
        )

    @staticmethod
    def _mask_from(
        inputs: Tensor, saliency: Tensor | None, mask: Tensor | None, threshold: float, mode: str
    ) -> Tensor:
        n, _, h, w = inputs.shape
        if (saliency is None) == (mask is None):
            raise ValueError("pass exactly one of saliency and mask")
        if mask is not None:
            if not isinstance(mask, Tensor):
                raise TypeError(f"mask must be a Tensor, got {type(mask).__name__}")
            m = mask
            if m.dim() == 2:
                m = m.unsqueeze(0).expand(n, h, w)
            elif m.dim() == 4 and m.shape[1] == 1:
                m = m[:, 0]
            if m.dim() != 3 or tuple(m.shape) != (n, h, w):
                raise ValueError(
                    f"mask must have shape (H, W), (N, H, W) or (N, 1, H, W) = ({n}, {h}, {w}), "
                    f"got {tuple(mask.shape)}"
                )
            if m.dtype != torch.bool:
                if m.is_complex() or not bool(((m == 0) | (m == 1)).all()):
                    raise ValueError("mask must be binary (bool or values in {0, 1})")
                m = m != 0
        else:
            if not isinstance(saliency, Tensor):
                raise TypeError(f"saliency must be a Tensor, got {type(saliency).__name__}")
            s = saliency
            if s.dim() not in (3, 4) or (s.shape[0], *s.shape[-2:]) != (n, h, w):
                raise ValueError(
                    f"saliency must have shape (N, H, W) or (N, C', H, W) with (N, H, W) = "
                    f"({n}, {h}, {w}), got {tuple(saliency.shape)}"
                )
            if not bool(torch.isfinite(s).all()):
                raise ValueError("saliency contains NaN or infinite values")
            from captum_perturbmask.metrics import box_to_mask, saliency_box

            boxes = saliency_box(s.detach(), threshold=threshold, mode=mode)
            m = box_to_mask(boxes, (h, w))
        m = m.to(device=inputs.device, dtype=torch.bool)
        empty = (~m.flatten(1).any(dim=1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"mask is empty for input(s) {empty}; nothing to vary")
        return m.contiguous()

    @staticmethod
    def _origins(
        mask: Tensor, patch: tuple[int, int], patch_origin: Any
    ) -> tuple[Tensor, list[tuple[int, int, int, int]]]:
        """Top-left corner of the patch per input; checks that ``B`` lies inside it."""
        n, h_img, w_img = mask.shape
        ph, pw = patch
        rows = mask.any(dim=2)
        cols = mask.any(dim=1)
        ar_h = torch.arange(h_img, device=mask.device)
        ar_w = torch.arange(w_img, device=mask.device)
        y1 = torch.where(rows, ar_h, h_img).amin(1)
        y2 = torch.where(rows, ar_h, -1).amax(1) + 1
        x1 = torch.where(cols, ar_w, w_img).amin(1)
        x2 = torch.where(cols, ar_w, -1).amax(1) + 1
        boxes = [tuple(int(v) for v in b) for b in torch.stack([y1, x1, y2, x2], 1).tolist()]
        if patch_origin is None:
            origins = []
            for i, (a, b, c, d) in enumerate(boxes):
                if c - a > ph or d - b > pw:
                    raise ValueError(
                        f"the box of mask B of input {i} is {c - a}x{d - b} pixels (rows "
                        f"{a}:{c}, cols {b}:{d}) and does not fit into the generator's "
                        f"{ph}x{pw} patch; use a tighter saliency threshold or a smaller mask"
                    )
                # centre rounded half up, as the digits-in-clutter patch boxes
                top = min(max((a + c - ph + 1) // 2, 0), h_img - ph)
                left = min(max((b + d - pw + 1) // 2, 0), w_img - pw)
                origins.append((top, left))
            return torch.tensor(origins, dtype=torch.long), boxes
        if isinstance(patch_origin, Tensor):
            po = patch_origin.detach().cpu()
            if po.is_floating_point() or po.is_complex():
                raise TypeError(f"patch_origin must hold ints, got dtype {po.dtype}")
            po = po.long().reshape(-1, 2) if po.numel() == 2 else po.long()
        elif (
            isinstance(patch_origin, Sequence)
            and len(patch_origin) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in patch_origin)
        ):
            po = torch.tensor([list(patch_origin)], dtype=torch.long)
        else:
            raise TypeError(
                f"patch_origin must be (row, col) ints or a Tensor (N, 2), got {patch_origin!r}"
            )
        if po.shape[0] == 1:
            po = po.expand(n, 2)
        if tuple(po.shape) != (n, 2):
            raise ValueError(
                f"patch_origin must have shape (2,) or ({n}, 2), got {tuple(po.shape)}"
            )
        for i, ((top, left), (a, b, c, d)) in enumerate(zip(po.tolist(), boxes, strict=True)):
            if not (0 <= top <= h_img - ph and 0 <= left <= w_img - pw):
                raise ValueError(
                    f"patch_origin {(top, left)} of input {i} puts the {ph}x{pw} patch outside "
                    f"the {h_img}x{w_img} image"
                )
            if a < top or c > top + ph or b < left or d > left + pw:
                raise ValueError(
                    f"mask B of input {i} (rows {a}:{c}, cols {b}:{d}) is not inside the patch "
                    f"at patch_origin {(top, left)} of size {ph}x{pw}"
                )
        return po.clone(), boxes

    # ---------------------------------------------------------------- public API
    def generate(
        self,
        inputs: Tensor,
        saliency: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        target: TargetType = None,
        n_restarts: int = 64,
        n_keep: int = 8,
        n_steps: int = 300,
        lr: float = 0.05,
        lam: float = 0.003,
        loss: Literal["mse", "l1"] = "mse",
        reduction: Literal["sum", "mean"] = "sum",
        realism: Literal["yeh", "nonsaturating"] = "yeh",
        context_kernel: int = 7,
        projection: Literal["sphere", "clip"] = "sphere",
        clip_value: float = 1.0,
        tol: float = 1e-4,
        check_every: int = 25,
        threshold: float = 0.5,
        threshold_mode: str = "quantile",
        patch_origin: tuple[int, int] | Tensor | None = None,
        feather: int = 0,
        confidence_fn: Literal["softmax", "sigmoid", "identity"] = "softmax",
        confidence_threshold: float = 0.5,
        counterfactual: bool | CounterfactualConfig = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        show_progress: bool = False,
    ) -> LatentVariations:
        r"""Search ``n_restarts`` latent codes per input and return the best ``n_keep`` variants.

        Args:
            inputs: images :math:`X`, shape :math:`(N, C, H, W)`, finite.
            saliency: saliency maps :math:`M`, :math:`(N, H, W)` or :math:`(N, C', H, W)`
                (channels summed, as in the metrics); :math:`B` is the box of
                ``captum_perturbmask.metrics.saliency_box(M, threshold, threshold_mode)``.
            mask: :math:`B` directly instead of ``saliency``: any binary mask (bool or
                {0, 1}) of shape :math:`(H, W)`, :math:`(N, H, W)` or :math:`(N, 1, H, W)`.
            target: class scored by ``forward_func``: int, :math:`N` ints or a Tensor; the
                classifier's prediction on ``inputs`` when ``None``.
            n_restarts: latent codes optimised per input (on the batch axis).
            n_keep: restarts kept per input, best loss first.
            n_steps: maximum Adam steps.
            lr: Adam step size on :math:`z'`.
            lam: :math:`\lambda`, weight of the contextual (realism or prior) term.
            loss: ``"mse"`` (squared error, the poster) or ``"l1"`` (Yeh et al.).
            reduction: ``"sum"`` over channels and pixels of the :math:`R`-weighted error
                (Yeh et al.; the scale :math:`\lambda = 0.003` was tuned for) or ``"mean"``, the
                :math:`R`-weighted mean (divided by :math:`C \sum R`). Restarts are summed, so
                every restart's gradient is independent of the others.
            realism: ``"yeh"`` for :math:`\log(1 - D(G(z')))` or ``"nonsaturating"`` for
                :math:`-\log D(G(z'))`; ignored without a discriminator.
            context_kernel: odd window size :math:`s` of the context weights :math:`R`.
            projection: prior support, ``"sphere"`` (radius :math:`\sqrt{d}`) or ``"clip"``
                (cube :math:`[-c, c]^d`).
            clip_value: :math:`c` of ``projection="clip"``.
            tol: early stop once no restart's loss changed by more than ``tol`` (relative)
                between two checks; 0 disables early stopping.
            check_every: steps between convergence checks (the only host syncs of the loop).
            threshold: threshold of ``saliency_box``.
            threshold_mode: mode of ``saliency_box`` (e.g. ``"quantile"``).
            patch_origin: top-left ``(row, col)`` of a patch generator's output, one pair or
                :math:`(N, 2)`; centred on the box of :math:`B` when ``None``.
            feather: blend width in pixels inside :math:`B` (0: the exact equation (1)); pixels
                outside :math:`B` always stay exactly :math:`X`.
            confidence_fn: map of logits to confidence: ``"softmax"``, ``"sigmoid"`` or
                ``"identity"``.
            confidence_threshold: minimum confidence of an accepted variant.
            counterfactual: ``True`` or a :class:`CounterfactualConfig` to also search
                realistic variants that flip the decision (needs ``forward_func``).
            seed: seed of a private ``torch.Generator`` (the global RNG is never used).
            generator: a ``torch.Generator`` to draw the initial latents from instead of
                ``seed``.
            show_progress: show a progress bar.

        Returns:
            :class:`LatentVariations` with ``variants`` of shape :math:`(N, K, C, H, W)`.

        Raises:
            TypeError: for arguments of the wrong type.
            ValueError: for wrong shapes, NaN inputs, non-binary or empty masks, a mask that does
                not fit the generator's patch, generator/discriminator outputs of the wrong
                shape, or knob values out of range.
        """
        # ---------------- validation
        if not isinstance(inputs, Tensor):
            raise TypeError(f"inputs must be a Tensor, got {type(inputs).__name__}")
        if inputs.dim() != 4:
            raise ValueError(f"inputs must have shape (N, C, H, W), got {tuple(inputs.shape)}")
        if not inputs.is_floating_point():
            raise TypeError(f"inputs must be floating point, got dtype {inputs.dtype}")
        if inputs.shape[0] == 0:
            raise ValueError("inputs must hold at least one image")
        if not bool(torch.isfinite(inputs).all()):
            raise ValueError("inputs contains NaN or infinite values")
        _check_int(n_restarts, "n_restarts", 1)
        _check_int(n_keep, "n_keep", 1)
        if n_keep > n_restarts:
            raise ValueError(f"n_keep must be <= n_restarts ({n_restarts}), got {n_keep}")
        _check_int(n_steps, "n_steps", 1)
        _check_float(lr, "lr", 0.0, strict=True)
        _check_float(lam, "lam", 0.0, strict=False)
        _check_choice(loss, "loss", ("mse", "l1"))
        _check_choice(reduction, "reduction", ("sum", "mean"))
        _check_choice(realism, "realism", ("yeh", "nonsaturating"))
        _check_int(context_kernel, "context_kernel", 1)
        if context_kernel % 2 == 0:
            raise ValueError(f"context_kernel must be odd, got {context_kernel}")
        _check_choice(projection, "projection", ("sphere", "clip"))
        _check_float(clip_value, "clip_value", 0.0, strict=True)
        _check_float(tol, "tol", 0.0, strict=False)
        _check_int(check_every, "check_every", 1)
        _check_int(feather, "feather", 0)
        _check_choice(confidence_fn, "confidence_fn", ("softmax", "sigmoid", "identity"))
        if confidence_fn != "identity":
            _check_float(confidence_threshold, "confidence_threshold", 0.0, strict=False)
            if confidence_threshold > 1:
                raise ValueError(f"confidence_threshold must be <= 1, got {confidence_threshold}")
        else:
            _check_float(confidence_threshold, "confidence_threshold", -math.inf, strict=False)
        if seed is not None:
            _check_int(seed, "seed", 0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                "generator (of generate) must be a torch.Generator for the initial latents, got "
                f"{type(generator).__name__}; the model goes to LatentVariationGenerator(...)"
            )
        if seed is not None and generator is not None:
            raise ValueError("pass at most one of seed and generator")
        if isinstance(counterfactual, bool):
            cf_cfg = CounterfactualConfig() if counterfactual else None
        elif isinstance(counterfactual, CounterfactualConfig):
            cf_cfg = counterfactual
        else:
            raise TypeError(
                "counterfactual must be a bool or a CounterfactualConfig, got "
                f"{type(counterfactual).__name__}"
            )
        if cf_cfg is not None and self.forward_func is None:
            raise ValueError("counterfactual mode needs forward_func (the classifier)")
        if not isinstance(show_progress, bool):
            raise TypeError(f"show_progress must be a bool, got {type(show_progress).__name__}")

        x = inputs.detach()
        n, c, h_img, w_img = x.shape
        d = self.latent_dim
        b_mask = self._mask_from(x, saliency, mask, threshold, threshold_mode)

        if generator is None:
            generator = torch.Generator(device=x.device)
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)

        with _Frozen(self.generator, self.discriminator, self.forward_func, self.feature_func):
            latent_shape, (gc, ph, pw) = self._probe(x)
            if gc != c or ph > h_img or pw > w_img:
                raise ValueError(
                    f"generator output (C, h, w) = ({gc}, {ph}, {pw}) must match the inputs' "
                    f"{c} channels and fit into their {h_img}x{w_img} size (full image or patch)"
                )
            origins, _ = self._origins(b_mask, (ph, pw), patch_origin)
            state = _SearchState.build(x, b_mask, origins, (ph, pw), context_kernel, feather)

            targets = None
            input_conf = None
            if self.forward_func is not None:
                with torch.no_grad():
                    logits0 = self._classify(x)
                n_classes = logits0.shape[1]
                if target is None:
                    targets = logits0.argmax(dim=1)
                else:
                    targets = _as_targets(target, n, "target", n_classes).to(x.device)
                input_conf = self._confidence(logits0, confidence_fn).gather(1, targets[:, None])[
                    :, 0
                ]

            objective = _Objective(
                self, state, latent_shape, loss, reduction, realism, lam, n_restarts
            )
            z0 = torch.randn(n * n_restarts, d, generator=generator, device=x.device, dtype=x.dtype)
            z0 = _project(z0, projection, clip_value, None, None)
            z, per_loss, steps = _adam_search(
                objective, z0, n_steps, lr, tol, check_every, projection, clip_value,
                None, None, show_progress, "latent search",
            )  # fmt: skip
            order = per_loss.view(n, n_restarts).argsort(dim=1, stable=True)[:, :n_keep]
            z_keep = z.view(n, n_restarts, d).gather(1, order[..., None].expand(-1, -1, d))
            loss_keep = per_loss.view(n, n_restarts).gather(1, order)

            with torch.no_grad():
                patches = self._generate(z_keep.reshape(n * n_keep, d), latent_shape)
                variants = state.compose(patches, n_keep)
                realism_score = None
                if self.discriminator is not None:
                    realism_score = torch.sigmoid(self._discriminate(patches)).view(n, n_keep)
                diversity = _mean_pairwise_distance(variants.flatten(2))
                feature_div = None
                if self.feature_func is not None:
                    feats = self.feature_func(variants.flatten(0, 1))
                    if not isinstance(feats, Tensor) or feats.shape[0] != n * n_keep:
                        raise ValueError(
                            f"feature_func must return a Tensor with {n * n_keep} rows, got "
                            f"{getattr(feats, 'shape', type(feats))}"
                        )
                    feature_div = _mean_pairwise_distance(feats.reshape(n, n_keep, -1))
                conf = acc = preds = None
                if targets is not None:
                    logits = self._classify(variants.flatten(0, 1))
                    preds = logits.argmax(dim=1).view(n, n_keep)
                    conf = (
                        self._confidence(logits, confidence_fn)
                        .gather(1, targets.repeat_interleave(n_keep)[:, None])
                        .view(n, n_keep)
                    )
                    acc = (preds == targets[:, None]) & (conf >= confidence_threshold)

            cf_result = None
            if cf_cfg is not None:
                assert targets is not None
                cf_result = self._counterfactual(
                    cf_cfg, objective, state, z_keep[:, 0], targets, latent_shape, lr, n_steps,
                    n_keep, projection, clip_value, confidence_fn, generator, show_progress,
                )  # fmt: skip

        return LatentVariations(
            variants=variants,
            latents=z_keep.detach(),
            losses=loss_keep.detach(),
            mask=b_mask,
            context_weights=state.context_full,
            patch_origin=origins.to(x.device),
            diversity=diversity,
            confidence=conf,
            accepted=acc,
            predictions=preds,
            target=targets,
            input_confidence=input_conf,
            realism=realism_score,
            feature_diversity=feature_div,
            n_steps=steps,
            counterfactuals=cf_result,
        )

    # ---------------------------------------------------------------- model calls
    def _generate(self, z: Tensor, latent_shape: tuple[int, ...]) -> Tensor:
        return self.generator(z.view(z.shape[0], *latent_shape))

    def _discriminate(self, images: Tensor) -> Tensor:
        assert self.discriminator is not None
        out = self.discriminator(images)
        if not isinstance(out, Tensor) or out.numel() != images.shape[0]:
            raise ValueError(
                f"discriminator must return one logit per image, shape (M,) or (M, 1), got "
                f"{getattr(out, 'shape', type(out))} for M = {images.shape[0]}"
            )
        return out.reshape(images.shape[0])

    def _classify(self, images: Tensor) -> Tensor:
        assert self.forward_func is not None
        out = self.forward_func(images)
        if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != images.shape[0]:
            raise ValueError(
                f"forward_func must return logits (M, n_classes), got "
                f"{getattr(out, 'shape', type(out))} for M = {images.shape[0]}"
            )
        return out

    @staticmethod
    def _confidence(logits: Tensor, fn: str) -> Tensor:
        if fn == "softmax":
            return logits.softmax(dim=1)
        if fn == "sigmoid":
            return logits.sigmoid()
        return logits

    def _counterfactual(
        self,
        cfg: CounterfactualConfig,
        objective: _Objective,
        state: _SearchState,
        anchors: Tensor,
        targets: Tensor,
        latent_shape: tuple[int, ...],
        lr: float,
        n_steps: int,
        n_keep: int,
        projection: str,
        clip_value: float,
        confidence_fn: str,
        rng: torch.Generator,
        show_progress: bool,
    ) -> CounterfactualVariations:
        n, d = anchors.shape
        eps = 0.25 * math.sqrt(d) if cfg.epsilon is None else cfg.epsilon
        _check_float(eps, "counterfactual.epsilon", 0.0, strict=True)
        weight = _check_float(cfg.weight, "counterfactual.weight", 0.0, strict=True)
        margin = _check_float(cfg.margin, "counterfactual.margin", 0.0, strict=False)
        kc = n_keep if cfg.n_candidates is None else cfg.n_candidates
        _check_int(kc, "counterfactual.n_candidates", 1)
        steps = _check_int(
            n_steps if cfg.n_steps is None else cfg.n_steps, "counterfactual.n_steps", 1
        )
        cf_lr = _check_float(lr if cfg.lr is None else cfg.lr, "counterfactual.lr", 0.0, True)
        toward = None
        if cfg.cf_target is not None:
            with torch.no_grad():
                n_classes = self._classify(state.x[:1]).shape[1]
            toward = _as_targets(cfg.cf_target, n, "counterfactual.cf_target", n_classes)
            toward = toward.to(anchors.device)

        anchor_rep = anchors.repeat_interleave(kc, dim=0)
        cls = targets.repeat_interleave(kc) if toward is None else toward.repeat_interleave(kc)
        sign = 1.0 if toward is None else -1.0

        def classifier_term(patches: Tensor) -> Tensor:
            logits = self._classify(state.compose(patches, kc).flatten(0, 1))
            chosen = logits.gather(1, cls[:, None])[:, 0]
            others = logits.scatter(1, cls[:, None], float("-inf")).amax(dim=1)
            gap = sign * (chosen - others)  # > 0 while the decision is not yet as wanted
            return weight * gap.clamp(min=-margin)

        cf_objective = objective.with_restarts(kc, classifier_term)
        direction = torch.randn(
            n * kc, d, generator=rng, device=anchors.device, dtype=anchors.dtype
        )
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
        z_init = anchor_rep + 0.5 * eps * direction
        z_init = _project(z_init, projection, clip_value, anchor_rep, eps)
        z, _, _ = _adam_search(
            cf_objective, z_init, steps, cf_lr, 0.0, steps, projection, clip_value, anchor_rep,
            eps, show_progress, "counterfactual search",
        )  # fmt: skip
        with torch.no_grad():
            patches = self._generate(z, latent_shape)
            rec = objective.base_loss(patches, z, kc)
            variants = state.compose(patches, kc)
            logits = self._classify(variants.flatten(0, 1))
            preds = logits.argmax(dim=1)
            conf = self._confidence(logits, confidence_fn).gather(
                1, targets.repeat_interleave(kc)[:, None]
            )[:, 0]
            flipped = preds != targets.repeat_interleave(kc) if toward is None else preds == cls
            real = None
            if self.discriminator is not None:
                real = torch.sigmoid(self._discriminate(patches)).view(n, kc)
        return CounterfactualVariations(
            variants=variants,
            latents=z.view(n, kc, d).detach(),
            anchors=anchors.detach(),
            latent_distance=(z - anchor_rep).norm(dim=1).view(n, kc),
            losses=rec.view(n, kc),
            predictions=preds.view(n, kc),
            confidence=conf.view(n, kc),
            flipped=flipped.view(n, kc),
            realism=real,
            cf_target=toward,
            epsilon=float(eps),
        )


# --------------------------------------------------------------------------------------------
# Internals of the search
# --------------------------------------------------------------------------------------------
@dataclass
class _SearchState:
    """Inputs cropped to the generator's window, with masks and context weights."""

    x: Tensor  # (N, C, H, W)
    mask: Tensor  # (N, H, W) bool
    context_full: Tensor  # (N, H, W)
    x_patch: Tensor  # (N, 1, C, h, w)
    mask_patch: Tensor  # (N, 1, 1, h, w) bool
    blend_patch: Tensor | None  # (N, 1, 1, h, w) feather weights inside B, or None
    weight_patch: Tensor  # (N, 1, 1, h, w) context weights R in the window
    weight_norm: Tensor  # (N, 1) C * sum(R) in the window
    index: Tensor | None  # (N, 1, h*w) flat positions of the window, None for full images

    @staticmethod
    def build(
        x: Tensor,
        mask: Tensor,
        origins: Tensor,
        patch: tuple[int, int],
        kernel: int,
        feather: int,
    ) -> _SearchState:
        n, c, h_img, w_img = x.shape
        ph, pw = patch
        bf = mask[:, None].to(x.dtype)
        context = ((1 - bf) * _box_filter(bf, kernel))[:, 0]
        blend = None
        if feather > 0:
            blend = (bf * _box_filter(bf, 2 * feather + 1))[:, 0]
        full = (ph, pw) == (h_img, w_img)
        if full:
            index = None
            rows = cols = None
        else:
            rows = origins[:, 0, None].to(x.device) + torch.arange(ph, device=x.device)
            cols = origins[:, 1, None].to(x.device) + torch.arange(pw, device=x.device)
            index = (rows[:, :, None] * w_img + cols[:, None, :]).reshape(n, 1, ph * pw)

        def crop(t: Tensor) -> Tensor:  # (N, ..., H, W) -> (N, ..., h, w)
            if index is None:
                return t
            flat = t.flatten(-2)
            idx = index.reshape(n, *([1] * (flat.dim() - 2)), ph * pw).expand(*flat.shape[:-1], -1)
            return flat.gather(-1, idx).view(*t.shape[:-2], ph, pw)

        weight_patch = crop(context)[:, None, None]
        return _SearchState(
            x=x,
            mask=mask,
            context_full=context,
            x_patch=crop(x)[:, None],
            mask_patch=crop(mask)[:, None, None],
            blend_patch=None if blend is None else crop(blend)[:, None, None],
            weight_patch=weight_patch,
            weight_norm=(c * weight_patch.flatten(1).sum(dim=1, keepdim=True)).clamp_min(1e-12),
            index=index,
        )

    def compose(self, patches: Tensor, k: int) -> Tensor:
        """Equation (1) for ``k`` generations per input: (N k, C, h, w) to (N, k, C, H, W)."""
        n, c, h_img, w_img = self.x.shape
        g = patches.view(n, k, *patches.shape[1:])
        if self.blend_patch is not None:
            g = self.x_patch + self.blend_patch * (g - self.x_patch)
        window = torch.where(self.mask_patch, g, self.x_patch)
        if self.index is None:
            return window
        base = self.x[:, None].expand(n, k, c, h_img, w_img).flatten(3)
        idx = self.index[:, None].expand(n, k, c, -1)
        return base.scatter(3, idx, window.flatten(3)).view(n, k, c, h_img, w_img)


class _Objective:
    """Per-restart search loss (N R,) as a function of the latents."""

    def __init__(
        self,
        owner: LatentVariationGenerator,
        state: _SearchState,
        latent_shape: tuple[int, ...],
        loss: str,
        reduction: str,
        realism: str,
        lam: float,
        restarts: int,
        extra: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.owner = owner
        self.state = state
        self.latent_shape = latent_shape
        self.loss = loss
        self.reduction = reduction
        self.realism = realism
        self.lam = lam
        self.restarts = restarts
        self.extra = extra

    def with_restarts(self, restarts: int, extra: Callable[[Tensor], Tensor]) -> _Objective:
        return _Objective(
            self.owner, self.state, self.latent_shape, self.loss, self.reduction, self.realism,
            self.lam, restarts, extra,
        )  # fmt: skip

    def base_loss(self, patches: Tensor, z: Tensor, k: int) -> Tensor:
        st = self.state
        n = st.x.shape[0]
        err = patches.view(n, k, *patches.shape[1:]) - st.x_patch
        err = err.square() if self.loss == "mse" else err.abs()
        rec = (err * st.weight_patch).flatten(2).sum(dim=2)  # (N, k)
        if self.reduction == "mean":
            rec = rec / st.weight_norm
        rec = rec.flatten()
        if self.lam == 0:
            return rec
        if self.owner.discriminator is not None:
            logit = self.owner._discriminate(patches)
            # log(1 - sigmoid(l)) = -softplus(l); -log(sigmoid(l)) = softplus(-l)
            ctx = -F.softplus(logit) if self.realism == "yeh" else F.softplus(-logit)
        else:
            ctx = 0.5 * z.square().sum(dim=1)
        return rec + self.lam * ctx

    def __call__(self, z: Tensor) -> Tensor:
        patches = self.owner._generate(z, self.latent_shape)
        if patches.shape[1:] != self.state.x_patch.shape[2:]:
            raise ValueError(
                f"generator output changed shape to {tuple(patches.shape)} during the search"
            )
        total = self.base_loss(patches, z, self.restarts)
        if self.extra is not None:
            total = total + self.extra(patches)
        return total


def _project(
    z: Tensor, projection: str, clip_value: float, anchor: Tensor | None, eps: float | None
) -> Tensor:
    """Project onto the prior's support (and the ball ``||z - anchor|| <= eps``)."""
    d = z.shape[1]
    if projection == "clip":
        if anchor is not None:
            assert eps is not None
            diff = z - anchor
            scale = (eps / diff.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
            z = anchor + diff * scale
        # the cube contains the anchor, so clipping never leaves the ball
        return z.clamp(-clip_value, clip_value)
    r = math.sqrt(d)
    u = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if anchor is None:
        return r * u
    assert eps is not None
    # exact projection onto the spherical cap {|z| = r, |z - anchor| <= eps}
    a = anchor / anchor.norm(dim=1, keepdim=True).clamp_min(1e-12)
    max_angle = 2 * math.asin(min(1.0, eps / (2 * r)))
    cos = (u * a).sum(dim=1, keepdim=True).clamp(-1, 1)
    tangent = u - cos * a
    tangent = tangent / tangent.norm(dim=1, keepdim=True).clamp_min(1e-12)
    capped = math.cos(max_angle) * a + math.sin(max_angle) * tangent
    inside = cos >= math.cos(max_angle)
    return r * torch.where(inside, u, capped)


def _adam_search(
    objective: Callable[[Tensor], Tensor],
    z_init: Tensor,
    n_steps: int,
    lr: float,
    tol: float,
    check_every: int,
    projection: str,
    clip_value: float,
    anchor: Tensor | None,
    eps: float | None,
    show_progress: bool,
    desc: str,
) -> tuple[Tensor, Tensor, int]:
    """Adam on the latents with projection; returns best latents, their losses and steps run.

    The best iterate of every restart is tracked on the device; the only host syncs are the
    convergence checks every ``check_every`` steps.
    """
    z = z_init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    best_z = z.detach().clone()
    best_loss = torch.full((z.shape[0],), float("inf"), dtype=z.dtype, device=z.device)
    last_check: Tensor | None = None
    bar = progress(desc=desc, total=n_steps) if show_progress else None
    steps = 0
    try:
        with torch.enable_grad():
            for step in range(n_steps):
                per = objective(z)
                (grad,) = torch.autograd.grad(per.sum(), z)
                with torch.no_grad():
                    per = per.detach()
                    better = per < best_loss
                    best_loss = torch.where(better, per, best_loss)
                    best_z = torch.where(better[:, None], z.detach(), best_z)
                z.grad = grad
                opt.step()
                with torch.no_grad():
                    z.copy_(_project(z, projection, clip_value, anchor, eps))
                steps = step + 1
                if bar is not None:
                    bar.update(1)
                if tol > 0 and steps % check_every == 0:
                    if last_check is not None:
                        rel = (last_check - per).abs() / last_check.abs().clamp_min(1e-12)
                        if float(rel.max()) < tol:
                            break
                    last_check = per
        with torch.no_grad():
            per = objective(z.detach()).detach()
            better = per < best_loss
            best_loss = torch.where(better, per, best_loss)
            best_z = torch.where(better[:, None], z.detach(), best_z)
    finally:
        if bar is not None:
            bar.close()
    return best_z, best_loss, steps
