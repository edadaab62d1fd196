r"""Context-aware inpainting generators :math:`G(z, \text{context}, \text{hole})` and their critic.

A plain GAN generator :math:`G(z)` sees nothing of the input: the latent search alone has to
make its generation agree with the context around :math:`B`, and a 64-d latent code rarely
reaches a fill that both matches the surroundings and keeps the digit legible. The
inpainters here take the known context and the hole mask as inputs, in the spirit of Context
Encoders (Pathak et al., 2016, "Context encoders: feature learning by inpainting"): an
encoder-decoder with skip connections reads the window with the hole zeroed out, a latent
code :math:`z` enters at the bottleneck, and the decoder returns the whole window. Different
codes give different fills of the same hole (they are trained with a best-of-:math:`K`
reconstruction loss plus an adversarial loss of :class:`InpaintingCritic`, see
``tools/train_weights/inpaint.py``), so the latent search of
:class:`~captum_perturbmask.generative.LatentVariationGenerator` still has a distribution to
search. With the whole window as the hole (an empty context) the inpainter is a plain
unconditional generator (:meth:`ContextInpainter.sample`).

**Class-conditional.** With ``n_classes > 0`` the inpainter also takes a class :math:`y`
(an embedding added at the bottleneck): it fills the hole with what class :math:`y` could
have there. The shipped inpainters are class-conditional; in the latent search
:math:`y` is the target class of each input (the decision being explained), so the variants
are the acceptable variations *of that class* and the classifier tells which of them it
still reads as that class. Free samples are then conditioned on the class asked for. The
critic is unconditional.

Both modules work on images :math:`(M, C, h, w)` (``window=(h, w)``) and on series
:math:`(M, C, t)` (``window=t``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["ContextInpainter", "InpaintingCritic"]

_DEPTH = 3  # stride-2 stages; the window is padded to a multiple of 2 ** _DEPTH


def _window(window: int | tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(window, int) and not isinstance(window, bool):
        window = (window,)
    if (
        not isinstance(window, tuple)
        or len(window) not in (1, 2)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in window)
    ):
        raise ValueError(
            f"`window` must be an int >= 8 (series) or a (h, w) tuple of ints >= 8 (images), "
            f"got {window!r}"
        )
    return window


def _check_positive(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return value


class ContextInpainter(nn.Module):
    r"""Inpainter :math:`G(z, \text{context}, \text{hole})` of a fixed window.

    Encoder: three stride-2 convolutions (``width``, 2 ``width``, 4 ``width`` channels, leaky
    ReLU) over the context (zero inside the hole) and the hole mask; the latent code is mapped
    by a linear layer to 4 ``width`` further bottleneck channels; decoder: three stride-2
    transposed convolutions with skip connections from the encoder and a final
    :math:`3 \times 3` (or 3-step) convolution, sigmoid (``output="sigmoid"``, images in
    :math:`[0, 1]`) or none (``output="linear"``, z-normalised series). Windows whose sides
    are not multiples of 8 are padded by replication and cropped back.

    Args:
        channels: Channels :math:`C` of the inputs.
        window: Window size: ``(h, w)`` for images, ``t`` (an int) for series.
        latent_dim: Size :math:`d` of the latent code (standard normal prior).
        width: Channels of the first encoder stage.
        output: ``"sigmoid"`` or ``"linear"``.
        n_classes: Number of classes the fill is conditioned on; 0 for none.

    Attributes:
        latent_dim: :math:`d`.
        window: The window size as a tuple.
        channels: :math:`C`.
        conditions_on_context: ``True``: the latent search passes the context and hole.
        n_classes: Classes of the conditioning (0: unconditional).

    Shape:
        - ``z``: :math:`(M, d)`; ``context``: :math:`(M, C, *P)`; ``hole``: :math:`(M, 1, *P)`
          or :math:`(M, *P)`, 1 inside the hole; :math:`P` = ``window``; ``y``: long
          :math:`(M,)` when ``n_classes > 0``.
        - Output: :math:`(M, C, *P)`.

    Example:
        >>> g = ContextInpainter(3, (32, 32), latent_dim=8, width=8).eval()
        >>> ctx, hole = torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
        >>> hole[..., 8:20, 10:24] = 1
        >>> g(torch.randn(2, 8), ctx, hole).shape
        torch.Size([2, 3, 32, 32])
        >>> g.sample(4, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([4, 3, 32, 32])
    """

    conditions_on_context = True

    def __init__(
        self,
        channels: int,
        window: int | tuple[int, ...],
        latent_dim: int = 32,
        width: int = 32,
        output: str = "sigmoid",
        n_classes: int = 0,
    ) -> None:
        super().__init__()
        self.channels = _check_positive(channels, "channels")
        self.window = _window(window)
        self.latent_dim = _check_positive(latent_dim, "latent_dim")
        w = _check_positive(width, "width")
        if output not in ("sigmoid", "linear"):
            raise ValueError(f"`output` must be 'sigmoid' or 'linear', got {output!r}")
        self.output = output
        if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 0:
            raise ValueError(f"`n_classes` must be an int >= 0, got {n_classes!r}")
        self.n_classes = n_classes
        nd = len(self.window)
        conv = nn.Conv1d if nd == 1 else nn.Conv2d
        up = nn.ConvTranspose1d if nd == 1 else nn.ConvTranspose2d
        scale = 2**_DEPTH
        self.padded = tuple(scale * math.ceil(p / scale) for p in self.window)
        self.bottleneck = tuple(p // scale for p in self.padded)
        self.enc = nn.ModuleList(
            [
                conv(channels + 1, w, 4, 2, 1),
                conv(w, 2 * w, 4, 2, 1),
                conv(2 * w, 4 * w, 4, 2, 1),
            ]
        )
        self.from_z = nn.Linear(latent_dim, 4 * w * math.prod(self.bottleneck))
        self.dec = nn.ModuleList(
            [
                up(8 * w, 2 * w, 4, 2, 1),
                up(4 * w, w, 4, 2, 1),
                up(2 * w, w, 4, 2, 1),
            ]
        )
        self.head = conv(w, channels, 3, 1, 1)
        self.embed = (
            nn.Embedding(n_classes, 4 * w * math.prod(self.bottleneck)) if n_classes else None
        )
        self._width = w

    def forward(self, z: Tensor, context: Tensor, hole: Tensor, y: Tensor | None = None) -> Tensor:
        """Fill the hole of each window.

        Args:
            z: Latent codes :math:`(M, d)` (or :math:`(M, d, 1, ...)`).
            context: Windows :math:`(M, C, *P)`; values inside the hole are ignored.
            hole: Hole masks :math:`(M, 1, *P)` or :math:`(M, *P)`, 1 (or True) inside.
            y: Classes :math:`(M,)` (long), needed when ``n_classes > 0``, else ``None``.

        Returns:
            The generated windows :math:`(M, C, *P)` (the whole window, context included).

        Raises:
            ValueError: If the shapes do not fit.
        """
        m = context.shape[0]
        shape = (m, self.channels, *self.window)
        if tuple(context.shape) != shape:
            raise ValueError(f"`context` must have shape {shape}, got {tuple(context.shape)}")
        if hole.dim() == context.dim() - 1:
            hole = hole.unsqueeze(1)
        if tuple(hole.shape) != (m, 1, *self.window):
            raise ValueError(
                f"`hole` must have shape {(m, 1, *self.window)}, got {tuple(hole.shape)}"
            )
        z = z.reshape(z.shape[0], -1)
        if tuple(z.shape) != (m, self.latent_dim):
            raise ValueError(f"`z` must have shape {(m, self.latent_dim)}, got {tuple(z.shape)}")
        if self.embed is not None:
            if not isinstance(y, Tensor) or tuple(y.shape) != (m,) or y.is_floating_point():
                raise ValueError(
                    f"`y` must be a long Tensor ({m},) of classes for a class-conditional "
                    f"inpainter, got {getattr(y, 'shape', y)!r}"
                )
            if bool(((y < 0) | (y >= self.n_classes)).any()):
                raise ValueError(f"`y` must hold classes in [0, {self.n_classes})")
        elif y is not None:
            raise ValueError("`y` is given but the inpainter is unconditional (n_classes=0)")
        h = hole.to(context.dtype)
        x = torch.cat([context * (1 - h), h], dim=1)
        pad: list[int] = []
        for p, q in zip(reversed(self.window), reversed(self.padded), strict=True):
            pad += [0, q - p]
        if any(pad):
            x = F.pad(x, pad, mode="replicate")
        skips = []
        for layer in self.enc:
            x = F.leaky_relu(layer(x), 0.2)
            skips.append(x)
        zz = self.from_z(z)
        if self.embed is not None:
            assert y is not None
            zz = zz + self.embed(y.long())
        zz = zz.view(m, 4 * self._width, *self.bottleneck)
        x = torch.cat([x, F.leaky_relu(zz, 0.2)], dim=1)
        for i, layer in enumerate(self.dec):
            if i > 0:
                x = torch.cat([x, skips[-1 - i]], dim=1)
            x = F.relu(layer(x))
        x = self.head(x)
        x = x[(..., *(slice(0, p) for p in self.window))]
        return torch.sigmoid(x) if self.output == "sigmoid" else x

    def sample(
        self, n: int, generator: torch.Generator | None = None, y: Tensor | None = None
    ) -> Tensor:
        """``n`` free samples: the whole window is the hole (an empty context).

        Args:
            n: Number of samples, a positive int.
            generator: Optional :class:`torch.Generator` (on the model's device) for :math:`z`.
            y: Classes :math:`(n,)` of a class-conditional inpainter; ``None`` cycles through
                the classes (``0, 1, ..., n_classes - 1, 0, ...``).

        Returns:
            Windows :math:`(n, C, *P)`.
        """
        _check_positive(n, "n")
        p = next(self.parameters())
        z = torch.randn(n, self.latent_dim, generator=generator, device=p.device, dtype=p.dtype)
        ctx = p.new_zeros((n, self.channels, *self.window))
        hole = p.new_ones((n, 1, *self.window))
        if self.n_classes and y is None:
            y = torch.arange(n, device=p.device) % self.n_classes
        return self(z, ctx, hole, y)


class InpaintingCritic(nn.Module):
    """Spectrally normalised critic of whole windows (real vs. inpainted).

    Three stride-2 convolutions (``width``, 2 ``width``, 4 ``width`` channels, leaky ReLU) and a
    linear layer to one logit; it scores the *composed* window (the context with the hole
    filled), as the adversarial loss of Context Encoders.

    With ``n_classes > 0`` it is a projection critic (Miyato & Koyama, 2018): the logit gains
    the inner product of a class embedding with the features, so it also judges whether the
    window fits the class :math:`y`.

    Args:
        channels: Channels :math:`C`.
        window: ``(h, w)`` for images, ``t`` for series.
        width: Channels of the first stage.
        n_classes: Classes of the projection; 0 for an unconditional critic.

    Shape:
        - Input: :math:`(M, C, *P)` (and classes :math:`(M,)` when ``n_classes > 0``).
        - Output: logits :math:`(M,)` (positive means "real").

    Example:
        >>> d = InpaintingCritic(1, 150, width=8).eval()
        >>> d(torch.randn(3, 1, 150)).shape
        torch.Size([3])
    """

    def __init__(
        self, channels: int, window: int | tuple[int, ...], width: int = 32, n_classes: int = 0
    ) -> None:
        super().__init__()
        self.channels = _check_positive(channels, "channels")
        self.window = _window(window)
        w = _check_positive(width, "width")
        nd = len(self.window)
        conv = nn.Conv1d if nd == 1 else nn.Conv2d
        self.net = nn.Sequential(
            spectral_norm(conv(channels, w, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(conv(w, 2 * w, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(conv(2 * w, 4 * w, 4, 2, 1)),
            nn.LeakyReLU(0.2),
        )
        with torch.no_grad():
            flat = self.net(torch.zeros(1, channels, *self.window)).numel()
        self.fc = spectral_norm(nn.Linear(flat, 1))
        if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 0:
            raise ValueError(f"`n_classes` must be an int >= 0, got {n_classes!r}")
        self.n_classes = n_classes
        self.project = spectral_norm(nn.Embedding(n_classes, flat)) if n_classes else None

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Score windows :math:`(M, C, *P)` (of classes ``y`` :math:`(M,)` for a projection
        critic); returns logits :math:`(M,)`.

        Raises:
            ValueError: If ``x`` has the wrong shape.
        """
        if tuple(x.shape[1:]) != (self.channels, *self.window):
            raise ValueError(
                f"x must have shape (M, {self.channels}, {', '.join(map(str, self.window))}), "
                f"got {tuple(x.shape)}"
            )
        h = self.net(x).flatten(1)
        out = self.fc(h).flatten()
        if self.project is not None:
            if not isinstance(y, Tensor) or tuple(y.shape) != (x.shape[0],):
                raise ValueError(
                    f"`y` must be a Tensor ({x.shape[0]},) of classes for a projection critic"
                )
            out = out + (self.project(y.long()) * h).sum(1)
        return out
