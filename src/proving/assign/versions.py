"""Semantic-version comparison for the ``$veq $vne $vgt $vgte $vlt $vlte`` operators.

GrowthBook compares versions as strings after padding them (sdk-js ``util.ts``
``paddedVersionString``): :func:`padded_version_string` turns ``"v1.2.3+build"`` into a
string whose plain string order is the version order (numeric parts left-padded to 5
characters; a release sorts after its pre-releases, as SemVer 2.0.0 section 11 says).
:func:`version_operator` applies one of the six operators to two attribute values.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Final

from proving.assign.javascript import js_number_string

__all__ = ["VERSION_OPERATORS", "padded_version_string", "version_operator"]

_VERSION_STRIP: Final = re.compile(r"(^v|\+.*$)")
_VERSION_SPLIT: Final = re.compile(r"[-.]")
_DIGITS: Final = re.compile(r"[0-9]+")
VERSION_OPERATORS: Final = ("$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte")


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
        value = js_number_string(value)
    if not isinstance(value, str) or not value:
        value = "0"
    return padded_version_string(value)


def version_operator(op: str, actual: Any, expected: Any) -> bool:
    """Whether ``actual <op> expected`` holds between versions (``op`` in VERSION_OPERATORS).

    Numbers read as ``String(number)`` and anything else that is not a non-empty string as
    ``"0"`` (sdk-js ``evalOperatorCondition``).

    Example:
        >>> version_operator("$vgt", "1.10.0", "1.9.9")
        True
        >>> version_operator("$vlt", "1.0.0-rc.1", "1.0.0")
        True
    """
    a, e = _version(actual), _version(expected)
    return {
        "$veq": a == e,
        "$vne": a != e,
        "$vgt": a > e,
        "$vgte": a >= e,
        "$vlt": a < e,
        "$vlte": a <= e,
    }[op]
