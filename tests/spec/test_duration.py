"""Compact durations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from proving.spec.duration import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5h", timedelta(minutes=90)),
        (" 1H 30M ", timedelta(minutes=90)),
    ],
)
def test_compact_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("value", ["PT1H", "01:00:00", 3600, "soon", ""])
def test_other_values_pass_through_to_pydantic(value: object) -> None:
    assert parse_duration(value) == value
