"""FNV-1a 32 and GrowthBook hash versions: published vectors, the SDK as oracle, batch = scalar."""

from __future__ import annotations

import numpy as np
import pytest
from growthbook.core import fnv1a32 as gb_fnv1a32
from growthbook.core import gbhash
from hypothesis import given, settings
from hypothesis import strategies as st

from proving.assign.hashing import fnv1a32, hash_batch, hash_value
from proving.errors import AssignmentError

# FNV-1a 32 test vectors from draft-eastlake-fnv (section 8 / test code) and the FNV site.
FNV_VECTORS = [("", 0x811C9DC5), ("a", 0xE40C292C), ("foobar", 0xBF9CF968)]


@pytest.mark.parametrize(("value", "expected"), FNV_VECTORS)
def test_fnv1a32_published_vectors(value: str, expected: int) -> None:
    assert fnv1a32(value) == expected


# Four cases copied from GrowthBook's sdk-js test/cases.json (`hash` section).
@pytest.mark.parametrize(
    ("seed", "value", "version", "expected"),
    [("", "a", 1, 0.22), ("b", "a", 1, 0.946), ("seed", "a", 2, 0.0505), ("abc", "def", 99, None)],
)
def test_hash_value_growthbook_vectors(
    seed: str, value: str, version: int, expected: float | None
) -> None:
    assert hash_value(seed, value, version) == expected


def test_non_ascii_hashes_utf16_code_units() -> None:
    # "é" is one UTF-16 code unit 0xE9 (two UTF-8 bytes); "😀" is a surrogate pair.
    h = 0x811C9DC5
    for unit in (0xD83D, 0xDE00):
        h = ((h ^ unit) * 0x01000193) % 2**32
    assert fnv1a32("😀") == h
    assert fnv1a32("é") == ((0x811C9DC5 ^ 0xE9) * 0x01000193) % 2**32


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_fnv1a32_equals_growthbook_sdk(value: str) -> None:
    assert fnv1a32(value) == gb_fnv1a32(value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20), st.text(max_size=30), st.sampled_from([1, 2, 3]))
def test_hash_value_equals_growthbook_sdk(seed: str, value: str, version: int) -> None:
    assert hash_value(seed, value, version) == gbhash(seed, value, version)


def _scalar(seed: str, values: list[str], version: int) -> list[float]:
    return [float("nan") if (h := hash_value(seed, v, version)) is None else h for v in values]


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=12),
    st.lists(st.text(max_size=16), max_size=30),
    st.sampled_from([1, 2, 5]),
)
def test_hash_batch_equals_scalar(seed: str, values: list[str], version: int) -> None:
    expected = np.array(_scalar(seed, values, version), dtype=np.float64)
    np.testing.assert_array_equal(hash_batch(seed, values, version), expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="abcxyz-_0123456789", max_size=16), max_size=30))
def test_hash_batch_numpy_unicode_and_bytes_arrays(values: list[str]) -> None:
    expected = np.array(_scalar("exp-seed", values, 2))
    np.testing.assert_array_equal(hash_batch("exp-seed", np.array(values, dtype=str), 2), expected)
    as_bytes = np.array([v.encode() for v in values], dtype="S")
    np.testing.assert_array_equal(hash_batch("exp-seed", as_bytes, 2), expected)


def test_hash_batch_edge_strings() -> None:
    values = ["", "a\x00", "a\x00\x00", "\x00", "\ud800", "😀x", "é" * 50, "4294967295"]
    for version in (1, 2):
        got = hash_batch("s", values, version)
        np.testing.assert_array_equal(got, _scalar("s", values, version))


def test_hash_batch_empty_and_unknown_version() -> None:
    assert hash_batch("s", [], 2).shape == (0,)
    assert np.isnan(hash_batch("s", ["a", "b"], 99)).all()


def test_hash_batch_sequential_ids_are_uniform() -> None:
    # Version 2 exists because sequential ids hash unevenly under version 1; check that
    # 200k sequential ids spread evenly over 10 deciles (chi-square, SciPy).
    from scipy import stats

    ids = np.array([str(i) for i in range(200_000)])
    counts = np.bincount((hash_batch("seq", ids, 2) * 10).astype(int), minlength=10)
    assert stats.chisquare(counts).pvalue > 1e-4


def test_hash_batch_rejects_bad_input() -> None:
    with pytest.raises(AssignmentError, match="one-dimensional"):
        hash_batch("s", np.array([["a", "b"]]), 1)
    with pytest.raises(AssignmentError, match="must be a string; got int 3"):
        hash_batch("s", ["a", 3], 1)  # type: ignore[list-item]
    with pytest.raises(AssignmentError, match="must be a string"):
        hash_batch("s", np.array([1, 2]), 1)


def test_decimal_pass_on_edge_values() -> None:
    # Hash version 2 hashes the decimal string of the first hash; the vectorized pass
    # splits it at 10**5 and looks up a table, so check the boundaries against str().
    from proving.assign.hashing import _fnv_decimal

    edges = [0, 1, 9, 10, 99_999, 100_000, 100_001, 999_999, 10**9, 4_294_899_999]
    values = np.array(
        [*edges, 2**32 - 1, *np.random.default_rng(3).integers(0, 2**32, 2000)],
        dtype=np.uint32,
    )
    expected = [fnv1a32(str(int(v))) for v in values]
    assert _fnv_decimal(values).tolist() == expected
