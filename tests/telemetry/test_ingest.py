"""The ingestion API in-process (httpx.ASGITransport): per-event verdicts, limits, controls."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest
from prometheus_client import CollectorRegistry

from proving.telemetry.duckdb_store import DuckDBStore
from proving.telemetry.ingest import IngestConfig, create_ingest_app
from proving.telemetry.postgres_store import PostgresStore
from proving.telemetry.privacy import PrivacyPolicy
from proving.telemetry.writer import BatchWriter
from tests.telemetry.test_writer import GatedStore

NOW = datetime.now(UTC)


def exposure(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "exposure",
        "event_id": f"e{i}",
        "experiment": "checkout",
        "variant": "ab"[i % 2],
        "unit_id": f"u{i}",
        "timestamp": (NOW - timedelta(hours=1)).isoformat(),
        **extra,
    }


class Api:
    """The app over one DuckDB store, called through httpx in-process."""

    made: ClassVar[list[Api]] = []

    def __init__(
        self, config: IngestConfig | None = None, store: Any = None, **writer: Any
    ) -> None:
        Api.made.append(self)
        self.store = store or DuckDBStore(":memory:")
        self.writer = BatchWriter(
            self.store, flush_interval=0.01, registry=CollectorRegistry(), **writer
        )
        self.app = create_ingest_app(self.writer, config)

    def post(
        self, path: str, body: Any = None, content: bytes | None = None, **kw: Any
    ) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                if content is not None:
                    return await client.post(path, content=content, **kw)
                return await client.post(path, json=body, **kw)

        return asyncio.run(go())

    def get(self, path: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.get(path)

        return asyncio.run(go())


@pytest.fixture(autouse=True)
def close_apis() -> Iterator[None]:
    """Close every writer and store a test made."""
    yield
    while Api.made:
        made = Api.made.pop()
        if isinstance(made.store, GatedStore):
            made.store.gate.set()
        made.writer.close(timeout=10)
        made.store.close()


@pytest.fixture
def api() -> Api:
    return Api(IngestConfig(known_experiments=frozenset({"checkout", "search"})))


def test_all_good_is_200_and_committed_before_the_answer(api: Api) -> None:
    r = api.post("/v1/events", {"events": [exposure(i) for i in range(5)]})
    assert r.status_code == 200
    body = r.json()
    assert [a["status"] for a in body["accepted"]] == ["stored"] * 5
    assert body["rejected"] == [] and body["warnings"] == []
    # No flush: the answer came after the commit.
    assert api.store.count("exposures") == 5


def test_mixed_batch_is_207_and_keeps_the_good_ones(api: Api) -> None:
    batch = [
        exposure(0),
        {**exposure(1), "variant": 7},
        {
            "type": "prediction",
            "request_id": "r",
            "deployment": "d",
            "model": "m",
            "model_version": "1",
            "latency_ms": "slow",
        },
        {"type": "outcome", "unit_id": "u0", "name": "buy", "value": 3.5},
        "junk",
    ]
    r = api.post("/v1/events", batch)  # a bare array is a batch too
    assert r.status_code == 207
    body = r.json()
    assert [a["index"] for a in body["accepted"]] == [0, 3]
    rejected = {x["index"]: x for x in body["rejected"]}
    assert rejected[1]["field"] == "variant" and rejected[1]["event_id"] == "e1"
    assert "Fix: send a string" in rejected[1]["reason"]
    assert rejected[2]["field"] == "latency_ms" and "send a number" in rejected[2]["reason"]
    assert "must be a JSON object" in rejected[4]["reason"]
    assert api.store.count("exposures") == 1 and api.store.count("outcomes") == 1


def test_all_bad_is_400_with_reasons(api: Api) -> None:
    r = api.post("/v1/events", {"events": [{"type": "exposure"}, {"type": "nope"}]})
    assert r.status_code == 400
    assert [x["index"] for x in r.json()["rejected"]] == [0, 1]


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b'{"events": [', 400, "body is not valid JSON"),
        (b"\xff\xfe", 400, "body is not valid JSON"),
        (
            b'{"things": []}',
            400,
            r"body must be \{\"events\": \[...\]\} or a JSON array of events; "
            r"got dict with keys \['things'\]",
        ),
        (b'"hello"', 400, "got str"),
        (b"[]", 200, None),
    ],
)
def test_malformed_bodies(api: Api, content: bytes, status: int, message: str | None) -> None:
    r = api.post("/v1/events", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status
    if message:
        import re

        assert re.search(message, r.json()["error"])


def test_oversized_bodies_and_batches_are_413() -> None:
    small = Api(IngestConfig(max_body_bytes=2000, max_events=3))
    big = {"events": [exposure(i, attributes={"pad": "x" * 1000}) for i in range(3)]}
    r = small.post("/v1/events", big)
    assert r.status_code == 413 and "exceeds 2000" in r.json()["error"]
    r = small.post("/v1/events", [exposure(i) for i in range(4)])
    assert (
        r.status_code == 413
        and "batch of 4 events exceeds 3. Fix: split the batch" in r.json()["error"]
    )

    # A chunked body without Content-Length is capped while it streams.
    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 500

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=small.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/v1/events", content=chunks())

    assert asyncio.run(go()).status_code == 413
    assert small.store.count("exposures") == 0
    small.writer.close()


def test_unknown_experiment_is_rejected_alone(api: Api) -> None:
    r = api.post("/v1/events", [exposure(0), exposure(1, experiment="pricing")])
    assert r.status_code == 207
    (rej,) = r.json()["rejected"]
    assert rej["field"] == "experiment"
    assert (
        "experiment 'pricing' is not known to this server (known: ['checkout', 'search'])"
        in rej["reason"]
    )
    assert api.store.count("exposures") == 1


def test_repeated_ids_within_and_across_batches_are_stored_once(api: Api) -> None:
    r = api.post("/v1/events", [exposure(1), exposure(2), {**exposure(1), "variant": "zzz"}])
    assert r.status_code == 200
    statuses = [(a["index"], a["event_id"], a["status"]) for a in r.json()["accepted"]]
    assert statuses == [(0, "e1", "stored"), (1, "e2", "stored"), (2, "e1", "duplicate")]
    again = api.post("/v1/events", [exposure(1), exposure(3)])
    assert again.status_code == 200  # a retry is idempotent
    table = api.store.read_table("exposures")
    assert sorted(table.column("event_id").to_pylist()) == ["e1", "e2", "e3"]
    assert (
        dict(zip(table["event_id"].to_pylist(), table["variant"].to_pylist(), strict=True))["e1"]
        == "b"
    )


def test_future_timestamps_are_rejected_and_old_outcomes_flagged(api: Api) -> None:
    api.post("/v1/events", [exposure(5)])  # u5 first exposed an hour ago
    r = api.post(
        "/v1/outcomes",
        {
            "outcomes": [
                {
                    "unit_id": "u5",
                    "name": "buy",
                    "timestamp": (NOW - timedelta(days=1)).isoformat(),
                },
                {
                    "unit_id": "u5",
                    "name": "buy",
                    "timestamp": (NOW + timedelta(hours=2)).isoformat(),
                },
                {"unit_id": "u5", "name": "buy", "timestamp": NOW.isoformat()},
                {"unit_id": "never-exposed", "name": "buy"},
            ]
        },
    )
    assert r.status_code == 207
    body = r.json()
    assert [x["index"] for x in body["rejected"]] == [1]
    assert "ahead of the server clock" in body["rejected"][0]["reason"]
    assert [w["index"] for w in body["warnings"]] == [0]
    assert "precedes the first exposure of unit 'u5'" in body["warnings"][0]["reason"]
    assert api.store.count("outcomes") == 3  # the flagged one is stored


def test_skew_check_sees_exposures_in_the_same_batch(api: Api) -> None:
    early = (NOW - timedelta(days=2)).isoformat()
    r = api.post(
        "/v1/events",
        [exposure(9), {"type": "outcome", "unit_id": "u9", "name": "x", "timestamp": early}],
    )
    assert [w["index"] for w in r.json()["warnings"]] == [1]


def test_outcomes_endpoint_takes_only_outcomes(api: Api) -> None:
    r = api.post("/v1/outcomes", [exposure(0), {"request_id": "r1", "name": "label", "value": 1}])
    assert r.status_code == 207
    assert r.json()["rejected"][0]["reason"].endswith("Fix: post it to /v1/events.")
    assert api.store.count("exposures") == 0 and api.store.count("outcomes") == 1


def test_privacy_controls_apply_before_storage() -> None:
    policy = PrivacyPolicy(
        salt="k",
        hash_fields=["attributes.email"],
        drop_fields=["attributes.ip"],
        sample_rates={"outcome": 0.0},
    )
    made = Api(IngestConfig(privacy=policy))
    r = made.post(
        "/v1/events",
        [
            exposure(0, attributes={"email": "a@b.c", "ip": "1.1.1.1", "plan": "pro"}),
            {"type": "outcome", "unit_id": "u0", "name": "n"},
        ],
    )
    assert [a["status"] for a in r.json()["accepted"]] == ["stored", "sampled_out"]
    made.writer.flush()
    stored = json.loads(made.store.read_table("exposures")["attributes"][0].as_py())
    assert stored == {"email": hmac.new(b"k", b"a@b.c", hashlib.sha256).hexdigest(), "plan": "pro"}
    assert made.store.count("outcomes") == 0
    made.writer.close()


def test_overload_is_503_and_nothing_is_kept() -> None:
    store = GatedStore()
    made = Api(store=store, max_queue=5)
    r = made.post("/v1/events", [exposure(i) for i in range(6)])
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "queue is full" in r.json()["error"]
    assert store.count("exposures") == 0
    made.writer.close()


def test_store_failure_is_503_not_an_acknowledgement() -> None:
    store = GatedStore(failures=10)
    made = Api(store=store, retries=0)
    r = made.post("/v1/events", [exposure(0)])
    assert r.status_code == 503
    assert "the batch was not committed" in r.json()["error"] and "injected" in r.json()["error"]
    made.writer.close()


def test_openapi_documents_the_batch_bodies(api: Api) -> None:
    spec = api.get("/openapi.json").json()
    post = spec["paths"]["/v1/events"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][0]["required"] == ["events"]
    assert {"200", "207", "400", "413", "503"} <= set(post["responses"])
    assert {"ExposureEvent", "PredictionEvent", "OutcomeEvent", "IngestResponse"} <= set(
        spec["components"]["schemas"]
    )
    assert api.get("/v1/health").json()["status"] == "ok"


def test_a_slow_commit_is_503_and_the_api_recovers() -> None:
    store = GatedStore()
    store.gate.clear()
    made = Api(IngestConfig(commit_timeout=0.3), store=store)
    r = made.post("/v1/events", [exposure(0)])
    assert r.status_code == 503 and "not committed" in r.json()["error"]
    store.gate.set()
    assert made.post("/v1/events", [exposure(0), exposure(1)]).status_code == 200
    assert store.count("exposures") == 2


def test_the_api_over_postgresql(postgres_dsn: str, postgres_schema: str) -> None:
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    made = Api(IngestConfig(known_experiments=frozenset({"checkout"})), store=store)
    r = made.post("/v1/events", [exposure(0), exposure(1, experiment="other"), exposure(0)])
    assert r.status_code == 207
    early = (NOW - timedelta(days=1)).isoformat()
    r = made.post("/v1/outcomes", [{"unit_id": "u0", "name": "buy", "timestamp": early}])
    assert r.status_code == 200 and [w["index"] for w in r.json()["warnings"]] == [0]
    assert store.count("exposures") == 1 and store.count("outcomes") == 1


def test_metrics_endpoint_shows_drops() -> None:
    store = GatedStore()
    made = Api(store=store, max_queue=2)
    assert made.post("/v1/events", [exposure(i) for i in range(3)]).status_code == 503
    text = made.get("/metrics").text
    assert 'proving_telemetry_dropped_total{reason="overloaded"} 3.0' in text
