"""Gateway tail: which background work the slowest requests overlapped.

``gateway_overhead.py`` says how large the gateway's p99 is; this script says where it comes
from. Each gateway (``split`` or ``shadow``, as in ``gateway_overhead.py``) runs in its own
process with probes that record, on the machine's monotonic clock, when:

- the telemetry committer writes a batch to DuckDB (``write``);
- a thread converts events to Arrow (``convert``), by thread: the event ``loop`` when an
  emit fills a chunk, the ``writer`` thread for the rest;
- the garbage collector runs (``gc0``, ``gc1``, ``gc2``), by thread.

``gateway_overhead.py``'s load generator sends requests open loop (default 1,000 per
second) and records each one's scheduled send time, so every request is matched with the
activities that overlapped it. For each activity the script prints its share of all
requests, its share of the slow ones (at or above the round's p99), and the p90 latency of
the requests it overlapped. An activity whose share of slow requests is many times its
share of all requests is what p99 is made of.

Variants of the gateway take turns within each round (``--variants``):

- ``default``: as shipped;
- ``nice=N``: the telemetry threads N nicer than the event loop
  (``BatchWriter(nice=N)``; the gateway's default is 10, and ``nice=0`` runs them as the
  loop);
- ``batch``: the telemetry threads at the loop's nice value, under ``SCHED_BATCH``,
  Linux's policy for work that should not preempt others when it wakes;
- ``convert-every=N``: ``BatchWriter(convert_every=N)``.

Run:  .venv/bin/python benchmarks/gateway_tail.py [--seconds 10] [--repeat 5]
          [--modes split,shadow] [--variants default,nice=0,batch,convert-every=128]
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import gateway_overhead  # the sibling script: its servers and load generator (run as a script)
from gateway_overhead import percentile

MODES = {"split": "ab", "shadow": "shadow"}
THREADS = {
    "MainThread": "loop",
    "proving-telemetry-writer": "writer",
    "proving-telemetry-committer": "committer",
}
# Variants "knob=N": the BatchWriter argument each sets to N.
WRITER_KNOBS = {"nice": "nice", "convert-every": "convert_every"}

# -- the probed gateway (a subprocess of this script) --------------------------------------


def serve(mode: str, variant: str, store: str, spans_path: Path, port: int) -> None:
    """The gateway of ``gateway_overhead.py``, recording its background activity; the spans
    are written to ``spans_path`` once it has shut down (SIGTERM)."""
    import gc

    from proving.telemetry import duckdb_store, writer

    spans: list[tuple[str, str, float, float]] = []  # (activity, thread, start, end)

    def thread() -> str:
        name = threading.current_thread().name
        return THREADS.get(name, name)

    def timed(owner: Any, method: str, activity: str) -> None:
        original = getattr(owner, method)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spans.append((activity, thread(), start, time.perf_counter()))

        setattr(owner, method, wrapper)

    timed(duckdb_store.DuckDBStore, "write", "write")
    timed(writer._Chunk, "convert", "convert")
    started: dict[str, float] = {}

    def collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started["at"] = time.perf_counter()
        else:
            spans.append((f"gc{info['generation']}", thread(), started["at"], time.perf_counter()))

    gc.callbacks.append(collection)

    writer_options: dict[str, Any] = {}
    knob, _, value = variant.partition("=")
    if knob in WRITER_KNOBS:
        writer_options[WRITER_KNOBS[knob]] = int(value)
    elif variant == "batch":
        writer_options["nice"] = 0
        run = threading.Thread.run

        def batched(self: threading.Thread) -> None:
            if THREADS.get(self.name) in ("writer", "committer"):  # Linux: one thread's id
                os.sched_setscheduler(threading.get_native_id(), os.SCHED_BATCH, os.sched_param(0))
            run(self)

        threading.Thread.run = batched  # type: ignore[method-assign]
    # uvicorn shuts down on SIGTERM, then raises it again for the handler it found: let
    # that one return, so the spans are written after the shutdown's last commit.
    signal.signal(signal.SIGTERM, lambda *_: None)
    gateway_overhead.serve_gateway(port, MODES[mode], None, store, writer_options)
    spans_path.write_text(json.dumps(spans))


# -- analysis -------------------------------------------------------------------------------


def overlaps(
    requests: list[tuple[float, float]], spans: list[list[Any]]
) -> list[tuple[float, tuple[str, ...]]]:
    """Each request's latency and the activities (``kind@thread``) that overlapped it."""
    spans = sorted(spans, key=lambda s: s[2])
    starts = [s[2] for s in spans]
    longest = max((s[3] - s[2] for s in spans), default=0.0)
    out = []
    for due, elapsed in requests:
        end = due + abs(elapsed)
        first = bisect.bisect_left(starts, due - longest)
        last = bisect.bisect_right(starts, end)
        kinds = {f"{s[0]}@{s[1]}" for s in spans[first:last] if s[3] > due}
        out.append((abs(elapsed), tuple(sorted(kinds)) or ("nothing",)))
    return out


def measure(
    mode: str, variant: str, opts: Any, tmp: Path, bodies: Path, round_: int
) -> dict[str, Any]:
    """One round of one gateway: its latencies and what each request overlapped."""
    from proving.testing.model_server import free_port

    port = free_port()
    tag = f"{mode}-{variant.replace('=', '')}-{round_}"
    spans_path, result = tmp / f"{tag}.spans.json", tmp / f"{tag}.lat.json"
    args = ["serve", mode, variant, f"duckdb://{tmp}/{tag}.duckdb", str(spans_path)]
    process = gateway_overhead._start(args, port, script=__file__)
    try:
        gateway_overhead._loadgen(
            port, "/v1/predict/bench", bodies, opts.rate, opts.seconds, result
        )
    finally:
        process.terminate()
        process.wait(60)
    measured = json.loads(result.read_text())
    requests = [tuple(pair) for pair in measured["latencies"]]
    return {
        # p50, p99, errors (non-200 answers) and the load generator's own lag, a sign of a
        # host too busy to judge p99 on: as gateway_overhead.py computes them
        **gateway_overhead.summarize(measured),
        "p999_ms": percentile([abs(elapsed) for _, elapsed in requests], 0.999) * 1e3,
        "overlaps": overlaps(requests, json.loads(spans_path.read_text())),
    }


def report(results: dict[tuple[str, str], list[dict[str, Any]]], variants: list[str]) -> str:
    lines = []
    for (mode, variant), rounds in results.items():
        p99s = [r["p99_ms"] for r in rounds]
        p99 = statistics.median(p99s)
        base = statistics.median(r["p99_ms"] for r in results[(mode, variants[0])])
        lines.append(
            f"\n{mode} / {variant}: p50 {statistics.median(r['p50_ms'] for r in rounds):.3f} ms, "
            f"p99 {p99:.3f} ms ({p99 / base:.0%} of {variants[0]}), p99.9 "
            f"{statistics.median(r['p999_ms'] for r in rounds):.3f} ms (medians of "
            f"{len(rounds)} rounds; p99 of each: {' '.join(f'{v:.2f}' for v in p99s)}); "
            f"errors: {sum(r['errors'] for r in rounds)}; client lag p99 "
            f"{statistics.median(r['client_lag_p99_ms'] for r in rounds):.2f} ms"
        )
        everything: dict[tuple[str, ...], list[float]] = defaultdict(list)
        slow: dict[tuple[str, ...], int] = defaultdict(int)
        for r in rounds:
            for elapsed, kinds in r["overlaps"]:
                everything[kinds].append(elapsed)
                slow[kinds] += elapsed * 1e3 >= r["p99_ms"]
        total, total_slow = sum(map(len, everything.values())), sum(slow.values())
        lines.append(f"  {'overlapped':44s} {'all':>7s} {'slow':>7s} {'p90 ms':>7s}")
        for kinds in sorted(everything, key=lambda k: -slow[k])[:8]:
            lines.append(
                f"  {' + '.join(kinds):44s} {len(everything[kinds]) / total:7.1%} "
                f"{slow[kinds] / max(1, total_slow):7.1%} "
                f"{percentile(everything[kinds], 0.9) * 1e3:7.2f}"
            )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        mode, variant, store, spans, port = sys.argv[2:7]
        return serve(mode, variant, store, Path(spans), int(port))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=5, help="rounds; medians are printed")
    parser.add_argument("--modes", default="split,shadow", help="of split, shadow")
    parser.add_argument(
        "--variants", default="default,nice=0",
        help="comma-separated, of default, nice=N, batch, convert-every=N; the first is the "
        "baseline",
    )  # fmt: skip
    opts = parser.parse_args()
    modes, variants = opts.modes.split(","), opts.variants.split(",")
    for name in modes:
        if name not in MODES:
            parser.error(f"unknown mode {name!r}; choose from {', '.join(MODES)}")
    for name in variants:
        knob, _, value = name.partition("=")
        if name not in ("default", "batch") and not (knob in WRITER_KNOBS and value.isdigit()):
            parser.error(
                f"unknown variant {name!r}; choose from default, nice=N, batch, convert-every=N"
            )
    results: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "bodies.json"
        bodies.write_text(json.dumps([body.decode() for body in gateway_overhead.BODIES]))
        for round_ in range(opts.repeat):
            for mode in modes:
                for variant in variants:
                    row = measure(mode, variant, opts, Path(tmp), bodies, round_)
                    results[(mode, variant)].append(row)
                    print(
                        f"round {round_ + 1}/{opts.repeat} {mode} / {variant}: "
                        f"p99 {row['p99_ms']:.2f} ms",
                        file=sys.stderr,
                    )
    print(
        f"open loop at {opts.rate:.0f} req/s for {opts.seconds:.0f} s a round; 'all' and "
        "'slow' are the shares of all requests and of those at or above their round's p99 "
        "that overlapped the activity (kind@thread), pooled over the rounds"
    )
    print(report(results, variants))
    return None


if __name__ == "__main__":
    main()
