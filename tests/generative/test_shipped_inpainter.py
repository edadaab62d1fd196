"""LatentVariationGenerator with the shipped digits inpainter on held-out digits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from captum_perturbmask.generative import LatentVariationGenerator, VariationSettings
from captum_perturbmask.metrics import box_to_mask

N_IMAGES = 6


@pytest.fixture(scope="module")
def bed() -> Iterator[dict[str, object]]:
    from captum_perturbmask.data import load_default_classifier, make_digits_clutter
    from captum_perturbmask.data.models import load_default_inpainter

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    clf = load_default_classifier()
    g, d = load_default_inpainter()
    ds = make_digits_clutter("test", n=N_IMAGES, seed=3)
    # B = the upper 60% of each digit's box: more than half of the digit is hidden
    boxes = ds.boxes.clone()
    boxes[:, 3] = boxes[:, 1] + 0.6 * (boxes[:, 3] - boxes[:, 1])
    mask = box_to_mask(boxes.round(), (64, 64))
    yield {"clf": clf, "g": g, "d": d, "x": ds.images, "y": ds.labels, "mask": mask}
    torch.set_num_threads(threads)


def test_fills_keep_the_class_and_differ(bed: dict[str, object]) -> None:
    x, y, mask = bed["x"], bed["y"], bed["mask"]
    assert isinstance(x, torch.Tensor) and isinstance(mask, torch.Tensor)
    lvg = LatentVariationGenerator(bed["g"], bed["d"], forward_func=bed["clf"])  # type: ignore[arg-type]
    out = lvg.generate(
        x,
        mask=mask,
        target=y,
        seed=0,
        settings=VariationSettings(n_restarts=8, n_keep=6, n_steps=20),
    )
    keep = ~out.mask[:, None, None].expand_as(out.variants)
    assert torch.equal(out.variants[keep], x[:, None].expand_as(out.variants)[keep])
    assert out.accepted_fraction is not None and out.accepted_fraction >= 0.6
    b = out.mask[:, None].float()
    spread = (out.variants.std(1) * b).sum() / (b.sum() * 3)
    assert float(spread) >= 0.01  # different codes give different fills


def test_free_samples_are_read_as_the_class_asked(bed: dict[str, object]) -> None:
    from captum_perturbmask.data import make_digits_clutter, paste_patches

    g, clf = bed["g"], bed["clf"]
    ds = make_digits_clutter("test", n=40, seed=5)
    with torch.no_grad():
        free = g.sample(40, generator=torch.Generator().manual_seed(0))  # type: ignore[union-attr]
        p = clf(paste_patches(ds.images, free, ds.patch_boxes)).softmax(1)  # type: ignore[operator]
    assert float((p.max(1).values >= 0.9).double().mean()) >= 0.6
    assert float((p.argmax(1) == torch.arange(40) % 10).double().mean()) >= 0.6
