"""Gateway overhead: latency and throughput of the gateway against a bare app, on loopback.

Scenarios (each server in its own process, the load generator in another):

(a) ``bare``: a minimal Starlette app that parses the JSON body, calls the in-process model
    and answers JSON: what a team would write without proving;
(b) ``split``: the gateway, A/B between two variants of the same in-process model, with
    assignment, exposure and prediction events written to a DuckDB file;
(c) ``shadow``: the gateway in shadow mode (the challenger is mirrored on every request);
(d) ``remote-direct`` vs ``remote-gateway``: a remote model server (KServe V1) called
    directly, and through the gateway (split, both variants remote).

Latency is measured open loop at a fixed rate (default 1,000 requests per second) by an
asyncio client on 16 keep-alive connections, waiting in ``select()`` for microsecond
timers (see :func:`open_loop`); each latency runs from the request's *scheduled* send
time, so a stalled server cannot hide its queueing (the coordinated omission correction
of Tene's wrk2). Throughput is measured closed loop with ``wrk``
when it is installed (``apt-get install wrk``), else with the same Python client.

Every scenario runs ``--repeat`` times, the scenarios taking turns, and the figures are
medians over the rounds: on a shared 2-core machine one round's p99 moves by a millisecond.
Each round's p99 is printed too, with two signs of a host that p99 cannot be trusted on:
the share of the machine's time its hypervisor stole during the latency runs (``steal %``,
from /proc/stat; a thread that holds the GIL while its virtual CPU waits stalls the event
loop), and the p99 of the load generator's own lag (``client lag p99``: how late after its
scheduled time it sent each request; that lag counts as latency). When
either is large, p99 measures the host, and only the CPU per request still compares the
code. Steal comes in bursts, so a low average does not prove a quiet host.
``gateway_tail.py`` says which background work the slowest requests overlapped.
``--scenarios`` runs some of them (``remote`` is (d)).

Traffic: ``UNITS`` distinct users in turn (see below), the same bodies for every scenario.

Run:  .venv/bin/python benchmarks/gateway_overhead.py [--rate 1000] [--seconds 10] [--repeat 3]
          [--scenarios bare,split,shadow,remote]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FEATURES = {"x1": 0.3, "x2": -1.2, "x3": 2.0, "x4": 0.7}
# The traffic: UNITS distinct users in turn. The latency run (10,000 requests at the default
# rate and length) sees each unit about once, so nearly every request logs an exposure; the
# throughput run sees each unit many times, as a user's session would (the gateway logs a
# unit's exposure once, like GrowthBook's SDKs).
UNITS = 10_000
BODIES = [json.dumps({"unit_id": f"user-{i}", "features": FEATURES}).encode() for i in range(UNITS)]
BODY = BODIES[0]
REMOTE_BODY = json.dumps({"instances": [FEATURES]}).encode()
WEIGHTS = {"x1": 0.8, "x2": -0.4, "x3": 0.1, "x4": 1.5}


def model(features: dict[str, float]) -> float:
    """The in-process model: a logistic score (microseconds, like a small linear model)."""
    z = sum(WEIGHTS[k] * float(v) for k, v in features.items() if k in WEIGHTS)
    return 1.0 / (1.0 + math.exp(-z))


# -- servers (run as subprocesses of this script) -----------------------------------------


def serve_bare(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def predict(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"prediction": model(body["features"])})

    app = Starlette(routes=[Route("/v1/predict/bench", predict, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_gateway(
    port: int,
    mode: str,
    remote: str | None,
    store: str,
    writer_options: dict[str, Any] | None = None,
) -> None:
    import uvicorn

    from proving.serve import create_app
    from proving.spec import parse_spec

    if remote:
        variants = (
            f"  - {{name: champion, model: {{name: m, version: '1', uri: '{remote}'}}}}\n"
            f"  - {{name: challenger, model: {{name: m, version: '2', uri: '{remote}'}}}}\n"
        )
    else:
        variants = (
            "  - {name: champion, model: {name: m, version: '1'}}\n"
            "  - {name: challenger, model: {name: m2, version: '2'}}\n"
        )
    text = f"name: bench\nmode: {mode}\nvariants:\n{variants}"
    if mode == "shadow":
        text += "shadow: {sample_rate: 1.0, max_concurrency: 256}\n"
    app = create_app(
        [parse_spec(text)], store=store, models={"m": model, "m2": model},
        writer_options=writer_options,
    )  # fmt: skip
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_remote(port: int) -> None:
    from proving.testing.model_server import main

    main(["--port", str(port)])


# -- load generation ----------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection of the open-loop client, one request in flight at a time.

    A protocol, not a stream: on a 2-core machine every microsecond the client spends is
    taken from the server it measures, and a protocol costs less per request. Answers are
    read by their ``Content-Length`` (Starlette's and uvicorn's carry one, errors
    included)."""

    def __init__(self, client: _OpenLoop) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.head = -1  # where the answer's head ends, once it has come
        self.length = 0
        self.due = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if self.head < 0:
            self.head = buffer.find(b"\r\n\r\n")
            if self.head < 0:
                self.buffer = buffer
                return
            head = buffer[: self.head].lower()
            start = head.find(b"\r\ncontent-length:")
            if start < 0:
                self.client.fail(f"an answer without Content-Length: {head[:200]!r}")
                return
            self.length = int(head[start + 17 :].split(b"\r\n", 1)[0])
        if len(buffer) < self.head + 4 + self.length:
            self.buffer = buffer
            return
        ok = buffer.startswith(b"HTTP/1.1 200")
        self.buffer, self.head = b"", -1
        self.client.answered(self, ok)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.fail(f"the server closed a connection ({exc or 'no error'})")


class _OpenLoop:
    """Sends each request at its scheduled time on an idle connection (queued for the next
    one to free up when none is idle), and records (scheduled time, latency) per answer.

    Idle connections take turns (first in, first out): one left idle for 5 s would be
    closed by uvicorn's keep-alive timeout."""

    def __init__(self, requests: list[bytes], total: int) -> None:
        self.requests = requests
        self.total = total
        self.idle: deque[_Connection] = deque()
        self.waiting: deque[tuple[bytes, float]] = deque()
        self.out: list[tuple[float, float]] = []
        self.lateness: list[float] = []
        self.finished = asyncio.get_running_loop().create_future()

    def dispatch(self, index: int, due: float) -> None:
        request = self.requests[index % len(self.requests)]
        self.lateness.append(time.perf_counter() - due)
        if self.idle:
            self.idle.popleft().send(request, due)
        else:
            self.waiting.append((request, due))

    def answered(self, connection: _Connection, ok: bool) -> None:
        elapsed = time.perf_counter() - connection.due
        # a non-200 answer is recorded as a negative latency: counted as an error
        self.out.append((connection.due, elapsed if ok else -elapsed))
        if self.waiting:
            connection.send(*self.waiting.popleft())
        else:
            self.idle.append(connection)
        if len(self.out) == self.total and not self.finished.done():
            self.finished.set_result(None)

    def fail(self, reason: str) -> None:
        if not self.finished.done() and len(self.out) < self.total:
            self.finished.set_exception(RuntimeError(f"load generator: {reason}"))


def _http_request(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _open_loop(
    port: int, path: str, bodies: list[bytes], rate: float, seconds: float, connections: int
) -> tuple[list[tuple[float, float]], list[float]]:
    loop = asyncio.get_running_loop()
    client = _OpenLoop([_http_request(path, body) for body in bodies], int(rate * seconds))
    for _ in range(connections):
        _, connection = await loop.create_connection(lambda: _Connection(client), "127.0.0.1", port)
        client.idle.append(connection)
    opened = list(client.idle)
    start = time.perf_counter() + 0.2
    try:
        for i in range(client.total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            client.dispatch(i, due)
        await asyncio.wait_for(client.finished, timeout=30 + seconds)
    finally:
        for connection in opened:
            if connection.transport is not None:
                connection.transport.close()
    return client.out, client.lateness


def open_loop(
    port: int, path: str, bodies: list[bytes], rate: float, seconds: float, connections: int = 16
) -> tuple[list[tuple[float, float]], list[float]]:
    """Requests sent at ``rate`` per second for ``seconds``, cycling through ``bodies``, over
    ``connections`` keep-alive connections: the (scheduled send time, latency) in seconds of
    each, and how late the client sent each (its own lag).

    The times are ``time.perf_counter()``: on Linux the machine's monotonic clock, which
    other processes can compare with. The event loop waits in ``select()``, whose timeout
    is in microseconds: epoll's is in milliseconds, and asyncio rounds it up, so a client on
    epoll sends each request up to 1 ms late and that lag counts as latency (BENCHMARKS.md,
    "The load generator's own lag"). With 16 connections, ``select()`` costs little.
    """
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        return loop.run_until_complete(_open_loop(port, path, bodies, rate, seconds, connections))
    finally:
        loop.close()


def _loadgen(port: int, path: str, bodies: Path, rate: float, seconds: float, result: Path) -> None:
    traffic = [body.encode() for body in json.loads(bodies.read_text())]
    open_loop(port, path, traffic, rate, seconds / 5)  # warm up
    latencies, lags = open_loop(port, path, traffic, rate, seconds)
    result.write_text(json.dumps({"latencies": latencies, "lags": lags}))


def latency(
    port: int, path: str, bodies: list[bytes], rate: float, seconds: float
) -> dict[str, float]:
    """p50/p99 (ms) at ``rate``, from a load generator in a separate process, and the p99
    of the load generator's own lag (how late it sent each request; that lag counts as
    latency)."""
    with tempfile.TemporaryDirectory() as tmp:
        result, traffic = Path(tmp) / "lat.json", Path(tmp) / "bodies.json"
        traffic.write_text(json.dumps([body.decode() for body in bodies]))
        subprocess.run(
            [sys.executable, __file__, "loadgen", str(port), path, str(traffic), str(rate),
             str(seconds), str(result)],
            check=True,
        )  # fmt: skip
        return summarize(json.loads(result.read_text()))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (q in steps of 0.001), interpolated between the
    nearest two as numpy's default does."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


def summarize(measured: dict[str, Any]) -> dict[str, float]:
    """p50/p99 (ms), answers and errors (non-200) of a load generator's result, and the
    p99 of its own lag."""
    raw = [elapsed for _, elapsed in measured["latencies"]]
    latencies = [abs(v) for v in raw]
    return {
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "client_lag_p99_ms": percentile(measured["lags"], 0.99) * 1000,
        "n": len(latencies),
        "errors": sum(1 for v in raw if v < 0),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(steal, all) CPU ticks of the machine so far, from /proc/stat (Linux)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return fields[7], sum(fields)


def measured_latency(
    pid: int, port: int, path: str, bodies: list[bytes], opts: Any
) -> dict[str, float]:
    """Latency at the rate, plus the server's CPU time per request over the same run, and
    the share of the machine's time its hypervisor stole meanwhile.

    CPU per request is robust to other load on the machine (it is time the server spent,
    not time it waited), so it is the fairest overhead figure on a shared box. Stolen time
    is not: a thread holding the GIL while its virtual CPU waits stalls the event loop, so
    a round with much steal has a p99 that says more about the host than the code.
    """
    before, (steal, ticks) = cpu_seconds(pid), machine_ticks()
    row = latency(port, path, bodies, opts.rate, opts.seconds)
    sent = opts.rate * opts.seconds * 1.2  # the run plus its warm-up (a fifth)
    row["cpu_us_per_request"] = (cpu_seconds(pid) - before) / sent * 1e6
    steal_after, ticks_after = machine_ticks()
    row["steal_pct"] = 100.0 * (steal_after - steal) / max(1, ticks_after - ticks)
    return row


def throughput(port: int, path: str, bodies: list[bytes], seconds: float) -> float | None:
    """Requests per second, closed loop with wrk (None when wrk is not installed)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        # The requests are formatted once, in init: wrk's per-request work stays the same
        # whatever the body.
        listed = ",\n".join(json.dumps(body.decode()) for body in bodies)
        lua.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"local bodies = {{\n{listed}\n}}\nlocal requests = {{}}\nlocal n = 0\n"
            "function init(args)\n  for i, body in ipairs(bodies) do\n"
            "    requests[i] = wrk.format(nil, nil, nil, body)\n  end\nend\n"
            "function request()\n  n = n % #requests + 1\n  return requests[n]\nend\n"
        )
    out = subprocess.run(
        [wrk, "-t1", "-c32", f"-d{int(seconds)}s", "-s", lua.name, f"http://127.0.0.1:{port}{path}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    os.unlink(lua.name)
    # Count successful answers only: "N requests in Ts" minus "Non-2xx or 3xx responses: M".
    total_line = next(x for x in out.splitlines() if " requests in " in x)
    total = int(total_line.split()[0])
    duration = float(total_line.split(" in ")[1].split("s,")[0].rstrip("m"))
    if total_line.split(" in ")[1].split(",")[0].endswith("ms"):
        duration /= 1000.0
    bad = sum(int(x.split(":")[1]) for x in out.splitlines() if x.strip().startswith("Non-2xx"))
    return (total - bad) / duration


# -- orchestration ------------------------------------------------------------------------


def _start(
    args: list[str],
    port: int,
    wrapper: Sequence[str] = (),
    wait: float = 60,
    script: str = __file__,
) -> subprocess.Popen[bytes]:
    """Start a server subprocess of ``script`` (under ``wrapper``, e.g. valgrind) and wait
    up to ``wait`` seconds until it answers a prediction (of ``BODY``, the first user)."""
    import httpx

    process = subprocess.Popen([*wrapper, sys.executable, script, *args, str(port)])
    url = f"http://127.0.0.1:{port}/v1/predict/bench"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and process.poll() is None:
        try:
            r = httpx.post(url, content=BODY, headers={"content-type": "application/json"})
            if r.status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"server {args} did not come up on port {port} ({process.poll()=})")


def _measure(
    name: str, args: list[str], path: str, bodies: list[bytes], opts: Any
) -> dict[str, Any]:
    from proving.testing.model_server import free_port

    port = free_port()
    process = _start(args, port)
    try:
        row: dict[str, Any] = {"scenario": name}
        row.update(measured_latency(process.pid, port, path, bodies, opts))
        row["max_rps"] = throughput(port, path, bodies, opts.seconds)
    finally:
        process.terminate()
        process.wait(30)
    return row


SCENARIOS = ("bare", "split", "shadow", "remote")


def run_once(opts: Any, tmp: Path, round_: int) -> list[dict[str, Any]]:
    """Every scenario once, each server a fresh process with a fresh store."""
    from proving.testing.model_server import free_port, wait_until_up

    path = "/v1/predict/bench"
    local = {
        "bare": ["serve-bare"],
        "split": ["serve-gateway", "ab", "", f"duckdb://{tmp}/split-{round_}.duckdb"],
        "shadow": ["serve-gateway", "shadow", "", f"duckdb://{tmp}/shadow-{round_}.duckdb"],
    }
    rows = [
        _measure(name, args, path, BODIES, opts)
        for name, args in local.items()
        if name in opts.scenarios
    ]
    if "remote" not in opts.scenarios:
        return rows
    remote_port = free_port()
    remote = subprocess.Popen([sys.executable, __file__, "serve-remote", str(remote_port)])
    try:
        wait_until_up(f"http://127.0.0.1:{remote_port}/healthz")
        url = f"http://127.0.0.1:{remote_port}/predict"
        direct = {"scenario": "remote-direct"}
        remote_opts = argparse.Namespace(**{**vars(opts), "rate": opts.remote_rate or opts.rate})
        direct.update(
            measured_latency(remote.pid, remote_port, "/predict", [REMOTE_BODY], remote_opts)
        )
        direct["max_rps"] = throughput(remote_port, "/predict", [REMOTE_BODY], opts.seconds)
        rows.append(direct)
        args = ["serve-gateway", "ab", url, f"duckdb://{tmp}/remote-{round_}.duckdb"]
        rows.append(_measure("remote-gateway", args, path, BODIES, remote_opts))
    finally:
        remote.terminate()
        remote.wait(30)
    return rows


def run(opts: Any) -> list[dict[str, Any]]:
    """``opts.repeat`` rounds of every scenario in turn (so that the machine's load drifts
    over all of them alike); each scenario's figures are the medians over the rounds."""
    tmp = Path(tempfile.mkdtemp())
    rounds = [run_once(opts, tmp, i) for i in range(opts.repeat)]
    rows = []
    for index, first in enumerate(rounds[0]):
        runs = [r[index] for r in rounds]
        row: dict[str, Any] = {"scenario": first["scenario"], "rounds": len(runs)}
        keys = ("p50_ms", "p99_ms", "cpu_us_per_request", "max_rps", "steal_pct")
        for key in (*keys, "client_lag_p99_ms"):
            values = [r[key] for r in runs if r[key] is not None]
            row[key] = statistics.median(values) if values else None
        row["errors"] = sum(r["errors"] for r in runs)
        row["n"] = sum(r["n"] for r in runs)
        row["p99_ms_each"] = [round(r["p99_ms"], 3) for r in runs]
        rows.append(row)
    return rows


def report(rows: list[dict[str, Any]], rate: float, remote_rate: float) -> str:
    by = {r["scenario"]: r for r in rows}
    lines = [
        f"latency at {rate:g} req/s ({remote_rate:g} for remote-*), open loop; throughput with "
        f"wrk -t1 -c32 (closed loop); medians of {rows[0]['rounds']} rounds",
        "",
    ]
    header = f"{'scenario':16} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'max req/s':>10}"
    lines.append(
        header + f" {'CPU us/req':>11} {'steal %':>8} {'client lag p99':>15}  p99 ms of each round"
    )
    for r in rows:
        rps = "n/a" if r["max_rps"] is None else f"{r['max_rps']:.0f}"
        each = " ".join(f"{v:.2f}" for v in r["p99_ms_each"])
        lines.append(
            f"{r['scenario']:16} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['errors']:7d} {rps:>10}"
            f" {r['cpu_us_per_request']:11.0f} {r['steal_pct']:8.1f}"
            f" {r['client_lag_p99_ms']:15.3f}  {each}"
        )
    lines.append("")

    def compare(name: str, base: str, goal: str) -> None:
        if name not in by or base not in by:
            return
        a, b = by[name], by[base]
        added = a["p99_ms"] - b["p99_ms"]
        ratio = (a["max_rps"] / b["max_rps"]) if a["max_rps"] and b["max_rps"] else float("nan")
        cpu = a["cpu_us_per_request"] - b["cpu_us_per_request"]
        cpu_ratio = b["cpu_us_per_request"] / a["cpu_us_per_request"]
        lines.append(
            f"{name:>14} vs {base:14}: p50 {a['p50_ms'] - b['p50_ms']:+.3f} ms, p99 {added:+.3f} "
            f"ms, throughput {ratio:.0%}, CPU {cpu:+.0f} us/req (CPU-bound throughput "
            f"{cpu_ratio:.0%})   {goal}"
        )

    compare("split", "bare", "[goal: p99 < +1 ms, throughput >= 70%]")
    compare("shadow", "split", "[goal: shadow adds < 0.5 ms p99]")
    compare("shadow", "bare", "")
    compare("remote-gateway", "remote-direct", "")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve-bare":
        return serve_bare(int(sys.argv[2]))
    if len(sys.argv) > 1 and sys.argv[1] == "serve-gateway":
        mode, remote, store, port = sys.argv[2:6]
        return serve_gateway(int(port), mode, remote or None, store)
    if len(sys.argv) > 1 and sys.argv[1] == "serve-remote":
        return serve_remote(int(sys.argv[2]))
    if len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        port, path, bodies, rate, seconds, result = sys.argv[2:8]
        return _loadgen(int(port), path, Path(bodies), float(rate), float(seconds), Path(result))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--remote-rate", type=float, default=None,
        help="rate of scenario (d) (default: --rate); a remote model doubles the work per "
        "request, so a 2-core machine may need less",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of every scenario; medians are printed"
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    opts = parser.parse_args()
    opts.scenarios = opts.scenarios.split(",")
    unknown = sorted(set(opts.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")
    rows = run(opts)
    print(report(rows, opts.rate, opts.remote_rate or opts.rate))
    if opts.json:
        print(json.dumps(rows, indent=2))
    return None


if __name__ == "__main__":
    main()
