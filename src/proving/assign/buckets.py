"""Bucket ranges, variation choice and namespaces, compatible with GrowthBook's SDKs.

A unit's hash ``n`` in [0, 1) falls into at most one variation's range. Variation ``i``
owns ``[cum_i, cum_i + coverage * w_i)`` where ``cum_i`` is the sum of the earlier
weights (GrowthBook sdk-js ``getBucketRanges``). The start of each range does not depend
on coverage, so ramping coverage up only adds units: nobody moves between variations.

Weights that are missing, of the wrong length, not finite and non-negative, or summing
outside [0.99, 1.01] fall back to equal weights, as the SDKs do; coverage is clamped to
[0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from proving.assign.hashing import hash_value
from proving.errors import AssignmentError

WEIGHT_SUM_MIN: Final = 0.99
WEIGHT_SUM_MAX: Final = 1.01

BucketRange = tuple[float, float]

__all__ = [
    "BucketRange",
    "bucket_ranges",
    "choose_variation",
    "choose_variation_batch",
    "equal_weights",
    "in_namespace",
    "valid_weights",
]


def equal_weights(n: int) -> list[float]:
    """``n`` equal weights summing to 1 (an empty list for ``n < 1``).

    Example:
        >>> equal_weights(4)
        [0.25, 0.25, 0.25, 0.25]
    """
    if n < 1:
        return []
    return [1 / n] * n


def valid_weights(weights: object, num_variations: int) -> bool:
    """Whether ``weights`` is a usable weight vector for ``num_variations`` variations.

    Usable means: a list or tuple with one finite, non-negative real number per variation,
    summing to within [0.99, 1.01]. Anything else is replaced by equal weights.
    """
    if not isinstance(weights, list | tuple) or len(weights) != num_variations:
        return False
    total = 0.0
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, int | float):
            return False
        try:
            wf = float(w)
        except OverflowError:
            return False
        if not math.isfinite(wf) or wf < 0:
            return False
        total += wf
    return WEIGHT_SUM_MIN <= total <= WEIGHT_SUM_MAX


def bucket_ranges(
    num_variations: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[BucketRange]:
    """The ``[start, end)`` hash range of each variation.

    Args:
        num_variations: number of variations.
        coverage: share of units in the experiment, clamped to [0, 1].
        weights: traffic share of each variation; equal weights when missing or invalid.

    Returns:
        One ``(start, end)`` pair per variation.

    Example:
        >>> bucket_ranges(2, 0.5)
        [(0.0, 0.25), (0.5, 0.75)]
    """
    if isinstance(coverage, bool) or not isinstance(coverage, int | float):
        coverage = 1.0
    coverage = 0.0 if coverage < 0 else 1.0 if coverage > 1 else float(coverage)
    used = (
        [float(w) for w in weights]
        if valid_weights(weights, num_variations) and weights is not None
        else equal_weights(num_variations)
    )
    ranges: list[BucketRange] = []
    cumulative = 0.0
    for w in used:
        start = cumulative
        cumulative += w
        ranges.append((start, start + coverage * w))
    return ranges


def choose_variation(n: float, ranges: Sequence[Sequence[float]]) -> int:
    """Index of the first range with ``start <= n < end``, or -1 if none holds ``n``.

    Example:
        >>> choose_variation(0.6, [(0.0, 0.25), (0.5, 0.75)])
        1
    """
    for i, (start, end) in enumerate(ranges):
        if start <= n < end:
            return i
    return -1


def choose_variation_batch(
    hashes: ArrayLike, ranges: Sequence[Sequence[float]]
) -> NDArray[np.int64]:
    """Vectorized :func:`choose_variation`: -1 where no range holds the hash (or it is NaN).

    Example:
        >>> choose_variation_batch([0.2, 0.4, 0.6], [(0.0, 0.25), (0.5, 0.75)]).tolist()
        [0, -1, 1]
    """
    h = np.asarray(hashes, dtype=np.float64)
    if h.ndim != 1:
        raise AssignmentError(
            f"choose_variation_batch: `hashes` must be one-dimensional; got shape {h.shape}. "
            "Pass a flat array, e.g. hashes.ravel()."
        )
    out = np.full(h.shape, -1, dtype=np.int64)
    # Walk the ranges backwards so that the first matching range wins, as in the scalar
    # path (ranges may overlap when given explicitly).
    for i in range(len(ranges) - 1, -1, -1):
        start, end = ranges[i]
        out[(h >= start) & (h < end)] = i
    return out


def in_namespace(unit_id: str, namespace: Sequence[object]) -> bool:
    """Whether a unit falls in a namespace slice ``(namespace_id, start, end)``.

    GrowthBook namespaces make experiments mutually exclusive: the unit is hashed with
    seed ``"__" + namespace_id`` (hash version 1) and kept if ``start <= n < end``.

    Example:
        >>> in_namespace("1", ("namespace1", 0.4, 1.0))
        True
    """
    if len(namespace) != 3:
        raise AssignmentError(
            f"namespace must be (id, start, end); got {namespace!r}. "
            'Use e.g. ("checkout", 0.0, 0.5).'
        )
    name, start, end = namespace
    n = hash_value("__" + str(name), unit_id, 1)
    if n is None or not isinstance(start, int | float) or not isinstance(end, int | float):
        return False
    return bool(start <= n < end)
