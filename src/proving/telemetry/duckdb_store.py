"""DuckDB file store: the embedded default.

Each table has ``event_id`` as its primary key; a batch is inserted from Arrow in one
statement (its own transaction), so a duplicate id (repeated in the batch or already stored)
is stored once and the count of newly stored rows comes back. DuckDB writes the transaction
to its write-ahead log before the statement returns, so a written batch survives ``kill -9``
and is replayed when the file is next opened.

The store's database runs on one thread (DuckDB's ``threads`` setting). Its work is small
inserts, and for those a second thread only adds hand-overs: one thread spends a fifth less
CPU per insert (BENCHMARKS.md, "Event store writes"). Queries over the events go through
:mod:`proving.metrics`, which opens the file with its own settings.

One process at a time may open a DuckDB file for writing (DuckDB's rule): readers in other
processes must wait for the writer to close it, or read Parquet exports instead.

Example:
    >>> from proving.telemetry.events import ExposureEvent
    >>> store = DuckDBStore(":memory:")
    >>> store.write_events([ExposureEvent(event_id="e1", experiment="x", variant="a",
    ...                                   unit_id="u1")])
    1
    >>> store.write_events([ExposureEvent(event_id="e1", experiment="x", variant="a",
    ...                                   unit_id="u1")])
    0
    >>> store.close()
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from proving.errors import TelemetryError
from proving.telemetry.events import SCHEMAS, TableName, check_table, conform
from proving.telemetry.store import EventStore, dedupe

_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}
STATE_TABLE = "proving_state"


def create_table_sql(table: TableName, types: Mapping[pa.DataType, str]) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for one event table, from its Arrow schema."""
    columns = []
    for field in SCHEMAS[table]:
        null = "" if field.nullable else " NOT NULL"
        key = " PRIMARY KEY" if field.name == "event_id" else ""
        columns.append(f'"{field.name}" {types[field.type]}{null}{key}')
    return f'CREATE TABLE IF NOT EXISTS "{table}" ({", ".join(columns)})'


class DuckDBStore(EventStore):
    """Events in a DuckDB file (or ``:memory:``).

    Args:
        path: the database file; created with its tables if absent.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.url = f"duckdb://{self.path}"
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = duckdb.connect(self.path, config={"threads": 1})
        except duckdb.Error as exc:
            raise TelemetryError(
                f"DuckDB store {self.path!r}: cannot open the file: {exc}. Fix: check the "
                "path, and that no other process holds the file open for writing."
            ) from exc
        self._lock = threading.Lock()
        self._closed = False
        self._conn.execute("SET TimeZone = 'UTC'")
        for table in SCHEMAS:
            self._conn.execute(create_table_sql(table, _DUCKDB_TYPES))
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (namespace VARCHAR NOT NULL, "
            "key VARCHAR NOT NULL, value VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL "
            "DEFAULT now(), PRIMARY KEY (namespace, key))"
        )

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise TelemetryError(f"DuckDB store {self.path!r} is closed. Fix: open a new one.")
        return self._conn

    def write(self, table: TableName, batch: pa.RecordBatch | pa.Table) -> int:
        """Insert a batch in one transaction; return the number of rows newly stored."""
        # Duplicate ids inside the batch: dedupe keeps the first occurrence, so the result
        # does not depend on the order in which DuckDB resolves conflicts.
        data = dedupe(conform(check_table(table), batch))
        if data.num_rows == 0:
            return 0
        with self._lock:
            conn = self._cursor()
            # DuckDB reads the Arrow table by its variable name (a replacement scan): unlike
            # register(), that changes no catalog, which cost a third of a 250-row insert.
            insert = f'INSERT INTO "{table}" SELECT * FROM _proving_batch'
            _proving_batch = data  # read by DuckDB, by this name
            try:
                # One statement is its own transaction. A plain insert first: most batches
                # hold only new ids, and the conflict check costs a third of the insert. A
                # batch with a stored id (a retry) fails as a whole and goes again, skipping
                # the ids already stored. fetchall, not fetchone: DuckDB 2 refuses new work
                # on a connection with an unfinished result.
                try:
                    rows = conn.execute(insert).fetchall()
                except duckdb.ConstraintException:
                    rows = conn.execute(insert + " ON CONFLICT DO NOTHING").fetchall()
            except duckdb.Error as exc:
                raise TelemetryError(
                    f"DuckDB store {self.path!r}: writing {data.num_rows} rows to {table!r} "
                    f"failed: {exc}. Nothing of this batch was stored; retry it."
                ) from exc
        return int(rows[0][0]) if rows else 0

    def count(self, table: TableName) -> int:
        """Number of rows stored in ``table``."""
        check_table(table)
        with self._lock:
            rows = self._cursor().execute(f'SELECT count(*) FROM "{table}"').fetchall()
        return int(rows[0][0]) if rows else 0

    def read_table(self, table: TableName) -> pa.Table:
        """The whole table as Arrow, in the event schema."""
        check_table(table)
        with self._lock:
            result = self._cursor().sql(f'SELECT * FROM "{table}"').to_arrow_table()
        return conform(table, result)

    def first_exposures(self, unit_ids: Sequence[str]) -> dict[str, datetime]:
        """Earliest exposure timestamp per unit, for the units that have one."""
        if not unit_ids:
            return {}
        with self._lock:
            # Arrow rather than fetchall(): DuckDB's Python conversion of TIMESTAMPTZ
            # needs pytz, which proving does not depend on.
            result = (
                self._cursor()
                .sql(
                    'SELECT unit_id, min("timestamp") AS first FROM exposures '
                    "WHERE unit_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY unit_id",
                    params=[list(unit_ids)],
                )
                .to_arrow_table()
            )
        return dict(zip(result["unit_id"].to_pylist(), result["first"].to_pylist(), strict=True))

    def put_state(self, namespace: str, key: str, value: Mapping[str, Any]) -> None:
        """Save a small JSON document under ``(namespace, key)`` (replacing any older one)."""
        with self._lock:
            self._cursor().execute(
                f"INSERT INTO {STATE_TABLE} (namespace, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
                "updated_at = now()",
                [namespace, key, json.dumps(dict(value))],
            )

    def get_state(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The document saved under ``(namespace, key)``, or None."""
        with self._lock:
            rows = (
                self._cursor()
                .execute(
                    f"SELECT value FROM {STATE_TABLE} WHERE namespace = ? AND key = ?",
                    [namespace, key],
                )
                .fetchall()
            )
        return dict(json.loads(rows[0][0])) if rows else None

    def close(self) -> None:
        """Checkpoint and close the file."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
