"""The event store interface and ``open_store(url)``.

Every backend implements :class:`EventStore`: ``write`` stores an Arrow batch of one table
and returns how many rows were newly stored (a duplicate ``event_id`` is stored once),
``count`` and ``read_table`` read back, ``first_exposures`` serves the clock-skew check of
the ingestion API, ``close`` releases the connection.

Store URLs:

=========================================  =============================================
``duckdb:///path/to/file.duckdb``          DuckDB file (the embedded default)
``path/to/file.duckdb``                    the same, as a bare path
``duckdb://:memory:``                      in-memory DuckDB (tests)
``postgresql://user@host:port/db``         PostgreSQL; ``?schema=name`` picks the schema
``parquet:///path/to/dir``                 Parquet files, hive-partitioned
``nats://host:port?stream=PROVING``        NATS JetStream bus (write-only; see nats_bus)
=========================================  =============================================

Example:
    >>> from proving.telemetry.store import open_store
    >>> store = open_store("duckdb://:memory:")
    >>> store.count("exposures")
    0
    >>> store.close()
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from proving.errors import TelemetryError
from proving.telemetry.events import Event, TableName, group_by_table, to_record_batch


class EventStore(abc.ABC):
    """Where events are kept. Implementations are safe to call from several threads."""

    url: str

    @abc.abstractmethod
    def write(self, table: TableName, batch: pa.RecordBatch | pa.Table) -> int:
        """Store a batch of one table atomically; return the number of rows newly stored.

        Rows whose ``event_id`` is already stored, or repeated within the batch, are
        skipped (first occurrence wins). When this returns, the rows are committed.
        """

    @abc.abstractmethod
    def count(self, table: TableName) -> int:
        """Number of rows stored in ``table``."""

    @abc.abstractmethod
    def read_table(self, table: TableName) -> pa.Table:
        """The whole table as Arrow, in the schema of :mod:`proving.telemetry.events`."""

    @abc.abstractmethod
    def first_exposures(self, unit_ids: Sequence[str]) -> dict[str, datetime]:
        """Earliest exposure timestamp of each unit that has one (for clock-skew checks)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; further calls fail."""

    def put_state(self, namespace: str, key: str, value: Mapping[str, Any]) -> None:
        """Save a small JSON document (specs, rollout state) under ``(namespace, key)``.

        Raises:
            TelemetryError: this backend keeps no state (Parquet, NATS).
        """
        raise TelemetryError(
            f"{type(self).__name__} keeps no key-value state. "
            "Fix: keep specs and rollout state in a DuckDB or PostgreSQL store."
        )

    def get_state(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The document saved under ``(namespace, key)``, or None."""
        raise TelemetryError(
            f"{type(self).__name__} keeps no key-value state. "
            "Fix: keep specs and rollout state in a DuckDB or PostgreSQL store."
        )

    def write_events(self, events: Iterable[Event]) -> int:
        """Convenience: group validated events by table and write each group."""
        stored = 0
        for table, group in group_by_table(events).items():
            stored += self.write(table, to_record_batch(table, group))
        return stored

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def dedupe(data: pa.RecordBatch | pa.Table) -> pa.Table:
    """Keep the first row of each ``event_id`` (vectorized; order of first occurrences kept)."""
    tbl = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    if tbl.num_rows < 2 or pc.count_distinct(tbl.column("event_id")).as_py() == tbl.num_rows:
        return tbl  # the usual case, found 2-3x faster than by grouping
    indexed = tbl.append_column("__row", pa.array(range(tbl.num_rows), pa.int64()))
    firsts = indexed.group_by("event_id", use_threads=False).aggregate([("__row", "min")])
    if firsts.num_rows == tbl.num_rows:
        return tbl
    keep = pc.sort_indices(firsts.column("__row_min"))
    return tbl.take(pc.take(firsts.column("__row_min"), keep))


def _bad_url(url: str, rule: str) -> TelemetryError:
    return TelemetryError(
        f"store URL {url!r}: {rule}. Fix: use duckdb:///path/file.duckdb, "
        "postgresql://user@host:port/db[?schema=name], parquet:///dir or "
        "nats://host:port[?stream=NAME]."
    )


def open_store(url: str) -> EventStore:
    """Open the event store named by ``url`` (see the table in the module docstring).

    Raises:
        TelemetryError: the URL has an unknown scheme or is missing its path.
        MissingDependencyError: the backend's optional package is not installed.
    """
    if not isinstance(url, str) or not url.strip():
        raise _bad_url(str(url), "must be a non-empty string")
    url = url.strip()
    if "://" not in url:
        if url.endswith(".duckdb") or url == ":memory:":
            from proving.telemetry.duckdb_store import DuckDBStore

            return DuckDBStore(url)
        raise _bad_url(url, "a bare path must end in .duckdb")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "duckdb":
        from proving.telemetry.duckdb_store import DuckDBStore

        # duckdb:///abs/file.duckdb is absolute, duckdb://rel/file.duckdb relative.
        path = parts.netloc + parts.path
        if not path:
            raise _bad_url(url, "the duckdb URL has no path")
        return DuckDBStore(path)
    if scheme in ("postgresql", "postgres"):
        from proving.telemetry.postgres_store import PostgresStore

        query = parse_qs(parts.query)
        schema = query.pop("schema", ["public"])[0]
        dsn = parts._replace(
            scheme="postgresql", query="&".join(f"{key}={value[0]}" for key, value in query.items())
        ).geturl()
        return PostgresStore(dsn, schema=schema)
    if scheme == "parquet":
        from proving.telemetry.parquet_store import ParquetStore

        path = parts.netloc + parts.path
        if not path:
            raise _bad_url(url, "the parquet URL has no directory")
        return ParquetStore(path)
    if scheme == "nats":
        from proving.telemetry.nats_bus import NatsStore

        query = parse_qs(parts.query)
        stream = query.get("stream", ["PROVING"])[0]
        return NatsStore(f"nats://{parts.netloc}", stream=stream)
    raise _bad_url(url, f"unknown scheme {scheme!r}")


__all__ = ["EventStore", "dedupe", "open_store"]
