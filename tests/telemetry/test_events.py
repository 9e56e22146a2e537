"""Event models, validation messages and the Arrow schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from proving.errors import EventValidationError
from proving.telemetry.events import (
    SCHEMAS,
    ExposureEvent,
    OutcomeEvent,
    PredictionEvent,
    conform,
    group_by_table,
    parse_event,
    to_record_batch,
    validate_events,
)

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


def test_ids_are_generated_unless_given() -> None:
    a, b = ExposureEvent(**EXPOSURE), ExposureEvent(**EXPOSURE)  # type: ignore[arg-type]
    assert a.event_id != b.event_id and len(a.event_id) == 32
    given = parse_event({**EXPOSURE, "event_id": "client-1"})
    assert given.event_id == "client-1"


def test_timestamps_become_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    aware = parse_event({**OUTCOME, "timestamp": "2024-05-01T14:00:00+02:00"})
    naive = parse_event({**OUTCOME, "timestamp": "2024-05-01T12:00:00"})
    expected = datetime(2024, 5, 1, 14, tzinfo=plus_two)
    assert aware.timestamp == naive.timestamp == expected
    assert aware.timestamp.tzinfo == UTC


def test_defaults_of_prediction_and_outcome() -> None:
    p = parse_event(PREDICTION)
    assert isinstance(p, PredictionEvent)
    assert (p.role, p.status, p.score, p.unit_id) == ("served", "ok", None, None)
    o = parse_event({"type": "outcome", "request_id": "r1", "name": "click"})
    assert isinstance(o, OutcomeEvent) and o.value == 1.0


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


def test_record_batch_matches_schema_and_values() -> None:
    t = datetime(2024, 5, 1, tzinfo=UTC)
    events = [
        parse_event(
            {
                **PREDICTION,
                "features": {"b": 1, "a": "x"},
                "output": [1, 2],
                "score": 0.5,
                "timestamp": t.isoformat(),
            }
        ),
        parse_event(
            {**PREDICTION, "event_id": "p2", "status": "error", "timestamp": t.isoformat()}
        ),
    ]
    batch = to_record_batch("predictions", events, received_at=t)
    assert batch.schema.equals(SCHEMAS["predictions"])
    rows = batch.to_pylist()
    assert json.loads(rows[0]["features"]) == {"a": "x", "b": 1}
    assert rows[0]["features"] == '{"a":"x","b":1}'  # sorted keys: equal dicts, equal text
    assert json.loads(rows[0]["output"]) == [1, 2]
    assert rows[1]["output"] == "null" and rows[1]["score"] is None
    assert rows[1]["status"] == "error" and rows[0]["received_at"] == t


def test_record_batch_rejects_mixed_tables() -> None:
    with pytest.raises(
        EventValidationError,
        match=r"event 1: a outcome event cannot be written to table 'exposures'",
    ):
        to_record_batch("exposures", [parse_event(EXPOSURE), parse_event(OUTCOME)])


def test_group_by_table() -> None:
    grouped = group_by_table([parse_event(x) for x in (EXPOSURE, OUTCOME, PREDICTION, OUTCOME)])
    assert {k: len(v) for k, v in grouped.items()} == {
        "exposures": 1,
        "outcomes": 2,
        "predictions": 1,
    }


def test_conform_casts_and_reports_bad_types() -> None:
    batch = to_record_batch("outcomes", [parse_event(OUTCOME)])
    reordered = pa.Table.from_batches([batch]).select(list(reversed(batch.schema.names)))
    assert conform("outcomes", reordered).schema.equals(SCHEMAS["outcomes"])
    bad = pa.Table.from_batches([batch]).set_column(4, "value", pa.array(["much"]))
    with pytest.raises(EventValidationError, match="does not match the schema"):
        conform("outcomes", bad)


def test_schemas_are_the_documented_contract() -> None:
    ts = pa.timestamp("us", tz="UTC")
    assert SCHEMAS["exposures"] == pa.schema(
        [
            pa.field("event_id", pa.string(), nullable=False),
            pa.field("experiment", pa.string(), nullable=False),
            pa.field("variant", pa.string(), nullable=False),
            pa.field("unit_id", pa.string(), nullable=False),
            pa.field("timestamp", ts, nullable=False),
            pa.field("attributes", pa.string(), nullable=False),
            pa.field("received_at", ts, nullable=False),
        ]
    )
    assert SCHEMAS["predictions"].names == [
        "event_id",
        "request_id",
        "unit_id",
        "deployment",
        "experiment",
        "variant",
        "model",
        "model_version",
        "role",
        "status",
        "features",
        "output",
        "score",
        "latency_ms",
        "timestamp",
        "received_at",
    ]
    nullable = {f.name for f in SCHEMAS["predictions"] if f.nullable}
    assert nullable == {"unit_id", "experiment", "variant", "score"}
