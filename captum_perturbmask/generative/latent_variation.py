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
realistic variants inside a small latent budget *flip* it. The same search runs on images
:math:`(N, C, H, W)` and on time series :math:`(N, C, T)` with a 1-D generator.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from captum_perturbmask._core.captum_compat import TargetType
from captum_perturbmask._core.checks import (
    check_bool,
    check_fraction,
    check_int,
    check_seed,
)
from captum_perturbmask._core.forward import (
    ConfidenceType,
    check_confidence,
)
from captum_perturbmask._core.random import make_generator
from captum_perturbmask.generative._regions import fit_to_window, mask_from, patch_origins
from captum_perturbmask.generative._scoring import Scorer
from captum_perturbmask.generative._search import (
    FiniteGuard,
    Objective,
    SearchState,
    adam_search,
    frozen,
    mean_pairwise_distance,
    project,
)
from captum_perturbmask.generative.results import (
    CounterfactualConfig,
    CounterfactualVariations,
    LatentVariations,
)
from captum_perturbmask.generative.settings import VariationSettings

__all__ = ["LatentVariationGenerator"]

_LATENT_LAYERS = (nn.Linear, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


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


class LatentVariationGenerator:
    r"""Acceptable variations of the salient region :math:`B` by latent search in a GAN.

    ``LatentVariationGenerator(G, D, forward_func=model).generate(x, attr, target=y)`` replaces
    the region around the top of each saliency map ``attr`` with GAN generations that fit its
    surroundings, and scores them: ``.variants``, ``.accepted``, ``.accepted_fraction``.

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

    **Context-aware generators.** A generator with ``conditions_on_context = True`` (e.g.
    :class:`~captum_perturbmask.generative.ContextInpainter`, shipped for the digits as
    ``load_default_inpainter``) is called as ``generator(z, context, hole)``: ``context`` is
    the window :math:`(M, C, *P)` with :math:`B` zeroed, ``hole`` the window of :math:`B`
    :math:`(M, 1, *P)`; its ``window`` attribute gives :math:`P`. The search still minimises
    :math:`L_\text{reconstruction} + \lambda L_\text{contextual}` over :math:`z'`, the
    discriminator scores the composed window (context with :math:`B` filled), and equation (1)
    holds exactly outside :math:`B`. One with ``n_classes > 0`` is class-conditional and also
    gets each input's target class (so it needs ``forward_func`` with class logits). Such a
    generator already fits the context, so a short search (e.g. ``n_steps=10, lr=0.01``) is
    enough; long searches pull the restarts towards one fill and away from the prior
    (``benchmarks/results/variations.md`` measures both).

    **Time series.** For inputs :math:`(N, C, T)` the generator maps latents :math:`(M, d)` or
    :math:`(M, d, 1)` to series :math:`(M, C, t)`, the full length :math:`t = T` or a window
    placed like a patch; :math:`B` is a mask :math:`(N, T)` or the span of the salient steps of a
    saliency map :math:`(N, T)`/:math:`(N, C', T)`, :math:`R` uses a 1-D box of ``context_kernel``
    steps, and equation (1) holds exactly outside :math:`B`.

    **Classifier.** ``forward_func`` is called through the package's forward layer, so it may
    return anything PerturbMask and the metrics accept: logits :math:`(M, K)`, one value per
    example :math:`(M,)`/:math:`(M, 1)` (e.g. one logit scored with a sigmoid), or N-d outputs
    with a tuple ``target``; ``target=None`` means the predicted class of :math:`(M, K)` logits or
    the output itself for one value per example. A variant keeps the decision when the arg-max
    class along dim 1 at the target's position is the target's class, or, for one value per
    example, when its confidence reaches ``confidence_threshold``.

    The models are left as found: during a call they are in eval mode (BatchNorm must not couple
    restarts) with ``requires_grad=False`` on their parameters; modes and flags are restored
    afterwards (also after an error, and when several threads search with the same models at
    once), no ``.grad`` is written, and parameters, buffers and hooks are untouched. Plain
    callables (not ``nn.Module``) given as ``forward_func``/``feature_func`` are called as they
    are. The global random number generators are never used.

    Args:
        generator: the generator :math:`G`.
        discriminator: the discriminator :math:`D` mapping :math:`G`'s output to logits
            :math:`(M,)` or :math:`(M, 1)`; optional.
        latent_dim: size :math:`d` of the latent code; inferred from ``generator.latent_dim`` or
            the first ``Linear``/``ConvTranspose`` layer when ``None``.
        forward_func: the classifier :math:`f` mapping inputs :math:`(M, C, H, W)` or
            :math:`(M, C, T)` to outputs (see above), used to score variants; optional.
        feature_func: optional map of inputs :math:`(M, C, *X)` to features :math:`(M, F)`
            (e.g. the classifier's penultimate layer) for ``feature_diversity``.
        confidence: how outputs become confidences: ``"auto"`` (softmax over dim 1 when it has
            two or more entries, else sigmoid), ``"softmax"``, ``"sigmoid"``, ``"identity"``
            or a callable ``fn(output) -> Tensor``, as in PerturbMask.

    Raises:
        TypeError: if ``generator``/``discriminator`` is not an ``nn.Module`` or
            ``forward_func``/``feature_func`` is not callable.
        ValueError: if ``latent_dim`` is not a positive int or cannot be inferred, or
            ``confidence`` is unknown.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> G = nn.Sequential(nn.Linear(8, 3 * 8 * 8), nn.Sigmoid(), nn.Unflatten(1, (3, 8, 8)))
        >>> x = torch.rand(1, 3, 8, 8)
        >>> mask = torch.zeros(1, 8, 8, dtype=torch.bool)
        >>> mask[:, 2:6, 2:6] = True
        >>> quick = VariationSettings(n_restarts=4, n_keep=2, n_steps=5)
        >>> out = LatentVariationGenerator(G, settings=quick).generate(x, mask=mask, seed=0)
        >>> out.variants.shape
        torch.Size([1, 2, 3, 8, 8])
        >>> bool((out.variants[..., ~mask[0]] == x[:, None][..., ~mask[0]]).all())
        True
        >>> bool(out.diversity[0] > 0)
        True

        A series :math:`(N, C, T)`, a 1-D generator of 8-step windows and a classifier with
        one logit (scored with a sigmoid):

        >>> G1 = nn.Sequential(nn.Linear(4, 2 * 8), nn.Tanh(), nn.Unflatten(1, (2, 8)))
        >>> clf = nn.Sequential(nn.Flatten(), nn.Linear(2 * 20, 1))
        >>> series = torch.randn(3, 2, 20)
        >>> span = torch.zeros(3, 20, dtype=torch.bool)
        >>> span[:, 9:13] = True
        >>> out = LatentVariationGenerator(G1, forward_func=clf, settings=quick).generate(
        ...     series, mask=span, seed=0)
        >>> out.variants.shape, out.patch_origin[0].tolist(), out.confidence.shape
        (torch.Size([3, 2, 2, 20]), [7], torch.Size([3, 2]))
        >>> torch.equal(out.variants[:, :, :, ~span[0]], series[:, None, :, ~span[0]].expand(
        ...     3, 2, 2, 16))
        True
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        latent_dim: int | None = None,
        forward_func: Callable[..., Tensor] | None = None,
        feature_func: Callable[[Tensor], Tensor] | None = None,
        confidence: ConfidenceType = "auto",
        settings: VariationSettings | None = None,
    ) -> None:
        if settings is None:
            settings = VariationSettings()
        if not isinstance(settings, VariationSettings):
            raise TypeError(
                f"`settings` must be a VariationSettings, got {type(settings).__name__}."
            )
        self.settings = settings
        if not isinstance(generator, nn.Module):
            raise TypeError(f"`generator` must be an nn.Module, got {type(generator).__name__}")
        if discriminator is not None and not isinstance(discriminator, nn.Module):
            raise TypeError(
                f"`discriminator` must be an nn.Module or None, got {type(discriminator).__name__}"
            )
        if forward_func is not None and not callable(forward_func):
            raise TypeError(f"`forward_func` must be callable, got {type(forward_func).__name__}")
        if feature_func is not None and not callable(feature_func):
            raise TypeError(f"`feature_func` must be callable, got {type(feature_func).__name__}")
        if latent_dim is None:
            latent_dim = _infer_latent_dim(generator)
            if latent_dim is None:
                raise ValueError(
                    "`latent_dim` is None and cannot be inferred: the generator has no int "
                    "`latent_dim` attribute and no Linear/ConvTranspose layer; pass latent_dim"
                )
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = check_int(latent_dim, "latent_dim", 1)
        self.forward_func = forward_func
        self.feature_func = feature_func
        self.confidence = check_confidence(confidence)
        self.contextual = getattr(generator, "conditions_on_context", False) is True
        n_classes = getattr(generator, "n_classes", 0) if self.contextual else 0
        self.n_classes = n_classes if isinstance(n_classes, int) else 0

    # ---------------------------------------------------------------- model calls
    def _probe(self, like: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Latent shape accepted by the generator and its output shape :math:`(C, *P)`.

        Latents :math:`(M, d)` are tried first, then :math:`(M, d, 1)` for series or
        :math:`(M, d, 1, 1)` for images; the first that gives outputs of the inputs' layout
        wins.
        """
        d = self.latent_dim
        series = like.dim() == 3
        kind = "series (M, C, t)" if series else "images (M, C, h, w)"
        if self.contextual:
            window = tuple(getattr(self.generator, "window", ()))
            c = like.shape[1]
            if len(window) != like.dim() - 2:
                raise ValueError(
                    f"a context-aware generator needs a `window` of {like.dim() - 2} sizes for "
                    f"{kind}, got {window!r}"
                )
            extra = []
            if self.n_classes > 0:
                extra.append(torch.zeros(2, dtype=torch.long, device=like.device))
            with torch.no_grad():
                out = self.generator(
                    like.new_zeros((2, d)),
                    like.new_zeros((2, c, *window)),
                    like.new_ones((2, 1, *window)),
                    *extra,
                )
            if not isinstance(out, Tensor) or tuple(out.shape) != (2, c, *window):
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(
                    f"the context-aware generator must return windows {(2, c, *window)} for "
                    f"{c}-channel inputs, got {got}"
                )
            return (d,), (c, *window)
        shapes = ((d,), (d, 1)) if series else ((d,), (d, 1, 1))
        attempts = []
        for shape in shapes:
            z = like.new_zeros((2, *shape))
            try:
                with torch.no_grad():
                    out = self.generator(z)
            except Exception as err:  # noqa: BLE001 - report every attempt below
                attempts.append(f"latents {tuple(z.shape)}: {type(err).__name__}: {err}")
                continue
            if isinstance(out, Tensor) and out.dim() == like.dim() and out.shape[0] == 2:
                return shape, tuple(int(v) for v in out.shape[1:])
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            attempts.append(f"latents {tuple(z.shape)} gave {got}")
        forms = " or ".join(f"(M, {', '.join(map(str, s))})" for s in shapes)
        raise ValueError(
            f"generator must map latents {forms} (latent_dim={d}) to {kind} like the inputs; "
            + "; ".join(attempts)
        )

    def _discriminate(self, generations: Tensor, *classes: Tensor) -> Tensor:
        assert self.discriminator is not None
        out = self.discriminator(generations, *classes)
        m = generations.shape[0]
        if not isinstance(out, Tensor) or out.numel() != m:
            raise ValueError(
                f"discriminator must return one logit per generation, shape (M,) or (M, 1), got "
                f"{getattr(out, 'shape', type(out))} for M = {m}"
            )
        return out.reshape(m)

    # ---------------------------------------------------------------- public API
    def generate(
        self,
        inputs: Tensor,
        saliency: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        target: TargetType = None,
        settings: VariationSettings | None = None,
        patch_origin: int | tuple[int, ...] | Tensor | None = None,
        counterfactual: bool | CounterfactualConfig = False,
        seed: int | None = None,
        rng: torch.Generator | None = None,
        show_progress: bool = False,
    ) -> LatentVariations:
        r"""Search ``n_restarts`` latent codes per input and return the best ``n_keep`` variants.

        Args:
            inputs: images :math:`X` :math:`(N, C, H, W)` or series :math:`(N, C, T)`,
                floating point and finite.
            saliency: saliency maps :math:`M`, :math:`(N, H, W)` or :math:`(N, C', H, W)` for
                images (channels summed, as in the metrics; :math:`B` is the box of
                ``captum_perturbmask.metrics.saliency_box(M, threshold, threshold_mode)``), or
                :math:`(N, T)`/:math:`(N, C', T)` for series (:math:`B` is the span from the
                first to the last salient step of ``saliency_mask``).
            mask: :math:`B` directly instead of ``saliency``: any binary mask (bool or
                {0, 1}) of shape :math:`(H, W)`, :math:`(N, H, W)` or :math:`(N, 1, H, W)`
                for images, :math:`(T,)`, :math:`(N, T)` or :math:`(N, 1, T)` for series.
            target: what ``forward_func`` scores, in Captum's forms (int, tuple, tensor, list);
                the predicted class of :math:`(N, K)` logits, or the output itself for one
                value per example, when ``None``. Needs ``forward_func``.
            settings: the search's knobs (restarts, steps, losses, the threshold of
                :math:`B`, ...), a :class:`~captum_perturbmask.generative.VariationSettings`;
                ``None``: the generator's own (``LatentVariationGenerator(settings=...)``).
            patch_origin: first position of a window generator's output: ``(row, col)`` or
                :math:`(N, 2)` for images, a step (int) or :math:`(N,)` for series; centred on
                the extent of :math:`B` when ``None``.
            counterfactual: ``True`` or a :class:`CounterfactualConfig` to also search
                realistic variants that flip the decision (needs ``forward_func``).
            seed: seed of a private ``torch.Generator`` (the global RNG is never used).
            rng: a ``torch.Generator`` on the inputs' device to draw the initial latents from
                instead of ``seed``.
            show_progress: show a progress bar.

        Returns:
            :class:`LatentVariations` with ``variants`` of shape :math:`(N, K, C, H, W)` or
            :math:`(N, K, C, T)`.

        Raises:
            TypeError: for arguments of the wrong type (e.g. a bool or float where an int is
                expected).
            ValueError: for wrong shapes, NaN/inf inputs or numbers, non-binary or empty
                masks, a mask that does not fit the generator's window, model outputs of the
                wrong shape or with NaN/inf values, or knob values out of range.

        Example:
            >>> G = nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Unflatten(1, (1, 12)))
            >>> x = torch.zeros(1, 1, 12)
            >>> out = LatentVariationGenerator(G).generate(
            ...     x, mask=torch.arange(12) >= 8, seed=0,
            ...     settings=VariationSettings(n_restarts=3, n_keep=3, n_steps=2))
            >>> out.variants.shape, out.mask.sum().item(), out.patch_origin.tolist()
            (torch.Size([1, 3, 1, 12]), 4, [[0]])
        """
        # ---------------- validation
        if not isinstance(inputs, Tensor):
            raise TypeError(f"`inputs` must be a torch.Tensor, got {type(inputs).__name__}.")
        if inputs.dim() not in (3, 4):
            raise ValueError(
                "`inputs` must be images (N, C, H, W) or series (N, C, T), got shape "
                f"{tuple(inputs.shape)}."
            )
        if not inputs.is_floating_point():
            raise TypeError(f"`inputs` must be floating point, got dtype {inputs.dtype}.")
        if inputs.numel() == 0:
            raise ValueError(f"`inputs` must not be empty, got shape {tuple(inputs.shape)}.")
        if not bool(torch.isfinite(inputs).all()):
            raise ValueError("`inputs` must be finite, but it contains NaN or infinite values.")
        if settings is None:
            settings = self.settings
        if not isinstance(settings, VariationSettings):
            raise TypeError(
                f"`settings` must be a VariationSettings, got {type(settings).__name__}."
            )
        vs = settings
        n_restarts, n_keep, n_steps, lr = vs.n_restarts, vs.n_keep, vs.n_steps, vs.lr
        confidence_threshold = vs.confidence_threshold
        knob = self.confidence
        if not (knob == "identity" or callable(knob)):
            check_fraction(confidence_threshold, "confidence_threshold")
        check_seed(seed)
        if rng is not None:
            if not isinstance(rng, torch.Generator):
                raise TypeError(
                    "`rng` must be a torch.Generator for the initial "
                    f"latents, got {type(rng).__name__}; the generative model goes to "
                    "LatentVariationGenerator(...)"
                )
            if rng.device.type != inputs.device.type:
                raise ValueError(
                    f"`rng` must be on the inputs' device ({inputs.device.type}), got "
                    f"{rng.device.type}"
                )
            if seed is not None:
                raise ValueError("pass at most one of `seed` and `rng`")
        if isinstance(counterfactual, bool):
            cf_cfg = CounterfactualConfig() if counterfactual else None
        elif isinstance(counterfactual, CounterfactualConfig):
            cf_cfg = counterfactual
        else:
            raise TypeError(
                "`counterfactual` must be a bool or a CounterfactualConfig, got "
                f"{type(counterfactual).__name__}"
            )
        if self.forward_func is None:
            if cf_cfg is not None:
                raise ValueError("counterfactual mode needs forward_func (the classifier)")
            if target is not None:
                raise ValueError("`target` is given but there is no forward_func to score it")
        check_bool(show_progress, "show_progress")
        settings = vs.search(show_progress)

        x = inputs.detach()
        n, c = x.shape[:2]
        size = tuple(x.shape[2:])
        d = self.latent_dim
        b_mask = mask_from(x, saliency, mask, vs.threshold, vs.threshold_mode)
        if rng is None:
            rng = make_generator(seed, x.device)

        with frozen(self.generator, self.discriminator, self.forward_func, self.feature_func):
            latent_shape, (gc, *patch) = self._probe(x)
            if gc != c or any(p > s for p, s in zip(patch, size, strict=True)):
                raise ValueError(
                    f"generator output (C, {'h, w' if len(size) == 2 else 't'}) = "
                    f"{(gc, *patch)} must match the inputs' {c} channels and fit into their "
                    f"{'x'.join(map(str, size))} size (the full input or a window of it)"
                )
            if saliency is not None and patch_origin is None:
                b_mask = fit_to_window(b_mask, tuple(patch))
            origins = patch_origins(b_mask, tuple(patch), patch_origin)
            state = SearchState.build(
                x, b_mask, origins, tuple(patch), vs.context_kernel, vs.feather
            )

            scorer = None
            if self.forward_func is not None:
                scorer = Scorer(self.forward_func, x, target, knob, float(confidence_threshold))

            def window_inputs(m: int) -> tuple[Tensor, Tensor]:
                """Context and hole of the window, :math:`(M, C, *P)` and :math:`(M, 1, *P)`,
                for ``m = n k`` generations (``k`` consecutive rows per input)."""
                k = m // n
                hole = state.mask_patch[:, 0].to(x.dtype).repeat_interleave(k, 0)
                ctx = state.x_patch[:, 0].repeat_interleave(k, 0) * (1 - hole)
                return ctx, hole

            classes = None
            if self.n_classes > 0:
                if scorer is None or not scorer.has_classes:
                    raise ValueError(
                        f"the generator is class-conditional (n_classes={self.n_classes}): it "
                        "needs forward_func with class logits (N, K) to take each input's "
                        "target class from"
                    )
                classes = scorer.target_class
                if bool((classes >= self.n_classes).any()):
                    raise ValueError(
                        f"target classes {classes.tolist()} are outside the generator's "
                        f"{self.n_classes} classes"
                    )

            def generate_fn(z: Tensor) -> Tensor:
                if self.contextual:
                    ctx, hole = window_inputs(z.shape[0])
                    if classes is None:
                        return self.generator(z, ctx, hole)
                    y = classes.repeat_interleave(z.shape[0] // n)
                    return self.generator(z, ctx, hole, y)
                return self.generator(z.view(z.shape[0], *latent_shape))

            critic_classes = getattr(self.discriminator, "n_classes", 0)
            if isinstance(critic_classes, int) and critic_classes > 0 and classes is None:
                raise ValueError(
                    "the discriminator is class-conditional (n_classes > 0): it needs a "
                    "class-conditional generator and forward_func with class logits"
                )

            def discriminate_window(patches: Tensor) -> Tensor:
                # a context-aware critic scores the composed window: context, hole filled
                ctx, hole = window_inputs(patches.shape[0])
                if isinstance(critic_classes, int) and critic_classes > 0:
                    assert classes is not None
                    y = classes.repeat_interleave(patches.shape[0] // n)
                    return self._discriminate(ctx + hole * patches, y)
                return self._discriminate(ctx + hole * patches)

            discriminate = None
            if self.discriminator is not None:
                discriminate = discriminate_window if self.contextual else self._discriminate
            guard = FiniteGuard()
            objective = Objective(state, settings, generate_fn, discriminate, n_restarts, guard)
            z0 = torch.randn(n * n_restarts, d, generator=rng, device=x.device, dtype=x.dtype)
            z0 = project(z0, settings)
            z, per_loss, steps = adam_search(objective, z0, settings)
            order = per_loss.view(n, n_restarts).argsort(dim=1, stable=True)[:, :n_keep]
            z_keep = z.view(n, n_restarts, d).gather(1, order[..., None].expand(-1, -1, d))
            loss_keep = per_loss.view(n, n_restarts).gather(1, order)

            with torch.no_grad():
                patches = generate_fn(z_keep.reshape(n * n_keep, d))
                variants = state.compose(patches, n_keep)
                realism_score = None
                if discriminate is not None:
                    logits = discriminate(patches)
                    guard.watch("discriminator", logits)
                    realism_score = torch.sigmoid(logits).view(n, n_keep)
                guard.check()
                diversity = mean_pairwise_distance(variants.flatten(2))
                feature_div = None
                if self.feature_func is not None:
                    feats = self.feature_func(variants.flatten(0, 1))
                    if not isinstance(feats, Tensor) or feats.shape[0] != n * n_keep:
                        raise ValueError(
                            f"feature_func must return a Tensor with {n * n_keep} rows, got "
                            f"{getattr(feats, 'shape', type(feats))}"
                        )
                    if not bool(torch.isfinite(feats).all()):
                        raise ValueError("feature_func returned NaN or infinite features")
                    feature_div = mean_pairwise_distance(feats.reshape(n, n_keep, -1))
                conf = acc = preds = None
                if scorer is not None:
                    index = torch.arange(n, device=x.device).repeat_interleave(n_keep)
                    conf, preds, kept = scorer.score(variants.flatten(0, 1), index)
                    conf, preds = conf.view(n, n_keep), preds.view(n, n_keep)
                    acc = kept.view(n, n_keep) & (conf >= confidence_threshold)

            cf_result = None
            if cf_cfg is not None:
                assert scorer is not None
                cfg = cf_cfg.resolved(d, n_keep, n_steps, float(lr))
                cf_result = self._counterfactual(cfg, objective, z_keep[:, 0], scorer, rng)

        return LatentVariations(
            variants=variants,
            latents=z_keep.detach(),
            losses=loss_keep.detach(),
            mask=b_mask,
            context_weights=state.context_full,
            patch_origin=origins.to(x.device),
            diversity=diversity,
            confidence=None if conf is None else conf.detach(),
            accepted=acc,
            predictions=preds,
            target=None if scorer is None else scorer.position,
            input_confidence=None if scorer is None else scorer.input_confidence,
            realism=realism_score,
            feature_diversity=feature_div,
            n_steps=steps,
            counterfactuals=cf_result,
        )

    def _counterfactual(
        self,
        cfg: CounterfactualConfig,
        objective: Objective,
        anchors: Tensor,
        scorer: Scorer,
        rng: torch.Generator,
    ) -> CounterfactualVariations:
        """The counterfactual search of a resolved ``cfg`` around the best latents ``anchors``."""
        assert cfg.epsilon is not None and cfg.n_candidates is not None
        assert cfg.n_steps is not None and cfg.lr is not None
        n, d = anchors.shape
        kc, eps = cfg.n_candidates, float(cfg.epsilon)
        state = objective.state
        toward = None if cfg.cf_target is None else scorer.classes(cfg.cf_target, n)
        index = torch.arange(n, device=anchors.device).repeat_interleave(kc)
        toward_rep = None if toward is None else toward.repeat_interleave(kc)
        anchor_rep = anchors.repeat_interleave(kc, dim=0)

        def classifier_term(patches: Tensor) -> Tensor:
            rows = state.compose(patches, kc).flatten(0, 1)
            gap = scorer.margin(rows, index, toward_rep, objective.guard)
            return cfg.weight * gap.clamp(min=-cfg.margin)

        cf_objective = objective.with_restarts(kc, classifier_term)
        settings = objective.settings.replace(n_steps=cfg.n_steps, lr=cfg.lr, tol=0.0)
        direction = torch.randn(
            n * kc, d, generator=rng, device=anchors.device, dtype=anchors.dtype
        )
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
        z_init = project(anchor_rep + 0.5 * eps * direction, settings, anchor_rep, eps)
        z, _, _ = adam_search(
            cf_objective, z_init, settings, anchor_rep, eps, desc="counterfactual search"
        )
        with torch.no_grad():
            patches = objective.generate(z)
            rec = objective.base_loss(patches, z, kc)
            variants = state.compose(patches, kc)
            conf, preds, kept = scorer.score(variants.flatten(0, 1), index)
            flipped = ~kept if toward_rep is None else preds == toward_rep
            real = None
            if objective.discriminate is not None:
                logits = objective.discriminate(patches)
                objective.guard.watch("discriminator", logits)
                real = torch.sigmoid(logits).view(n, kc)
            objective.guard.check()
        return CounterfactualVariations(
            variants=variants,
            latents=z.view(n, kc, d).detach(),
            anchors=anchors.detach(),
            latent_distance=(z - anchor_rep).norm(dim=1).view(n, kc),
            losses=rec.view(n, kc),
            predictions=preds.view(n, kc),
            confidence=conf.view(n, kc).detach(),
            flipped=flipped.view(n, kc),
            realism=real,
            cf_target=toward,
            epsilon=eps,
        )
