r"""The method registry: every saliency method the evaluation can build by name.

An entry (:class:`~.Method`) says which data it explains (images :math:`(B, C, H, W)`, series
:math:`(B, C, T)`), whether it belongs to the default set of that data, and how to build it
from a :class:`~.MethodSetting` (the model, an example batch, the forward budget and the rows per
forward call). :func:`~.default_methods` builds the entries for a batch;
:func:`~.evaluate`, :func:`~.compare`
and the command line pick them from here, so adding a method is one call of
:func:`~.register_method`::

    register_method(Method("Saliency", lambda s: s.captum(Saliency(s.model)), default=()))

A built method is an :data:`~.AttributionFn`, ``fn(inputs, target, seed) -> attributions``.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor, nn

from captum_perturbmask._core.captum_compat import TargetType
from captum_perturbmask._core.random import private_global_rng

__all__ = [
    "METHODS",
    "AttributionFn",
    "Method",
    "MethodSetting",
    "as_method",
    "data_kind",
    "default_methods",
    "logged",
    "register_method",
]

#: A saliency method as the evaluation calls it, ``fn(inputs, target, seed) -> attributions``.
AttributionFn = Callable[[Tensor, TargetType, int], Tensor]
#: Kinds of data: images :math:`(B, C, H, W)` and series :math:`(B, C, T)`.
KINDS = ("images", "series")
#: Superpixels per side of the LIME (and feature ablation) grid on images.
IMAGE_SEGMENTS = 8


def data_kind(inputs: object, name: str = "inputs") -> str:
    """``"images"`` for a batch :math:`(B, C, H, W)`, ``"series"`` for :math:`(B, C, T)`.

    Raises:
        ValueError: ``inputs`` is neither.
    """
    if isinstance(inputs, Tensor) and inputs.ndim in (3, 4) and inputs.shape[0] > 0:
        return "images" if inputs.ndim == 4 else "series"
    shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
    raise ValueError(
        f"The registered methods need `{name}` of images (B, C, H, W) or series (B, C, T), got "
        f"{shape}; pass your own `methods` for other data."
    )


def _occlusion_geometry(size: int, positions: int) -> tuple[int, int]:
    """Window and stride along one axis giving about ``positions`` positions."""
    positions = max(1, min(positions, size))
    window = max(1, math.ceil(2 * size / (positions + 1)))
    stride = max(1, (size - window) // max(1, positions - 1))
    return window, stride


@dataclass(frozen=True, eq=False)
class MethodSetting:
    """What a registry entry builds its method from.

    Attributes:
        model: The forward function the method must call (the model, or a wrapper that counts
            its forward passes).
        inputs: An example batch :math:`(B, C, *S)` on the evaluation device (its shape and
            device are used, not its values).
        budget: Forward passes per input.
        forward_batch_size: Rows per forward call; every method gets
            :attr:`perturbations_per_eval` examples' worth, so all run the same batch shapes.
    """

    model: Callable[..., Tensor]
    inputs: Tensor
    budget: int
    forward_batch_size: int

    @property
    def kind(self) -> str:
        """``"images"`` or ``"series"``."""
        return data_kind(self.inputs)

    @property
    def perturbations_per_eval(self) -> int:
        """Rows per example and forward call, Captum's meaning, ``forward_batch_size // B``."""
        return max(1, self.forward_batch_size // self.inputs.shape[0])

    @cached_property
    def segments(self) -> Tensor:
        """Feature mask :math:`(1, C, *S)`: an ``8 x 8`` grid of square superpixels on images,
        the default time segments of PerturbMask on series (``ceil(T / 8)`` clamped to 8..32),
        every channel of a position in the same segment."""
        from captum_perturbmask.attr._masks import default_grid

        channels, spatial, device = self.inputs.shape[1], self.inputs.shape[2:], self.inputs.device
        if len(spatial) == 2:
            height, width = spatial
            grid = min(IMAGE_SEGMENTS, height, width)
            rows = torch.arange(height, device=device) * grid // height
            cols = torch.arange(width, device=device) * grid // width
            return (rows[:, None] * grid + cols[None, :]).expand(1, channels, height, width)
        (length,) = spatial
        steps = torch.arange(length, device=device) * default_grid(spatial)[0] // length
        return steps.expand(1, channels, length)

    @cached_property
    def occlusion_window(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Sliding window and strides of Occlusion, about ``budget`` positions: a window about
        twice its stride, ``~sqrt(budget)`` positions per image axis, ``min(budget, T)`` along
        a series; over all channels."""
        spatial = self.inputs.shape[2:]
        per_axis = max(1, math.isqrt(self.budget)) if len(spatial) == 2 else self.budget
        geometry = [_occlusion_geometry(n, per_axis) for n in spatial]
        channels = self.inputs.shape[1]
        return (channels, *(w for w, _ in geometry)), (channels, *(s for _, s in geometry))

    def captum(self, explainer: Any, *, global_rng: bool = False, **kwargs: Any) -> AttributionFn:
        """``fn(inputs, target, seed)`` calling ``explainer.attribute(inputs, target=target,
        **kwargs)``, plus ``perturbations_per_eval`` and ``seed`` where ``attribute`` takes
        them.

        Args:
            explainer: A Captum ``Attribution`` (or anything with that ``attribute``).
            global_rng: The explainer draws from the global RNG (Captum's ``Lime``,
                ``KernelShap``): each call runs in a private fork of it seeded with ``seed``.
            **kwargs: Further keywords of ``attribute``; a ``feature_mask`` is moved to the
                inputs' device.
        """
        takes = inspect.signature(explainer.attribute).parameters
        if "perturbations_per_eval" in takes:
            kwargs = {"perturbations_per_eval": self.perturbations_per_eval, **kwargs}
        seeded = "seed" in takes

        def fn(x: Tensor, target: TargetType, seed: int) -> Tensor:
            extra = dict(kwargs)
            if isinstance(extra.get("feature_mask"), Tensor):
                extra["feature_mask"] = extra["feature_mask"].to(x.device)
            if seeded:
                extra["seed"] = seed
            if not global_rng:
                return explainer.attribute(x, target=target, **extra)
            with private_global_rng(x.device), warnings.catch_warnings():
                torch.manual_seed(seed)
                warnings.simplefilter("ignore", UserWarning)  # Captum's "multiple inputs" advice
                return explainer.attribute(x, target=target, **extra)

        return fn


@dataclass(frozen=True)
class Method:
    """One entry of the method registry.

    Attributes:
        name: The method's name in tables and records (the command line takes it in any case).
        build: ``build(setting) -> fn(inputs, target, seed)`` for a :class:`~.MethodSetting`, or
            ``None`` when the method cannot explain this model (Grad-CAM without a
            convolution).
        data: The kinds of data it explains, ``"images"`` and/or ``"series"``.
        default: The kinds of data whose default set includes it.
    """

    name: str
    build: Callable[[MethodSetting], AttributionFn | None]
    data: tuple[str, ...] = KINDS
    default: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty string, got {self.name!r}.")
        if not callable(self.build):
            raise TypeError(f"`build` of method {self.name!r} must be callable.")
        for field_name in ("data", "default"):
            kinds = getattr(self, field_name)
            if isinstance(kinds, str) or any(k not in KINDS for k in kinds):
                raise ValueError(
                    f"`{field_name}` of method {self.name!r} must be a tuple of {KINDS}, got "
                    f"{kinds!r}."
                )
        if set(self.default) - set(self.data):
            raise ValueError(f"method {self.name!r} is a default for data it does not explain.")


#: The registry, name -> :class:`~.Method`, in the order of the tables.
METHODS: dict[str, Method] = {}


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to :data:`~.METHODS` (the last place in the tables); returns it.

    Raises:
        ValueError: a method of that name (in any case) is registered and ``replace`` is
            false.
    """
    if not isinstance(method, Method):
        raise TypeError(f"`method` must be a Method, got {type(method).__name__}.")
    same = [n for n in METHODS if n.lower() == method.name.lower()]
    if same and not replace:
        raise ValueError(f"a method {same[0]!r} is registered; pass replace=True to replace it.")
    for name in same:
        del METHODS[name]
    METHODS[method.name] = method
    return method


# ------------------------------------------------------------------------------- the entries
def _perturb_mask(s: MethodSetting) -> AttributionFn:
    from captum_perturbmask.attr import PerturbMask

    return s.captum(PerturbMask(s.model), budget=s.budget)


def _rise(s: MethodSetting) -> AttributionFn:
    from captum_perturbmask.attr import RISE

    return s.captum(RISE(s.model), budget=s.budget)


def _grad_cam(s: MethodSetting) -> AttributionFn | None:
    from captum.attr import LayerAttribution, LayerGradCam

    convs = [m for m in s.model.modules() if isinstance(m, nn.Conv2d)] if isinstance(
        s.model, nn.Module) else []  # fmt: skip
    if not convs:
        return None
    explainer, size = LayerGradCam(s.model, convs[-1]), tuple(s.inputs.shape[2:])

    def grad_cam(x: Tensor, target: TargetType, seed: int) -> Tensor:
        cam = explainer.attribute(x, target=target, relu_attributions=True)
        return LayerAttribution.interpolate(cam, size, interpolate_mode="bilinear")

    return grad_cam


def _lime(s: MethodSetting) -> AttributionFn:
    from captum.attr import Lime

    return s.captum(Lime(s.model), global_rng=True, feature_mask=s.segments, n_samples=s.budget)


def _occlusion(s: MethodSetting) -> AttributionFn:
    from captum.attr import Occlusion

    window, strides = s.occlusion_window
    return s.captum(Occlusion(s.model), sliding_window_shapes=window, strides=strides)


def _feature_ablation(s: MethodSetting) -> AttributionFn:
    from captum.attr import FeatureAblation

    return s.captum(FeatureAblation(s.model), feature_mask=s.segments)


def _integrated_gradients(s: MethodSetting) -> AttributionFn:
    from captum.attr import IntegratedGradients

    explainer, rows = IntegratedGradients(s.model), max(50, s.forward_batch_size)

    def integrated_gradients(x: Tensor, target: TargetType, seed: int) -> Tensor:
        return explainer.attribute(x, target=target, n_steps=50, internal_batch_size=rows)

    return integrated_gradients


def _kernel_shap(s: MethodSetting) -> AttributionFn:
    from captum.attr import KernelShap

    return s.captum(
        KernelShap(s.model), global_rng=True, feature_mask=s.segments, n_samples=s.budget
    )


def _hsic(s: MethodSetting) -> AttributionFn:
    from captum_perturbmask.attr import HSICAttribution

    return s.captum(HSICAttribution(s.model), budget=s.budget)


def _sobol(s: MethodSetting) -> AttributionFn:
    """Sobol attribution on its default grid, made coarser when the budget cannot pay for
    ``cells + 2`` passes (it needs ``N (cells + 2)``)."""
    from captum_perturbmask.attr import SobolAttribution
    from captum_perturbmask.attr._masks import default_grid

    spatial = s.inputs.shape[2:]
    room = max(s.budget - 2, 1)
    if len(spatial) == 2:
        grid = min(SobolAttribution.image_grid, math.isqrt(room))
    else:
        grid = min(default_grid(spatial)[0], room)
    return s.captum(SobolAttribution(s.model, grid_size=grid), budget=s.budget)


for _entry in (
    Method("PerturbMask", _perturb_mask),
    Method("RISE", _rise),
    Method("GradCAM", _grad_cam, data=("images",), default=("images",)),
    Method("LIME", _lime),
    Method("Occlusion", _occlusion),
    Method("FeatureAblation", _feature_ablation, default=("series",)),
    Method("IntegratedGradients", _integrated_gradients, default=("series",)),
    Method("KernelShap", _kernel_shap, default=()),
    Method("HSIC", _hsic, default=()),
    Method("Sobol", _sobol, default=()),
):
    register_method(_entry)
del _entry


# ---------------------------------------------------------------------------------- building
def default_methods(
    model: Callable[..., Tensor],
    inputs: Tensor,
    names: Sequence[str] | None = None,
    *,
    budget: int = 400,
    forward_batch_size: int = 256,
) -> dict[str, AttributionFn]:
    r"""Build registered methods for batches shaped like ``inputs``, at a common budget.

    ``methods = default_methods(model, x, budget=400)``; ``methods["RISE"](x, y, 0)`` is a map
    (every method is called as ``fn(inputs, target, seed)``).

    The default set of images :math:`(B, C, H, W)`: PerturbMask and RISE at ``budget``
    forwards per input; Grad-CAM (:class:`captum.attr.LayerGradCam` on the model's last
    :class:`~torch.nn.Conv2d`, ReLU applied, upsampled bilinearly; left out with a warning
    when the model has none); LIME on an ``8 x 8`` grid of superpixels with ``budget``
    samples; Occlusion with a window about twice its stride and ``~sqrt(budget)`` positions
    per axis. Of series :math:`(B, C, T)` (masking along time across all channels): PerturbMask,
    RISE, LIME on PerturbMask's time segments, Occlusion with ``min(budget, T)`` positions,
    FeatureAblation on the segments (one forward per segment), Integrated Gradients (50 steps
    from zeros). ``names`` picks any registered methods instead (``KernelShap`` is registered
    outside the default sets).

    Args:
        model: The classifier, :math:`(B, C, *S) \to (B, K)`.
        inputs: An example batch (its shape and device are used).
        names: Registered method names (case-insensitive), in the order wanted; ``None``: the
            default set of the data.
        budget: Forward passes per input.
        forward_batch_size: Rows per forward call of every method (each gets
            ``perturbations_per_eval = max(1, forward_batch_size // B)``).

    Returns:
        A dict name -> ``fn(inputs, target, seed)``.

    Raises:
        ValueError: ``inputs`` are neither images nor series, ``budget`` is not positive, or
            a name is unknown or cannot explain this data or model.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32, 2))
        >>> list(default_methods(model, torch.rand(2, 2, 16)))
        ['PerturbMask', 'RISE', 'LIME', 'Occlusion', 'FeatureAblation', 'IntegratedGradients']
        >>> list(default_methods(model, torch.rand(2, 2, 16), ["rise", "KernelShap"]))
        ['RISE', 'KernelShap']
    """
    kind = data_kind(inputs)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"`budget` must be a positive int, got {budget!r}.")
    if (
        isinstance(forward_batch_size, bool)
        or not isinstance(forward_batch_size, int)
        or (forward_batch_size < 1)
    ):
        raise ValueError(
            f"`forward_batch_size` must be a positive int, got {forward_batch_size!r}."
        )
    setting = MethodSetting(model, inputs, budget, forward_batch_size)
    if names is None:
        entries = [m for m in METHODS.values() if kind in m.default]
    else:
        if isinstance(names, str):
            names = [names]
        by_lower = {n.lower(): m for n, m in METHODS.items()}
        entries = []
        for name in names:
            entry = by_lower.get(str(name).lower())
            if entry is None or kind not in entry.data:
                usable = [n for n, m in METHODS.items() if kind in m.data]
                what = "is not registered" if entry is None else f"does not explain {kind}"
                raise ValueError(
                    f"method {name!r} {what}; the registered methods for {kind} are "
                    f"{', '.join(usable)}"
                )
            entries.append(entry)
    methods: dict[str, AttributionFn] = {}
    for entry in entries:
        fn = entry.build(setting)
        if fn is None:
            if names is not None:
                raise ValueError(f"method {entry.name!r} cannot explain this model")
            if entry.name == "GradCAM":
                warnings.warn("GradCAM left out: the model has no nn.Conv2d layer.", stacklevel=2)
            else:
                warnings.warn(f"{entry.name} left out: it cannot explain this model.", stacklevel=2)
            continue
        methods[entry.name] = fn
    return methods


def as_method(name: str, method: Any) -> AttributionFn:
    """``fn(inputs, target, seed)`` of a callable or of a Captum ``Attribution`` object.

    The seed is passed on when the object's ``attribute`` takes one (PerturbMask, RISE).

    Raises:
        TypeError: ``method`` is neither callable nor has an ``attribute`` method.
    """
    attribute = getattr(method, "attribute", None)
    if callable(attribute):
        takes_seed = "seed" in inspect.signature(attribute).parameters

        def fn(x: Tensor, target: TargetType, seed: int) -> Tensor:
            if takes_seed:
                return attribute(x, target=target, seed=seed)
            return attribute(x, target=target)

        return fn
    if callable(method):
        return method
    raise TypeError(
        f"`methods[{name!r}]` must be a callable fn(inputs, target, seed) or a Captum "
        f"Attribution, got {type(method).__name__}."
    )


def logged(
    methods: Mapping[str, AttributionFn],
    log: Callable[[str], Any],
    seed_label: Callable[[int], object] | None = None,
) -> dict[str, AttributionFn]:
    """The same methods, each call reported through ``log`` (name, seed, maps, seconds).

    Args:
        methods: Name -> ``fn(inputs, target, seed)``.
        log: Called with each line.
        seed_label: How a call's seed is shown (default: as it comes). The runner calls a
            method with a seed derived from the run seed and the batch
            (:func:`~captum_perturbmask.evaluation.scoring.derive_seed`); a caller that
            announced the run seeds maps the derived seed back to the one it announced.

    Example:
        >>> fns = logged({"abs": lambda x, t, s: x.abs()}, log=print, seed_label={7: 0}.get)
        >>> fns["abs"](torch.tensor([-1.0]), None, 7)  # doctest: +ELLIPSIS
          abs         seed 0: 1 maps in 0.0 s
        tensor([1.])
    """

    def wrap(name: str, fn: AttributionFn) -> AttributionFn:
        def run(x: Tensor, target: TargetType, seed: int) -> Tensor:
            start = time.perf_counter()
            out = fn(x, target, seed)
            seconds = time.perf_counter() - start
            shown = seed if seed_label is None else seed_label(seed)
            log(f"  {name:<11} seed {shown}: {x.shape[0]} maps in {seconds:.1f} s")
            return out

        return run

    return {name: wrap(name, fn) for name, fn in methods.items()}
