"""Ingestion rate: events per second through the BatchWriter into DuckDB and PostgreSQL.

What is timed (median of ``--repeats`` runs, each on a fresh store):

- ``build``: constructing validated pydantic events in Python (the caller's cost);
- ``emit``: ``BatchWriter.emit`` alone (the hot-path cost the gateway pays per event);
- ``writer -> <store>``: first ``emit`` to ``close()`` returning, i.e. every event
  converted to Arrow and committed (the end-to-end rate; goal >= 100,000 events/s into
  DuckDB);
- ``arrow -> <store>``: ``store.write`` of ready Arrow batches (the store's own ceiling).

Run:
    .venv/bin/python benchmarks/ingest_rate.py [--events 200000] [--repeats 3]

PostgreSQL is measured when 127.0.0.1:5432 answers (a scratch schema, dropped after);
``--postgres ''`` skips it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from prometheus_client import CollectorRegistry

from proving.telemetry.duckdb_store import DuckDBStore
from proving.telemetry.events import Event, ExposureEvent, OutcomeEvent, to_record_batch
from proving.telemetry.store import EventStore
from proving.telemetry.writer import BatchWriter

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def make_events(n: int, seed: str) -> list[Event]:
    """Two exposures to one outcome, with segment attributes, like a busy experiment."""
    events: list[Event] = []
    for i in range(n):
        ts = T0 + timedelta(milliseconds=i)
        if i % 3 == 2:
            events.append(
                OutcomeEvent(
                    event_id=f"{seed}-{i}",
                    unit_id=f"u{i // 3}",
                    name="buy",
                    value=i % 17,
                    timestamp=ts,
                )
            )
        else:
            events.append(
                ExposureEvent(
                    event_id=f"{seed}-{i}",
                    experiment="checkout",
                    variant="ab"[i % 2],
                    unit_id=f"u{i // 3}",
                    timestamp=ts,
                    attributes={"country": "de" if i % 5 else "fr", "platform": "ios"},
                )
            )
    return events


def through_writer(store: EventStore, events: list[Event]) -> tuple[float, float]:
    """(emit seconds, end-to-end seconds) for all events through one writer."""
    writer = BatchWriter(
        store, max_batch=50_000, max_queue=len(events) + 1, registry=CollectorRegistry()
    )
    started = time.perf_counter()
    for event in events:
        writer.emit(event)
    emitted = time.perf_counter()
    writer.close()
    done = time.perf_counter()
    assert writer.stats.dropped == {}, writer.stats.dropped
    return emitted - started, done - started


def arrow_batches(events: list[Event]) -> list[tuple[str, pa.RecordBatch]]:
    exposures = [e for e in events if e.type == "exposure"]
    outcomes = [e for e in events if e.type == "outcome"]
    out = []
    for start in range(0, len(exposures), 50_000):
        out.append(("exposures", to_record_batch("exposures", exposures[start : start + 50_000])))
    for start in range(0, len(outcomes), 50_000):
        out.append(("outcomes", to_record_batch("outcomes", outcomes[start : start + 50_000])))
    return out


def median_rate(n: int, seconds: list[float]) -> str:
    return (
        f"{n / statistics.median(seconds):>12,.0f} events/s   (median of {len(seconds)}: "
        + ", ".join(f"{s:.2f}s" for s in seconds)
        + ")"
    )


def bench_store(name: str, opener: Callable[[], EventStore], n: int, repeats: int) -> None:
    emit_s, total_s, arrow_s = [], [], []
    for r in range(repeats):
        events = make_events(n, f"{name}{r}")
        store = opener()
        try:
            emit, total = through_writer(store, events)
            assert store.count("exposures") + store.count("outcomes") == n
        finally:
            store.close()
        emit_s.append(emit)
        total_s.append(total)
        batches = arrow_batches(make_events(n, f"{name}{r}-arrow"))
        store = opener()
        try:
            started = time.perf_counter()
            for table, batch in batches:
                store.write(table, batch)  # type: ignore[arg-type]
            arrow_s.append(time.perf_counter() - started)
        finally:
            store.close()
    print(f"emit (-> {name} writer)      {median_rate(n, emit_s)}")
    print(f"writer -> {name:<18} {median_rate(n, total_s)}")
    print(f"arrow  -> {name:<18} {median_rate(n, arrow_s)}")


def postgres_opener(dsn: str) -> Callable[[], EventStore] | None:
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:  # absent server: skip this part of the benchmark
        print(f"PostgreSQL skipped: {exc}")
        return None
    from proving.telemetry.postgres_store import PostgresStore

    def open_fresh() -> EventStore:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        store = PostgresStore(dsn, schema=schema)
        original_close = store.close

        def close_and_drop() -> None:
            original_close()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'drop schema "{schema}" cascade')

        store.close = close_and_drop  # type: ignore[method-assign]
        return store

    return open_fresh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    n = args.events
    print(
        f"ingest_rate: {n:,} events per run (2 exposures : 1 outcome), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    # Warm up: the first Arrow timestamp conversion imports pandas (seconds); not a rate.
    to_record_batch("outcomes", make_events(3, "warm")[2:])
    build = []
    for r in range(args.repeats):
        started = time.perf_counter()
        make_events(n, f"build{r}")
        build.append(time.perf_counter() - started)
    print(f"build (pydantic events)      {median_rate(n, build)}")
    directory = tempfile.mkdtemp(prefix="proving-bench-")
    counter = iter(range(10**6))
    bench_store(
        "duckdb",
        lambda: DuckDBStore(os.path.join(directory, f"{next(counter)}.duckdb")),
        n,
        args.repeats,
    )
    if args.postgres:
        opener = postgres_opener(args.postgres)
        if opener is not None:
            bench_store("postgresql", opener, n, args.repeats)


if __name__ == "__main__":
    main()
