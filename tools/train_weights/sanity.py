"""Honest, measurable checks of the shipped generators, recorded in ``training_log.json``:
:func:`gan_sanity` for the digits-patch DCGAN, :func:`series_generator_sanity` for the series
generator (and its PPCA baseline)."""

from __future__ import annotations

import torch

from captum_perturbmask.data.digits import make_digits_clutter, paste_patches
from captum_perturbmask.data.models import Discriminator, Generator
from captum_perturbmask.data.series import load_gunpoint

__all__ = ["gan_sanity", "series_generator_sanity"]


@torch.no_grad()
def gan_sanity(
    g: Generator,
    d: Discriminator,
    classifier: torch.nn.Module,
    n: int = 256,
    seed: int = 0,
    threshold: float = 0.9,
) -> dict[str, float]:
    """Honest, measurable GAN checks.

    * ``confident_fraction``: generated patches pasted into held-out test canvases (replacing
      the digit patch) that ``classifier`` assigns some class with softmax :math:`\\ge`
      ``threshold``.
    * ``real_confident_fraction``: the same for the real test patches (the reference).
    * ``d_real_minus_noise``: mean discriminator logit of real test patches minus that of
      uniform-noise patches.
    * ``class_entropy_bits``: entropy of the predicted-class histogram of the confident
      generated samples (diversity; :math:`\\log_2 10 \\approx 3.32` is uniform).

    Args:
        g: Generator.
        d: Discriminator.
        classifier: Classifier of :math:`(B, 3, 64, 64)` canvases.
        n: Number of test canvases / generated patches.
        seed: Seed of the canvases, latents and noise.
        threshold: Confidence threshold.

    Returns:
        A dict with the four numbers.
    """
    g.eval(), d.eval(), classifier.eval()
    gen = torch.Generator().manual_seed(seed)
    ds = make_digits_clutter("test", n=n, seed=seed)
    fake = g(torch.randn(n, g.latent_dim, generator=gen))
    p_fake = classifier(paste_patches(ds.images, fake, ds.patch_boxes)).softmax(1)
    p_real = classifier(ds.images).softmax(1)
    conf_fake = p_fake.max(1).values >= threshold
    hist = torch.bincount(p_fake.argmax(1)[conf_fake], minlength=10).double()
    prob = hist / hist.sum().clamp_min(1)
    entropy = abs(float((prob[prob > 0] * prob[prob > 0].log2()).sum()))
    noise = torch.rand(n, 3, 32, 32, generator=gen)
    return {
        "confident_fraction": float(conf_fake.float().mean()),
        "real_confident_fraction": float((p_real.max(1).values >= threshold).float().mean()),
        "d_real_minus_noise": float(d(ds.patches()).mean() - d(noise).mean()),
        "class_entropy_bits": entropy,
    }


def _latent_search(
    generator: torch.nn.Module,
    target: torch.Tensor,
    observed: torch.Tensor,
    steps: int = 400,
    lr: float = 0.05,
) -> torch.Tensor:
    """Latents whose series match ``target`` where ``observed`` (MAP under a N(0, I) prior).

    Minimises :math:`\\sum_\\text{observed} (G(z) - x)^2 / (2 \\sigma^2) + \\|z\\|^2 / 2` with
    Adam from :math:`z = 0`, :math:`\\sigma` the generator's ``noise_std`` (0.1 without one).
    """
    sigma = float(getattr(generator, "noise_std", 0.1))
    z = torch.zeros(target.shape[0], generator.latent_dim, requires_grad=True)
    opt = torch.optim.Adam([z], lr=lr)
    mask = observed.to(target.dtype)
    with torch.enable_grad():
        for _ in range(steps):
            loss = ((generator(z) - target).square() * mask).sum() / (2 * sigma**2)
            loss = loss + z.square().sum() / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return z.detach()


def _linear_fill(x: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """``x`` :math:`(N, 1, T)` with each span replaced by the straight line between its two
    neighbours (the one neighbour repeated at a series end)."""
    out = x.clone()
    t = x.shape[-1]
    for i, (a, b) in enumerate(spans.tolist()):
        left = x[i, 0, a - 1] if a > 0 else x[i, 0, b]
        right = x[i, 0, b] if b < t else left
        w = torch.arange(1, b - a + 1, dtype=x.dtype) / (b - a + 1)
        out[i, 0, a:b] = left + (right - left) * w
    return out


@torch.no_grad()
def series_generator_sanity(
    generator: torch.nn.Module,
    classifier: torch.nn.Module,
    n: int = 256,
    seed: int = 0,
    threshold: float = 0.9,
    span_length: int = 20,
    n_series: int = 150,
    steps: int = 400,
) -> dict[str, float]:
    """Honest, measurable checks of a generator of z-normalised GunPoint series.

    * ``confident_fraction``: generated series :math:`G(z)`, :math:`z \\sim \\mathcal{N}(0, I)`,
      that ``classifier`` labels with softmax :math:`\\ge` ``threshold``;
      ``real_confident_fraction``: the same for the real test series (the reference);
      ``point_fraction``: share of the confident generated series labelled ``"Point"``.
    * ``sample_std``: mean per-series standard deviation of the generated series (real: 1).
    * ``heldout_rmse``: root-mean-square error of the held-out test series reconstructed
      by latent search (MAP, every step observed); ``mean_rmse``: the training mean series'
      error (the no-latent reference).
    * ``span_rmse``: error inside a hidden span of ``span_length`` steps (seeded place) of each
      test series when the latent search sees only the context outside it: the "acceptable
      variation" use. References: ``span_rmse_linear`` (straight line across the span) and
      ``span_rmse_mean`` (training mean series).

    Args:
        generator: Module mapping latents :math:`(M, d)` to series :math:`(M, 1, 150)`, with
            ``latent_dim``.
        classifier: GunPoint classifier of :math:`(B, 1, 150)` series.
        n: Number of generated series.
        seed: Seed of the latents and of the hidden spans.
        threshold: Confidence threshold.
        span_length: Length of the hidden span.
        n_series: Number of test series (the first ones) for the latent-search checks.
        steps: Adam steps of each latent search.

    Returns:
        A dict with the numbers above.
    """
    generator.eval(), classifier.eval()
    gen = torch.Generator().manual_seed(seed)
    fake = generator(torch.randn(n, generator.latent_dim, generator=gen))
    p_fake = classifier(fake).softmax(1)
    conf_fake = p_fake.max(1).values >= threshold
    test = load_gunpoint("test").series[:n_series]
    p_real = classifier(test).softmax(1)
    mean = load_gunpoint("train").series.mean(0, keepdim=True)

    def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).square().mean().sqrt())

    everywhere = torch.ones_like(test, dtype=torch.bool)
    full = generator(_latent_search(generator, test, everywhere, steps=steps))
    span_gen = torch.Generator().manual_seed(seed + 1)  # same spans whatever the latent size
    starts = torch.randint(
        0, test.shape[-1] - span_length + 1, (test.shape[0],), generator=span_gen
    )
    spans = torch.stack([starts, starts + span_length], 1)
    inside = torch.arange(test.shape[-1])[None, None, :]
    inside = (inside >= spans[:, :1, None]) & (inside < spans[:, 1:, None])  # (N, 1, T)
    filled = generator(_latent_search(generator, test, ~inside, steps=steps))
    linear = _linear_fill(test, spans)
    pred = p_real.argmax(1)

    def agree(x: torch.Tensor) -> float:  # same predicted class with the span replaced by x
        return float((classifier(torch.where(inside, x, test)).argmax(1) == pred).double().mean())

    return {
        "confident_fraction": float(conf_fake.double().mean()),
        "real_confident_fraction": float((p_real.max(1).values >= threshold).double().mean()),
        "point_fraction": float((p_fake.argmax(1)[conf_fake] == 1).double().mean()),
        "sample_std": float(fake.std(-1, unbiased=False).mean()),
        "heldout_rmse": rmse(full, test),
        "mean_rmse": rmse(mean.expand_as(test), test),
        "span_rmse": rmse(filled[inside], test[inside]),
        "span_rmse_linear": rmse(linear[inside], test[inside]),
        "span_fill_agreement": agree(filled),
        "span_fill_agreement_linear": agree(linear),
        "span_fill_agreement_mean": agree(mean.expand_as(test)),
        "span_rmse_mean": rmse(mean.expand_as(test)[inside], test[inside]),
    }
