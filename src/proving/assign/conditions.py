"""Targeting conditions: GrowthBook's Mongo-style query language over unit attributes.

A condition is a JSON object whose keys are attribute paths (``"father.age"``) or the
logical operators ``$or``, ``$nor``, ``$and``, ``$not``; a path maps either to a literal
(compared for equality) or to an operator object such as ``{"$gt": 5, "$lt": 10}``.

Operators: ``$eq $ne $lt $lte $gt $gte`` (JavaScript comparison semantics), ``$veq $vne
$vgt $vgte $vlt $vlte`` (semantic versions), ``$in $nin $ini $nini`` (membership, the
``i`` forms case-insensitive), ``$all $alli $elemMatch $size`` (arrays), ``$regex
$regexi``, ``$exists``, ``$type``, ``$not``, and saved groups ``$inGroup $notInGroup``.
An unknown operator never matches.

GrowthBook's reference (sdk-js ``mongrule.ts``) is JavaScript and its conformance cases
pin JavaScript's coercions: a missing attribute reads as ``null``; ``null > -10`` is true
(``null`` converts to 0); ``"8" > 5`` compares numbers; a string literal matches
``String(value)``. This module reproduces those rules explicitly (the ``_js_*``
functions, after ECMA-262 sections 7.1 and 7.2) rather than leaning on Python's.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

__all__ = ["Predicate", "compile_condition", "eval_condition", "js_string", "padded_version_string"]

_JS_WHITESPACE: Final = " \t\n\v\f\r\u00a0\u2028\u2029\ufeff"
_DECIMAL: Final = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
_RADIX: Final = re.compile(r"0([xXoObB])([0-9a-fA-F]+)")
_VERSION_STRIP: Final = re.compile(r"(^v|\+.*$)")
_VERSION_SPLIT: Final = re.compile(r"[-.]")
_DIGITS: Final = re.compile(r"[0-9]+")
_LOGICAL: Final = ("$or", "$nor", "$and", "$not")


def _js_number_string(x: float) -> str:
    """``String(number)`` in JavaScript (ECMA-262 Number::toString, radix 10)."""
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) < 10**21:
        return str(x)
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _js_number_string(-x)
    # repr gives the shortest round-tripping digits; x = 0.d1...dk * 10**n, laid out as JS
    # does: plain up to 21 integer digits or 6 leading zeros, exponent form otherwise.
    mantissa, _, exp = repr(x).partition("e")
    whole, _, frac = mantissa.partition(".")
    raw = whole + frac
    digits = raw.lstrip("0")
    n = len(whole) + int(exp or 0) - (len(raw) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    sign = "+" if n - 1 >= 0 else "-"
    lead = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{lead}e{sign}{abs(n - 1)}"


def js_string(value: Any) -> str:
    """``String(value)`` in JavaScript, for JSON-like values (``None`` is ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _js_number_string(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ",".join("" if v is None else js_string(v) for v in value)
    return "[object Object]"


def _js_number(value: Any) -> float:
    """``ToNumber(value)`` (ECMA-262 7.1.4) for JSON-like values."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, list | tuple | dict):
        return _js_number(_js_primitive(value))
    text = str(value).strip(_JS_WHITESPACE)
    if text == "":
        return 0.0
    if _DECIMAL.fullmatch(text):
        return float(text)
    if text in ("Infinity", "+Infinity"):
        return math.inf
    if text == "-Infinity":
        return -math.inf
    radix = _RADIX.fullmatch(text)
    if radix:
        base = {"x": 16, "o": 8, "b": 2}[radix.group(1).lower()]
        try:
            return float(int(radix.group(2), base))
        except ValueError:
            return math.nan
    return math.nan


def _js_primitive(value: Any) -> Any:
    """``ToPrimitive`` with hint number: arrays and objects become strings."""
    if isinstance(value, list | tuple | dict):
        return js_string(value)
    return value


def _js_type(value: Any) -> str:
    """GrowthBook's ``getType``: JS ``typeof``, with ``null`` and ``array`` split out."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "unknown"


def _utf16(value: str) -> bytes:
    return value.encode("utf-16-be", "surrogatepass")


def _js_compare(a: Any, b: Any) -> int | None:
    """Abstract relational comparison (ECMA-262 7.2.13): -1, 0, 1, or None if unordered."""
    pa, pb = _js_primitive(a), _js_primitive(b)
    if isinstance(pa, str) and isinstance(pb, str):
        # JS orders strings by UTF-16 code units, which big-endian UTF-16 bytes preserve.
        ua, ub = (
            (pa.encode(), pb.encode())
            if pa.isascii() and pb.isascii()
            else (_utf16(pa), _utf16(pb))
        )
        return (ua > ub) - (ua < ub)
    na, nb = _js_number(pa), _js_number(pb)
    if math.isnan(na) or math.isnan(nb):
        return None
    return (na > nb) - (na < nb)


def _js_strict_equal(a: Any, b: Any, same_value_zero: bool = False) -> bool:
    """``a === b`` (or SameValueZero for ``includes``): containers only equal themselves."""
    ta = _js_type(a)
    if ta != _js_type(b):
        return False
    if ta in ("array", "object"):
        return a is b
    if ta == "number" and same_value_zero and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _js_truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, list | tuple | dict):
        return True
    return bool(value)


def _json_stringify(value: Any) -> str:
    """``JSON.stringify`` for JSON-like values (numbers as JS prints them)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return _js_number_string(value) if math.isfinite(value) else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_stringify(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (
            f"{json.dumps(str(k), ensure_ascii=False)}:{_json_stringify(v)}"
            for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    return "null"


def get_path(attributes: Any, path: str) -> Any:
    """The value at a dot-separated path, or ``None`` where any step is missing."""
    current = attributes
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list | tuple):
            if part == "length":
                current = len(current)
            elif (
                part.isascii()
                and part.isdigit()
                and (part == "0" or part[0] != "0")
                and int(part) < len(current)
            ):
                current = current[int(part)]
            else:
                return None
        else:
            return None
    return current


@lru_cache(maxsize=4096)
def padded_version_string(value: str) -> str:
    """A version string that compares correctly as a string (GrowthBook ``util.ts``).

    Drops a leading ``v`` and build metadata, splits on ``.`` and ``-``, appends ``~`` to a
    plain ``x.y.z`` (so a release sorts after its pre-releases) and left-pads numeric parts
    to 5 characters (so ``"  9" < " 10"``).

    Example:
        >>> padded_version_string("v1.2.3+build") < padded_version_string("1.10.0")
        True
    """
    parts = _VERSION_SPLIT.split(_VERSION_STRIP.sub("", value))
    if len(parts) == 3:
        parts.append("~")
    return "-".join(p.rjust(5, " ") if _DIGITS.fullmatch(p) else p for p in parts)


def _version(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = _js_number_string(value)
    if not isinstance(value, str) or not value:
        value = "0"
    return padded_version_string(value)


@lru_cache(maxsize=1024)
def _regex(pattern: str, insensitive: bool) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.IGNORECASE if insensitive else 0)
    except (re.error, RecursionError, OverflowError):
        return None


def _is_operator_object(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(str(k).startswith("$") for k in value)


def _is_in(actual: Any, expected: Sequence[Any], insensitive: bool = False) -> bool:
    """``expected.includes(actual)``, or an intersection when ``actual`` is an array."""

    def fold(v: Any) -> Any:
        return v.lower() if insensitive and isinstance(v, str) else v

    candidates = actual if isinstance(actual, list | tuple) else [actual]
    return any(
        _js_strict_equal(fold(a), fold(e), same_value_zero=not insensitive)
        for a in candidates
        for e in expected
    )


def _is_in_all(
    actual: Any, expected: Sequence[Any], groups: Mapping[str, Any], insensitive: bool
) -> bool:
    if not isinstance(actual, list | tuple):
        return False
    return all(any(_eval_value(e, a, groups, insensitive) for a in actual) for e in expected)


def _elem_match(actual: Any, expected: Any, groups: Mapping[str, Any]) -> bool:
    if not isinstance(actual, list | tuple):
        return False
    on_value = _is_operator_object(expected)
    # The reference skips falsy elements (``actual[i] && check(actual[i])``).
    for item in actual:
        if not _js_truthy(item):
            continue
        if on_value and _eval_value(expected, item, groups):
            return True
        if not on_value and isinstance(expected, dict) and eval_condition(item, expected, groups):
            return True
    return False


def _group_values(groups: Mapping[str, Any], group_id: Any) -> list[Any]:
    entry = groups.get(group_id) if isinstance(group_id, str) else None
    if isinstance(entry, list):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("values"), list):
        return list(entry["values"])
    return []


def _compare_op(op: str, actual: Any, expected: Any) -> bool:
    c = _js_compare(actual, expected)
    if c is None:
        return False
    return {"$lt": c < 0, "$lte": c <= 0, "$gt": c > 0, "$gte": c >= 0}[op]


def _version_op(op: str, actual: Any, expected: Any) -> bool:
    a, e = _version(actual), _version(expected)
    return {
        "$veq": a == e,
        "$vne": a != e,
        "$vgt": a > e,
        "$vgte": a >= e,
        "$vlt": a < e,
        "$vlte": a <= e,
    }[op]


def _eval_operator(op: str, actual: Any, expected: Any, groups: Mapping[str, Any]) -> bool:
    """One operator against one value (GrowthBook ``evalOperatorCondition``)."""
    if op in ("$lt", "$lte", "$gt", "$gte"):
        return _compare_op(op, actual, expected)
    if op in ("$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte"):
        return _version_op(op, actual, expected)
    if op == "$eq":
        return _js_strict_equal(actual, expected)
    if op == "$ne":
        return not _js_strict_equal(actual, expected)
    if op == "$exists":
        return actual is not None if _js_truthy(expected) else actual is None
    if op in ("$in", "$nin", "$ini", "$nini"):
        if not isinstance(expected, list | tuple):
            return False
        found = _is_in(actual, expected, insensitive=op.endswith("i"))
        return found if op in ("$in", "$ini") else not found
    if op in ("$inGroup", "$notInGroup"):
        found = _is_in(actual, _group_values(groups, expected))
        return found if op == "$inGroup" else not found
    if op == "$not":
        return not _eval_value(expected, actual, groups)
    if op == "$size":
        return isinstance(actual, list | tuple) and _eval_value(expected, len(actual), groups)
    if op == "$elemMatch":
        return _elem_match(actual, expected, groups)
    if op in ("$all", "$alli"):
        return isinstance(expected, list | tuple) and _is_in_all(
            actual, expected, groups, op == "$alli"
        )
    if op in ("$regex", "$regexi"):
        pattern = _regex(expected, op == "$regexi") if isinstance(expected, str) else None
        return pattern is not None and pattern.search(js_string(actual)) is not None
    if op == "$type":
        return bool(_js_type(actual) == expected)
    return False  # an unknown operator never matches (sdk-js logs and returns false)


def _eval_value(
    condition: Any, value: Any, groups: Mapping[str, Any], insensitive: bool = False
) -> bool:
    """A value against a literal or an operator object (GrowthBook ``evalConditionValue``)."""
    if isinstance(condition, str):
        if insensitive:
            return js_string(value).lower() == condition.lower()
        return js_string(value) == condition
    if isinstance(condition, bool):
        return value is not None and _js_truthy(value) == condition
    if isinstance(condition, int | float):
        return _js_number(value) == condition
    if condition is None:
        return value is None
    if isinstance(condition, list | tuple) or not _is_operator_object(condition):
        return _json_stringify(value) == _json_stringify(condition)
    return all(_eval_operator(op, value, arg, groups) for op, arg in condition.items())


def eval_condition(
    attributes: Any,
    condition: Mapping[str, Any],
    saved_groups: Mapping[str, Any] | None = None,
) -> bool:
    """Whether ``attributes`` satisfy a GrowthBook condition.

    Args:
        attributes: the unit's attributes (a JSON-like dict).
        condition: the condition object; ``{}`` matches everything.
        saved_groups: saved groups for ``$inGroup``/``$notInGroup``, as
            ``{group_id: [values...]}`` (or ``{group_id: {"values": [...]}}``).

    Returns:
        True if every clause of the condition holds.

    Example:
        >>> condition = {"country": {"$in": ["US", "CA"]}, "age": {"$gte": 18}}
        >>> eval_condition({"country": "US", "age": 30}, condition)
        True
        >>> eval_condition({"version": "1.10.0"}, {"version": {"$vgt": "1.9.9"}})
        True
    """
    groups: Mapping[str, Any] = saved_groups or {}
    if condition.__class__ is not dict and not isinstance(condition, Mapping):
        return False
    for key, value in condition.items():
        if key in ("$or", "$nor"):
            items = value if isinstance(value, list | tuple) else []
            any_true = not items or any(
                isinstance(c, Mapping) and eval_condition(attributes, c, groups) for c in items
            )
            if any_true != (key == "$or"):
                return False
        elif key == "$and":
            items = value if isinstance(value, list | tuple) else []
            if not all(
                isinstance(c, Mapping) and eval_condition(attributes, c, groups) for c in items
            ):
                return False
        elif key == "$not":
            if isinstance(value, Mapping) and eval_condition(attributes, value, groups):
                return False
        elif not _eval_value(value, get_path(attributes, key), groups):
            return False
    return True


# --- Compilation: the same semantics as eval_condition, decided once per condition -------

Predicate = Callable[[Any, Mapping[str, Any]], bool]
_ORDER_OPS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "$lt": operator.lt,
    "$lte": operator.le,
    "$gt": operator.gt,
    "$gte": operator.ge,
}


def _compile_operator(op: str, arg: Any) -> Callable[[Any, Mapping[str, Any]], bool]:
    """One operator as a closure; common shapes get a fast path, all fall back to
    :func:`_eval_operator`, which defines the semantics."""
    if op in _ORDER_OPS and isinstance(arg, int | float) and not isinstance(arg, bool):
        order = _ORDER_OPS[op]

        def ordered(actual: Any, groups: Mapping[str, Any]) -> bool:
            if actual.__class__ is int or actual.__class__ is float:
                return bool(order(actual, arg))  # NaN compares false, as in JS
            return _compare_op(op, actual, arg)

        return ordered
    if op in ("$in", "$nin") and isinstance(arg, list) and all(v.__class__ is str for v in arg):
        strings = frozenset(arg)
        found_means = op == "$in"

        def member(actual: Any, groups: Mapping[str, Any]) -> bool:
            if actual.__class__ is str:
                return (actual in strings) == found_means
            return _eval_operator(op, actual, arg, groups)

        return member

    def generic(actual: Any, groups: Mapping[str, Any]) -> bool:
        return _eval_operator(op, actual, arg, groups)

    return generic


def _compile_value(condition: Any) -> Callable[[Any, Mapping[str, Any]], bool]:
    if condition.__class__ is str:

        def literal(actual: Any, groups: Mapping[str, Any]) -> bool:
            if actual.__class__ is str:
                return bool(actual == condition)
            return js_string(actual) == condition

        return literal
    if not _is_operator_object(condition):

        def other(actual: Any, groups: Mapping[str, Any]) -> bool:
            return _eval_value(condition, actual, groups)

        return other
    checks = [_compile_operator(op, arg) for op, arg in condition.items()]
    if len(checks) == 1:
        return checks[0]
    return lambda actual, groups: all(check(actual, groups) for check in checks)


def _compile_clause(key: str, value: Any) -> Predicate:
    if key in ("$or", "$nor", "$and", "$not"):
        sub = {key: value}

        def logical(attributes: Any, groups: Mapping[str, Any]) -> bool:
            return eval_condition(attributes, sub, groups)

        return logical
    check = _compile_value(value)
    if "." in key:

        def nested(attributes: Any, groups: Mapping[str, Any]) -> bool:
            return check(get_path(attributes, key), groups)

        return nested

    def clause(attributes: Any, groups: Mapping[str, Any]) -> bool:
        # A top-level key: dict.get gives None for a missing key, as get_path does.
        if attributes.__class__ is dict:
            return check(attributes.get(key), groups)
        return check(get_path(attributes, key), groups)

    return clause


def compile_condition(condition: Mapping[str, Any]) -> Predicate:
    """Compile a condition once into a predicate ``(attributes, saved_groups) -> bool``.

    Equivalent to :func:`eval_condition` (tested on GrowthBook's cases and at random),
    several times faster when one condition is evaluated for many units.

    Example:
        >>> matches = compile_condition({"country": {"$in": ["US", "CA"]}, "age": {"$gte": 18}})
        >>> matches({"country": "CA", "age": 40}, {}), matches({"country": "FR", "age": 40}, {})
        (True, False)
    """
    if not isinstance(condition, Mapping):
        return lambda attributes, groups: False
    clauses = [_compile_clause(key, value) for key, value in condition.items()]
    if not clauses:
        return lambda attributes, groups: True
    if len(clauses) == 1:
        return clauses[0]
    if len(clauses) == 2:
        first, second = clauses
        return lambda attributes, groups: first(attributes, groups) and second(attributes, groups)

    def conjunction(attributes: Any, groups: Mapping[str, Any]) -> bool:
        for clause in clauses:  # noqa: SIM110 (a loop beats all() on a generator here)
            if not clause(attributes, groups):
                return False
        return True

    return conjunction
