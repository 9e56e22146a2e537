"""Validation at the boundary: each bad event is rejected alone, naming index, field and fix."""

from __future__ import annotations

import doctest

import pytest

from proving.errors import EventValidationError
from proving.telemetry import events as events_module
from proving.telemetry import validation as validation_module
from proving.telemetry.events import OutcomeEvent
from proving.telemetry.validation import Rejection, parse_event, validate_events

EXPOSURE = {"type": "exposure", "experiment": "checkout", "variant": "b", "unit_id": "u1"}
PREDICTION = {
    "type": "prediction",
    "request_id": "r1",
    "deployment": "ranker",
    "model": "gbm",
    "model_version": "3",
    "latency_ms": 4.5,
}
OUTCOME = {"type": "outcome", "unit_id": "u1", "name": "purchase", "value": 19.9}


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (
            {**EXPOSURE, "variant": 3},
            "variant",
            r"event 4: field 'variant': .*got 3\. Fix: send a string",
        ),
        (
            {"type": "exposure", "experiment": "x", "variant": "a"},
            "unit_id",
            r"field 'unit_id': Field required\. Fix: add the field",
        ),
        ({**EXPOSURE, "unit_id": "  "}, "unit_id", r"Fix: send a non-empty string"),
        ({**EXPOSURE, "colour": "red"}, "colour", r"Fix: remove the field"),
        (
            {**PREDICTION, "role": "canary"},
            "role",
            r"'served' or 'shadow'.*Fix: use one of the allowed values",
        ),
        ({**PREDICTION, "latency_ms": -1}, "latency_ms", r"Fix: send a value >= 0"),
        ({**PREDICTION, "latency_ms": "fast"}, "latency_ms", r"got \"fast\"\. Fix: send a number"),
        ({**OUTCOME, "value": float("inf")}, "value", r"Fix: send a finite number"),
        (
            {"type": "outcome", "name": "click"},
            "unit_id",
            r"needs unit_id or request_id .*Fix: add unit_id or request_id",
        ),
        ({**OUTCOME, "timestamp": "yesterday"}, "timestamp", r"Fix: send an ISO 8601 timestamp"),
        (
            {**EXPOSURE, "attributes": {"x": float("nan")}},
            "attributes",
            r"attribute 'x' is nan\. Fix",
        ),
        (
            {**EXPOSURE, "attributes": {"x": [1, 2]}},
            "attributes.x",
            r"field 'attributes\.x': .*got \[1, 2\]\. Fix: flatten",
        ),
        ({**EXPOSURE, "experiment": "a\x00b"}, "experiment", r"Fix: remove NUL characters"),
        (
            {**EXPOSURE, "type": "click"},
            "type",
            r"'type' must be one of exposure, prediction, outcome; got 'click'",
        ),
        ("not an object", "event", r"must be a JSON object; got str"),
    ],
)
def test_bad_events_name_index_field_and_fix(raw: object, field: str, message: str) -> None:
    with pytest.raises(EventValidationError, match=message):
        parse_event(raw, index=4)
    accepted, rejected = validate_events([EXPOSURE, raw, OUTCOME])
    assert [i for i, _ in accepted] == [0, 2]
    assert len(rejected) == 1 and rejected[0].index == 1
    assert rejected[0].field.startswith(field)


def test_rejection_carries_the_client_id() -> None:
    _, rejected = validate_events([{**EXPOSURE, "event_id": "mine", "variant": None}])
    assert rejected[0].to_dict() == {
        "index": 0,
        "event_id": "mine",
        "field": "variant",
        "reason": rejected[0].reason,
    }


def test_default_type_applies_only_when_absent() -> None:
    accepted, _ = validate_events([{"unit_id": "u", "name": "n"}], default_type="outcome")
    assert isinstance(accepted[0][1], OutcomeEvent)
    _, rejected = validate_events([{"unit_id": "u", "name": "n"}])
    assert "'type' must be one of" in rejected[0].reason


def test_still_importable_from_events_and_the_stage() -> None:
    """Validation moved out of proving.telemetry.events; the old import paths keep working."""
    import proving.telemetry

    assert events_module.parse_event is parse_event
    assert events_module.validate_events is validate_events is proving.telemetry.validate_events
    assert events_module.Rejection is Rejection is proving.telemetry.Rejection


def test_docstring_examples() -> None:
    assert doctest.testmod(validation_module).failed == 0
