"""The batching writer: flush by size and time, bounded memory, counted drops, group commit."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import ClassVar

import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry

from proving.errors import TelemetryError
from proving.telemetry import writer as writer_module
from proving.telemetry.duckdb_store import DuckDBStore
from proving.telemetry.events import ExposureRow, OutcomeEvent, TableName
from proving.telemetry.store import EventStore
from proving.telemetry.writer import BatchWriter, WriterOverloadedError


class GatedStore(EventStore):
    """A real DuckDB store behind a gate (to hold writes) and a failure budget."""

    opened: ClassVar[list[GatedStore]] = []

    def __init__(self, failures: int = 0) -> None:
        self.inner = DuckDBStore(":memory:")
        GatedStore.opened.append(self)
        self.url = "gated+" + self.inner.url
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set when a write has started (and may wait)
        self.failures = failures
        self.calls: list[int] = []

    def write(self, table: TableName, batch: pa.RecordBatch | pa.Table) -> int:
        self.entered.set()
        self.gate.wait()
        self.calls.append(batch.num_rows)
        if self.failures > 0:
            self.failures -= 1
            raise TelemetryError("injected store failure")
        return self.inner.write(table, batch)

    def count(self, table: TableName) -> int:
        return self.inner.count(table)

    def read_table(self, table: TableName) -> pa.Table:
        return self.inner.read_table(table)

    def first_exposures(self, unit_ids: Sequence[str]) -> dict[str, datetime]:
        return self.inner.first_exposures(unit_ids)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(autouse=True)
def close_stores() -> Iterator[None]:
    """Close every store a test opened (DuckDB complains about leaks at exit otherwise)."""
    yield
    while GatedStore.opened:
        store = GatedStore.opened.pop()
        store.gate.set()
        store.close()


def events(n: int, prefix: str = "o") -> list[OutcomeEvent]:
    return [OutcomeEvent(event_id=f"{prefix}{i}", unit_id=f"u{i}", name="n") for i in range(n)]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_flush_by_size() -> None:
    store = GatedStore()
    writer = BatchWriter(store, max_batch=100, flush_interval=60, registry=CollectorRegistry())
    for event in events(250):
        assert writer.emit(event)
    assert wait_until(lambda: store.count("outcomes") == 200)
    time.sleep(0.2)  # the remaining 50 wait for size or time; neither comes
    assert store.count("outcomes") == 200
    assert store.calls == [100, 100]
    writer.flush(timeout=5)
    assert store.count("outcomes") == 250
    writer.close()


def test_flush_by_time() -> None:
    store = GatedStore()
    writer = BatchWriter(store, max_batch=10_000, flush_interval=0.3, registry=CollectorRegistry())
    started = time.monotonic()
    for event in events(5):
        writer.emit(event)
    assert store.count("outcomes") == 0
    assert wait_until(lambda: store.count("outcomes") == 5)
    elapsed = time.monotonic() - started
    assert 0.2 < elapsed < 3.0
    writer.close()


def test_full_queue_drops_are_counted_and_emit_never_blocks() -> None:
    registry = CollectorRegistry()
    store = GatedStore()
    store.gate.clear()  # the store hangs: the queue must fill up, not the caller
    writer = BatchWriter(store, max_batch=10, max_queue=100, flush_interval=0.01, registry=registry)
    started = time.monotonic()
    kept = [writer.emit(event) for event in events(1000)]
    assert time.monotonic() - started < 1.0
    assert sum(kept) == 100
    assert writer.stats.dropped == {"queue_full": 900}
    assert metric(registry, "proving_telemetry_dropped_total", reason="queue_full") == 900
    assert metric(registry, "proving_telemetry_queued_total", table="outcomes") == 100
    store.gate.set()
    writer.close(timeout=10)
    assert store.count("outcomes") == 100
    assert metric(registry, "proving_telemetry_written_total", table="outcomes") == 100


def test_close_drains_and_later_emits_are_counted_drops() -> None:
    registry = CollectorRegistry()
    store = GatedStore()
    writer = BatchWriter(store, max_batch=1000, flush_interval=60, registry=registry)
    for event in events(5000):
        writer.emit(event)
    writer.close(timeout=120)  # returns as soon as drained; generous for loaded machines
    assert store.count("outcomes") == 5000
    assert writer.emit(events(1, prefix="late")[0]) is False
    assert metric(registry, "proving_telemetry_dropped_total", reason="closed") == 1
    with pytest.raises(TelemetryError, match="closed"):
        writer.submit(events(1))


def test_submit_resolves_only_after_commit_and_groups_commits() -> None:
    store = GatedStore()
    store.gate.clear()
    writer = BatchWriter(store, max_batch=10_000, flush_interval=60, registry=CollectorRegistry())
    first = writer.submit(events(3, prefix="first"))
    assert store.entered.wait(timeout=60)  # the flusher has taken `first`, waits at the gate
    futures = [writer.submit(events(3, prefix=f"s{k}-")) for k in range(20)]
    time.sleep(0.1)
    assert not first.done() and not any(f.done() for f in futures)
    store.gate.set()
    assert first.result(timeout=5) == 3
    assert [f.result(timeout=5) for f in futures] == [3] * 20
    assert store.count("outcomes") == 63
    # Group commit: 20 submissions that arrived during one write go in one store call.
    assert store.calls == [3, 60]
    writer.close()


def test_submit_is_refused_when_there_is_no_room() -> None:
    registry = CollectorRegistry()
    store = GatedStore()
    writer = BatchWriter(store, max_queue=10, flush_interval=60, registry=registry)
    with pytest.raises(WriterOverloadedError, match=r"queue is full \(0 of 10 events\); 11 events"):
        writer.submit(events(11))
    assert metric(registry, "proving_telemetry_dropped_total", reason="overloaded") == 11
    assert writer.submit(events(10)).result(timeout=5) == 10
    writer.close()


def test_store_failures_are_retried() -> None:
    store = GatedStore(failures=2)
    writer = BatchWriter(store, retries=3, retry_backoff=0.01, registry=CollectorRegistry())
    assert writer.submit(events(4)).result(timeout=5) == 4
    assert store.count("outcomes") == 4 and len(store.calls) == 3
    writer.close()


def test_a_store_that_keeps_failing_fails_futures_and_counts_drops() -> None:
    registry = CollectorRegistry()
    store = GatedStore(failures=100)
    writer = BatchWriter(
        store, retries=1, retry_backoff=0.01, flush_interval=0.05, registry=registry
    )
    future = writer.submit(events(2, prefix="sub"))
    writer.emit(events(1, prefix="emit")[0])
    with pytest.raises(TelemetryError, match=r"failed 2 times .*injected store failure"):
        future.result(timeout=5)
    writer.flush(timeout=5)
    assert metric(registry, "proving_telemetry_dropped_total", reason="store_error") == 1
    assert store.count("outcomes") == 0
    writer.close()


def test_duplicates_are_queued_but_written_once() -> None:
    registry = CollectorRegistry()
    store = GatedStore()
    writer = BatchWriter(store, flush_interval=0.05, registry=registry)
    same = events(1)[0]
    writer.emit(same)
    writer.emit(same)
    writer.flush(timeout=5)
    writer.emit(same)
    writer.close()
    assert store.count("outcomes") == 1
    assert metric(registry, "proving_telemetry_queued_total", table="outcomes") == 3
    assert metric(registry, "proving_telemetry_written_total", table="outcomes") == 1
    assert writer.stats.written == 1 and writer.stats.committed == 3


def test_flush_timeout_is_an_error() -> None:
    store = GatedStore()
    store.gate.clear()
    writer = BatchWriter(store, registry=CollectorRegistry())
    writer.emit(events(1)[0])
    with pytest.raises(TelemetryError, match=r"1 events still pending after 0.2 s"):
        writer.flush(timeout=0.2)
    store.gate.set()
    writer.close(timeout=5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch": 0}, "max_batch must be >= 1; got 0"),
        ({"max_queue": -5}, "max_queue must be >= 1; got -5"),
        ({"flush_interval": 0}, "flush_interval must be > 0 seconds; got 0"),
        ({"nice": -1}, r"nice must be between 0 \(as the caller\) and 19 .*got -1"),
        ({"nice": 20}, "nice must be between 0 .*got 20"),
    ],
)
def test_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(TelemetryError, match=message):
        BatchWriter(GatedStore(), **kwargs)  # type: ignore[arg-type]


def test_concurrent_producers_lose_nothing() -> None:
    store = GatedStore()
    writer = BatchWriter(store, max_batch=500, flush_interval=0.02, registry=CollectorRegistry())

    def produce(k: int) -> None:
        for event in events(2000, prefix=f"t{k}-"):
            assert writer.emit(event)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close(timeout=10)
    assert store.count("outcomes") == 8000
    assert writer.stats.pending == 0 and writer.stats.dropped == {}


def test_a_cancelled_submission_does_not_stop_the_writer() -> None:
    store = GatedStore()
    store.gate.clear()
    writer = BatchWriter(store, flush_interval=0.01, registry=CollectorRegistry())
    abandoned = writer.submit(events(2, prefix="gone"))
    time.sleep(0.05)
    waiting = writer.submit(events(2, prefix="next"))
    assert waiting.cancel()  # a caller that timed out
    store.gate.set()
    assert abandoned.result(timeout=5) == 2
    assert writer.submit(events(1, prefix="later")).result(timeout=5) == 1
    writer.close(timeout=5)
    # The cancelled caller's events were still written: a retry would be idempotent.
    assert store.count("outcomes") == 5


def test_time_flush_keeps_working_after_an_idle_interval() -> None:
    store = GatedStore()
    writer = BatchWriter(store, max_batch=10_000, flush_interval=0.1, registry=CollectorRegistry())
    time.sleep(0.35)  # several idle intervals pass
    writer.emit(events(1)[0])
    assert wait_until(lambda: store.count("outcomes") == 1, timeout=3)
    writer.close()


def test_the_emitting_thread_converts_every_convert_every_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    converted_in: list[tuple[str, int]] = []
    original = writer_module.to_record_batch

    def recording(table: TableName, rows: Sequence[object], *args: object) -> pa.RecordBatch:
        converted_in.append((threading.current_thread().name, len(rows)))
        return original(table, rows, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "to_record_batch", recording)
    store = GatedStore()
    writer = BatchWriter(store, flush_interval=60, convert_every=4, registry=CollectorRegistry())
    for event in events(10):
        assert writer.emit(event)
    # Two chunks of 4 converted by the caller; the last 2 wait, staged, for a flush.
    assert converted_in == [("MainThread", 4), ("MainThread", 4)]
    writer.flush(timeout=5)
    assert converted_in[2] == ("proving-telemetry-writer", 2)
    assert store.count("outcomes") == 10
    writer.close()


def test_converted_events_are_let_go_before_their_batch_is_written() -> None:
    # Held until the write, a busy gateway's converted events made every garbage
    # collection walk thousands of objects (gen-1 passes of 2 ms).
    store = GatedStore()
    store.gate.clear()  # the store holds the first write
    writer = BatchWriter(store, flush_interval=0.01, convert_every=4, registry=CollectorRegistry())
    first, second = events(4, "a"), events(8, "b")
    for event in first:
        assert writer.emit(event)
    assert store.entered.wait(5)  # the first chunk's batch is being written, and waits
    refs = [weakref.ref(e) for e in second]
    for event in second:
        assert writer.emit(event)
    del event, second
    gc.collect()
    assert [r() for r in refs] == [None] * 8  # converted, queued behind the held write
    store.gate.set()
    writer.close(timeout=5)
    assert store.count("outcomes") == 12 and writer.stats.committed == 12


def test_chunks_respect_max_batch_per_store_call() -> None:
    store = GatedStore()
    writer = BatchWriter(
        store, max_batch=10, convert_every=4, flush_interval=0.01, registry=CollectorRegistry()
    )
    for event in events(57):
        assert writer.emit(event)
    writer.close(timeout=10)
    assert store.count("outcomes") == 57
    assert max(store.calls) <= 10 and sum(store.calls) == 57


def test_a_chunk_that_cannot_convert_is_dropped_as_invalid_and_the_rest_is_stored() -> None:
    registry = CollectorRegistry()
    store = GatedStore()
    writer = BatchWriter(store, flush_interval=60, convert_every=3, registry=registry)
    good = [ExposureRow(f"e{i}", "x", "a", f"u{i}", 0, "{}") for i in range(3)]
    # A row is trusted to be valid; one that is not (a text timestamp) fails its chunk.
    bad = [ExposureRow(f"b{i}", "x", "a", f"v{i}", "not a time", "{}") for i in range(3)]  # type: ignore[arg-type]
    for row in good + bad + good[:1]:
        assert writer.emit(row)
    writer.close(timeout=5)
    assert store.count("exposures") == 3  # the good chunk; the repeat of e0 is a duplicate
    assert writer.stats.dropped == {"invalid": 3}
    assert metric(registry, "proving_telemetry_dropped_total", reason="invalid") == 3
    assert writer.stats.pending == 0 and writer.stats.committed == 4


def test_close_waits_for_a_chunk_still_converting(monkeypatch: pytest.MonkeyPatch) -> None:
    original = writer_module.to_record_batch
    converting = threading.Event()

    def slow(table: TableName, rows: Sequence[object], *args: object) -> pa.RecordBatch:
        if threading.current_thread().name == "producer":
            converting.set()
            time.sleep(0.3)
        return original(table, rows, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "to_record_batch", slow)
    store = GatedStore()
    writer = BatchWriter(store, flush_interval=60, convert_every=5, registry=CollectorRegistry())
    producer = threading.Thread(target=lambda: [writer.emit(e) for e in events(5)], name="producer")
    producer.start()
    assert converting.wait(5)
    writer.close(timeout=5)  # the 5 events are in nobody's queue while they convert
    producer.join()
    assert store.count("outcomes") == 5 and writer.stats.pending == 0


def test_convert_every_zero_leaves_conversion_to_the_writer_thread() -> None:
    store = GatedStore()
    writer = BatchWriter(store, flush_interval=0.02, convert_every=0, registry=CollectorRegistry())
    for event in events(300):
        assert writer.emit(event)
    writer.close(timeout=5)
    assert store.count("outcomes") == 300
    with pytest.raises(TelemetryError, match="convert_every must be >= 0"):
        BatchWriter(store, convert_every=-1)


def _niceness(thread: threading.Thread) -> int:
    assert thread.native_id is not None
    return os.getpriority(os.PRIO_PROCESS, thread.native_id)


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
def test_nice_lowers_the_two_writer_threads_and_nothing_else() -> None:
    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    if caller > 14:
        pytest.skip(f"this process already runs at nice {caller}")
    store = GatedStore()
    writer = BatchWriter(store, flush_interval=0.02, nice=5, registry=CollectorRegistry())
    plain = BatchWriter(store, flush_interval=0.02, registry=CollectorRegistry())
    for event in events(50):
        assert writer.emit(event)
    writer.flush(5)  # both threads have passed their start (a commit happened)
    plain.flush(5)
    assert _niceness(writer._thread) == _niceness(writer._committer) == caller + 5
    assert _niceness(plain._thread) == _niceness(plain._committer) == caller
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller
    assert store.count("outcomes") == 50
    writer.close(timeout=5)
    plain.close(timeout=5)
