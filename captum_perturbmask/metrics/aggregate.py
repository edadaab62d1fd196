"""Aggregation of per-example metric values: means with normal intervals, paired differences.

The functions of :mod:`captum_perturbmask.metrics` score one batch (one value per example);
these turn many such values into the numbers a table reports. Missing values (``None``, NaN)
are left out, so a metric that does not apply to some examples still aggregates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from torch import Tensor

__all__ = ["MeanCI", "mean_ci", "paired_difference"]

#: Standard normal quantile of a two-sided 95% interval.
Z95 = 1.96


class MeanCI(NamedTuple):
    """Result of :func:`mean_ci` and :func:`paired_difference`.

    Attributes:
        mean: Mean of the values (NaN when there are none).
        half_width: Half-width of the interval, ``z`` standard errors (NaN with fewer than two
            values).
        n: Number of values used.
    """

    mean: float
    half_width: float
    n: int


def _finite(values: Tensor | Iterable[float | None]) -> list[float]:
    if isinstance(values, Tensor):
        values = values.detach().double().flatten().tolist()
    return [float(v) for v in values if v is not None and not math.isnan(v)]


def mean_ci(values: Tensor | Iterable[float | None], z: float = Z95) -> MeanCI:
    """Mean, half-width of the normal interval (``z`` standard errors) and count.

    ``mean_ci(per_example_auc)`` gives the mean and its 95% interval half-width; ``z=1`` gives
    one standard error. ``None`` and NaN values are left out.

    Args:
        values: Numbers, a sequence or a tensor of any shape.
        z: Standard errors per half-width (1.96: a 95% interval).

    Returns:
        A :class:`MeanCI` ``(mean, half_width, n)``: ``mean`` NaN when no value is left,
        ``half_width`` NaN with fewer than two.

    Example:
        >>> mean, half_width, n = mean_ci([1.0, 2.0, 3.0])
        >>> mean, round(half_width, 4), n  # 1.96 * 1 / sqrt(3)
        (2.0, 1.1316, 3)
        >>> mean_ci([None, float("nan")])
        MeanCI(mean=nan, half_width=nan, n=0)
    """
    v = _finite(values)
    n = len(v)
    if n == 0:
        return MeanCI(float("nan"), float("nan"), 0)
    mean = math.fsum(v) / n
    if n < 2:
        return MeanCI(mean, float("nan"), n)
    var = math.fsum((x - mean) ** 2 for x in v) / (n - 1)
    return MeanCI(mean, z * math.sqrt(var / n), n)


def paired_difference(
    values: Mapping[object, float], reference: Mapping[object, float], z: float = Z95
) -> MeanCI:
    """Mean difference ``values - reference`` over the keys both have, with its interval.

    ``paired_difference(auc_of_a, auc_of_b)`` compares two methods on the same examples (keys
    are example ids); the pairing removes the spread between examples from the interval.

    Args:
        values: Key (e.g. dataset index) -> value of one method.
        reference: Key -> value of the method compared against.
        z: Standard errors per half-width.

    Returns:
        A :class:`MeanCI` of the differences over the common keys.

    Example:
        >>> diff, half_width, n = paired_difference({0: 0.5, 1: 0.75, 2: 0.4}, {0: 0.25, 1: 0.25})
        >>> diff, round(half_width, 4), n  # differences 0.25 and 0.5; example 2 has no pair
        (0.375, 0.245, 2)
    """
    common = [k for k in values if k in reference]
    return mean_ci([values[k] - reference[k] for k in common], z)
