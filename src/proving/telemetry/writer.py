"""An in-process batching writer with bounded memory, group commit and counted drops.

Producers hand events to :class:`BatchWriter`; one background thread takes them off a
bounded queue in batches (by size: ``max_batch`` events; by time: every
``flush_interval`` seconds) and writes each batch to an :class:`EventStore`.

Durability promise, plainly:

``emit(event)``
    fire and forget, for hot paths (the gateway's request path). It never blocks and never
    raises. It returns ``True`` if the event was queued, ``False`` if it was dropped
    because the queue was full or the writer closed; every drop is counted in
    ``proving_telemetry_dropped_total{reason}``. A queued event is in memory only until its
    batch commits (normally within ``flush_interval`` plus the write time): a crash of the
    process before then loses it. A store failure is retried ``retries`` times, then the
    batch's emitted events are dropped and counted with reason ``store_error``.
``submit(events)``
    for callers that must not lose an event (the ingestion API). It returns a future that
    resolves, with the number of events submitted, only after the store committed them (for
    DuckDB and PostgreSQL: the transaction is durable; for NATS: JetStream acknowledged).
    It fails with :class:`WriterOverloadedError` at once, queuing nothing, when the queue
    has no room (back-pressure: answer 503 and let the client retry), and the future fails
    with :class:`~proving.errors.TelemetryError` if the store keeps failing. Submissions
    arriving together are written in one batch (group commit), so many small concurrent
    requests cost one transaction.
``flush()``
    blocks until everything queued before the call has been committed or dropped.
``close()``
    stops accepting events, drains the queue into the store, and stops the thread.

Example:
    >>> from proving.telemetry.duckdb_store import DuckDBStore
    >>> from proving.telemetry.events import ExposureEvent
    >>> store = DuckDBStore(":memory:")
    >>> writer = BatchWriter(store, flush_interval=0.05)
    >>> writer.emit(ExposureEvent(experiment="x", variant="a", unit_id="u1"))
    True
    >>> writer.submit([ExposureEvent(experiment="x", variant="b", unit_id="u2")]).result()
    1
    >>> writer.close(); store.count("exposures")
    2
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

import pyarrow as pa
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from proving.errors import TelemetryError
from proving.telemetry.events import (
    SCHEMAS,
    TABLE_OF_TYPE,
    Event,
    EventRow,
    TableName,
    to_record_batch,
    utc_now,
)
from proving.telemetry.store import EventStore

logger = logging.getLogger(__name__)


class WriterOverloadedError(TelemetryError):
    """The writer's queue has no room for a submission: retry later (HTTP 503)."""


class WriterMetrics:
    """The writer's Prometheus metrics in one registry (shared by writers using it)."""

    _by_registry: ClassVar[dict[int, WriterMetrics]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.queued = Counter(
            "proving_telemetry_queued_total",
            "Events accepted into the telemetry writer queue.",
            ["table"],
            registry=registry,
        )
        self.written = Counter(
            "proving_telemetry_written_total",
            "Events newly stored by the telemetry writer (duplicates excluded).",
            ["table"],
            registry=registry,
        )
        self.dropped = Counter(
            "proving_telemetry_dropped_total",
            "Events the telemetry writer dropped, by reason.",
            ["reason"],
            registry=registry,
        )
        self.depth = Gauge(
            "proving_telemetry_queue_depth",
            "Events waiting in the telemetry writer queue.",
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "proving_telemetry_commit_seconds",
            "Time to write one batch to the event store.",
            registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry) -> WriterMetrics:
        """The metrics of ``registry``, created on first use."""
        with cls._guard:
            metrics = cls._by_registry.get(id(registry))
            if metrics is None:
                metrics = cls._by_registry[id(registry)] = cls(registry)
            return metrics


@dataclass
class _Submission:
    events: Sequence[Event]
    future: Future[int]


@dataclass
class _Batch:
    """Items taken off the queue together, converted to Arrow for one commit."""

    items: list[Event | EventRow | _Submission]
    emitted: int
    size: int
    tables: dict[TableName, pa.Table] = field(default_factory=dict)
    error: TelemetryError | None = None


@dataclass
class WriterStats:
    """What one writer did since it started (the Prometheus counters sum all writers)."""

    queued: int = 0
    written: int = 0
    committed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    batches: int = 0


class BatchWriter:
    """Batching writer in front of an :class:`EventStore` (see the module docstring).

    Args:
        store: where batches go. The writer does not close it.
        max_batch: flush as soon as this many events are queued; also the most events
            written per store call and table.
        flush_interval: flush at least this often (seconds) while events are queued.
        max_queue: the most events held in memory; beyond it ``emit`` drops (counted)
            and ``submit`` raises :class:`WriterOverloadedError`.
        retries: store failures retried per batch before giving up on it.
        retry_backoff: seconds before the first retry; doubles on each retry.
        registry: Prometheus registry of the metrics (default: the global one).
    """

    def __init__(
        self,
        store: EventStore,
        *,
        max_batch: int = 10_000,
        flush_interval: float = 0.5,
        max_queue: int = 200_000,
        retries: int = 3,
        retry_backoff: float = 0.05,
        registry: CollectorRegistry | None = None,
    ) -> None:
        for name, value in (("max_batch", max_batch), ("max_queue", max_queue)):
            if value < 1:
                raise TelemetryError(f"BatchWriter: {name} must be >= 1; got {value}.")
        if not flush_interval > 0:
            raise TelemetryError(
                f"BatchWriter: flush_interval must be > 0 seconds; got {flush_interval}."
            )
        self.store = store
        self.max_batch = max_batch
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.metrics = WriterMetrics.for_registry(registry or REGISTRY)
        self.stats = WriterStats()
        self._queue: deque[Event | EventRow | _Submission] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._flush_requested = False
        self._enqueued_items = 0
        self._queued_events = 0
        self._submissions_waiting = 0
        self._done_items = 0
        self._slot: _Batch | None = None
        self._committing = False
        self._flusher_done = False
        self._queued_counters = {
            t: self.metrics.queued.labels(t) for t in set(TABLE_OF_TYPE.values())
        }
        self._thread = threading.Thread(
            target=self._run, name="proving-telemetry-writer", daemon=True
        )
        self._committer = threading.Thread(
            target=self._commit_loop, name="proving-telemetry-committer", daemon=True
        )
        self._thread.start()
        self._committer.start()

    # -- producers -------------------------------------------------------------------

    def _drop(self, reason: str, count: int = 1) -> None:
        self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + count
        self.metrics.dropped.labels(reason).inc(count)

    def emit(self, event: Event | EventRow) -> bool:
        """Queue one event (a model, or a row: :class:`~proving.telemetry.events.ExposureRow`)
        without blocking; ``False`` (and a counted drop) if no room."""
        with self._cond:
            if self._closed:
                self._drop("closed")
                return False
            if self.stats.pending >= self.max_queue:
                self._drop("queue_full")
                return False
            self._queue.append(event)
            self._queued_events += 1
            self.stats.pending += 1
            self.stats.queued += 1
            self._enqueued_items += 1
            if self._queued_events >= self.max_batch:
                self._cond.notify_all()
        self._queued_counters[TABLE_OF_TYPE[event.type]].inc()
        return True

    def submit(self, events: Sequence[Event]) -> Future[int]:
        """Queue events for a group commit; the future resolves once they are committed.

        Raises:
            WriterOverloadedError: the queue has no room (nothing was queued).
            TelemetryError: the writer is closed.
        """
        future: Future[int] = Future()
        if not events:
            future.set_result(0)
            return future
        with self._cond:
            if self._closed:
                raise TelemetryError("BatchWriter is closed; nothing was queued. Fix: restart.")
            if self.stats.pending + len(events) > self.max_queue:
                self._drop("overloaded", len(events))
                raise WriterOverloadedError(
                    f"telemetry writer queue is full ({self.stats.pending} of {self.max_queue} "
                    f"events); {len(events)} events were not queued. Fix: retry later."
                )
            self._queue.append(_Submission(events, future))
            self._submissions_waiting += 1
            self._queued_events += len(events)
            self.stats.pending += len(events)
            self.stats.queued += len(events)
            self._enqueued_items += 1
            # Wake the flusher; if a commit is running, this submission waits for it and
            # goes with every other one that arrives meanwhile (group commit).
            self._cond.notify_all()
        for event in events:
            self._queued_counters[TABLE_OF_TYPE[event.type]].inc()
        return future

    async def asubmit(self, events: Sequence[Event]) -> int:
        """``await`` form of :meth:`submit`, for asyncio callers (the ingestion API)."""
        return await asyncio.wrap_future(self.submit(events))

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything queued before this call is committed (or dropped).

        Raises:
            TelemetryError: not done within ``timeout`` seconds.
        """
        with self._cond:
            target = self._enqueued_items
            self._flush_requested = True
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._done_items >= target, timeout=timeout):
                raise TelemetryError(
                    f"BatchWriter.flush: {self.stats.pending} events still pending after "
                    f"{timeout} s. Fix: check the store, or pass a longer timeout."
                )

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting events, drain the queue into the store, stop the threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self._thread, self._committer):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise TelemetryError(
                    f"BatchWriter.close: the queue did not drain within {timeout} s "
                    f"({self.stats.pending} events pending). Fix: check the store."
                )

    # -- the background threads ----------------------------------------------------------
    #
    # Two stages: the flusher takes items off the queue and converts them to Arrow; the
    # committer writes converted batches to the store. DuckDB and psycopg release the GIL
    # while they work, so converting the next batch overlaps writing this one. Small
    # batches are not taken while a commit runs: submissions arriving meanwhile pile up
    # and go together in the next commit (group commit).

    def _take(self) -> list[Event | EventRow | _Submission]:
        """Pop up to ``max_batch`` events' worth of items (caller holds the lock)."""
        if not self._submissions_waiting and len(self._queue) <= self.max_batch:
            # Emitted events only, all of them: swap the queue, so that the lock (which
            # every emit takes) is held for a moment, not for a loop over the batch.
            taken, self._queue = self._queue, deque()
            self._queued_events -= len(taken)
            return list(taken)
        items: list[Event | EventRow | _Submission] = []
        size = 0
        while self._queue and size < self.max_batch:
            item = self._queue.popleft()
            items.append(item)
            if isinstance(item, _Submission):
                self._submissions_waiting -= 1
                size += len(item.events)
            else:
                size += 1
        self._queued_events -= size
        return items

    def _ready(self, timed_out: bool) -> bool:
        """Whether the flusher should take a batch now (caller holds the lock)."""
        if self._closed or self._queued_events >= self.max_batch:
            return True
        idle = not self._committing and self._slot is None
        wanted = self._flush_requested or self._submissions_waiting > 0 or timed_out
        return idle and wanted and self._queued_events > 0

    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.flush_interval
                while not self._ready(time.monotonic() >= deadline):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 and self._queued_events == 0:
                        # Idle: start a new interval (an emit does not wake us).
                        deadline = time.monotonic() + self.flush_interval
                        remaining = self.flush_interval
                    # Past the deadline with a commit running: its end wakes us.
                    self._cond.wait(remaining if remaining > 0 else None)
                items = self._take()
                if not self._queue:
                    self._flush_requested = False
                if not items and self._closed:
                    self._flusher_done = True
                    self._cond.notify_all()
                    return
            batch = self._convert(items)
            with self._cond:
                self._cond.wait_for(lambda: self._slot is None)
                self._slot = batch
                self._cond.notify_all()

    def _convert(self, items: list[Event | EventRow | _Submission]) -> _Batch:
        by_table: dict[TableName, list[Event | EventRow]] = {}
        emitted = 0
        for item in items:
            if isinstance(item, _Submission):
                for event in item.events:
                    by_table.setdefault(TABLE_OF_TYPE[event.type], []).append(event)
            else:
                emitted += 1
                by_table.setdefault(TABLE_OF_TYPE[item.type], []).append(item)
        received_at = utc_now()
        batch = _Batch(items=items, emitted=emitted, size=sum(map(len, by_table.values())))
        try:
            batch.tables = {t: _to_table(t, g, received_at) for t, g in by_table.items()}
        except Exception as exc:  # a conversion bug must fail the batch, not the thread
            batch.error = TelemetryError(f"converting a batch to Arrow failed: {exc!r}")
        return batch

    def _commit_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._slot is not None or self._flusher_done)
                if self._slot is None:
                    return
                batch, self._slot = self._slot, None
                self._committing = True
                self._cond.notify_all()
            error = batch.error or self._write_tables(batch.tables)
            self._finish(batch, error)
            with self._cond:
                self._committing = False
                self._done_items += len(batch.items)
                self.metrics.depth.set(self.stats.pending)
                self._cond.notify_all()

    def _finish(self, batch: _Batch, error: TelemetryError | None) -> None:
        with self._cond:
            self.stats.pending -= batch.size
            self.stats.batches += 1
            if error is None:
                self.stats.committed += batch.size
        if error is not None and batch.emitted:
            self._drop("store_error", batch.emitted)
        for item in batch.items:
            if isinstance(item, _Submission):
                # A caller that gave up (timeout) cancelled its future; the events were
                # still written (a retry is idempotent), there is just nobody to tell.
                with contextlib.suppress(InvalidStateError):
                    if error is None:
                        item.future.set_result(len(item.events))
                    else:
                        item.future.set_exception(error)

    def _write_tables(self, tables: dict[TableName, pa.Table]) -> TelemetryError | None:
        remaining = dict(tables)
        delay = self.retry_backoff
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            for table, data in list(remaining.items()):
                started = time.perf_counter()
                try:
                    stored = self.store.write(table, data)
                except Exception as exc:  # any store failure is retried, then reported
                    logger.warning(
                        "telemetry write to %s failed (attempt %d): %s", table, attempt + 1, exc
                    )
                    last = exc
                    continue
                self.metrics.commit_seconds.observe(time.perf_counter() - started)
                self.metrics.written.labels(table).inc(stored)
                with self._cond:
                    self.stats.written += stored
                del remaining[table]
            if not remaining:
                return None
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        return TelemetryError(
            f"telemetry store {self.store.url!r} failed {self.retries + 1} times for tables "
            f"{sorted(remaining)}: {last}. The events were not stored. Fix: check the store."
        )


# Rows converted between two offers of the GIL: about 0.1 ms of work.
_CHUNK = 128


def _to_table(
    table: TableName, events: Sequence[Event | EventRow], received_at: datetime
) -> pa.Table:
    """``to_record_batch`` in chunks, offering the GIL between them.

    Arrow's conversion of Python values holds the GIL. Done in one go, a thread waiting
    for the GIL (the gateway's event loop) waits for the interpreter's switch interval
    (5 ms) or the whole conversion: every flush stalled serving by 3-5 ms, the gateway's
    p99 at 1,000 requests per second. ``time.sleep(0)`` hands the GIL over at once.
    """
    chunks = []
    for start in range(0, len(events), _CHUNK):
        chunks.append(to_record_batch(table, events[start : start + _CHUNK], received_at))
        time.sleep(0)
    return pa.Table.from_batches(chunks, schema=SCHEMAS[table])


__all__ = ["BatchWriter", "WriterMetrics", "WriterOverloadedError", "WriterStats"]
