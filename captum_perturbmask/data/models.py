"""Small default models: a CNN classifier and a DCGAN for the digits-in-clutter bed, and a 1-D
CNN and a linear-Gaussian generator for GunPoint time series.

The weights ship inside the package (``captum_perturbmask/data/weights/*.pt``, state dicts
only) and are loaded offline with ``torch.load(..., weights_only=True)``. They are produced by
the training recipes in the source repository, ``python -m tools.train_weights`` (not part of
the installed package; ``tools/train_weights/README.md``), which reproduce them bit for bit.
"""

from __future__ import annotations

from importlib import resources

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = [
    "DigitsCNN",
    "Discriminator",
    "Generator",
    "SeriesCNN",
    "SeriesGenerator",
    "load_default_classifier",
    "load_default_gan",
    "load_default_inpainter",
    "load_series_classifier",
    "load_series_generator",
    "load_series_inpainter",
    "load_weights",
]

_WEIGHTS_PACKAGE = "captum_perturbmask.data"
_WEIGHT_NAMES = (
    "classifier",
    "generator",
    "discriminator",
    "series_classifier_gunpoint",
    "series_classifier_planted",
    "series_generator",
    "inpainter",
    "inpainter_critic",
    "series_inpainter",
    "series_inpainter_critic",
)


class DigitsCNN(nn.Module):
    """A 4-conv-layer classifier of :math:`64 \\times 64` digits-in-clutter images.

    Four ``3x3`` conv/BatchNorm/ReLU blocks (16, 32, 64, 128 channels; max-pooling after the
    first three, so the last feature map is :math:`8 \\times 8`), global average pooling and a
    linear layer.

    Args:
        num_classes: Number of output classes.

    Attributes:
        gradcam_layer: The last :class:`torch.nn.Conv2d`, the usual Grad-CAM target layer.

    Shape:
        - Input: :math:`(B, 3, 64, 64)` in :math:`[0, 1]`.
        - Output: logits :math:`(B, \\text{num\\_classes})`.

    Example:
        >>> model = DigitsCNN().eval()
        >>> model(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        widths = (3, 16, 32, 64, 128)
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(widths[i], widths[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(widths[i + 1]),
                nn.ReLU(),
            ]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        self.gradcam_layer: nn.Conv2d = [m for m in self.features if isinstance(m, nn.Conv2d)][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify a batch of images.

        Args:
            x: Images of shape :math:`(B, 3, H, W)` (trained at :math:`H = W = 64`).

        Returns:
            Logits of shape :math:`(B, \\text{num\\_classes})`.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must have shape (B, 3, H, W), got {tuple(x.shape)}")
        return self.fc(self.pool(self.features(x)).flatten(1))


class Generator(nn.Module):
    """DCGAN generator of :math:`32 \\times 32` RGB digit patches.

    Four transposed convolutions (:math:`1 \\to 4 \\to 8 \\to 16 \\to 32`) with BatchNorm/ReLU
    and a final sigmoid. The prior is a standard normal :math:`z`; the model is
    class-unconditional.

    Args:
        latent_dim: Dimension of the latent code :math:`z`.
        width: Channels of the last hidden layer (the others are 2x, 4x).

    Attributes:
        latent_dim: Dimension of the latent code.

    Shape:
        - Input: :math:`(B, \\text{latent\\_dim})` or :math:`(B, \\text{latent\\_dim}, 1, 1)`.
        - Output: :math:`(B, 3, 32, 32)` in :math:`[0, 1]`.

    Example:
        >>> g = Generator(latent_dim=64).eval()
        >>> g(torch.randn(2, 64)).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(self, latent_dim: int = 64, width: int = 32) -> None:
        super().__init__()
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        self.latent_dim = latent_dim
        w = width
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 4 * w, 4, 1, 0, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.ConvTranspose2d(w, 3, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latent codes to patches.

        Args:
            z: Latent codes, shape :math:`(B, D)` or :math:`(B, D, 1, 1)` with
                :math:`D` = :attr:`latent_dim`.

        Returns:
            Patches of shape :math:`(B, 3, 32, 32)` in :math:`[0, 1]`.

        Raises:
            ValueError: If ``z`` has the wrong shape.
        """
        if z.dim() == 2 and z.shape[1] == self.latent_dim:
            z = z[:, :, None, None]
        elif not (z.dim() == 4 and z.shape[1] == self.latent_dim and z.shape[2:] == (1, 1)):
            raise ValueError(
                f"z must have shape (B, {self.latent_dim}) or (B, {self.latent_dim}, 1, 1), "
                f"got {tuple(z.shape)}"
            )
        return self.net(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` patches from the prior :math:`z \\sim \\mathcal{N}(0, I)`.

        Args:
            n: Number of samples, a positive int.
            generator: Optional :class:`torch.Generator` (on the model's device) for ``z``.

        Returns:
            Patches of shape :math:`(n, 3, 32, 32)` in :math:`[0, 1]`.

        Raises:
            ValueError: If ``n`` is not a positive int.

        Example:
            >>> g = Generator().eval()
            >>> g.sample(3, generator=torch.Generator().manual_seed(0)).shape
            torch.Size([3, 3, 32, 32])
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self(z)


class Discriminator(nn.Module):
    """DCGAN discriminator of :math:`32 \\times 32` RGB patches, with spectral normalisation.

    Args:
        width: Channels of the first layer (then 2x, 4x).

    Shape:
        - Input: :math:`(B, 3, 32, 32)` in :math:`[0, 1]`.
        - Output: real-vs-fake logits :math:`(B,)` (positive means "real").

    Example:
        >>> d = Discriminator().eval()
        >>> d(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2])
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        w = width
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(3, w, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(w, 2 * w, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(4 * w, 1, 4, 1, 0)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score patches.

        Args:
            x: Patches of shape :math:`(B, 3, 32, 32)`.

        Returns:
            Logits of shape :math:`(B,)`.

        Raises:
            ValueError: If ``x`` has the wrong shape.
        """
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ValueError(f"x must have shape (B, 3, 32, 32), got {tuple(x.shape)}")
        return self.net(x).flatten()


class SeriesCNN(nn.Module):
    """A small fully convolutional classifier of univariate series of any length.

    Three ``Conv1d``/BatchNorm/ReLU blocks (``width``, ``2 width``, ``2 width`` channels;
    kernels 7, 5, 3 with dilations 1, 2, 4 and "same" zero padding, so every block keeps the
    length and the receptive field is 23 steps), global average pooling over time and a linear
    layer: the fully convolutional network of Wang et al. (2017) scaled down about tenfold. The
    global pooling makes it accept any length :math:`T \\ge 1`.

    Args:
        num_classes: Number of output classes.
        width: Channels of the first block.

    Attributes:
        gradcam_layer: The last ``torch.nn.Conv1d``, the usual Grad-CAM target layer.

    Shape:
        - Input: :math:`(B, 1, T)`, z-normalised series (see
          :func:`captum_perturbmask.data.load_gunpoint`).
        - Output: logits :math:`(B, \\text{num\\_classes})`.

    Example:
        >>> model = SeriesCNN().eval()
        >>> model(torch.randn(2, 1, 150)).shape, model(torch.randn(3, 1, 47)).shape
        (torch.Size([2, 2]), torch.Size([3, 2]))
    """

    def __init__(self, num_classes: int = 2, width: int = 32) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        widths = (1, width, 2 * width, 2 * width)
        layers: list[nn.Module] = []
        for i, (k, dil) in enumerate(((7, 1), (5, 2), (3, 4))):
            layers += [
                nn.Conv1d(widths[i], widths[i + 1], k, padding=dil * (k // 2), dilation=dil),
                nn.BatchNorm1d(widths[i + 1]),
                nn.ReLU(),
            ]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[-1], num_classes)
        self.gradcam_layer: nn.Conv1d = [m for m in self.features if isinstance(m, nn.Conv1d)][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify a batch of series.

        Args:
            x: Series of shape :math:`(B, 1, T)`.

        Returns:
            Logits of shape :math:`(B, \\text{num\\_classes})`.

        Raises:
            ValueError: If ``x`` does not have shape :math:`(B, 1, T)`.
        """
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[2] < 1:
            raise ValueError(f"x must have shape (B, 1, T), got {tuple(x.shape)}")
        return self.fc(self.features(x).mean(dim=2))


class SeriesGenerator(nn.Module):
    """A small VAE decoder of z-normalised GunPoint series.

    An MLP (``latent_dim`` :math:`\\to` ``hidden`` :math:`\\to` ``hidden`` :math:`\\to`
    ``length``, ReLU) maps :math:`z \\sim \\mathcal{N}(0, I_d)` to the mean of a Gaussian
    likelihood :math:`\\mathcal{N}(G(z), \\sigma^2 I)`; :math:`\\sigma` is learned and kept in
    :attr:`noise_std`, so a latent search can weigh a squared reconstruction error
    (:math:`/ 2\\sigma^2`) against the prior penalty :math:`\\|z\\|^2 / 2`. It is trained
    with its encoder by the repository's ``tools/train_weights/series.py``.

    Why a VAE decoder: GunPoint has 50 training series. A GAN trained on 50 examples is
    fragile (mode collapse or memorisation, and too few series to tell which). Probabilistic
    PCA, closed form with an exact likelihood, was the first candidate and is kept in the
    training script as a measured baseline: it reconstructs held-out series well, but its
    samples are not series of the data. GunPoint's main variation, *when* the hand rises and
    falls, is not linear in the values, so mixtures of principal shapes wobble, and the
    shipped GunPoint classifier reads nearly all its confident samples as ``"Gun"``. A VAE fed
    a stream of time-shifted training series (so 50 series suffice) learns that nonlinear
    family: its samples have the flat rests, plateaus and steep edges of the data and are read
    as either class, and a latent search that matches the context of a hidden span fills it
    about as well as PPCA's exact conditional mean (``training_log.json``; benchmarks/RESULTS.md).

    Args:
        latent_dim: Dimension :math:`d` of the latent code.
        length: Length :math:`T` of the generated series.
        hidden: Width of the two hidden layers.

    Attributes:
        latent_dim: Dimension of the latent code.
        length: Length of the generated series.
        noise_std: The likelihood scale :math:`\\sigma` (0-dim buffer; 1 before training).

    Shape:
        - Input: latents :math:`(M, d)`.
        - Output: series :math:`(M, 1, T)`.

    Example:
        >>> g = SeriesGenerator(latent_dim=4).eval()
        >>> g(torch.randn(3, 4)).shape
        torch.Size([3, 1, 150])
    """

    def __init__(self, latent_dim: int = 8, length: int = 150, hidden: int = 256) -> None:
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("length", length), ("hidden", hidden)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.latent_dim = latent_dim
        self.length = length
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, length),
        )
        self.register_buffer("noise_std", torch.ones(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decode latents to series (the likelihood mean).

        Args:
            z: Latent codes, shape :math:`(M, d)` with :math:`d` = :attr:`latent_dim`.

        Returns:
            Series of shape :math:`(M, 1, T)`.

        Raises:
            ValueError: If ``z`` has the wrong shape.
        """
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (M, {self.latent_dim}), got {tuple(z.shape)}")
        return self.net(z)[:, None, :]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` latents drawn from the prior :math:`z \\sim \\mathcal{N}(0, I)`.

        Args:
            n: Number of samples, a positive int.
            generator: Optional :class:`torch.Generator` (on the model's device) for ``z``.

        Returns:
            Series of shape :math:`(n, 1, T)`.

        Raises:
            ValueError: If ``n`` is not a positive int.

        Example:
            >>> g = SeriesGenerator().eval()
            >>> g.sample(2, generator=torch.Generator().manual_seed(0)).shape
            torch.Size([2, 1, 150])
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        device = self.noise_std.device
        return self(torch.randn(n, self.latent_dim, generator=generator, device=device))


def load_weights(name: str, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """Load a shipped state dict ``weights/<name>.pt`` with ``weights_only=True``.

    Args:
        name: ``"classifier"``, ``"generator"``, ``"discriminator"`` (digits) or
            ``"series_classifier_gunpoint"``, ``"series_classifier_planted"``,
            ``"series_generator"`` (GunPoint series).
        device: Device to map the tensors to (default CPU).

    Returns:
        The state dict.

    Raises:
        ValueError: If ``name`` is not a shipped weight file.

    Example:
        >>> sd = load_weights("classifier")
        >>> "fc.weight" in sd
        True
    """
    if name not in _WEIGHT_NAMES:
        raise ValueError(f"name must be one of {_WEIGHT_NAMES}, got {name!r}")
    res = resources.files(_WEIGHTS_PACKAGE).joinpath("weights", f"{name}.pt")
    with res.open("rb") as f:
        return torch.load(f, map_location=device or "cpu", weights_only=True)


def load_default_classifier(device: str | torch.device | None = None) -> DigitsCNN:
    """The shipped :class:`DigitsCNN` for digits-in-clutter, in eval mode.

    Args:
        device: Device to put the model on (default CPU).

    Returns:
        The trained classifier (eval mode), input :math:`(B, 3, 64, 64)` in :math:`[0, 1]`.

    Example:
        >>> from captum_perturbmask.data import make_digits_clutter
        >>> model = load_default_classifier()
        >>> ds = make_digits_clutter("test", n=8)
        >>> model.training, model(ds.images).shape
        (False, torch.Size([8, 10]))
    """
    model = DigitsCNN()
    model.load_state_dict(load_weights("classifier", device))
    return model.to(device or "cpu").eval()


def load_default_gan(
    device: str | torch.device | None = None,
) -> tuple[Generator, Discriminator]:
    """The shipped DCGAN of :math:`32 \\times 32` digit patches, both nets in eval mode.

    Args:
        device: Device to put the models on (default CPU).

    Returns:
        ``(generator, discriminator)``; the generator has ``latent_dim`` 64.

    Example:
        >>> g, d = load_default_gan()
        >>> x = g(torch.randn(2, g.latent_dim))
        >>> x.shape, d(x).shape
        (torch.Size([2, 3, 32, 32]), torch.Size([2]))
    """
    gen, disc = Generator(), Discriminator()
    gen.load_state_dict(load_weights("generator", device))
    disc.load_state_dict(load_weights("discriminator", device))
    return gen.to(device or "cpu").eval(), disc.to(device or "cpu").eval()


def load_series_classifier(
    kind: str = "gunpoint", device: str | torch.device | None = None
) -> SeriesCNN:
    """A shipped :class:`SeriesCNN` for GunPoint series, in eval mode.

    * ``"gunpoint"``: trained on the 50 GunPoint training series (Gun = 0, Point = 1);
    * ``"planted"``: trained on planted-motif series
      (:func:`captum_perturbmask.data.make_planted_series`; square pulse = 0,
      sine burst = 1); on real series without a motif it answers close to 50/50.

    Args:
        kind: ``"gunpoint"`` or ``"planted"``.
        device: Device to put the model on (default CPU).

    Returns:
        The trained classifier (eval mode), input :math:`(B, 1, T)` z-normalised series.

    Raises:
        ValueError: If ``kind`` is unknown.

    Example:
        >>> model = load_series_classifier("gunpoint")
        >>> model.training, model(torch.zeros(2, 1, 150)).shape
        (False, torch.Size([2, 2]))
    """
    if kind not in ("gunpoint", "planted"):
        raise ValueError(f"kind must be 'gunpoint' or 'planted', got {kind!r}")
    model = SeriesCNN()
    model.load_state_dict(load_weights(f"series_classifier_{kind}", device))
    return model.to(device or "cpu").eval()


def load_series_generator(device: str | torch.device | None = None) -> SeriesGenerator:
    """The shipped :class:`SeriesGenerator` (a VAE decoder) of z-normalised GunPoint series.

    Args:
        device: Device to put the model on (default CPU).

    Returns:
        The fitted generator, in eval mode, mapping latents :math:`(M, d)` to series
        :math:`(M, 1, 150)`, :math:`d` = ``latent_dim``.

    Example:
        >>> g = load_series_generator()
        >>> g(torch.zeros(1, g.latent_dim)).shape
        torch.Size([1, 1, 150])
    """
    state = load_weights("series_generator", device)
    hidden, latent_dim = state["net.0.weight"].shape
    length = state["net.4.weight"].shape[0]
    model = SeriesGenerator(latent_dim=int(latent_dim), length=int(length), hidden=int(hidden))
    model.load_state_dict(state)
    return model.to(device or "cpu").eval()


def _inpainter_pair(
    name: str, window: int | tuple[int, int], output: str, device: str | torch.device | None
) -> tuple[nn.Module, nn.Module]:
    from captum_perturbmask.generative.inpainting import ContextInpainter, InpaintingCritic

    g_state = load_weights(name, device)
    d_state = load_weights(f"{name}_critic", device)
    width, channels = g_state["enc.0.weight"].shape[:2]
    latent_dim = g_state["from_z.weight"].shape[1]
    n_classes = int(g_state["embed.weight"].shape[0]) if "embed.weight" in g_state else 0
    gen = ContextInpainter(
        int(channels) - 1,
        window,
        latent_dim=int(latent_dim),
        width=int(width),
        output=output,
        n_classes=n_classes,
    )
    proj = d_state.get("project.parametrizations.weight.original")
    crit = InpaintingCritic(
        int(channels) - 1,
        window,
        width=int(d_state["net.0.bias"].shape[0]),
        n_classes=0 if proj is None else int(proj.shape[0]),
    )
    gen.load_state_dict(g_state)
    crit.load_state_dict(d_state)
    return gen.to(device or "cpu").eval(), crit.to(device or "cpu").eval()


def load_default_inpainter(device: str | torch.device | None = None) -> tuple[nn.Module, nn.Module]:
    """The shipped context-aware inpainter of :math:`32 \\times 32` digit windows and its critic.

    A class-conditional (on the digit's class, 10 classes)
    :class:`~captum_perturbmask.generative.ContextInpainter`
    :math:`G(z, \\text{context}, \\text{hole}, y)` and
    :class:`~captum_perturbmask.generative.InpaintingCritic`, trained by
    ``tools/train_weights/inpaint.py`` on train-split windows with holes over 30-80% of the
    digit box (a few over 80-100% of it and its edge, a quarter of them the whole window: the
    free samples, conditioned on the class asked for).

    Args:
        device: Device to put the models on (default CPU).

    Returns:
        ``(inpainter, critic)``, both in eval mode.

    Example:
        >>> g, d = load_default_inpainter()
        >>> x = g.sample(2, generator=torch.Generator().manual_seed(0))
        >>> x.shape, d(x).shape
        (torch.Size([2, 3, 32, 32]), torch.Size([2]))
    """
    return _inpainter_pair("inpainter", (32, 32), "sigmoid", device)


def load_series_inpainter(
    device: str | torch.device | None = None,
) -> tuple[nn.Module, nn.Module]:
    """The shipped context-aware inpainter of z-normalised 150-step series and its critic.

    A class-conditional (on the planted motif's class, 2 classes)
    :class:`~captum_perturbmask.generative.ContextInpainter` (1-D, linear output) and its
    projection critic :class:`~captum_perturbmask.generative.InpaintingCritic`, trained by
    ``tools/train_weights/inpaint.py`` on planted-motif *train* series with random holes
    (over the motif or anywhere, a tenth of them the whole series).

    Args:
        device: Device to put the models on (default CPU).

    Returns:
        ``(inpainter, critic)``, both in eval mode, windows :math:`(M, 1, 150)`.

    Example:
        >>> g, d = load_series_inpainter()
        >>> x = g.sample(2, generator=torch.Generator().manual_seed(0))
        >>> x.shape, d(x, torch.tensor([0, 1])).shape
        (torch.Size([2, 1, 150]), torch.Size([2]))
    """
    return _inpainter_pair("series_inpainter", 150, "linear", device)
