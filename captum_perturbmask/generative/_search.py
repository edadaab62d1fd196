r"""Internals of the latent search: settings, the cropped inputs, the loss, projection, Adam.

Everything here works for images :math:`(N, C, H, W)` and series :math:`(N, C, T)` alike: the
:math:`S` spatial dimensions (2 or 1) are flattened where positions are gathered or scattered.
The models are reached only through callables (``generate``: latents to generations,
``discriminate``: generations to logits), so the search knows nothing of its owner.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FiniteGuard",
    "Objective",
    "SearchSettings",
    "SearchState",
    "adam_search",
    "box_filter",
    "frozen",
    "mean_pairwise_distance",
    "project",
]


@dataclass(frozen=True)
class SearchSettings:
    """The checked knobs of one latent search (see ``LatentVariationGenerator.generate``)."""

    loss: str = "mse"
    reduction: str = "sum"
    realism: str = "yeh"
    lam: float = 0.003
    n_steps: int = 300
    lr: float = 0.05
    tol: float = 1e-4
    check_every: int = 25
    projection: str = "sphere"
    clip_value: float = 1.0
    show_progress: bool = False

    def replace(self, **changes: Any) -> SearchSettings:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------------
# The models during a search
# --------------------------------------------------------------------------------------------
# Every search puts its models in eval mode (BatchNorm must not couple restarts, Dropout must
# not add noise) with ``requires_grad=False`` on their parameters (gradients flow to the latents
# only; the parameters' graph is never built). Per-call save/restore would race when two threads
# search with the same models: the second call would save the first call's frozen state and
# restore it last. Leaving ``requires_grad`` alone and differentiating with
# ``torch.autograd.grad(..., inputs=z)`` would not be enough, because the training flag has to
# change anyway. So each submodule and parameter has a process-wide reference count under one
# lock: the first entry saves its flag and freezes it, the last exit restores the saved flag.
_FREEZE_LOCK = threading.Lock()
_FROZEN: dict[int, list[Any]] = {}  # id -> [count, object (kept alive), saved flag]


@contextmanager
def frozen(*models: object) -> Iterator[None]:
    """Eval mode and no parameter gradients for the ``nn.Module`` s among ``models``.

    Flags are restored exactly on exit, also after an error, and concurrent or nested blocks
    over the same modules (from any thread) restore them only when the last one exits.
    Non-module callables are ignored.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
        >>> with frozen(net, net[0]):
        ...     print(net.training, net[0].weight.requires_grad)
        False False
        >>> print(net.training, net[0].weight.requires_grad)
        True True
    """
    objects: dict[int, nn.Module | nn.Parameter] = {}
    for m in models:
        if isinstance(m, nn.Module):
            for s in m.modules():
                objects.setdefault(id(s), s)
            for p in m.parameters():
                objects.setdefault(id(p), p)
    items = list(objects.values())
    with _FREEZE_LOCK:
        for obj in items:
            entry = _FROZEN.get(id(obj))
            if entry is not None:
                entry[0] += 1
            elif isinstance(obj, nn.Module):
                _FROZEN[id(obj)] = [1, obj, obj.training]
                obj.training = False
            else:
                _FROZEN[id(obj)] = [1, obj, obj.requires_grad]
                obj.requires_grad_(False)
    try:
        yield
    finally:
        with _FREEZE_LOCK:
            for obj in reversed(items):
                entry = _FROZEN[id(obj)]
                entry[0] -= 1
                if entry[0] == 0:
                    del _FROZEN[id(obj)]
                    if isinstance(obj, nn.Module):
                        obj.training = entry[2]
                    else:
                        obj.requires_grad_(entry[2])


class FiniteGuard:
    """Records on the device which watched output first held NaN/inf; :meth:`check` syncs
    once and raises a ``ValueError`` naming that model (NaN spreads downstream: a bad
    classifier output makes the gradient, then the latents and then every later output NaN,
    so the first one to fail is the one to blame).

    Example:
        >>> guard = FiniteGuard()
        >>> guard.watch("generator", torch.ones(2))
        >>> guard.watch("forward_func", torch.tensor([1.0, float("nan")]))
        >>> guard.watch("generator", torch.tensor([float("inf")]))
        >>> guard.check()
        Traceback (most recent call last):
        ...
        ValueError: forward_func returned NaN or infinite values during the latent search; ...
    """

    def __init__(self) -> None:
        self.calls = 0
        self.first: dict[str, Tensor] = {}  # name -> index of its first bad output, -1: none

    def watch(self, name: str, value: Tensor) -> None:
        bad = ~torch.isfinite(value.detach()).all()
        old = self.first.get(name)
        if old is None:
            old = torch.full((), -1, dtype=torch.long, device=value.device)
        self.first[name] = torch.where(bad & (old < 0), self.calls, old)
        self.calls += 1

    def check(self) -> None:
        if not self.first:
            return
        names = list(self.first)
        order = torch.stack([self.first[k].to(self.first[names[0]].device) for k in names])
        failed = [(s, i) for i, s in enumerate(order.tolist()) if s >= 0]
        if failed:
            name = names[min(failed)[1]]
            what = "held" if name.startswith("the ") else "returned"
            raise ValueError(
                f"{name} {what} NaN or infinite values during the latent search; the search "
                "needs finite outputs (check the model, its weights and its inputs)"
            )


# --------------------------------------------------------------------------------------------
# Inputs, masks and context weights in the generator's window
# --------------------------------------------------------------------------------------------
def box_filter(x: Tensor, size: int) -> Tensor:
    """Mean over a window of ``size`` per spatial dim (zero padding); ``x`` is
    :math:`(N, 1, T)` or :math:`(N, 1, H, W)`, the output has the same shape."""
    pool = F.avg_pool1d if x.dim() == 3 else F.avg_pool2d
    return pool(x, size, stride=1, padding=size // 2, count_include_pad=True)


@dataclass
class SearchState:
    """Inputs cropped to the generator's window, with masks and context weights.

    :math:`S` spatial dims (``x`` is :math:`(N, C, *X)`), window size :math:`P` (a tuple of
    :math:`S` ints), :math:`L = \\prod P`.
    """

    x: Tensor  # (N, C, *X)
    mask: Tensor  # (N, *X) bool
    context_full: Tensor  # (N, *X)
    x_patch: Tensor  # (N, 1, C, *P)
    mask_patch: Tensor  # (N, 1, 1, *P) bool
    blend_patch: Tensor | None  # (N, 1, 1, *P) feather weights inside B, or None
    weight_patch: Tensor  # (N, 1, 1, *P) context weights R in the window
    weight_norm: Tensor  # (N, 1) C * sum(R) in the window
    index: Tensor | None  # (N, 1, L) flat positions of the window, None for full inputs

    @staticmethod
    def build(
        x: Tensor, mask: Tensor, origins: Tensor, patch: tuple[int, ...], kernel: int, feather: int
    ) -> SearchState:
        n, c = x.shape[:2]
        size = tuple(x.shape[2:])
        nd = len(size)
        bf = mask[:, None].to(x.dtype)
        context = ((1 - bf) * box_filter(bf, kernel))[:, 0]
        blend = None
        if feather > 0:
            blend = (bf * box_filter(bf, 2 * feather + 1))[:, 0]
        length = math.prod(patch)
        if tuple(patch) == size:
            index = None
        else:
            origins = origins.to(x.device)
            flat = torch.zeros((n, *patch), dtype=torch.long, device=x.device)
            stride = 1
            for dim in reversed(range(nd)):
                view = [n] + [1] * nd
                view[1 + dim] = patch[dim]
                coord = origins[:, dim].view(n, *[1] * nd) + torch.arange(
                    patch[dim], device=x.device
                ).view(view[1:])
                flat = flat + coord * stride
                stride *= size[dim]
            index = flat.reshape(n, 1, length)

        def crop(t: Tensor) -> Tensor:  # (N, ..., *X) -> (N, ..., *P)
            if index is None:
                return t
            flat_t = t.flatten(-nd)
            idx = index.reshape(n, *([1] * (flat_t.dim() - 2)), length).expand(
                *flat_t.shape[:-1], -1
            )
            return flat_t.gather(-1, idx).view(*t.shape[:-nd], *patch)

        weight_patch = crop(context)[:, None, None]
        return SearchState(
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
        """Equation (1) for ``k`` generations per input: :math:`(N k, C, *P)` to
        :math:`(N, k, C, *X)`; positions outside :math:`B` are copied from ``x`` (bitwise)."""
        n, c = self.x.shape[:2]
        size = self.x.shape[2:]
        g = patches.view(n, k, *patches.shape[1:])
        if self.blend_patch is not None:
            g = self.x_patch + self.blend_patch * (g - self.x_patch)
        window = torch.where(self.mask_patch, g, self.x_patch)
        if self.index is None:
            return window
        base = self.x[:, None].expand(n, k, c, *size).flatten(3)
        idx = self.index[:, None].expand(n, k, c, -1)
        return base.scatter(3, idx, window.flatten(3)).view(n, k, c, *size)


# --------------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    """Per-restart search loss :math:`(N R,)` as a function of the latents :math:`(N R, d)`.

    Attributes:
        state: the cropped inputs.
        settings: loss, reduction, realism and :math:`\\lambda`.
        generate: latents :math:`(M, d)` to generations :math:`(M, C, *P)`.
        discriminate: generations to realism logits :math:`(M,)`; ``None`` uses the prior
            penalty :math:`\\|z\\|^2 / 2`.
        restarts: latents per input :math:`R`.
        guard: collects non-finite outputs of the models.
        extra: an additional per-restart term of the generations (the counterfactual margin).
    """

    state: SearchState
    settings: SearchSettings
    generate: Callable[[Tensor], Tensor]
    discriminate: Callable[[Tensor], Tensor] | None
    restarts: int
    guard: FiniteGuard
    extra: Callable[[Tensor], Tensor] | None = None

    def with_restarts(self, restarts: int, extra: Callable[[Tensor], Tensor]) -> Objective:
        return dataclasses.replace(self, restarts=restarts, extra=extra)

    def base_loss(self, patches: Tensor, z: Tensor, k: int) -> Tensor:
        """Reconstruction + :math:`\\lambda` contextual loss of ``k`` generations per input."""
        st, cfg = self.state, self.settings
        n = st.x.shape[0]
        err = patches.view(n, k, *patches.shape[1:]) - st.x_patch
        err = err.square() if cfg.loss == "mse" else err.abs()
        rec = (err * st.weight_patch).flatten(2).sum(dim=2)  # (N, k)
        if cfg.reduction == "mean":
            rec = rec / st.weight_norm
        rec = rec.flatten()
        if cfg.lam == 0:
            return rec
        if self.discriminate is not None:
            logit = self.discriminate(patches)
            self.guard.watch("discriminator", logit)
            # log(1 - sigmoid(l)) = -softplus(l); -log(sigmoid(l)) = softplus(-l)
            ctx = -F.softplus(logit) if cfg.realism == "yeh" else F.softplus(-logit)
        else:
            ctx = 0.5 * z.square().sum(dim=1)
        return rec + cfg.lam * ctx

    def __call__(self, z: Tensor) -> Tensor:
        patches = self.generate(z)
        if patches.shape[1:] != self.state.x_patch.shape[2:]:
            raise ValueError(
                f"generator output changed shape to {tuple(patches.shape)} during the search"
            )
        self.guard.watch("generator", patches)
        total = self.base_loss(patches, z, self.restarts)
        if self.extra is not None:
            total = total + self.extra(patches)
        return total


# --------------------------------------------------------------------------------------------
# Projection and the Adam loop
# --------------------------------------------------------------------------------------------
def project(
    z: Tensor, settings: SearchSettings, anchor: Tensor | None = None, eps: float | None = None
) -> Tensor:
    """Project onto the prior's support (and the ball :math:`\\|z - a\\| \\le \\epsilon`).

    Example:
        >>> z = project(torch.tensor([[3.0, 4.0]]), SearchSettings(projection="sphere"))
        >>> z  # on the sphere of radius sqrt(2)
        tensor([[0.8485, 1.1314]])
    """
    d = z.shape[1]
    if settings.projection == "clip":
        if anchor is not None:
            assert eps is not None
            diff = z - anchor
            scale = (eps / diff.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
            z = anchor + diff * scale
        # the cube contains the anchor, so clipping never leaves the ball
        return z.clamp(-settings.clip_value, settings.clip_value)
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


def adam_search(
    objective: Objective,
    z_init: Tensor,
    settings: SearchSettings,
    anchor: Tensor | None = None,
    eps: float | None = None,
    desc: str = "latent search",
) -> tuple[Tensor, Tensor, int]:
    """Adam on the latents with projection; returns best latents, their losses and steps run.

    The best iterate of every restart is tracked on the device; the only host syncs are the
    checks every ``settings.check_every`` steps (convergence and finiteness).

    Raises:
        ValueError: a model returned NaN/inf, or the gradient of the loss was not finite.
    """
    guard = objective.guard
    z = z_init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=settings.lr)
    best_z = z.detach().clone()
    best_loss = torch.full((z.shape[0],), float("inf"), dtype=z.dtype, device=z.device)
    last_check: Tensor | None = None
    bar = None
    if settings.show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.n_steps, desc=desc)
    steps = 0
    try:
        with torch.enable_grad():
            for step in range(settings.n_steps):
                per = objective(z)
                # gradients to the latents only: the models' parameters are frozen
                (grad,) = torch.autograd.grad(per.sum(), z)
                guard.watch("the gradient of the search loss", grad)
                with torch.no_grad():
                    per = per.detach()
                    better = per < best_loss
                    best_loss = torch.where(better, per, best_loss)
                    best_z = torch.where(better[:, None], z.detach(), best_z)
                z.grad = grad
                opt.step()
                with torch.no_grad():
                    z.copy_(project(z, settings, anchor, eps))
                steps = step + 1
                if bar is not None:
                    bar.update(1)
                if steps % settings.check_every == 0:
                    guard.check()
                    if settings.tol > 0:
                        if last_check is not None:
                            rel = (last_check - per).abs() / last_check.abs().clamp_min(1e-12)
                            if float(rel.max()) < settings.tol:
                                break
                        last_check = per
        with torch.no_grad():
            per = objective(z.detach()).detach()
            better = per < best_loss
            best_loss = torch.where(better, per, best_loss)
            best_z = torch.where(better[:, None], z.detach(), best_z)
        guard.check()
    finally:
        if bar is not None:
            bar.close()
    return best_z, best_loss, steps


def mean_pairwise_distance(x: Tensor) -> Tensor:
    """Mean off-diagonal :math:`L_2` distance, ``x`` is :math:`(N, K, F)`; 0 when ``K == 1``.

    Example:
        >>> mean_pairwise_distance(torch.tensor([[[0.0, 0.0], [3.0, 4.0]]]))
        tensor([5.])
    """
    k = x.shape[1]
    if k < 2:
        return x.new_zeros(x.shape[0])
    d = torch.cdist(x.double(), x.double())
    return (d.sum(dim=(1, 2)) / (k * (k - 1))).to(x.dtype)
