"""Gateway overhead in instructions: what a request costs, counted by callgrind, not timed.

``gateway_overhead.py`` times servers on a shared 2-core machine, where one round moves by
10% or more. Valgrind's callgrind counts the instructions each thread executes instead, and
that count is the same on a quiet machine and a busy one. It misses what instructions do not
show (cache misses, the GIL's hand-overs), so it complements the timings, not replaces them.

Each server (``bare``, ``split`` and ``shadow`` from ``gateway_overhead.py``) runs under
callgrind. A client sends warm-up requests, zeroes the counters, sends ``--requests``
requests one at a time (each from a new user, so each logs an exposure and a prediction),
waits for the telemetry writer to commit, and dumps the counters. Under valgrind a request
takes a few milliseconds, so the writer commits batches of about a hundred rows every
0.5 s: the light load of a real server at a few hundred requests per second.

Printed: instructions per request on the event loop's thread and on all other threads
(the telemetry writer, DuckDB), and the ratio to the bare app. The other threads' count
depends on the host's speed as well as the code: the writer commits on a timer, so a host
that runs valgrind slower makes more and smaller commits, each with DuckDB's fixed cost.
So the gateways' rows also give the commits in the window (read from ``/metrics``) and
the other threads' instructions per commit.

Needs valgrind (``apt-get install valgrind``). Takes 3 to 10 minutes (more on a busy host).

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


def _commits(client: httpx.Client, port: int) -> int | None:
    """Telemetry commits so far (None for the bare app, which has no ``/metrics``)."""
    response = client.get(f"http://127.0.0.1:{port}/metrics")
    found = re.search(r"^proving_telemetry_commit_seconds_count (\S+)", response.text, re.M)
    return int(float(found.group(1))) if response.status_code == 200 and found else None


def counted(
    args: list[str], port: int, requests: int, tmp: Path
) -> tuple[dict[int, int], int | None]:
    """Instructions per thread (1 is the main thread) over ``requests`` requests, and the
    telemetry commits meanwhile."""
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
            commits_before = _commits(client, port)  # scraped outside the counted window
            pid = str(server.pid)
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            for body in bodies[1 : requests + 1]:
                if client.post(url, content=body, headers=HEADERS).status_code != 200:
                    raise SystemExit(f"{args[0]}: a request failed")
            time.sleep(2.5)  # the writer commits what the requests logged
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
            commits_after = _commits(client, port)
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
    if commits_before is None or commits_after is None:
        return by_thread, None
    return by_thread, commits_after - commits_before


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
            by_thread, commits = counted(args, port, opts.requests, Path(tmp))
            loop = by_thread.get(1, 0) / opts.requests
            other = sum(v for k, v in by_thread.items() if k != 1)
            rows[name] = (loop, other / opts.requests, commits, other / commits if commits else 0)
    bare = rows["bare"][0] + rows["bare"][1]
    print(f"instructions per request, {opts.requests} requests one at a time (callgrind)")
    print(
        f"{'scenario':<8} {'event loop':>11} {'other threads':>14} {'total':>9} {'/ bare':>7}"
        f" {'commits':>8} {'other / commit':>15}"
    )
    for name, (loop, other, commits, per_commit) in rows.items():
        total = loop + other
        print(
            f"{name:<8} {loop:>11,.0f} {other:>14,.0f} {total:>9,.0f} {total / bare:>7.2f}"
            + (f" {commits:>8} {per_commit:>15,.0f}" if commits else "")
        )


if __name__ == "__main__":
    main()
