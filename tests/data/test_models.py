"""Tests of the shipped classifier and GAN weights and of the model classes."""

from importlib import resources

import pytest
import torch
from torch import nn

from captum_perturbmask.data import (
    DigitsCNN,
    Discriminator,
    Generator,
    load_default_classifier,
    load_default_gan,
    make_digits_clutter,
    paste_patches,
)
from captum_perturbmask.data.train import (
    evaluate_classifier,
    gan_sanity,
    train_classifier,
    train_gan,
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


def test_classifier_accuracy_on_held_out_digits(classifier: DigitsCNN) -> None:
    """Computed live on the default test split (540 images, one per held-out digit)."""
    acc = evaluate_classifier(classifier, seed=0)
    assert acc >= 0.95, acc
    # Another placement/clutter seed of the same held-out digits.
    assert evaluate_classifier(classifier, seed=123) >= 0.95


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


def test_gan_sanity(classifier: DigitsCNN, gan: tuple[Generator, Discriminator]) -> None:
    """Generated patches, pasted into held-out canvases, are often read as confident digits.

    Shipped weights measure 0.40 (real patches: 0.95; uniform-noise patches: 0.00) with
    3.2 bits of class entropy over the confident samples (uniform over 10 classes: 3.32).
    """
    g, d = gan
    s = gan_sanity(g, d, classifier, n=256, seed=0)
    assert s["real_confident_fraction"] >= 0.9, s
    assert s["confident_fraction"] >= 0.3, s
    assert s["class_entropy_bits"] >= 2.5, s  # not collapsed onto a few classes
    assert s["d_real_minus_noise"] > 0.0, s
    # Control: noise pasted into the same canvases is never read as a confident digit.
    ds = make_digits_clutter("test", n=256, seed=0)
    noise = torch.rand(256, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p = classifier(paste_patches(ds.images, noise, ds.patch_boxes)).softmax(1)
    assert float((p.max(1).values >= 0.9).float().mean()) <= 0.05


def test_training_smoke() -> None:
    model, log = train_classifier(seed=0, epochs=1, n_per_epoch=64, batch_size=32)
    assert not model.training and 0.0 <= log["test_accuracy"] <= 1.0
    g, d, glog = train_gan(seed=0, steps=2, batch_size=8, pool_size=32, bn_batches=1)
    assert not g.training and not d.training and glog["steps"] == 2
