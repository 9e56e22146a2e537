"""Event models, the Arrow schema and record batches (validation: test_validation.py)."""

from __future__ import annotations

import doctest
import json
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from proving.errors import EventValidationError
from proving.telemetry import events as events_module
from proving.telemetry.events import (
    SCHEMAS,
    ExposureEvent,
    OutcomeEvent,
    PredictionEvent,
    conform,
    group_by_table,
    to_record_batch,
)
from proving.telemetry.validation import parse_event

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


def test_docstring_examples() -> None:
    assert doctest.testmod(events_module).failed == 0
