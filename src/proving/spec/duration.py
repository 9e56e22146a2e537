"""Durations in specs: ``30s``, ``15m``, ``1h``, ``1h30m``, ``2d``, seconds, or ISO 8601.

Switchback windows, carry-over buffers and canary step lengths are durations. People write
them the way they say them (``1h30m``); pydantic already reads seconds (``3600``), ISO 8601
(``PT1H30M``) and ``HH:MM:SS``. :data:`Duration` accepts all of these and always yields a
:class:`datetime.timedelta`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["Duration", "parse_duration"]

_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|w|d|h|m|s)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|w|d|h|m|s))+")


def parse_duration(value: Any) -> Any:
    """Turn ``"1h30m"`` style strings into a timedelta; leave anything else to pydantic.

    Args:
        value: a string such as ``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"``, ``"1w"``,
            ``"250ms"``, or any value pydantic reads as a timedelta.

    Returns:
        A timedelta for the compact form, else ``value`` unchanged.

    Example:
        >>> parse_duration("1h30m")
        datetime.timedelta(seconds=5400)
    """
    if isinstance(value, str):
        text = value.strip().replace(" ", "").lower()
        if text and _WHOLE.fullmatch(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
            return timedelta(seconds=seconds)
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
"""A timedelta field that also accepts ``30s``, ``15m``, ``1h30m``, ``2d`` and ``1w``."""
