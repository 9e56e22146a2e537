"""Gateway overhead in instructions: what a request costs, counted by callgrind, not timed.

``gateway_overhead.py`` times servers on a shared 2-core machine, where one round moves by
10% or more. Valgrind's callgrind counts the instructions each thread executes instead, and
that count is the same on a quiet machine and a busy one. It misses what instructions do not
show (cache misses, the GIL's hand-overs), so it complements the timings, not replaces them.

Each server (``bare``, ``split`` and ``shadow`` from ``gateway_overhead.py``) runs under
callgrind. A
client sends warm-up requests, zeroes the counters, sends ``--requests`` requests one at a
time (each from a new user, so each logs an exposure and a prediction), waits for the
telemetry writer to commit, and dumps the counters. Under valgrind a request takes a few
milliseconds, so the writer commits batches of about a hundred rows every 0.5 s: the light
load of a real server at a few hundred requests per second.

Printed: instructions per request on the event loop's thread and on all other threads
(the telemetry writer, DuckDB), and the ratio to the bare app.

Needs valgrind (``apt-get install valgrind``). Takes about two minutes.

Run:  .venv/bin/python benchmarks/gateway_instructions.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

import gateway_overhead  # the sibling script: its servers and traffic (run as a script)

URL = "http://127.0.0.1:{port}/v1/predict/bench"
HEADERS = {"content-type": "application/json"}


def counted(args: list[str], port: int, requests: int, tmp: Path) -> dict[int, int]:
    """Instructions per thread (1 is the main thread) over ``requests`` requests."""
    out = tmp / f"cg-{port}"
    valgrind = ["valgrind", "--tool=callgrind", "--separate-threads=yes",
                f"--callgrind-out-file={out}.%p", f"--log-file={out}.log"]  # fmt: skip
    # Valgrind starts Python in 20 s to a few minutes (on a busy host); the first user
    # answers the readiness probe.
    server = gateway_overhead._start(args, port, wrapper=valgrind, wait=600)
    url = URL.format(port=port)
    bodies = gateway_overhead.BODIES
    try:
        with httpx.Client(timeout=30) as client:
            for body in bodies[-300:]:  # warm-up: other users than the measured ones
                client.post(url, content=body, headers=HEADERS)
            time.sleep(2)
            pid = str(server.pid)
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            for body in bodies[1 : requests + 1]:
                if client.post(url, content=body, headers=HEADERS).status_code != 200:
                    raise SystemExit(f"{args[0]}: a request failed")
            time.sleep(2.5)  # the writer commits what the requests logged
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
    finally:
        server.terminate()
        server.wait()
    by_thread: dict[int, int] = {}
    for dump in tmp.glob(f"cg-{port}.{server.pid}.1-*"):  # dump 1: after the zeroing
        text = dump.read_text()
        thread = re.search(r"^thread: (\d+)", text, re.M)
        summary = re.search(r"^summary: (\d+)", text, re.M)
        if thread and summary:
            by_thread[int(thread.group(1))] = int(summary.group(1))
    return by_thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    opts = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed. Fix: apt-get install valgrind.")
    scenarios = {
        "bare": ["serve-bare"],
        "split": ["serve-gateway", "ab", "", "duckdb://{tmp}/split.duckdb"],
        "shadow": ["serve-gateway", "shadow", "", "duckdb://{tmp}/shadow.duckdb"],
    }
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for port, (name, args) in enumerate(scenarios.items(), start=19_700):
            args = [a.format(tmp=tmp) for a in args]
            by_thread = counted(args, port, opts.requests, Path(tmp))
            loop = by_thread.get(1, 0) / opts.requests
            other = sum(v for k, v in by_thread.items() if k != 1) / opts.requests
            rows[name] = (loop, other)
    bare = sum(rows["bare"])
    print(f"instructions per request, {opts.requests} requests one at a time (callgrind)")
    print(f"{'scenario':<8} {'event loop':>11} {'other threads':>14} {'total':>9} {'/ bare':>7}")
    for name, (loop, other) in rows.items():
        total = loop + other
        print(f"{name:<8} {loop:>11,.0f} {other:>14,.0f} {total:>9,.0f} {total / bare:>7.2f}")


if __name__ == "__main__":
    main()
