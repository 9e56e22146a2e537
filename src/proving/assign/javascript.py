"""JavaScript's value semantics for JSON-like Python values (ECMA-262).

GrowthBook's reference SDK (sdk-js) is JavaScript, and its conformance cases pin
JavaScript's coercions: ``String(value)`` (:func:`js_string`, ECMA-262 ToString and
Number::toString), ``ToNumber`` (:func:`js_number`, 7.1.4), the abstract relational
comparison (:func:`js_compare`, 7.2.13), strict equality and SameValueZero
(:func:`js_strict_equal`, 7.2), truthiness (:func:`js_truthy`, ToBoolean),
``typeof`` as GrowthBook's ``getType`` (:func:`js_type`) and ``JSON.stringify``
(:func:`json_stringify`). Targeting conditions (:mod:`proving.assign.conditions`), hashing
of non-string ids and feature values use these, so Python never silently applies its own
rules (``None > -10`` raises in Python; ``null > -10`` is true in JavaScript).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

__all__ = [
    "js_compare",
    "js_number",
    "js_number_string",
    "js_primitive",
    "js_strict_equal",
    "js_string",
    "js_truthy",
    "js_type",
    "json_stringify",
]

_JS_WHITESPACE: Final = " \t\n\v\f\r\u00a0\u2028\u2029\ufeff"
_DECIMAL: Final = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
_RADIX: Final = re.compile(r"0([xXoObB])([0-9a-fA-F]+)")


def js_number_string(x: float) -> str:
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
        return "-" + js_number_string(-x)
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
    """``String(value)`` in JavaScript, for JSON-like values (``None`` is ``null``).

    Example:
        >>> js_string([1.0, None, 1e21, True])
        '1,,1e+21,true'
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return js_number_string(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ",".join("" if v is None else js_string(v) for v in value)
    return "[object Object]"


def js_number(value: Any) -> float:
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
        return js_number(js_primitive(value))
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


def js_primitive(value: Any) -> Any:
    """``ToPrimitive`` with hint number: arrays and objects become strings."""
    if isinstance(value, list | tuple | dict):
        return js_string(value)
    return value


def js_type(value: Any) -> str:
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


def js_compare(a: Any, b: Any) -> int | None:
    """Abstract relational comparison (ECMA-262 7.2.13): -1, 0, 1, or None if unordered."""
    pa, pb = js_primitive(a), js_primitive(b)
    if isinstance(pa, str) and isinstance(pb, str):
        # JS orders strings by UTF-16 code units, which big-endian UTF-16 bytes preserve.
        ua, ub = (
            (pa.encode(), pb.encode())
            if pa.isascii() and pb.isascii()
            else (_utf16(pa), _utf16(pb))
        )
        return (ua > ub) - (ua < ub)
    na, nb = js_number(pa), js_number(pb)
    if math.isnan(na) or math.isnan(nb):
        return None
    return (na > nb) - (na < nb)


def js_strict_equal(a: Any, b: Any, same_value_zero: bool = False) -> bool:
    """``a === b`` (or SameValueZero for ``includes``): containers only equal themselves."""
    ta = js_type(a)
    if ta != js_type(b):
        return False
    if ta in ("array", "object"):
        return a is b
    if ta == "number" and same_value_zero and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def js_truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, list | tuple | dict):
        return True
    return bool(value)


def json_stringify(value: Any) -> str:
    """``JSON.stringify`` for JSON-like values (numbers as JS prints them)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return js_number_string(value) if math.isfinite(value) else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_stringify(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (
            f"{json.dumps(str(k), ensure_ascii=False)}:{json_stringify(v)}"
            for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    return "null"
