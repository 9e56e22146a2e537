"""Version comparison: padded strings order as version tuples; pre-releases sort before
their release (SemVer 2.0.0, section 11); numbers read as String(number)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proving.assign.conditions import eval_condition
from proving.assign.conditions import padded_version_string as from_conditions
from proving.assign.versions import padded_version_string, version_operator

version_part = st.integers(0, 99_999)


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(version_part, version_part, version_part),
    st.tuples(version_part, version_part, version_part),
)
def test_version_order_equals_tuple_order(a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    va, vb = ".".join(map(str, a)), ".".join(map(str, b))
    assert (padded_version_string(va) < padded_version_string(vb)) == (a < b)
    assert eval_condition({"v": "v" + va}, {"v": {"$vgte": vb}}) == (a >= b)
    assert eval_condition({"v": va + "+build.7"}, {"v": {"$veq": vb}}) == (a == b)


def test_prerelease_sorts_before_release() -> None:
    assert eval_condition({"v": "1.0.0-beta.2"}, {"v": {"$vlt": "1.0.0"}})
    assert eval_condition({"v": "1.0.0-rc.1"}, {"v": {"$vgt": "1.0.0-beta.11"}})


@pytest.mark.parametrize(
    ("op", "actual", "expected", "holds"),
    [
        ("$veq", 2, "2", True),  # String(2) === "2"
        ("$veq", None, "0", True),  # a missing version reads as "0"
        ("$vgt", "1.10.0", "1.9.9", True),
        ("$vne", "v1.2.3", "1.2.3+build.5", False),  # leading v and build metadata dropped
        ("$vlte", "2.0.0-alpha", "2.0.0", True),
    ],
)
def test_version_operator(op: str, actual: object, expected: object, holds: bool) -> None:
    assert version_operator(op, actual, expected) is holds


def test_padded_version_string_is_still_exported_by_conditions() -> None:
    assert from_conditions is padded_version_string
