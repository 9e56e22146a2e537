"""JavaScript value semantics against ECMA-262: String(x), ToNumber, relational
comparison, strict equality and truthiness, with the values the specification gives."""

from __future__ import annotations

import math
from typing import Any

import pytest

from proving.assign.conditions import js_string as js_string_from_conditions
from proving.assign.javascript import (
    js_compare,
    js_number,
    js_strict_equal,
    js_string,
    js_truthy,
    js_type,
    json_stringify,
)


# String(x) in JavaScript (ECMA-262 Number::toString and Array.prototype.join).
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (123.456, "123.456"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Infinity"),
        (10**22, "1e+22"),
        (None, "null"),
        (True, "true"),
        ([1, [2, 3], None], "1,2,3,"),
        ({"a": 1}, "[object Object]"),
    ],
)
def test_js_string(value: Any, expected: str) -> None:
    assert js_string(value) == expected


def test_js_string_is_still_exported_by_conditions() -> None:
    assert js_string_from_conditions is js_string


# ToNumber (ECMA-262 7.1.4 and StringToNumber 7.1.4.1.1).
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0.0),
        (True, 1.0),
        ("", 0.0),
        ("  42\n", 42.0),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("0x1F", 31.0),
        ("0b101", 5.0),
        ("-Infinity", -math.inf),
        ([7], 7.0),  # ToPrimitive: [7] -> "7"
        ([], 0.0),  # [] -> ""
    ],
)
def test_js_number(value: Any, expected: float) -> None:
    assert js_number(value) == expected


@pytest.mark.parametrize("value", ["abc", "1 2", "0x", [1, 2], {"a": 1}, "-0x10"])
def test_js_number_nan(value: Any) -> None:
    assert math.isnan(js_number(value))


def test_relational_comparison() -> None:
    assert js_compare(None, -10) == 1  # null -> 0
    assert js_compare("10", "9") == -1  # two strings compare as text
    assert js_compare("10", 9) == 1  # a number on one side compares numbers
    assert js_compare("abc", 1) is None  # NaN is unordered
    # UTF-16 code-unit order: U+FF61 (one unit) sorts after U+1F600 (a surrogate pair).
    assert js_compare("\uff61", "\U0001f600") == 1


def test_strict_equality_and_truthiness() -> None:
    assert not js_strict_equal(1, True)
    assert not js_strict_equal([1], [1])  # containers only equal themselves
    assert not js_strict_equal(math.nan, math.nan)
    assert js_strict_equal(math.nan, math.nan, same_value_zero=True)
    assert [js_truthy(v) for v in (0, "", None, math.nan, [], {}, "0")] == [
        False, False, False, False, True, True, True,
    ]  # fmt: skip
    assert [js_type(v) for v in (None, [], {}, 1.5, True)] == [
        "null", "array", "object", "number", "boolean",
    ]  # fmt: skip


def test_json_stringify_prints_numbers_as_javascript() -> None:
    assert json_stringify({"a": [1.0, None, math.inf, "é"]}) == '{"a":[1,null,null,"é"]}'
