"""Tests of the shipped digits and series weights and of the model classes."""

from importlib import resources

import pytest
import torch
from torch import nn

from captum_perturbmask.data import (
    DigitsCNN,
    Discriminator,
    Generator,
    SeriesCNN,
    SeriesGenerator,
    load_default_classifier,
    load_default_gan,
    load_series_classifier,
    load_series_generator,
)

WEIGHTS = ("classifier", "generator", "discriminator")


@pytest.fixture(scope="module")
def classifier() -> DigitsCNN:
    return load_default_classifier()


@pytest.fixture(scope="module")
def gan() -> tuple[Generator, Discriminator]:
    return load_default_gan()


@pytest.mark.parametrize("name", WEIGHTS)
def test_weights_are_plain_state_dicts(name: str) -> None:
    res = resources.files("captum_perturbmask.data").joinpath("weights", f"{name}.pt")
    with res.open("rb") as f:
        sd = torch.load(f, map_location="cpu", weights_only=True)
    assert isinstance(sd, dict) and sd
    assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items())


def test_weights_small() -> None:
    folder = resources.files("captum_perturbmask.data").joinpath("weights")
    total = sum(folder.joinpath(f"{n}.pt").read_bytes().__len__() for n in WEIGHTS)
    assert total < 5 * 2**20


def test_loaders_eval_mode(classifier: DigitsCNN, gan: tuple[Generator, Discriminator]) -> None:
    g, d = gan
    for m in (classifier, g, d):
        assert not m.training
        assert all(not mod.training for mod in m.modules())
    assert isinstance(classifier, DigitsCNN)
    assert isinstance(g, Generator) and isinstance(d, Discriminator)
    assert g.latent_dim == 64


def test_classifier_shapes_and_gradcam_layer(classifier: DigitsCNN) -> None:
    out = classifier(torch.rand(3, 3, 64, 64))
    assert out.shape == (3, 10)
    convs = [m for m in classifier.modules() if isinstance(m, nn.Conv2d)]
    assert classifier.gradcam_layer is convs[-1]
    feats = {}
    h = classifier.gradcam_layer.register_forward_hook(lambda m, i, o: feats.setdefault("o", o))
    classifier(torch.rand(1, 3, 64, 64))
    h.remove()
    assert feats["o"].shape == (1, 128, 8, 8)
    with pytest.raises(ValueError, match="x must"):
        classifier(torch.rand(1, 1, 64, 64))


def test_generator_and_discriminator_shapes(gan: tuple[Generator, Discriminator]) -> None:
    g, d = gan
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(5, 64, generator=gen)
    with torch.no_grad():
        x = g(z)
    assert x.shape == (5, 3, 32, 32)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    with torch.no_grad():
        assert torch.allclose(g(z[:, :, None, None]), x)
        assert d(x).shape == (5,)
    s1 = g.sample(4, generator=torch.Generator().manual_seed(1))
    s2 = g.sample(4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s1, s2)
    with pytest.raises(ValueError, match="z must"):
        g(torch.randn(2, 10))
    with pytest.raises(ValueError, match="x must"):
        d(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="n must"):
        g.sample(0)
    with pytest.raises(ValueError, match="latent_dim"):
        Generator(latent_dim=0)


# --------------------------------------------------------------------------------------------
# GunPoint series models
# --------------------------------------------------------------------------------------------
SERIES_WEIGHTS = ("series_classifier_gunpoint", "series_classifier_planted", "series_generator")


@pytest.fixture(scope="module")
def series_classifiers() -> dict[str, SeriesCNN]:
    return {kind: load_series_classifier(kind) for kind in ("gunpoint", "planted")}


@pytest.fixture(scope="module")
def series_generator() -> SeriesGenerator:
    return load_series_generator()


@pytest.mark.parametrize("name", SERIES_WEIGHTS)
def test_series_weights_plain_small_state_dicts(name: str) -> None:
    res = resources.files("captum_perturbmask.data").joinpath("weights", f"{name}.pt")
    with res.open("rb") as f:
        sd = torch.load(f, map_location="cpu", weights_only=True)
    assert isinstance(sd, dict) and sd
    assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items())
    limit = 200_000 if "classifier" in name else 500_000
    assert len(res.read_bytes()) < limit


def test_series_loaders(
    series_classifiers: dict[str, SeriesCNN], series_generator: SeriesGenerator
) -> None:
    for m in (*series_classifiers.values(), series_generator):
        assert not m.training and all(not mod.training for mod in m.modules())
    assert series_generator.latent_dim == 8 and series_generator.length == 150
    assert 0.0 < float(series_generator.noise_std) < 0.2
    with pytest.raises(ValueError, match="kind"):
        load_series_classifier("digits")


def test_series_cnn_shapes_and_errors(series_classifiers: dict[str, SeriesCNN]) -> None:
    model = series_classifiers["gunpoint"]
    with torch.no_grad():
        for t in (1, 47, 150, 400):
            assert model(torch.randn(3, 1, t)).shape == (3, 2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert model.gradcam_layer is convs[-1] and len(convs) == 3
    for bad in (torch.randn(2, 150), torch.randn(2, 3, 150), torch.randn(2, 1, 0)):
        with pytest.raises(ValueError, match="x must"):
            model(bad)
    with pytest.raises(ValueError, match="num_classes"):
        SeriesCNN(num_classes=1)


def test_series_generator_shapes_and_errors(series_generator: SeriesGenerator) -> None:
    g = series_generator
    with torch.no_grad():
        x = g(torch.randn(5, g.latent_dim, generator=torch.Generator().manual_seed(0)))
        s1 = g.sample(4, generator=torch.Generator().manual_seed(1))
        s2 = g.sample(4, generator=torch.Generator().manual_seed(1))
    assert x.shape == (5, 1, 150) and torch.equal(s1, s2)
    with pytest.raises(ValueError, match="z must"):
        g(torch.randn(2, g.latent_dim + 1))
    with pytest.raises(ValueError, match="n must"):
        g.sample(0)
    with pytest.raises(ValueError, match="latent_dim"):
        SeriesGenerator(latent_dim=0)
