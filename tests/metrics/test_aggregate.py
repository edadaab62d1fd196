"""Means with intervals and paired differences (:mod:`captum_perturbmask.metrics.aggregate`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from captum_perturbmask.metrics import mean_ci, paired_difference


def test_mean_ci_matches_numpy_and_skips_missing_values() -> None:
    values = [0.2, None, 0.9, float("nan"), 0.4, 0.1]
    kept = np.array([0.2, 0.9, 0.4, 0.1])
    mean, half, n = mean_ci(values)
    assert n == 4 and mean == pytest.approx(kept.mean())
    assert half == pytest.approx(1.96 * kept.std(ddof=1) / math.sqrt(4))
    assert mean_ci(torch.tensor(kept)) == pytest.approx((mean, half, n))
    assert mean_ci(values, z=1.0).half_width == pytest.approx(half / 1.96)


def test_mean_ci_of_too_few_values() -> None:
    assert mean_ci([]).n == 0 and math.isnan(mean_ci([]).mean)
    mean, half, n = mean_ci([3.0])
    assert (mean, n) == (3.0, 1) and math.isnan(half)


def test_paired_difference_uses_the_common_keys() -> None:
    a = {0: 0.5, 1: 0.9, 2: 0.3, 5: 1.0}
    ref = {0: 0.4, 1: 0.5, 2: 0.35, 3: 0.0}
    diffs = np.array([0.1, 0.4, -0.05])
    diff, half, n = paired_difference(a, ref)
    assert n == 3 and diff == pytest.approx(diffs.mean())
    assert half == pytest.approx(1.96 * diffs.std(ddof=1) / math.sqrt(3))
    assert paired_difference(a, {7: 1.0}).n == 0
