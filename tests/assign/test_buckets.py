"""Bucket ranges, variation choice and namespaces: SDK oracle, ramp safety, batch = scalar."""

from __future__ import annotations

import numpy as np
import pytest
from growthbook.core import chooseVariation, getBucketRanges, inNamespace
from hypothesis import given, settings
from hypothesis import strategies as st

from proving.assign.buckets import (
    bucket_ranges,
    choose_variation,
    choose_variation_batch,
    equal_weights,
    in_namespace,
    valid_weights,
)
from proving.assign.hashing import hash_batch
from proving.errors import AssignmentError

weights_st = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 6), st.floats(-0.5, 1.5, allow_nan=False), weights_st | st.none())
def test_bucket_ranges_equal_growthbook_sdk(
    n: int, coverage: float, weights: list[float] | None
) -> None:
    ours = bucket_ranges(n, coverage, weights)
    theirs = getBucketRanges(n, coverage, weights)
    assert ours == [tuple(r) for r in theirs]


def test_normalized_weights_sum_to_one() -> None:
    assert bucket_ranges(3, 1.0, [0.2, 0.3, 0.5]) == [(0.0, 0.2), (0.2, 0.5), (0.5, 1.0)]
    assert sum(equal_weights(7)) == pytest.approx(1.0)
    assert equal_weights(0) == [] and equal_weights(-3) == []


@pytest.mark.parametrize(
    "weights",
    [[0.5, float("nan")], [1.2, -0.2], [0.5, True], [0.5, "0.5"], [0.5], (0.5, 0.3), None, 0.5],
)
def test_invalid_weights_fall_back_to_equal(weights: object) -> None:
    assert not valid_weights(weights, 2)
    assert bucket_ranges(2, 1.0, weights) == [(0.0, 0.5), (0.5, 1.0)]  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 5),
    st.floats(0, 1, allow_nan=False),
    st.floats(0, 1, allow_nan=False),
    st.floats(0, 1, allow_nan=False, exclude_max=True),
)
def test_ramping_coverage_only_adds_units(n: int, c1: float, c2: float, h: float) -> None:
    low, high = sorted((c1, c2))
    before = choose_variation(h, bucket_ranges(n, low))
    after = choose_variation(h, bucket_ranges(n, high))
    # A unit in the experiment at low coverage keeps its variation at higher coverage.
    assert before == -1 or before == after
    # Range starts do not move with coverage.
    assert [r[0] for r in bucket_ranges(n, low)] == [r[0] for r in bucket_ranges(n, high)]


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0, 1, allow_nan=False, exclude_max=True),
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), max_size=5),
)
def test_choose_variation_equals_sdk_and_batch(h: float, ranges: list[tuple[float, float]]) -> None:
    expected = chooseVariation(h, ranges)
    assert choose_variation(h, ranges) == expected
    assert choose_variation_batch(np.array([h]), ranges).tolist() == [expected]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5), st.floats(0, 1, allow_nan=False), st.integers(0, 10_000))
def test_choose_variation_batch_equals_scalar_on_hashes(
    n: int, coverage: float, start: int
) -> None:
    ids = [f"user-{i}" for i in range(start, start + 300)]
    hashes = hash_batch("exp", ids, 2)
    ranges = bucket_ranges(n, coverage)
    expected = [choose_variation(float(h), ranges) for h in hashes]
    assert choose_variation_batch(hashes, ranges).tolist() == expected


def test_choose_variation_batch_nan_is_unassigned() -> None:
    assert choose_variation_batch([float("nan"), 0.1], [(0.0, 1.0)]).tolist() == [-1, 0]


def test_realized_split_matches_weights() -> None:
    from scipy import stats

    weights = [0.1, 0.3, 0.6]
    hashes = hash_batch("split", np.array([f"u{i}" for i in range(100_000)]), 2)
    counts = np.bincount(
        choose_variation_batch(hashes, bucket_ranges(3, 1.0, weights)), minlength=3
    )
    assert stats.chisquare(counts, np.array(weights) * counts.sum()).pvalue > 1e-4


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=10), st.text(max_size=10), st.floats(0, 1), st.floats(0, 1))
def test_in_namespace_equals_sdk(unit: str, name: str, start: float, end: float) -> None:
    assert in_namespace(unit, (name, start, end)) == inNamespace(unit, (name, start, end))


def test_in_namespace_rejects_malformed_namespace() -> None:
    with pytest.raises(AssignmentError, match=r"namespace must be \(id, start, end\); got"):
        in_namespace("u", ("ns", 0.5))
    with pytest.raises(AssignmentError, match="one-dimensional"):
        choose_variation_batch(np.zeros((2, 2)), [(0.0, 1.0)])
