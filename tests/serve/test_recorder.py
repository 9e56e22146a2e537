"""The recorder: exposure deduplication, the rows it emits, event ids, and events that
JSON cannot encode (counted, never failing the request)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from proving.assign.assignment import Assignment
from proving.serve import ServeConfig
from proving.serve.observability import GatewayMetrics
from proving.serve.recorder import ModelCall, Recorder
from proving.telemetry.events import (
    EXPOSURES_SCHEMA,
    PREDICTIONS_SCHEMA,
    ExposureRow,
    PredictionRow,
    new_event_id,
    now_micros,
    to_record_batch,
)
from tests.serve.test_app import Harness, _models, client, run

LONE_SURROGATE = "\ud800"  # a str that UTF-8 (and so JSON text) cannot encode


class ListWriter:
    """Collects what the recorder emits (the BatchWriter's ``emit``)."""

    def __init__(self) -> None:
        self.rows: list[Any] = []

    def emit(self, event: Any) -> bool:
        self.rows.append(event)
        return True


def _recorder(cache_size: int, log_features: bool = True) -> tuple[Recorder, ListWriter]:
    writer = ListWriter()
    recorder = Recorder(writer, GatewayMetrics(), log_features, cache_size)  # type: ignore[arg-type]
    return recorder, writer


def _assignment(
    unit: str | None, variant: str = "a", experiment: str = "exp", in_experiment: bool = True
) -> Assignment:
    return Assignment(
        experiment=experiment,
        version=1,
        unit_id=unit,
        variant=variant,
        in_experiment=in_experiment,
        reason="bucket",
    )


def _invalid(recorder: Recorder, deployment: str) -> float | None:
    return recorder.metrics.registry.get_sample_value(
        "proving_serve_invalid_events_total", {"deployment": deployment}
    )


def _calls(recorder: Recorder, **labels: str) -> float | None:
    return recorder.metrics.registry.get_sample_value("proving_serve_model_calls_total", labels)


def _exposed(writer: ListWriter) -> list[tuple[str, str, str]]:
    return [(r.experiment, r.variant, r.unit_id) for r in writer.rows]


# -- exposure deduplication --------------------------------------------------------------


def test_the_same_unit_twice_logs_one_exposure() -> None:
    recorder, writer = _recorder(100)
    for _ in range(3):
        recorder.exposure(_assignment("u1"), {})
    assert _exposed(writer) == [("exp", "a", "u1")]


def test_a_unit_reassigned_to_another_variant_or_in_another_experiment_is_logged_again() -> None:
    recorder, writer = _recorder(100)
    recorder.exposure(_assignment("u1", "a"), {})
    recorder.exposure(_assignment("u1", "b"), {})  # e.g. weights changed
    recorder.exposure(_assignment("u1", "b"), {})
    recorder.exposure(_assignment("u1", "a", experiment="other"), {})
    assert _exposed(writer) == [("exp", "a", "u1"), ("exp", "b", "u1"), ("other", "a", "u1")]


def test_a_full_cache_forgets_the_oldest_unit() -> None:
    recorder, writer = _recorder(2)
    for unit in ("a", "b", "c", "a"):
        recorder.exposure(_assignment(unit), {})
    assert [r.unit_id for r in writer.rows] == ["a", "b", "c", "a"]  # a was evicted by c


def test_the_cache_forgets_in_the_order_units_were_logged_not_seen() -> None:
    # FIFO of logged units: a repeat that logs nothing does not refresh a unit.
    recorder, writer = _recorder(2)
    for unit in ("a", "b", "a", "c", "a", "c"):
        recorder.exposure(_assignment(unit), {})
    assert [r.unit_id for r in writer.rows] == ["a", "b", "c", "a"]


def test_cache_size_zero_logs_every_request() -> None:
    recorder, writer = _recorder(0)
    for _ in range(3):
        recorder.exposure(_assignment("u1"), {})
    assert _exposed(writer) == [("exp", "a", "u1")] * 3
    ids = to_record_batch("exposures", writer.rows).column("event_id").to_pylist()
    assert len(set(ids)) == 3  # each row gets its own id when converted


def test_units_outside_the_experiment_or_without_an_id_are_not_exposed() -> None:
    recorder, writer = _recorder(0)
    recorder.exposure(_assignment("u1", in_experiment=False), {})
    recorder.exposure(_assignment(None), {})
    assert writer.rows == []


def test_exposure_row_keeps_finite_scalar_attributes_only() -> None:
    recorder, writer = _recorder(0)
    before = now_micros()
    attributes = {
        "country": "de", "age": 30, "vip": True, "ratio": 0.5, "none": None,
        "nan": float("nan"), "inf": float("inf"), "nested": {"a": 1}, "list": [1],
    }  # fmt: skip
    recorder.exposure(_assignment("u1"), attributes)
    (row,) = writer.rows
    assert isinstance(row, ExposureRow)
    assert row.attributes == '{"age":30,"country":"de","none":null,"ratio":0.5,"vip":true}'
    assert before <= row.timestamp <= now_micros()
    batch = to_record_batch("exposures", [row])
    assert batch.schema.equals(EXPOSURES_SCHEMA) and batch.column("unit_id").to_pylist() == ["u1"]


# -- the rows' layout --------------------------------------------------------------------


def test_rows_hold_the_table_columns_in_order_without_received_at() -> None:
    assert EXPOSURES_SCHEMA.names[-1] == PREDICTIONS_SCHEMA.names[-1] == "received_at"
    assert list(ExposureRow._fields) == EXPOSURES_SCHEMA.names[:-1]
    assert list(PredictionRow._fields) == PREDICTIONS_SCHEMA.names[:-1]


def test_prediction_rows_carry_the_call() -> None:
    recorder, writer = _recorder(0, log_features=True)
    common: dict[str, Any] = {"deployment": "dep", "request_id": "r1", "unit_id": "u1"}
    ok = ModelCall("a", "m", "2", output=0.25, latency_ms=3.5)
    recorder.prediction(ok, features={"b": 1, "a": 2}, **common)
    failed = ModelCall("b", "m", "3", output=None, latency_ms=-1.0, status="error", error="boom")
    recorder.prediction(failed, features=[1, 2], role="shadow", experiment="exp", **common)
    first, second = writer.rows
    assert isinstance(first, PredictionRow)
    assert first._replace(event_id="", timestamp=0) == PredictionRow(
        "", "r1", "u1", "dep", "dep", "a", "m", "2", "served", "ok", '{"a":2,"b":1}', "0.25",
        0.25, 3.5, 0,
    )  # fmt: skip
    assert (second.role, second.status, second.experiment) == ("shadow", "error", "exp")
    assert (second.features, second.output, second.score) == ('{"instance":[1,2]}', '"boom"', None)
    assert second.latency_ms == 0.0  # never negative
    quiet, quiet_writer = _recorder(0, log_features=False)
    quiet.prediction(ok, features={"secret": 1}, **common)
    assert quiet_writer.rows[0].features == "{}"
    count = _calls(
        recorder, deployment="dep", variant="b", model="m", version="3", role="shadow",
        status="error",
    )  # fmt: skip
    assert count == 1.0


# -- event ids ---------------------------------------------------------------------------


def test_event_ids_are_32_hex_and_unique() -> None:
    ids = [new_event_id() for _ in range(100_000)]
    assert all(len(i) == 32 for i in ids)
    assert all(int(i, 16) >= 0 and i == i.lower() for i in ids[:1000])
    assert len(set(ids)) == len(ids)


def test_event_ids_start_with_the_millisecond_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    earlier = [new_event_id() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    for i in earlier:
        assert before <= int(i[:12], 16) <= after
    time.sleep(0.003)
    later = [new_event_id() for _ in range(1000)]
    assert max(earlier) < min(later)
    # within one run the millisecond prefix never goes back
    prefixes = [i[:12] for i in earlier + later]
    assert prefixes == sorted(prefixes)


def test_the_recorder_leaves_ids_to_the_conversion_which_orders_them_by_time() -> None:
    recorder, writer = _recorder(0)
    recorder.exposure(_assignment("u1"), {})
    recorder.prediction(
        ModelCall("a", "m", "1", output=1.0), deployment="d", request_id="r", unit_id="u1",
        features={},
    )  # fmt: skip
    exposure, prediction = writer.rows
    assert exposure.event_id is None and prediction.event_id is None
    (first,) = to_record_batch("exposures", [exposure]).column("event_id").to_pylist()
    time.sleep(0.003)
    (second,) = to_record_batch("predictions", [prediction]).column("event_id").to_pylist()
    assert len(first) == len(second) == 32 and first < second


# -- values JSON cannot encode -------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [LONE_SURROGATE, {"text": LONE_SURROGATE}, b"\xff\xfe", "circular"],
    ids=["surrogate", "nested-surrogate", "bad-bytes", "circular"],
)
def test_an_output_json_cannot_encode_is_counted_not_raised(output: Any) -> None:
    if output == "circular":
        output = []
        output.append(output)
    recorder, writer = _recorder(0)
    call = ModelCall("a", "m", "1", output=output)
    recorder.prediction(call, deployment="dep", request_id="r1", unit_id="u1", features={})
    assert writer.rows == []
    assert _invalid(recorder, "dep") == 1.0
    # the call is still counted, and the next event goes through
    calls = _calls(
        recorder, deployment="dep", variant="a", model="m", version="1", role="served",
        status="ok",
    )  # fmt: skip
    assert calls == 1.0
    recorder.prediction(
        ModelCall("a", "m", "1", output=1.0), deployment="dep", request_id="r2", unit_id="u1",
        features={},
    )  # fmt: skip
    assert [r.request_id for r in writer.rows] == ["r2"]


def test_features_json_cannot_encode_are_counted_not_raised() -> None:
    recorder, writer = _recorder(0, log_features=True)
    call = ModelCall("a", "m", "1", output=1.0)
    recorder.prediction(
        call, deployment="dep", request_id="r", unit_id="u", features={"x": LONE_SURROGATE}
    )
    assert writer.rows == [] and _invalid(recorder, "dep") == 1.0


def test_an_attribute_json_cannot_encode_skips_the_exposure_and_counts_it() -> None:
    recorder, writer = _recorder(0)
    recorder.exposure(_assignment("u1"), {"name": LONE_SURROGATE})
    assert writer.rows == [] and _invalid(recorder, "exp") == 1.0
    recorder.exposure(_assignment("u1"), {"name": "ok"})
    assert [r.attributes for r in writer.rows] == ['{"name":"ok"}']


def test_mixed_key_types_are_logged_not_refused() -> None:
    recorder, writer = _recorder(0)
    call = ModelCall("a", "m", "1", output={1: "one", "two": 2, (3, 4): "pair"})
    recorder.prediction(call, deployment="dep", request_id="r", unit_id="u", features={})
    assert writer.rows[0].output == '{"1":"one","two":2,"3,4":"pair"}'
    assert _invalid(recorder, "dep") is None


def test_a_shadow_output_json_cannot_encode_does_not_fail_the_request() -> None:
    harness = Harness(_models())
    harness.models["chall"].output = lambda features: {"text": LONE_SURROGATE}

    async def main() -> None:
        async with client(harness) as c:
            r = await c.post(
                "/v1/predict/sh", json={"unit_id": "u1"}, headers={"X-Request-ID": "s"}
            )
            assert r.status_code == 200 and r.json()["prediction"] == 1.0
            for _ in range(200):  # the shadow copy runs off the response path
                text = (await c.get("/metrics")).text
                if 'proving_serve_invalid_events_total{deployment="sh"} 1.0' in text:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(text)
            again = await c.post("/v1/predict/sh", json={"unit_id": "u2"})
            assert again.status_code == 200
            logged = [p for p in harness.rows("predictions") if p["request_id"] == "s"]
            assert [(p["role"], p["variant"]) for p in logged] == [("served", "champion")]

    run(main())


@pytest.mark.parametrize(("size", "expected"), [(100, 1), (0, 3)])
def test_the_gateway_dedupes_exposures_with_its_configured_cache(size: int, expected: int) -> None:
    harness = Harness(_models(), exposure_cache_size=size)

    async def main() -> None:
        async with client(harness) as c:
            for _ in range(3):
                r = await c.post("/v1/predict/ab", json={"unit_id": "same"})
                assert r.status_code == 200
            assert len(harness.rows("exposures")) == expected
            assert len(harness.rows("predictions")) == 3

    run(main())


def test_exposures_are_deduplicated_by_default() -> None:
    assert ServeConfig().exposure_cache_size > 0
