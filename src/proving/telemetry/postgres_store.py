"""PostgreSQL store: the production home of events, specs and rollout state.

A batch goes in one transaction: Arrow is written as CSV straight into ``COPY`` into a
temporary staging table, then ``INSERT INTO <table> SELECT ... ON CONFLICT (event_id) DO
NOTHING`` moves the rows whose id is new. COPY is PostgreSQL's bulk path (far faster than
row-by-row INSERT); the staging table makes the copy idempotent, which plain COPY is not.
When ``write`` returns, the transaction has committed (durable under PostgreSQL's default
``synchronous_commit = on``).

The same schema holds ``proving_state`` (namespace, key, JSON value): the small key-value
table where specs and rollout state live (see :meth:`EventStore.put_state`).

Example:
    >>> store = PostgresStore("postgresql://postgres@127.0.0.1:5432/test",
    ...                       schema="proving")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv

from proving.errors import TelemetryError, require
from proving.telemetry.duckdb_store import create_table_sql
from proving.telemetry.events import SCHEMAS, TableName, check_table, conform
from proving.telemetry.store import EventStore, dedupe

_PG_TYPES = {
    pa.string(): "TEXT",
    pa.float64(): "DOUBLE PRECISION",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}
STATE_TABLE = "proving_state"


class PostgresStore(EventStore):
    """Events in PostgreSQL tables of one schema.

    Args:
        dsn: a libpq connection string or URL (without ``?schema=``).
        schema: the schema holding the tables; created if absent.
    """

    def __init__(self, dsn: str, schema: str = "public") -> None:
        psycopg: Any = require("psycopg", "postgres")
        self._psycopg = psycopg
        self.dsn = dsn
        self.schema = schema
        self.url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
        self._lock = threading.Lock()
        self._closed = False
        self._conn: Any = None
        with self._lock:
            conn = self._connection()
            sql = self._psycopg.sql
            with conn.transaction():
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
                for table in SCHEMAS:
                    conn.execute(create_table_sql(table, _PG_TYPES))
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (namespace TEXT NOT NULL, "
                    "key TEXT NOT NULL, value JSONB NOT NULL, updated_at TIMESTAMPTZ NOT NULL "
                    "DEFAULT now(), PRIMARY KEY (namespace, key))"
                )

    def _connection(self) -> Any:
        """The open connection, reconnecting after a broken one (caller holds the lock)."""
        if self._closed:
            raise TelemetryError(f"PostgreSQL store {self.url!r} is closed. Fix: open a new one.")
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = self._psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
            except self._psycopg.Error as exc:
                reason = " ".join(str(exc).split())
                raise TelemetryError(
                    f"PostgreSQL store: cannot connect to {self.dsn!r}: {reason}. Fix: check "
                    "that the server runs and the URL (user, host, port, database)."
                ) from exc
            sql = self._psycopg.sql
            self._conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            self._conn.execute("SET TimeZone TO 'UTC'")
            self._staged: set[str] = set()
        return self._conn

    def _stage(self, conn: Any, table: TableName) -> str:
        stage = f"_proving_stage_{table}"
        if table not in self._staged:
            conn.execute(
                f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" (LIKE "{table}") ON COMMIT DELETE ROWS'
            )
            self._staged.add(table)
        return stage

    def write(self, table: TableName, batch: pa.RecordBatch | pa.Table) -> int:
        """COPY a batch through a staging table in one transaction; return rows newly stored."""
        data = dedupe(conform(check_table(table), batch))
        if data.num_rows == 0:
            return 0
        buffer = io.BytesIO()
        # pyarrow quotes every string and leaves nulls empty and unquoted, which is how
        # PostgreSQL's CSV format tells NULL from the empty string.
        pa_csv.write_csv(data, buffer, pa_csv.WriteOptions(include_header=False))
        columns = ", ".join(f'"{name}"' for name in data.column_names)
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    stage = self._stage(conn, table)
                    with conn.cursor() as cur:
                        with cur.copy(f'COPY "{stage}" ({columns}) FROM STDIN (FORMAT csv)') as cp:
                            cp.write(buffer.getvalue())
                        cur.execute(
                            f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{stage}" '
                            "ON CONFLICT (event_id) DO NOTHING"
                        )
                        stored = int(cur.rowcount)
            except self._psycopg.Error as exc:
                # The rollback may have undone a staging table created in this transaction.
                self._staged.clear()
                raise TelemetryError(
                    f"PostgreSQL store {self.url!r}: writing {data.num_rows} rows to {table!r} "
                    f"failed: {exc}. Nothing of this batch was stored; retry it."
                ) from exc
        return stored

    def _query_arrow(self, query: str, params: Sequence[Any], schema: pa.Schema) -> pa.Table:
        with self._lock:
            conn = self._connection()
            with conn.cursor() as cur:
                cur.execute(query, params)
                rows = cur.fetchall()
        columns = {name: [row[i] for row in rows] for i, name in enumerate(schema.names)}
        return pa.Table.from_pydict(columns, schema=schema)

    def count(self, table: TableName) -> int:
        """Number of rows stored in ``table``."""
        check_table(table)
        with self._lock:
            row = self._connection().execute(f'SELECT count(*) FROM "{table}"').fetchone()
        return int(row[0]) if row else 0

    def read_table(self, table: TableName) -> pa.Table:
        """The whole table as Arrow, in the event schema."""
        schema = SCHEMAS[check_table(table)]
        columns = ", ".join(f'"{name}"' for name in schema.names)
        return self._query_arrow(f'SELECT {columns} FROM "{table}"', [], schema)

    def first_exposures(self, unit_ids: Sequence[str]) -> dict[str, datetime]:
        """Earliest exposure timestamp per unit, for the units that have one."""
        if not unit_ids:
            return {}
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    'SELECT unit_id, min("timestamp") FROM exposures '
                    "WHERE unit_id = ANY(%s) GROUP BY unit_id",
                    [list(unit_ids)],
                )
                .fetchall()
            )
        return {str(unit): ts for unit, ts in rows}

    def put_state(self, namespace: str, key: str, value: Mapping[str, Any]) -> None:
        """Save a small JSON document under ``(namespace, key)`` (replacing any older one)."""
        with self._lock:
            self._connection().execute(
                f"INSERT INTO {STATE_TABLE} (namespace, key, value) VALUES (%s, %s, %s) "
                "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
                "updated_at = now()",
                [namespace, key, json.dumps(dict(value))],
            )

    def get_state(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The document saved under ``(namespace, key)``, or None."""
        with self._lock:
            row = (
                self._connection()
                .execute(
                    f"SELECT value FROM {STATE_TABLE} WHERE namespace = %s AND key = %s",
                    [namespace, key],
                )
                .fetchone()
            )
        return None if row is None else dict(row[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
