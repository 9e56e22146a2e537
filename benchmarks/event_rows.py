"""The gateway's telemetry on the event loop: a prediction row's id and its conversion to Arrow.

Every request the gateway serves becomes a ``PredictionRow``; every 512 of them the loop's
thread converts them to an Arrow batch (``BatchWriter(convert_every=512)``). Both happen on
the thread that serves requests, so their cost per row comes straight out of throughput.
This compares, side by side on the same rows:

- **ids**: ``new_event_id()`` for each row as it is made (what the recorder did until
  2026-11-23) against ``new_event_ids(n)`` for a whole chunk when it is converted (what
  it does now: the recorder leaves ``event_id`` as None);
- **conversion**: every column converted value by value (``RecordBatch.from_pydict`` of
  the transposed rows: ``to_record_batch`` until 2026-11-23) against ``to_record_batch``,
  which turns a string column of one value (deployment, model, role...) into one repeat;
- **both**: the id and the conversion together, per row, the old way and the new.

Prints the median of ``--repeats`` runs in nanoseconds per row, and the ratios.

Run:  .venv/bin/python benchmarks/event_rows.py [--rows 512] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import pyarrow as pa

import gateway_overhead  # the sibling script: the benchmarks' features (run as a script)
from proving.telemetry.events import (
    PREDICTIONS_SCHEMA,
    PredictionRow,
    json_text,
    new_event_id,
    new_event_ids,
    now_micros,
    to_record_batch,
)

FEATURES = json_text(gateway_overhead.FEATURES)


def rows(n: int, event_id: Callable[[], str | None]) -> list[PredictionRow]:
    """``n`` rows as the gateway makes them in split mode: one deployment, two variants
    (``benchmarks/store_write.py`` writes them too)."""
    return [
        PredictionRow(
            event_id(), f"{i:032x}", f"user-{i}", "bench", "bench", "ab"[i % 2], "m", "1",
            "served", "ok", FEATURES, str(i / n), i / n, 0.05, now_micros(),
        )
        for i in range(n)
    ]  # fmt: skip


def every_value(chunk: Sequence[PredictionRow]) -> pa.RecordBatch:
    """The conversion before: the rows transposed, every value of every column converted."""
    columns = dict(zip(PredictionRow._fields, zip(*chunk, strict=True), strict=True))
    received = now_micros()
    return pa.RecordBatch.from_pydict(
        {**columns, "received_at": [received] * len(chunk)}, schema=PREDICTIONS_SCHEMA
    )


def per_row(fn: Callable[[], object], n: int, repeats: int, calls: int) -> float:
    """Median nanoseconds per row of ``fn``, which handles ``n`` rows a call."""
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - start) / calls / n * 1e9)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=512, help="rows a chunk (the writer: 512)")
    parser.add_argument("--repeats", type=int, default=7)
    opts = parser.parse_args()
    n, calls = opts.rows, max(20, 100_000 // opts.rows)
    with_ids, without_ids = rows(n, new_event_id), rows(n, lambda: None)
    old_chunk = every_value(with_ids).to_pylist()
    new_chunk = to_record_batch("predictions", with_ids).to_pylist()
    if [r | {"received_at": None} for r in old_chunk] != [
        r | {"received_at": None} for r in new_chunk
    ]:
        raise SystemExit("the two conversions disagree")

    def ids_each() -> None:
        for _ in range(n):
            new_event_id()

    results = {
        "ids: one a row / one draw a chunk": (
            per_row(ids_each, n, opts.repeats, calls),
            per_row(lambda: new_event_ids(n), n, opts.repeats, calls),
        ),
        "conversion: every value / repeats": (
            per_row(lambda: every_value(with_ids), n, opts.repeats, calls),
            per_row(lambda: to_record_batch("predictions", with_ids), n, opts.repeats, calls),
        ),
    }

    def old_way() -> None:
        ids_each()
        every_value(with_ids)

    results["both: before / now"] = (
        per_row(old_way, n, opts.repeats, calls),
        per_row(lambda: to_record_batch("predictions", without_ids), n, opts.repeats, calls),
    )
    print(f"ns per row, chunks of {n} prediction rows, medians of {opts.repeats} runs")
    print(f"{'':36s} {'before':>8s} {'now':>8s} {'now/before':>11s}")
    for label, (before, now) in results.items():
        print(f"{label:36s} {before:8.0f} {now:8.0f} {now / before:11.2f}")


if __name__ == "__main__":
    main()
