"""Event models, the Arrow schema and record batches (validation: test_validation.py)."""

from __future__ import annotations

import doctest
import json
import re
import time
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest
from pydantic_core import to_json

from proving.errors import EventValidationError
from proving.telemetry import events as events_module
from proving.telemetry.events import (
    SCHEMAS,
    ExposureEvent,
    ExposureRow,
    OutcomeEvent,
    PredictionEvent,
    PredictionRow,
    attributes_json,
    conform,
    group_by_table,
    json_bytes,
    json_text,
    new_event_ids,
    now_micros,
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


def _prediction_pair(i: int, t: datetime) -> tuple[PredictionEvent, PredictionRow]:
    """The same prediction as a validated model and as a row."""
    features = {"b": i, "a": [1.5, None], "text": 'quote " and ü'}
    output = {"score": i / 3, "label": f"l{i}"} if i % 2 else [i, "x"]
    model = PredictionEvent(
        event_id=f"p{i}",
        request_id=f"r{i}",
        unit_id=None if i == 1 else f"u{i}",
        deployment="dep",
        experiment=None if i == 2 else "exp",
        variant="ab"[i % 2],
        model="m",
        model_version="3",
        role="shadow" if i % 3 == 0 else "served",
        status="fallback" if i == 3 else "ok",
        features=features,
        output=output,
        score=None if i % 2 == 0 else i / 3,
        latency_ms=0.125 * i,
        timestamp=t + timedelta(microseconds=i),
    )
    row = PredictionRow(
        model.event_id,
        model.request_id,
        model.unit_id,
        model.deployment,
        model.experiment,
        model.variant,
        model.model,
        model.model_version,
        model.role,
        model.status,
        json_text(features),
        json_text(output),
        model.score,
        model.latency_ms,
        (model.timestamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1),
    )
    return model, row


def test_models_and_rows_mixed_convert_like_the_models_alone() -> None:
    t = datetime(2024, 5, 1, 12, 30, 15, 123457, tzinfo=UTC)  # microseconds matter
    received = datetime(2024, 5, 2, 0, 0, 0, 999999, tzinfo=UTC)
    pairs = [_prediction_pair(i, t) for i in range(6)]
    models = [m for m, _ in pairs]
    mixed = [m if i % 2 else r for i, (m, r) in enumerate(pairs)]  # row, model, row, ...
    rows_only = [r for _, r in pairs]
    expected = to_record_batch("predictions", models, received_at=received)
    for events in (mixed, rows_only):
        batch = to_record_batch("predictions", events, received_at=received)
        assert batch.schema.equals(SCHEMAS["predictions"])
        # compared by id: a batch's row order is not part of the contract
        got = sorted(batch.to_pylist(), key=lambda row: row["event_id"])
        assert got == sorted(expected.to_pylist(), key=lambda row: row["event_id"])
    timestamps = sorted(to_record_batch("predictions", mixed).column("timestamp").to_pylist())
    assert timestamps == [t + timedelta(microseconds=i) for i in range(6)]
    assert timestamps[0].microsecond == 123457 and timestamps[0].tzinfo is not None


def test_exposure_rows_convert_like_exposure_models() -> None:
    t = datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC)
    model = ExposureEvent(
        event_id="e1", experiment="x", variant="b", unit_id="u", timestamp=t,
        attributes={"vip": True, "country": "de", "age": 3},
    )  # fmt: skip
    micros = (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    row = ExposureRow("e1", "x", "b", "u", micros, '{"age":3,"country":"de","vip":true}')
    received = datetime(2024, 5, 1, tzinfo=UTC)
    from_model = to_record_batch("exposures", [model], received_at=received).to_pylist()
    assert to_record_batch("exposures", [row], received_at=received).to_pylist() == from_model


def test_rows_without_ids_get_new_unique_ones_when_converted() -> None:
    before = time.time_ns() // 1_000_000
    rows = [ExposureRow(None, "x", "b", f"u{i}", 0, "{}") for i in range(1000)]
    ids = to_record_batch("exposures", rows).column("event_id").to_pylist()
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert all(before <= int(i[:12], 16) <= after for i in ids)  # the layout of new_event_id
    # Given ids are kept; only the missing ones are made.
    mixed = [ExposureRow("given", "x", "b", "u", 0, "{}"), *rows[:2]]
    got = to_record_batch("exposures", mixed).column("event_id").to_pylist()
    assert got[0] == "given" and len(set(got)) == 3 and all(len(i) == 32 for i in got[1:])
    assert new_event_ids(0).to_pylist() == []


def test_string_columns_of_one_value_convert_like_varied_ones() -> None:
    # One value throughout, the same ends with another value between, and None at an end.
    n = 100  # enough rows for a repeat
    variants = [["a"] * n, ["a", "b", *["a"] * (n - 2)], [*["a"] * (n - 1), None]]
    for values in variants:
        rows = [
            PredictionRow(f"p{i}", "r", None, "dep", v, v, "m", "1", "served", "ok", "{}", "1",
                          1.0, 0.5, i)
            for i, v in enumerate(values)
        ]  # fmt: skip
        batch = to_record_batch("predictions", rows)
        assert batch.column("variant").to_pylist() == values
        assert batch.column("experiment").to_pylist() == values
        assert batch.column("deployment").to_pylist() == ["dep"] * n
        assert batch.column("unit_id").to_pylist() == [None] * n
        assert batch.schema.equals(SCHEMAS["predictions"])


def test_a_row_of_another_table_is_refused_by_index() -> None:
    row = ExposureRow("e1", "x", "b", "u", 0, "{}")
    with pytest.raises(EventValidationError, match=r"event 1: a exposure event cannot be written"):
        to_record_batch("predictions", [_prediction_pair(1, datetime.now(UTC))[1], row])


def test_json_text_sorts_keys_and_keeps_mixed_key_types_in_order() -> None:
    assert json_text({"b": 1, "a": {"z": 1, "y": 2}}) == '{"a":{"y":2,"z":1},"b":1}'
    assert json_text({"b": 1, 2: {"z": 1, "y": 2}}) == '{"b":1,"2":{"z":1,"y":2}}'
    mixed = {2: "two", "a": 1, 1.5: None, (1, 2): "pair", None: 0}
    text = json_text(mixed)  # keys that do not compare: no sorting, no error
    assert json.loads(text) == {"2": "two", "a": 1, "1.5": None, "1,2": "pair", "None": 0}
    assert list(json.loads(text)) == ["2", "a", "1.5", "1,2", "None"]
    assert json_text({}) == "{}" and json_text(None) == "null"
    assert json_text({"when": datetime(2024, 5, 1, tzinfo=UTC)}) == (
        '{"when":"2024-05-01T00:00:00Z"}'
    )


def test_json_text_refuses_what_utf8_cannot_hold_with_a_value_error() -> None:
    circular: list[object] = []
    circular.append(circular)
    for value in ("\ud800", {"k": "\ud800"}, circular):
        with pytest.raises(ValueError):
            json_text(value)


def test_now_micros_is_the_epoch_in_microseconds() -> None:
    before = datetime.now(UTC)
    micros = now_micros()
    after = datetime.now(UTC)
    as_datetime = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    assert before - timedelta(milliseconds=1) <= as_datetime <= after + timedelta(milliseconds=1)


def test_attributes_json_keeps_bool_int_and_float_apart() -> None:
    texts = [attributes_json({"vip": v}) for v in (1, True, 1.0)]
    assert texts == ['{"vip":1}', '{"vip":true}', '{"vip":1.0}']


def test_json_text_writes_non_finite_numbers_as_null() -> None:
    assert json_text([float("nan"), float("inf"), -float("inf")]) == "[null,null,null]"


def test_json_bytes_encodes_what_orjson_refuses_like_pydantic_core() -> None:
    # numpy scalars, sets, bytes and integers past 64 bits leave orjson's fast path; the
    # text must be what pydantic-core gives for them (unknown types as their str).
    cases = [np.float64(0.5), {"x": np.int64(3)}, {1, 2}, b"ab", 2**70, {"k": np.array([1.0])}]
    for value in cases:
        assert json_bytes(value) == to_json(value, fallback=str, inf_nan_mode="null")
    assert json.loads(json_bytes({"b": [np.float64("nan")], "a": 1}, sort_keys=True)) == {
        "a": 1, "b": [None]
    }  # fmt: skip
    assert json_bytes({"b": 1, "a": 2}) == b'{"b":1,"a":2}'  # keys as given unless asked
