"""NATS JetStream: the event bus between many gateway replicas and one event store.

Wire format: one message per event, on subject ``<prefix>.<table>`` (default prefix
``proving.events``), whose payload is the event's stored row as a JSON object: the columns
of :mod:`proving.telemetry.events`, timestamps in ISO 8601 with offset. The header
``Nats-Msg-Id`` carries the ``event_id``, so JetStream itself drops a duplicate published
within the stream's duplicate window; the store drops any later one.

:class:`NatsStore` is the publishing side, shaped as an :class:`EventStore` so that the
:class:`~proving.telemetry.writer.BatchWriter` and the ingestion API can write to the bus
(``open_store("nats://host:4222?stream=PROVING")``): ``write`` returns once JetStream has
acknowledged (stored) every message. It cannot read back.

:class:`NatsLoader` is the consuming side: a durable pull consumer that fetches a batch,
writes it to a store in one call, and acknowledges the messages only after that call
returned (committed). A loader killed between commit and acknowledgement gets the batch
redelivered after ``ack_wait``; the store's primary key stores it once. Nothing
acknowledged is lost, nothing is counted twice.

Example:
    >>> loader = NatsLoader("nats://127.0.0.1:4222", store)  # doctest: +SKIP
    >>> asyncio.run(loader.run(idle_exit=5.0))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import pyarrow as pa

from proving.errors import EventValidationError, TelemetryError, require
from proving.telemetry.events import SCHEMAS, TABLES, TableName, check_table, conform
from proving.telemetry.store import EventStore

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_STREAM = "PROVING"
DEFAULT_PREFIX = "proving.events"
DEFAULT_DURABLE = "proving-loader"


async def _log_error(exc: Exception) -> None:
    # nats-py's default error callback prints a traceback per failed attempt; one line
    # in the log says the same.
    logger.warning("NATS: %s", exc)


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode_rows(table: TableName, batch: pa.RecordBatch | pa.Table) -> list[tuple[str, bytes]]:
    """``(event_id, JSON payload)`` for each row of a batch, in the bus wire format."""
    rows = conform(check_table(table), batch).to_pylist()
    return [
        (row["event_id"], json.dumps(row, default=_iso, separators=(",", ":")).encode())
        for row in rows
    ]


def decode_rows(table: TableName, payloads: Sequence[bytes]) -> tuple[pa.Table, list[int]]:
    """Decode wire payloads into an Arrow table; also return the indexes that were bad.

    A payload that is not valid JSON, or whose row does not fit the schema, is left out
    and its index returned (the loader terminates those messages instead of retrying).
    """
    schema = SCHEMAS[table]
    # Timestamps travel as strings; Arrow casts ISO 8601 with an offset to UTC.
    wire = pa.schema(
        [pa.field(f.name, pa.string()) if pa.types.is_timestamp(f.type) else f for f in schema]
    )
    rows: list[dict[str, Any]] = []
    kept: list[int] = []
    bad: list[int] = []
    for index, payload in enumerate(payloads):
        try:
            row = json.loads(payload)
            if not isinstance(row, dict) or set(row) != set(schema.names):
                raise ValueError("columns do not match")
        except ValueError:
            bad.append(index)
            continue
        rows.append(row)
        kept.append(index)
    try:
        return conform(table, pa.Table.from_pylist(rows, schema=wire)), bad
    except (EventValidationError, pa.ArrowException):
        # One bad row spoils a vectorized cast: find it row by row.
        good: list[pa.Table] = []
        for index, row in zip(kept, rows, strict=True):
            try:
                good.append(conform(table, pa.Table.from_pylist([row], schema=wire)))
            except (EventValidationError, pa.ArrowException):
                bad.append(index)
        merged = pa.concat_tables(good) if good else schema.empty_table()
        return merged, sorted(bad)


async def ensure_stream(js: Any, stream: str, prefix: str) -> None:
    """Make sure JetStream stream ``stream`` exists and captures ``<prefix>.>``."""
    nats_js_errors: Any = require("nats.js.errors", "nats")
    subject = f"{prefix}.>"
    try:
        info = await js.stream_info(stream)
    except nats_js_errors.NotFoundError:
        await js.add_stream(name=stream, subjects=[subject])
        return
    # An existing stream for other subjects: add ours rather than publish into nothing.
    if subject not in (info.config.subjects or []):
        info.config.subjects = [*(info.config.subjects or []), subject]
        await js.update_stream(info.config)


class NatsStore(EventStore):
    """Publish batches to JetStream; ``write`` returns after every message is acknowledged.

    The connection lives on a private event loop in a background thread, so the store can
    be called from any thread (the writer's flusher, a CLI).

    Args:
        url: ``nats://host:port``.
        stream: the JetStream stream; created for ``<prefix>.>`` if absent.
        prefix: subject prefix; a table's events go to ``<prefix>.<table>``.
        timeout: seconds to wait for the server's acknowledgements of one batch.
    """

    def __init__(
        self,
        url: str,
        stream: str = DEFAULT_STREAM,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 30.0,
    ) -> None:
        self._nats: Any = require("nats", "nats")
        self.url = f"{url}?stream={stream}"
        self.stream = stream
        self.prefix = prefix
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="proving-nats", daemon=True
        )
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        try:
            self._call(self._connect(url))
        except Exception:
            self._stop_loop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _connect(self, url: str) -> None:
        try:
            # Reconnect through short outages of the server; give up on a dead URL fast.
            self._nc = await self._nats.connect(
                url,
                connect_timeout=5,
                max_reconnect_attempts=5,
                reconnect_time_wait=0.5,
                error_cb=_log_error,
            )
        except Exception as exc:
            raise TelemetryError(
                f"NATS bus: cannot connect to {url!r}: {exc}. Fix: check that nats-server "
                "runs with JetStream enabled (nats-server -js) and the URL."
            ) from exc
        self._js = self._nc.jetstream()
        await ensure_stream(self._js, self.stream, self.prefix)

    async def _publish(self, table: TableName, batch: pa.RecordBatch | pa.Table) -> int:
        subject = f"{self.prefix}.{table}"
        acks = []
        for event_id, payload in encode_rows(table, batch):
            acks.append(
                await self._js.publish_async(
                    subject, payload, headers={"Nats-Msg-Id": event_id}, wait_stall=self.timeout
                )
            )
        results = await asyncio.wait_for(asyncio.gather(*acks), timeout=self.timeout)
        return sum(1 for ack in results if not getattr(ack, "duplicate", False))

    def write(self, table: TableName, batch: pa.RecordBatch | pa.Table) -> int:
        """Publish a batch; return how many JetStream did not flag as a duplicate."""
        try:
            return self._call(self._publish(table, batch))
        except TelemetryError:
            raise
        except Exception as exc:
            raise TelemetryError(
                f"NATS bus {self.url!r}: publishing to {self.prefix}.{table} failed: {exc!r}. "
                "Some events may be on the bus; retrying is safe (duplicates are dropped)."
            ) from exc

    def _no_reads(self) -> TelemetryError:
        return TelemetryError(
            f"NATS bus {self.url!r} is write-only. Fix: read the store the loader fills "
            "(proving telemetry load --from nats://... --to URL)."
        )

    def count(self, table: TableName) -> int:
        """Not available on a bus."""
        raise self._no_reads()

    def read_table(self, table: TableName) -> pa.Table:
        """Not available on a bus."""
        raise self._no_reads()

    def first_exposures(self, unit_ids: Sequence[str]) -> dict[str, datetime]:
        """Unknown on a bus: no exposure is visible, so no clock-skew flag is raised."""
        return {}

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def close(self) -> None:
        """Flush and close the connection, stop the background loop."""
        if self._loop.is_closed():
            return
        if self._nc is not None:
            self._call(self._nc.drain())
        self._stop_loop()


@dataclass
class LoaderStats:
    """What a loader run did."""

    fetched: int = 0
    stored: int = 0
    rejected: int = 0
    batches: int = 0


class NatsLoader:
    """Consume the bus into a store, acknowledging each batch only after it committed.

    Args:
        url: ``nats://host:port``.
        store: where events go.
        stream: the JetStream stream (created if absent).
        prefix: subject prefix of the events.
        durable: durable consumer name; a restarted loader with the same name resumes.
        batch_size: messages fetched and committed together.
        ack_wait: seconds JetStream waits for an acknowledgement before redelivering.
        retry_delay: seconds before a batch the store failed to commit is redelivered.
    """

    def __init__(
        self,
        url: str,
        store: EventStore,
        *,
        stream: str = DEFAULT_STREAM,
        prefix: str = DEFAULT_PREFIX,
        durable: str = DEFAULT_DURABLE,
        batch_size: int = 1000,
        ack_wait: float = 30.0,
        retry_delay: float = 1.0,
    ) -> None:
        self.url = url
        self.retry_delay = retry_delay
        self.store = store
        self.stream = stream
        self.prefix = prefix
        self.durable = durable
        self.batch_size = batch_size
        self.ack_wait = ack_wait
        self.stats = LoaderStats()

    async def run(
        self, *, idle_exit: float | None = None, stop: asyncio.Event | None = None
    ) -> LoaderStats:
        """Load until ``stop`` is set, or until no message came for ``idle_exit`` seconds."""
        nats: Any = require("nats", "nats")
        api: Any = require("nats.js.api", "nats")
        try:
            nc = await nats.connect(
                self.url,
                connect_timeout=5,
                max_reconnect_attempts=10,
                reconnect_time_wait=1.0,
                error_cb=_log_error,
            )
        except Exception as exc:
            raise TelemetryError(
                f"NATS loader: cannot connect to {self.url!r}: {exc}. Fix: check that "
                "nats-server runs with JetStream enabled and the URL."
            ) from exc
        try:
            js = nc.jetstream()
            await ensure_stream(js, self.stream, self.prefix)
            config = api.ConsumerConfig(ack_wait=self.ack_wait, max_ack_pending=-1)
            sub = await js.pull_subscribe(
                f"{self.prefix}.>", durable=self.durable, stream=self.stream, config=config
            )
            await self._loop(sub, idle_exit, stop)
        finally:
            await nc.close()
        return self.stats

    async def _loop(self, sub: Any, idle_exit: float | None, stop: asyncio.Event | None) -> None:
        nats_errors: Any = require("nats.errors", "nats")
        idle = 0.0
        poll = 1.0 if idle_exit is None else min(1.0, idle_exit)
        while stop is None or not stop.is_set():
            try:
                messages = await sub.fetch(self.batch_size, timeout=poll)
            except (TimeoutError, nats_errors.TimeoutError):
                idle += poll
                if idle_exit is not None and idle >= idle_exit:
                    return
                continue
            idle = 0.0
            await self._load(messages)

    async def _load(self, messages: Sequence[Any]) -> None:
        by_table: dict[TableName, list[Any]] = {}
        for msg in messages:
            table = msg.subject.rsplit(".", 1)[-1]
            if table not in TABLES:
                logger.warning("NATS loader: message on unknown subject %s terminated", msg.subject)
                self.stats.rejected += 1
                await msg.term()
                continue
            by_table.setdefault(table, []).append(msg)
        self.stats.fetched += len(messages)
        for table, group in by_table.items():
            data, bad = decode_rows(table, [msg.data for msg in group])
            # Commit first (in a thread: stores are blocking), acknowledge after.
            try:
                self.stats.stored += await asyncio.to_thread(self.store.write, table, data)
            except TelemetryError as exc:
                # Not committed: ask for redelivery later instead of acknowledging.
                logger.error("NATS loader: store write failed, batch not acknowledged: %s", exc)
                for msg in group:
                    await msg.nak(delay=self.retry_delay)
                await asyncio.sleep(self.retry_delay)
                continue
            bad_set = set(bad)
            for index, msg in enumerate(group):
                if index in bad_set:
                    logger.warning("NATS loader: undecodable %s message terminated", table)
                    await msg.term()
                else:
                    await msg.ack()
            self.stats.rejected += len(bad)
        self.stats.batches += 1


__all__ = ["LoaderStats", "NatsLoader", "NatsStore", "decode_rows", "encode_rows"]
