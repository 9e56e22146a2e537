"""NATS JetStream bus against the real server: publish, load, kill the loader, restart."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from proving.errors import TelemetryError
from proving.telemetry.duckdb_store import DuckDBStore
from proving.telemetry.events import (
    SCHEMAS,
    ExposureEvent,
    OutcomeEvent,
    PredictionEvent,
    to_record_batch,
)
from proving.telemetry.nats_bus import NatsLoader, NatsStore, decode_rows, encode_rows
from proving.telemetry.postgres_store import PostgresStore

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@dataclass
class Bus:
    url: str
    stream: str
    prefix: str


async def _delete_stream(url: str, stream: str) -> None:
    import nats
    import nats.js.errors

    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


async def _consumer_state(url: str, stream: str, durable: str) -> tuple[int, int]:
    import nats

    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info(stream, durable)
        return int(info.num_pending), int(info.num_ack_pending)
    finally:
        await nc.close()


@pytest.fixture
def bus(nats_url: str) -> Iterator[Bus]:
    token = uuid.uuid4().hex[:10]
    made = Bus(nats_url, f"TEST_{token}", f"test.{token}")
    yield made
    asyncio.run(_delete_stream(nats_url, made.stream))


def outcomes(n: int, prefix: str = "o") -> list[OutcomeEvent]:
    return [
        OutcomeEvent(
            event_id=f"{prefix}{i}",
            unit_id=f"u{i}",
            name="buy",
            value=i / 7,
            timestamp=T0 + timedelta(seconds=i),
        )
        for i in range(n)
    ]


def test_wire_format_round_trips_every_table() -> None:
    batches = {
        "exposures": to_record_batch(
            "exposures",
            [
                ExposureEvent(
                    experiment="x", variant="a", unit_id="u", attributes={"k": "ü", "n": 1.5}
                )
            ],
        ),
        "predictions": to_record_batch(
            "predictions",
            [
                PredictionEvent(
                    request_id="r",
                    deployment="d",
                    model="m",
                    model_version="1",
                    latency_ms=3,
                    output={"p": [0.2]},
                    features={"q": 'a"b\n'},
                )
            ],
        ),
        "outcomes": to_record_batch("outcomes", outcomes(3)),
    }
    for table, batch in batches.items():
        wire = encode_rows(table, batch)  # type: ignore[arg-type]
        assert [event_id for event_id, _ in wire] == batch.column("event_id").to_pylist()
        back, bad = decode_rows(table, [payload for _, payload in wire])  # type: ignore[arg-type]
        assert bad == []
        assert back.equals(pa.Table.from_batches([batch]))


def test_decode_isolates_bad_payloads() -> None:
    good = [
        payload for _, payload in encode_rows("outcomes", to_record_batch("outcomes", outcomes(3)))
    ]
    row = json.loads(good[1])
    wrong_type = json.dumps({**row, "value": "lots"}).encode()
    bad_time = json.dumps({**row, "timestamp": "last tuesday"}).encode()
    payloads = [good[0], b"{not json", wrong_type, good[2], bad_time, b'{"event_id": "x"}']
    table, bad = decode_rows("outcomes", payloads)
    assert bad == [1, 2, 4, 5]
    assert table.column("event_id").to_pylist() == ["o0", "o2"]
    assert table.schema.equals(SCHEMAS["outcomes"])


def test_publish_then_load_stores_each_event_once(bus: Bus, tmp_path: Path) -> None:
    with NatsStore(bus.url, stream=bus.stream, prefix=bus.prefix) as publisher:
        events = outcomes(500) + [
            ExposureEvent(event_id=f"e{i}", experiment="x", variant="a", unit_id=f"u{i}")
            for i in range(200)
        ]
        assert publisher.write_events(events) == 700
        # A republish inside JetStream's duplicate window is flagged by the server itself.
        assert publisher.write_events(events[:50]) == 0
        with pytest.raises(TelemetryError, match="write-only"):
            publisher.count("outcomes")
    store = DuckDBStore(tmp_path / "bus.duckdb")
    loader = NatsLoader(
        bus.url, store, stream=bus.stream, prefix=bus.prefix, durable="d1", batch_size=128
    )
    stats = asyncio.run(loader.run(idle_exit=1.0))
    assert (stats.fetched, stats.stored, stats.rejected) == (700, 700, 0)
    assert store.count("outcomes") == 500 and store.count("exposures") == 200
    assert asyncio.run(_consumer_state(bus.url, bus.stream, "d1")) == (0, 0)
    # A second loader run with the same durable name finds nothing new.
    again = asyncio.run(
        NatsLoader(bus.url, store, stream=bus.stream, prefix=bus.prefix, durable="d1").run(
            idle_exit=0.5
        )
    )
    assert again.fetched == 0
    store.close()


def test_undecodable_messages_are_terminated_not_retried(bus: Bus) -> None:
    async def publish_junk() -> None:
        import nats

        nc = await nats.connect(bus.url)
        js = nc.jetstream()
        await js.add_stream(name=bus.stream, subjects=[f"{bus.prefix}.>"])
        await js.publish(f"{bus.prefix}.outcomes", b"{broken")
        await js.publish(f"{bus.prefix}.clicks", b"{}")
        good = encode_rows("outcomes", to_record_batch("outcomes", outcomes(1)))[0][1]
        await js.publish(f"{bus.prefix}.outcomes", good)
        await nc.close()

    asyncio.run(publish_junk())
    store = DuckDBStore(":memory:")
    stats = asyncio.run(
        NatsLoader(bus.url, store, stream=bus.stream, prefix=bus.prefix, durable="d2").run(
            idle_exit=1.0
        )
    )
    assert (stats.fetched, stats.stored, stats.rejected) == (3, 1, 2)
    assert asyncio.run(_consumer_state(bus.url, bus.stream, "d2")) == (0, 0)
    store.close()


def test_unreachable_bus_is_a_clear_error() -> None:
    with pytest.raises(
        TelemetryError,
        match=r"cannot connect to 'nats://127.0.0.1:1'.*Fix: check that nats-server runs",
    ):
        NatsStore("nats://127.0.0.1:1")


def _loader(bus: Bus, target: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    # `proving telemetry load` through its own Typer group (the full CLI imports every stage).
    code = "from proving.cli.telemetry import telemetry_app; telemetry_app()"
    args = [
        sys.executable,
        "-c",
        code,
        "load",
        "--from",
        bus.url,
        "--to",
        target,
        "--stream",
        bus.stream,
        "--prefix",
        bus.prefix,
        "--durable",
        "kill",
        "--batch-size",
        "20",
        "--ack-wait",
        "2",
        *extra,
    ]
    return subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_loader_killed_midway_loses_nothing_and_doubles_nothing(
    bus: Bus, postgres_dsn: str, postgres_schema: str, tmp_path: Path
) -> None:
    n = 3000
    with NatsStore(bus.url, stream=bus.stream, prefix=bus.prefix) as publisher:
        assert publisher.write_events(outcomes(n)) == n
    target = f"{postgres_dsn}?schema={postgres_schema}"
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    log = tmp_path / "loader.log"
    child = _loader(bus, target, log)
    deadline = time.monotonic() + 90
    while store.count("outcomes") < 500:
        assert child.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the loader stored too little in 90 s"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    at_kill = store.count("outcomes")
    assert 500 <= at_kill < n, f"the loader was not killed mid-way ({at_kill} of {n})"
    # Restart: unacknowledged messages are redelivered after ack_wait; the primary key
    # keeps the ones already committed from being stored twice.
    child = _loader(bus, target, log, "--idle-exit", "2", "--json")
    assert child.wait(120) == 0, log.read_text()
    ids = store.read_table("outcomes").column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) == n
    assert asyncio.run(_consumer_state(bus.url, bus.stream, "kill")) == (0, 0)
    store.close()


def test_the_ingestion_api_can_publish_to_the_bus(bus: Bus) -> None:
    import httpx
    from prometheus_client import CollectorRegistry

    from proving.telemetry.ingest import create_ingest_app
    from proving.telemetry.store import open_store
    from proving.telemetry.writer import BatchWriter

    publisher = open_store(f"{bus.url}?stream={bus.stream}")
    assert isinstance(publisher, NatsStore) and publisher.stream == bus.stream
    publisher.close()
    publisher = NatsStore(bus.url, stream=bus.stream, prefix=bus.prefix)
    writer = BatchWriter(publisher, flush_interval=0.01, registry=CollectorRegistry())
    app = create_ingest_app(writer)
    body = [
        {"type": "outcome", "event_id": f"h{i}", "unit_id": f"u{i}", "name": "buy"}
        for i in range(30)
    ]

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/v1/outcomes", json=body)

    assert asyncio.run(post()).status_code == 200  # acknowledged = on the bus
    writer.close()
    publisher.close()
    store = DuckDBStore(":memory:")
    asyncio.run(
        NatsLoader(bus.url, store, stream=bus.stream, prefix=bus.prefix, durable="api").run(
            idle_exit=1.0
        )
    )
    assert store.count("outcomes") == 30
    store.close()
