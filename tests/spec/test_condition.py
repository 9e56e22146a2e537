"""Static checks of targeting conditions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proving.spec.condition import OPERATORS, condition_problems

CASES = Path(__file__).parents[3] / "shared" / "reference" / "growthbook-sdk-cases.json"


@pytest.mark.parametrize(
    "condition",
    [
        {},
        {"country": "US"},
        {"country": {"$in": ["US", "CA"]}, "age": {"$gte": 18}},
        {"$or": [{"a": 1}, {"b": {"$exists": True}}]},
        {"$not": {"a": 1}},
        {"tags": {"$elemMatch": {"$eq": "x"}}},
        {"items": {"$elemMatch": {"price": {"$gt": 5}}}},
        {"version": {"$vgte": "1.2.3"}},
        {"email": {"$regex": "@example\\.com$"}},
        {"id": {"$inGroup": "beta"}},
        {"nested.path": {"$size": {"$gt": 2}}},
    ],
)
def test_valid_conditions(condition: dict[str, Any]) -> None:
    assert condition_problems(condition) == []


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ({"a": {"$regx": "x"}}, "targeting.a.$regx: unknown operator '$regx'"),
        ({"a": {"$in": "US"}}, "targeting.a.$in: $in takes a list"),
        ({"a": {"$regex": "("}}, "is invalid"),
        ({"a": {"$type": "int"}}, "$type must be one of"),
        ({"a": {"$exists": "yes"}}, "$exists takes true or false"),
        ({"a": {"$size": "3"}}, "$size takes a number or a condition"),
        ({"$or": {"a": 1}}, "$or takes a list of conditions"),
        ({"$or": [{"a": {"$bogus": 1}}]}, "targeting.$or[0].a.$bogus"),
        ({"$gt": 3}, "cannot be used at the top of a condition"),
        ({"a": {"$inGroup": 3}}, "takes a saved-group id"),
        ({"a": {"$elemMatch": {"$zz": 1}}}, "targeting.a.$elemMatch.$zz"),
    ],
)
def test_problems_name_their_path(condition: dict[str, Any], fragment: str) -> None:
    problems = condition_problems(condition)
    assert any(fragment in p for p in problems), problems


def test_not_a_mapping() -> None:
    assert "must be a mapping" in condition_problems([1, 2])[0]


def test_growthbook_suite_only_malformed_conditions_are_flagged() -> None:
    """Over GrowthBook's 248 evalCondition cases, the static check flags exactly the
    malformed conditions (a non-list $in/$nin/$ini/$nini, an unknown operator, a regex
    that does not compile), which GrowthBook silently evaluates to false."""
    if not CASES.exists():
        pytest.skip(f"{CASES} is not present")
    flagged = {}
    for case in json.loads(CASES.read_text())["evalCondition"]:
        problems = condition_problems(case[1])
        if problems:
            flagged[case[0]] = case[3]
    assert set(flagged) == {
        "$in - not array",
        "$nin - not array",
        "$ini - not array",
        "$nini - not array",
        "unknown operator - pass",
        "$regex invalid - pass",
        "$regex invalid - fail",
    }
    assert not any(flagged.values())  # all of them evaluate to false in GrowthBook


def test_dollar_attribute_names_are_attributes() -> None:
    assert condition_problems({"$groups": {"$elemMatch": {"$eq": "a"}}}) == []
    assert {"$in", "$vgt", "$elemMatch", "$inGroup"} <= OPERATORS
