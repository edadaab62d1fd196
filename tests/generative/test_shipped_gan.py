"""LatentVariationGenerator on the shipped digit GAN and classifier (digits-in-clutter)."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

import pytest
import torch
import torch.nn.functional as F

from captum_perturbmask.generative import (
    CounterfactualConfig,
    LatentVariationGenerator,
    VariationSettings,
)
from captum_perturbmask.metrics import box_to_mask, saliency_box

WEIGHTS = resources.files("captum_perturbmask.data").joinpath("weights")
SHIPPED = all(WEIGHTS.joinpath(f"{n}.pt").is_file() for n in ("generator", "discriminator"))
pytestmark = pytest.mark.skipif(not SHIPPED, reason="shipped GAN weights not present")

N_IMAGES = 4


@pytest.fixture(scope="module")
def bed() -> Iterator[dict[str, object]]:
    from captum_perturbmask.data import (
        load_default_classifier,
        load_default_gan,
        make_digits_clutter,
    )

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: one thread is fastest and kind to shared CPUs
    clf = load_default_classifier()
    gen, disc = load_default_gan()
    ds = make_digits_clutter("test", n=N_IMAGES)
    x, y = ds.images, ds.labels
    # B = box of the top 2% of a smoothed input-gradient saliency map (cheap, deterministic)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(clf(xg).gather(1, y[:, None]).sum(), xg)
    sal = F.avg_pool2d(grad.abs().sum(1, keepdim=True), 5, stride=1, padding=2)[:, 0]
    mask = box_to_mask(saliency_box(sal, threshold=0.98), (64, 64))
    digit_patch = ds.patch_boxes[:, [1, 0]].long()  # (row, col) of the patches the GAN saw
    yield {
        "clf": clf, "gen": gen, "disc": disc, "x": x, "y": y, "mask": mask,
        "digit_patch": digit_patch,
    }  # fmt: skip
    torch.set_num_threads(threads)


@pytest.mark.parametrize("placement", ["centred on B", "digit patch"])
def test_most_variants_keep_the_class(bed: dict[str, object], placement: str) -> None:
    x, y, mask = bed["x"], bed["y"], bed["mask"]
    assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
    origin = bed["digit_patch"] if placement == "digit patch" else None
    lvg = LatentVariationGenerator(bed["gen"], bed["disc"], forward_func=bed["clf"])  # type: ignore[arg-type]
    out = lvg.generate(
        x,
        mask=mask,
        target=y,
        seed=0,
        patch_origin=origin,
        settings=VariationSettings(n_restarts=16, n_keep=4, n_steps=100),
    )
    assert out.accepted is not None and out.realism is not None
    keep = ~out.mask[:, None, None].expand_as(out.variants)
    assert torch.equal(out.variants[keep], x[:, None].expand_as(out.variants)[keep])
    assert bool((out.diversity > 0).all())
    fraction = out.accepted_fraction
    print(f"\n{placement}: accepted {fraction:.2f} of {out.accepted.numel()} variants")
    assert fraction is not None and fraction >= 0.5


def test_counterfactuals_flip_some_decisions(bed: dict[str, object]) -> None:
    x, y, mask = bed["x"], bed["y"], bed["mask"]
    assert isinstance(x, torch.Tensor)
    lvg = LatentVariationGenerator(bed["gen"], bed["disc"], forward_func=bed["clf"])  # type: ignore[arg-type]
    cfg = CounterfactualConfig(epsilon=2.0, n_candidates=4, n_steps=100)
    out = lvg.generate(
        x,
        mask=mask,
        target=y,
        seed=0,
        counterfactual=cfg,
        settings=VariationSettings(n_restarts=16, n_keep=4, n_steps=100),
    )
    cf = out.counterfactuals
    assert cf is not None
    assert bool((cf.latent_distance <= 2.0 + 1e-4).all())
    print(f"\ncounterfactuals flip {cf.n_flipped_inputs}/{N_IMAGES} images")
    assert cf.n_flipped_inputs >= 1
