"""Parquet store: the lake that Spark, DuckDB or any warehouse reads.

Layout (hive-style, so engines prune partitions by date and experiment)::

    <root>/exposures/date=2024-05-01/experiment=checkout/part-<uuid>-0.parquet
    <root>/predictions/date=2024-05-01/experiment=__HIVE_DEFAULT_PARTITION__/part-...
    <root>/outcomes/date=2024-05-01/part-...

``date`` is the UTC date of the event's ``timestamp``. Partition columns live in the
directory names, not in the files (as Spark and Hive expect); read the tables back with
hive partitioning on, e.g. DuckDB ``read_parquet('<root>/exposures/**/*.parquet',
hive_partitioning = true)``, and drop the ``date`` column. :meth:`ParquetStore.read_table`
does this and returns the event schema.

Duplicate guarantee, stated plainly: an ``event_id`` is stored once among everything this
store object has seen, namely the files present under ``<root>`` when it was opened plus
every batch it wrote since. Two processes writing the same directory at once do not see
each other's ids and may both store a duplicate; run one writer per directory (or load
through the NATS loader, which is one writer), or deduplicate on read. The set of seen ids
is held in memory (about 100 bytes per event).

Each ``write`` writes its files under temporary names and renames them into place, so a
reader never sees a half-written file; a crash mid-batch may leave a subset of the batch's
partition files (a later retry of the batch stores only the missing ids when the store is
reopened).

Example:
    >>> import tempfile
    >>> from proving.telemetry.events import OutcomeEvent
    >>> store = ParquetStore(tempfile.mkdtemp())
    >>> store.write_events([OutcomeEvent(unit_id="u1", name="click")])
    1
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from proving.errors import TelemetryError
from proving.telemetry.events import SCHEMAS, TABLES, TableName, check_table, conform
from proving.telemetry.store import EventStore, dedupe

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def partition_schema(table: TableName) -> pa.Schema:
    """The hive partition columns of a table: date, then experiment where it has one."""
    fields = [pa.field("date", pa.string())]
    if "experiment" in SCHEMAS[table].names:
        fields.append(pa.field("experiment", pa.string()))
    return pa.schema(fields)


class ParquetStore(EventStore):
    """Events as hive-partitioned Parquet files under one directory.

    Args:
        root: the directory; a subdirectory per table is created inside it.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = f"parquet://{self.root.resolve()}"
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TelemetryError(
                f"Parquet store {str(self.root)!r}: cannot create the directory: {exc}. "
                "Fix: choose a writable path."
            ) from exc
        self._seen: dict[TableName, set[str]] = {table: set() for table in TABLES}
        for table in TABLES:
            if any(self._files(table)):
                ids = self._dataset(table).to_table(columns=["event_id"]).column("event_id")
                self._seen[table].update(ids.to_pylist())

    def _files(self, table: TableName) -> list[str]:
        base = self.root / table
        return sorted(str(p) for p in base.rglob("*.parquet")) if base.exists() else []

    def _dataset(self, table: TableName) -> ds.Dataset:
        file_schema = pa.schema(
            [f for f in SCHEMAS[table] if f.name not in partition_schema(table).names]
        )
        full = pa.unify_schemas([file_schema, partition_schema(table)])
        return ds.dataset(
            self._files(table),
            schema=full,
            format="parquet",
            partitioning=ds.partitioning(partition_schema(table), flavor="hive"),
            partition_base_dir=str(self.root / table),
        )

    def write(self, table: TableName, batch: pa.RecordBatch | pa.Table) -> int:
        """Write the rows whose id this store has not seen; return how many."""
        data = dedupe(conform(check_table(table), batch))
        with self._lock:
            if self._closed:
                raise TelemetryError(f"Parquet store {self.url!r} is closed. Fix: open a new one.")
            seen = self._seen[table]
            if seen and data.num_rows:
                fresh = pc.invert(pc.is_in(data.column("event_id"), pa.array(list(seen))))
                data = data.filter(fresh)
            if data.num_rows == 0:
                return 0
            self._write_files(table, data)
            seen.update(data.column("event_id").to_pylist())
        return int(data.num_rows)

    def _write_files(self, table: TableName, data: pa.Table) -> None:
        dates = pc.strftime(data.column("timestamp"), format="%Y-%m-%d")
        data = data.append_column("date", dates)
        token = uuid.uuid4().hex
        staging = self.root / f".staging-{token}"
        try:
            ds.write_dataset(
                data,
                staging,
                format="parquet",
                partitioning=ds.partitioning(partition_schema(table), flavor="hive"),
                basename_template=f"part-{token}-{{i}}.parquet",
                existing_data_behavior="overwrite_or_ignore",
            )
            # Rename each finished file into place: readers never see a partial file.
            for path in staging.rglob("*.parquet"):
                target = self.root / table / path.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
        except (OSError, pa.ArrowException) as exc:
            raise TelemetryError(
                f"Parquet store {self.url!r}: writing {data.num_rows} rows to {table!r} "
                f"failed: {exc}. Fix: check disk space and permissions, then retry."
            ) from exc
        finally:
            for directory in sorted(staging.rglob("*"), reverse=True):
                if directory.is_dir():
                    directory.rmdir()
            if staging.exists():
                staging.rmdir()

    def count(self, table: TableName) -> int:
        """Number of rows stored in ``table``."""
        check_table(table)
        with self._lock:
            return len(self._seen[table])

    def read_table(self, table: TableName) -> pa.Table:
        """All files of ``table`` read back in the event schema (partition columns restored)."""
        check_table(table)
        with self._lock:
            if not self._files(table):
                return SCHEMAS[table].empty_table()
            data = self._dataset(table).to_table()
        return conform(table, data.drop_columns(["date"]))

    def first_exposures(self, unit_ids: Sequence[str]) -> dict[str, datetime]:
        """Earliest exposure timestamp per unit (scans the exposures files)."""
        if not unit_ids:
            return {}
        with self._lock:
            if not self._files("exposures"):
                return {}
            data = self._dataset("exposures").to_table(
                columns=["unit_id", "timestamp"],
                filter=pc.field("unit_id").isin(list(unit_ids)),
            )
        firsts = data.group_by("unit_id").aggregate([("timestamp", "min")])
        return dict(
            zip(firsts["unit_id"].to_pylist(), firsts["timestamp_min"].to_pylist(), strict=True)
        )

    def close(self) -> None:
        """Forget the seen ids; the files stay."""
        with self._lock:
            self._closed = True
            self._seen = {table: set() for table in TABLES}
