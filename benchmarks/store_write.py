"""Event store writes: CPU per batch of ``DuckDBStore.write`` against DuckDB's usual form.

The gateway's writer commits a batch per table every ``flush_interval`` (0.5 s). At a
steady 1,000 requests per second a batch holds a few hundred rows, so a batch's fixed cost,
not its per-row cost, is most of what telemetry spends in the background. This measures
both ways side by side, on fresh files, for batches of gateway prediction rows:

- ``register + transaction``: ``register()`` the Arrow table as a view, ``BEGIN``,
  ``INSERT ... SELECT``, ``COMMIT``, ``unregister()``, with DuckDB's default threads (one
  per core): the form in DuckDB's documentation, and the store's until 2026-11-23;
- ``DuckDBStore.write``: one ``INSERT ... SELECT`` of the Arrow table by name (a replacement
  scan: no catalog change), on a database running one thread.

It reports process CPU per batch (every thread, DuckDB's workers too), the median of
``--repeats`` runs, and the ratio. CPU rather than wall time: it is what the writer takes
from the serving loop on a busy machine, and it is steadier.

Run:  .venv/bin/python benchmarks/store_write.py [--rows 12000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

import event_rows  # the sibling script: gateway prediction rows (run as a script)
from proving.telemetry.duckdb_store import DuckDBStore
from proving.telemetry.events import new_event_id, to_record_batch

# A way to write: a function writing one batch, and one returning the rows stored (closing).
Form = tuple[Callable[[pa.Table], None], Callable[[], int]]


def prediction_batch(rows: int) -> pa.Table:
    """``rows`` predictions as the gateway logs them (new ids, one request each)."""
    events = event_rows.rows(rows, new_event_id)
    return pa.Table.from_batches([to_record_batch("predictions", events)])


def usual_form(path: Path) -> Form:
    """The baseline: register the batch and insert it in an explicit transaction."""
    DuckDBStore(path).close()  # the same tables, then DuckDB's default settings
    conn = duckdb.connect(str(path))

    def write(batch: pa.Table) -> None:
        conn.register("batch", batch)
        conn.execute("BEGIN TRANSACTION")
        conn.execute("INSERT INTO predictions SELECT * FROM batch").fetchall()
        conn.execute("COMMIT")
        conn.unregister("batch")

    def stored() -> int:
        count = int(conn.execute("SELECT count(*) FROM predictions").fetchall()[0][0])
        conn.close()
        return count

    return write, stored


def store_form(path: Path) -> Form:
    """What proving does: ``DuckDBStore.write``."""
    store = DuckDBStore(path)

    def write(batch: pa.Table) -> None:
        store.write("predictions", batch)

    def stored() -> int:
        count = store.count("predictions")
        store.close()
        return count

    return write, stored


def cpu_per_batch(form: Callable[[Path], Form], batches: list[pa.Table], tmp: Path) -> float:
    """Process CPU seconds per batch, writing ``batches`` to a fresh file."""
    path = tmp / f"{form.__name__}-{time.monotonic_ns()}.duckdb"
    write, stored = form(path)
    started = time.process_time()
    for batch in batches:
        write(batch)
    cpu = time.process_time() - started
    expected = sum(batch.num_rows for batch in batches)
    if stored() != expected:
        raise SystemExit(f"{form.__name__} stored the wrong number of rows")
    return cpu / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12_000, help="rows written per run")
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()
    print(f"CPU ms per batch (all threads), median of {opts.repeats} runs of {opts.rows} rows")
    print(f"{'rows/batch':>10} {'register + transaction':>23} {'DuckDBStore.write':>18} ratio")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (250, 1000, 5000):
            batches = [prediction_batch(size) for _ in range(max(2, opts.rows // size))]
            runs: dict[str, list[float]] = {"usual": [], "store": []}
            for _ in range(opts.repeats):  # the two take turns: noise hits both alike
                runs["usual"].append(cpu_per_batch(usual_form, batches, Path(tmp)))
                runs["store"].append(cpu_per_batch(store_form, batches, Path(tmp)))
            usual, store = (statistics.median(runs[k]) * 1e3 for k in ("usual", "store"))
            print(f"{size:>10} {usual:>23.2f} {store:>18.2f} {store / usual:5.2f}")


if __name__ == "__main__":
    main()
