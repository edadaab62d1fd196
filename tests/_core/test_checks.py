"""The region, index, target and class-name checks of ``captum_perturbmask._core.checks``."""

from __future__ import annotations

import pytest
import torch

from captum_perturbmask._core.checks import (
    check_boxes,
    check_class_names,
    check_indices,
    check_regions,
    check_spans,
    check_targets,
)


def test_check_regions_returns_floats() -> None:
    boxes = check_boxes(torch.tensor([[0, 1, 4, 3]]), "b", (3, 4))  # may reach W and H
    assert boxes.dtype == torch.get_default_dtype() and boxes.tolist() == [[0, 1, 4, 3]]
    spans = torch.tensor([[0.5, 2.0]], dtype=torch.float64)
    assert check_spans(spans, "s", 2) is spans  # floating point: unchanged
    assert check_spans((spans,), "s").shape == (1, 2)  # a Captum 1-tuple
    assert check_regions(torch.tensor([[1, 2]]), "s", 1).tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize(
    ("regions", "ndim", "size", "error", "match"),
    [
        ([[0, 0, 1, 1]], 2, None, TypeError, "`r` must be a torch.Tensor"),
        (torch.tensor([[True, False]]), 1, None, TypeError, "`r` must hold real numbers"),
        (torch.tensor([0, 0, 1, 1]), 2, None, ValueError, r"boxes \(B, 4\).*\(4,\)"),
        (torch.tensor([[0, 1, 2]]), 1, None, ValueError, r"spans \(B, 2\)"),
        (torch.tensor([[0.0, float("nan")]]), 1, None, ValueError, "finite"),
        (torch.tensor([[0, 0, 1, 1], [2, 0, 2, 1]]), 2, None, ValueError, r"x1 < x2.*rows \[1\]"),
        (torch.tensor([[3, 3]]), 1, None, ValueError, "start < end"),
        (torch.tensor([[0, 0, 5, 1]]), 2, (3, 4), ValueError, r"inside the image.*<= 4"),
        (torch.tensor([[-1, 2]]), 1, (5,), ValueError, r"inside the series.*<= 5"),
    ],
)
def test_check_regions_errors(regions, ndim, size, error, match) -> None:
    with pytest.raises(error, match=match):
        check_regions(regions, "r", ndim, size)


def test_check_indices() -> None:
    assert check_indices(2, 3) == [2]
    assert check_indices(range(3), 3) == [0, 1, 2]
    assert check_indices(torch.tensor([1, 0]), 3) == [1, 0]


@pytest.mark.parametrize(
    ("indices", "error"),
    [("0", TypeError), ([True], TypeError), ([0.5], TypeError), ([], ValueError),
     ([3], ValueError), ([-1], ValueError)],
)  # fmt: skip
def test_check_indices_errors(indices, error) -> None:
    with pytest.raises(error, match="`rows`"):
        check_indices(indices, 3, "rows")


def test_check_targets() -> None:
    assert check_targets(None, 3) is None
    assert check_targets(1, 3) == [1, 1, 1]
    assert check_targets(torch.tensor(2), 2) == [2, 2]
    assert check_targets(torch.tensor([0, 1]), 2) == [0, 1]
    assert check_targets((4, 5), 2) == [4, 5]


@pytest.mark.parametrize(
    ("targets", "error"),
    [(torch.rand(2), TypeError), (torch.zeros(2, 1, dtype=torch.long), ValueError),
     ([0, 1, 2], ValueError), ([0, True], TypeError), ("01", TypeError), (1.0, TypeError)],
)  # fmt: skip
def test_check_targets_errors(targets, error) -> None:
    with pytest.raises(error, match="`labels`"):
        check_targets(targets, 2, "labels")


def test_check_class_names() -> None:
    assert check_class_names(None) is None
    assert check_class_names(("cat", "dog")) == ["cat", "dog"]
    with pytest.raises(TypeError, match="`class_names` must be a sequence of str"):
        check_class_names("cat")
    with pytest.raises(TypeError, match="`names` must hold only str"):
        check_class_names(["cat", 1], "names")
