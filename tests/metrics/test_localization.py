"""Tests for saliency masks/boxes, box IoU and the pointing game."""

import math

import pytest
import torch
import torchvision

from captum_perturbmask.metrics import (
    box_iou,
    box_to_mask,
    pointing_game,
    saliency_box,
    saliency_mask,
    saliency_span,
    span_iou,
    span_to_mask,
)


def random_boxes(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.sort(torch.randint(0, width + 1, (n, 2), generator=g), dim=1).values
    y = torch.sort(torch.randint(0, height + 1, (n, 2), generator=g), dim=1).values
    x[:, 1] = torch.maximum(x[:, 1], x[:, 0] + 1).clamp(max=width)
    x[:, 0] = torch.minimum(x[:, 0], x[:, 1] - 1)
    y[:, 1] = torch.maximum(y[:, 1], y[:, 0] + 1).clamp(max=height)
    y[:, 0] = torch.minimum(y[:, 0], y[:, 1] - 1)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


# --------------------------------------------------------------------------------------------
# loop references


def reference_mask(saliency: torch.Tensor, threshold: float, mode: str) -> torch.Tensor:
    out = torch.zeros(saliency.shape, dtype=torch.bool)
    for b, s in enumerate(saliency):
        values = sorted(s.flatten().tolist(), reverse=True)
        if mode == "value":
            lo, hi = min(values), max(values)
            norm = (s - lo) / (hi - lo) if hi > lo else torch.ones_like(s)
            out[b] = norm >= threshold
        elif mode == "quantile":
            k = max(1, math.ceil((1 - threshold) * len(values)))
            out[b] = s >= values[k - 1]
        else:
            pos = [max(v, 0.0) for v in values]
            total, acc = sum(pos), 0.0
            for v in pos:
                acc += v
                if acc >= threshold * total * (1 - 1e-6):
                    cut = v
                    break
            out[b] = (s.clamp(min=0) >= cut) & (s > 0)
    return out


def reference_box(mask: torch.Tensor) -> torch.Tensor:
    boxes = []
    for m in mask:
        rows = [r for r in range(m.shape[0]) if m[r].any()]
        cols = [c for c in range(m.shape[1]) if m[:, c].any()]
        boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
    return torch.tensor(boxes, dtype=torch.float32)


# --------------------------------------------------------------------------------------------
# saliency_mask / saliency_box


@pytest.mark.parametrize("mode", ["value", "quantile", "energy"])
@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.9, 1.0])
def test_saliency_mask_matches_reference(mode: str, threshold: float, dtype) -> None:
    attr = torch.randn(4, 2, 7, 9, generator=torch.Generator().manual_seed(3), dtype=dtype)
    attr[0] = attr[0].round()  # ties
    mask = saliency_mask(attr, threshold, mode)
    assert mask.dtype == torch.bool and mask.shape == (4, 7, 9)
    assert torch.equal(mask, reference_mask(attr.sum(1), threshold, mode))
    assert mask.flatten(1).any(1).all()  # never empty


def test_saliency_mask_hand_values() -> None:
    attr = torch.arange(10.0).reshape(1, 2, 5)
    # value: (s - 0) / 9 >= 0.5  <=>  s >= 4.5
    assert saliency_mask(attr, 0.5, "value").sum() == 5
    # quantile 0.8: top ceil(0.2 * 10) = 2 pixels
    assert saliency_mask(attr, 0.8, "quantile").flatten().nonzero().flatten().tolist() == [8, 9]
    # energy 0.3 of 45 = 13.5: 9 + 8 = 17 >= 13.5 -> 2 pixels
    assert saliency_mask(attr, 0.3, "energy").sum() == 2
    # constant map: everything is salient
    assert saliency_mask(torch.ones(1, 3, 3), 0.5, "value").all()
    assert saliency_mask(torch.ones(1, 3, 3), 0.9, "quantile").all()


@pytest.mark.parametrize("mode", ["value", "quantile", "energy"])
def test_saliency_box_matches_reference(mode: str, device) -> None:
    attr = torch.rand(5, 3, 11, 8, generator=torch.Generator().manual_seed(4))
    boxes = saliency_box(attr.to(device), 0.7, mode)
    mask = saliency_mask(attr, 0.7, mode)
    assert boxes.shape == (5, 4) and boxes.dtype == torch.float32
    torch.testing.assert_close(boxes.cpu(), reference_box(mask))
    tv = torchvision.ops.masks_to_boxes(mask) + torch.tensor([0, 0, 1, 1])
    torch.testing.assert_close(boxes.cpu(), tv)


def test_saliency_box_pixel_edge_convention() -> None:
    attr = torch.zeros(2, 1, 6, 7)
    attr[0, 0, 2, 5] = 1.0  # single pixel (r=2, c=5)
    attr[1, 0, 1:4, 2:6] = 1.0  # 3 x 4 block
    boxes = saliency_box(attr, 0.5, "value")
    torch.testing.assert_close(boxes, torch.tensor([[5.0, 2.0, 6.0, 3.0], [2.0, 1.0, 6.0, 4.0]]))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    torch.testing.assert_close(area, torch.tensor([1.0, 12.0]))  # area == pixel count
    assert torch.equal(box_to_mask(boxes, (6, 7)), attr[:, 0] > 0)  # round trip


# --------------------------------------------------------------------------------------------
# box_to_mask / box_iou


def test_box_to_mask_matches_loop() -> None:
    boxes = random_boxes(20, 6, 9)
    mask = box_to_mask(boxes, (6, 9))
    assert mask.shape == (20, 6, 9) and mask.dtype == torch.bool
    for b, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        for r in range(6):
            for c in range(9):
                assert mask[b, r, c] == (x1 <= c < x2 and y1 <= r < y2)
    assert torch.equal(mask.sum(dim=(1, 2)), (boxes[:, 2:] - boxes[:, :2]).prod(1))


def test_box_to_mask_fractional_uses_pixel_centres() -> None:
    mask = box_to_mask(torch.tensor([[0.4, 0.6, 1.5, 2.0]]), (3, 3))
    expected = torch.tensor([[[False, False, False], [True, False, False], [False] * 3]])
    assert torch.equal(mask, expected)


def test_box_iou_matches_torchvision(device, dtype) -> None:
    b1 = random_boxes(50, 20, 30, seed=1).to(device=device, dtype=dtype)
    b2 = random_boxes(50, 20, 30, seed=2).to(device=device, dtype=dtype)
    iou = box_iou(b1, b2, size=(20, 30))
    assert iou.shape == (50,) and iou.dtype == dtype and iou.device.type == device.type
    torch.testing.assert_close(iou, torchvision.ops.box_iou(b1, b2).diagonal())
    # against pixel-set IoU (integer boxes: areas are pixel counts)
    m1, m2 = box_to_mask(b1, (20, 30)), box_to_mask(b2, (20, 30))
    pixel = (m1 & m2).sum((1, 2)) / (m1 | m2).sum((1, 2))
    torch.testing.assert_close(iou, pixel.to(dtype))


def test_box_iou_hand_values() -> None:
    b1 = torch.tensor([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 4, 4], [0, 0, 1, 1]])
    b2 = torch.tensor([[0, 0, 2, 2], [2, 0, 4, 2], [1, 1, 3, 3], [0.5, 0, 1.5, 1]])
    torch.testing.assert_close(box_iou(b1, b2), torch.tensor([1.0, 0.0, 4 / 16, 0.5 / 1.5]))


@pytest.mark.parametrize(
    ("boxes", "size", "error", "match"),
    [
        (torch.tensor([[2, 0, 2, 3]]), None, ValueError, "x1 < x2"),  # empty width
        (torch.tensor([[0, 3, 2, 1]]), None, ValueError, "y1 < y2"),  # y1 > y2
        (torch.tensor([[0, 0, 5, 2]]), (4, 4), ValueError, "inside the image"),
        (torch.tensor([[-1, 0, 2, 2]]), (4, 4), ValueError, "inside the image"),
        (torch.tensor([[0.0, 0.0, math.nan, 2.0]]), None, ValueError, "finite"),
        (torch.tensor([[0, 0, 2]]), None, ValueError, r"\(B, 4\)"),
        (torch.ones(1, 4, dtype=torch.bool), None, TypeError, "dtype"),
        ([[0, 0, 1, 1]], None, TypeError, "torch.Tensor"),
        (torch.tensor([[0, 0, 1, 1]]), (4,), TypeError, "size"),
        (torch.tensor([[0, 0, 1, 1]]), (0, 4), ValueError, "size"),
    ],
)
def test_box_iou_bad_inputs(boxes, size, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        box_iou(boxes, torch.tensor([[0, 0, 1, 1]]), size=size)


def test_box_iou_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        box_iou(torch.tensor([[0, 0, 1, 1]]), torch.tensor([[0, 0, 1, 1], [0, 0, 2, 2]]))


def test_box_to_mask_bad_inputs() -> None:
    with pytest.raises(ValueError, match="inside the image"):
        box_to_mask(torch.tensor([[0, 0, 3, 3]]), (2, 2))
    with pytest.raises(ValueError, match="non-empty"):
        box_to_mask(torch.tensor([[1, 1, 1, 2]]), (2, 2))
    with pytest.raises(TypeError, match="size"):
        box_to_mask(torch.tensor([[0, 0, 1, 1]]), (2.0, 2.0))


# --------------------------------------------------------------------------------------------
# pointing game


@pytest.mark.parametrize("tolerance", [0, 1.5, 3, 15])
def test_pointing_game_matches_loop(tolerance: float, device) -> None:
    attr = torch.rand(30, 3, 9, 12, generator=torch.Generator().manual_seed(5))
    boxes = random_boxes(30, 9, 12, seed=6)
    hits = pointing_game(attr.to(device), boxes.to(device), tolerance=tolerance)
    assert hits.shape == (30,) and hits.dtype == torch.bool
    for b in range(30):
        idx = int(attr[b].sum(0).argmax())  # no ties in random maps
        r, c = divmod(idx, 12)
        x1, y1, x2, y2 = boxes[b].tolist()
        expected = any(
            (r - rr) ** 2 + (c - cc) ** 2 <= tolerance**2
            for rr in range(y1, y2)
            for cc in range(x1, x2)
        )
        assert bool(hits[b]) == expected, b


def test_pointing_game_ties_do_not_favour_top_left() -> None:
    attr = torch.zeros(1, 6, 6)
    box = torch.tensor([[0, 0, 1, 1]])  # top-left pixel only
    results = [
        bool(pointing_game(attr, box, generator=torch.Generator().manual_seed(s))) for s in range(8)
    ]
    assert not all(results)
    assert pointing_game(attr, box) == pointing_game(attr, box)  # deterministic default


@pytest.mark.parametrize(
    ("attr", "boxes", "tolerance", "error", "match"),
    [
        (torch.rand(2, 4, 4), torch.tensor([[0, 0, 2, 2]]), 0, ValueError, "one box per map"),
        (torch.rand(1, 4, 4), torch.tensor([[0, 0, 5, 2]]), 0, ValueError, "inside the image"),
        (torch.rand(1, 4, 4), torch.tensor([[1, 0, 1, 2]]), 0, ValueError, "non-empty"),
        (torch.rand(1, 4, 4), torch.tensor([[0, 0, 2, 2]]), -1, ValueError, "tolerance"),
        (torch.rand(1, 4, 4), torch.tensor([[0, 0, 2, 2]]), "1", TypeError, "tolerance"),
        (torch.full((1, 4, 4), math.nan), torch.tensor([[0, 0, 2, 2]]), 0, ValueError, "finite"),
        (torch.rand(1, 16), torch.tensor([[0, 0, 2, 2]]), 0, ValueError, "attributions"),
        (
            torch.ones(1, 4, 4, dtype=torch.int64),
            torch.tensor([[0, 0, 2, 2]]),
            0,
            TypeError,
            "attributions",
        ),
    ],
)
def test_pointing_game_bad_inputs(attr, boxes, tolerance, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        pointing_game(attr, boxes, tolerance=tolerance)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "otsu"}, ValueError, "mode"),
        ({"threshold": 1.5}, ValueError, "threshold"),
        ({"threshold": -0.1, "mode": "value"}, ValueError, "threshold"),
        ({"threshold": 0.0, "mode": "energy"}, ValueError, "threshold"),
        ({"threshold": "0.5"}, TypeError, "threshold"),
    ],
)
def test_saliency_box_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        saliency_box(torch.rand(1, 4, 4), **kwargs)


def test_saliency_box_bad_maps() -> None:
    with pytest.raises(ValueError, match="finite"):
        saliency_box(torch.full((1, 3, 3), math.inf))
    with pytest.raises(ValueError, match="positive saliency"):
        saliency_box(-torch.rand(2, 3, 3), mode="energy")
    with pytest.raises(ValueError, match="attributions"):
        saliency_box(torch.rand(1, 1, 1, 3, 3))


@pytest.mark.parametrize("mode", ["value", "quantile", "energy"])
def test_half_precision_maps_select_what_float32_selects(mode: str) -> None:
    """Half-precision maps are reduced in float32: the energy cumsum of 90,000 values near
    60,000 overflows float16 (it used to keep almost nothing)."""
    g = torch.Generator().manual_seed(0)
    attr = (torch.rand(2, 300, 300, generator=g) * 60000).half()
    half = saliency_mask(attr, 0.5, mode=mode)
    full = saliency_mask(attr.float(), 0.5, mode=mode)
    assert torch.equal(half, full)


def test_box_iou_of_large_half_precision_boxes_is_finite() -> None:
    b1 = torch.tensor([[0.0, 0.0, 300.0, 300.0]])
    b2 = torch.tensor([[10.0, 10.0, 290.0, 290.0]])
    expected = box_iou(b1, b2)
    torch.testing.assert_close(box_iou(b1.half(), b2.half()), expected)
    assert expected.item() == pytest.approx(280**2 / 300**2)


# --------------------------------------------------------------------------------------------
# series: spans, the 1-D analogue of boxes


def test_saliency_span_is_the_tight_span_of_the_salient_steps() -> None:
    g = torch.Generator().manual_seed(0)
    attr = torch.rand(5, 3, 40, generator=g)
    for mode, threshold in (("quantile", 0.9), ("value", 0.7), ("energy", 0.3)):
        spans = saliency_span(attr, threshold, mode)
        summed = attr.sum(1)
        # the same steps as saliency_mask picks on the (B, 1, T) "image" of the summed map
        keep = saliency_mask(summed[:, None, :], threshold, mode)[:, 0]
        for b in range(5):
            steps = keep[b].nonzero().flatten()
            assert spans[b].tolist() == [float(steps.min()), float(steps.max() + 1)]
    assert saliency_span(torch.rand(2, 40), 0.5).shape == (2, 2)


def test_span_iou_equals_box_iou_of_one_pixel_high_boxes() -> None:
    """The same math as box_iou along one axis (one implementation)."""
    g = torch.Generator().manual_seed(1)
    lo = torch.randint(0, 20, (50, 2), generator=g).float()
    spans1 = torch.stack([lo[:, 0], lo[:, 0] + 1 + torch.randint(0, 10, (50,), generator=g)], 1)
    spans2 = torch.stack([lo[:, 1], lo[:, 1] + 1 + torch.randint(0, 10, (50,), generator=g)], 1)
    as_boxes = lambda s: torch.stack([s[:, 0], torch.zeros(50), s[:, 1], torch.ones(50)], 1)  # noqa: E731
    torch.testing.assert_close(
        span_iou(spans1, spans2), box_iou(as_boxes(spans1), as_boxes(spans2))
    )
    assert span_iou(torch.tensor([[0, 4]]), torch.tensor([[4, 8]])).item() == 0.0


def test_span_to_mask_and_bad_spans() -> None:
    assert span_to_mask(torch.tensor([[0.5, 2.0]]), 4).tolist() == [[True, True, False, False]]
    with pytest.raises(ValueError, match="start < end"):
        span_to_mask(torch.tensor([[3, 3]]), 5)
    with pytest.raises(ValueError, match="inside the series"):
        span_to_mask(torch.tensor([[2, 9]]), 5)
    with pytest.raises(ValueError, match="spans"):
        span_iou(torch.tensor([[0, 1, 2, 3]]), torch.tensor([[0, 1, 2, 3]]))
    with pytest.raises(ValueError, match="attributions"):
        saliency_span(torch.rand(2, 3, 4, 5))


def test_pointing_game_on_a_multichannel_series_sums_the_channels() -> None:
    """A 6-channel map whose summed peak lies in the evidence is a hit (it used to be read as
    an image whose rows are channels, and scored a miss)."""
    attr = torch.zeros(2, 6, 50)
    attr[:, 5, 30] = 1.0  # the peak, on the last channel
    attr[1, 0, 10] = 2.0  # example 1: a stronger peak outside the evidence
    spans = torch.tensor([[25, 35], [25, 35]])
    assert pointing_game(attr, spans).tolist() == [True, False]
    assert pointing_game(attr, spans, tolerance=15).tolist() == [True, True]
    assert pointing_game(attr.sum(1), spans).tolist() == [True, False]  # (B, T) maps too
