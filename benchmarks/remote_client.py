"""Remote model client: CPU per call of the gateway's RemoteBackend against other clients.

One model server (``proving.testing.model_server``, KServe V1) runs in its own process;
this process calls it with each client in turn, in the same run and on the same event loop:

- ``RemoteBackend``: ``proving.serve.RemoteBackend.predict`` (pool, total timeout,
  retries, circuit breaker, KServe parsing included);
- ``httpx.AsyncClient``: ``client.post(url, json=...)`` with default settings (what the
  backend did before), and ``httpx tuned``: the same with ``trust_env=False``, a
  pre-encoded body and fixed headers;
- ``httpcore pool``: ``httpcore.AsyncConnectionPool.request`` with a pre-encoded body;
- ``aiohttp``: ``ClientSession.post`` (a reference: not a dependency of proving).

Each client makes ``--calls`` calls one after another (sequential), then the same number
with ``--concurrency`` calls in flight; the clients take turns within every repetition so
that the machine's load drifts over all of them alike. Printed: the median over
``--repeats`` repetitions of the client process's CPU time per call (``time.process_time``)
and of the wall time per call, and CPU ratios. The server's own CPU is not counted.

Run:  .venv/bin/python benchmarks/remote_client.py [--calls 2000] [--repeats 5]
      [--concurrency 32] [--loop uvloop|asyncio|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpcore
import httpx

from proving.serve import RemoteBackend
from proving.testing.model_server import ModelServerProcess

FEATURES = {"x1": 0.3, "x2": -1.2, "x3": 2.0, "x4": 0.7}
EXPECTED = sum(FEATURES.values())  # the fake server answers bias (0) + sum of the features
BODY = json.dumps({"instances": [FEATURES]}, separators=(",", ":")).encode()
HEADERS = {"content-type": "application/json"}

Call = Callable[[], Awaitable[Any]]


class Clients:
    """Every client under test, opened on the running loop."""

    def __init__(self, url: str, max_connections: int) -> None:
        self.url = url
        self.backend = RemoteBackend(url, timeout=10.0, max_connections=max_connections)
        self.httpx = httpx.AsyncClient(
            timeout=10.0, limits=httpx.Limits(max_connections=max_connections)
        )
        self.httpx_tuned = httpx.AsyncClient(
            timeout=10.0,
            limits=httpx.Limits(max_connections=max_connections),
            trust_env=False,
            headers=HEADERS,
        )
        self.httpcore = httpcore.AsyncConnectionPool(max_connections=max_connections)
        self.aiohttp = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max_connections))

    def calls(self) -> dict[str, Call]:
        url = self.url

        async def ours() -> Any:
            return await self.backend.predict(FEATURES)

        async def plain_httpx() -> Any:
            response = await self.httpx.post(url, json={"instances": [FEATURES]})
            return response.json()["predictions"][0]

        async def tuned_httpx() -> Any:
            response = await self.httpx_tuned.post(url, content=BODY)
            return json.loads(response.content)["predictions"][0]

        async def raw_httpcore() -> Any:
            response = await self.httpcore.request(
                "POST", url, headers=[(b"content-type", b"application/json")], content=BODY
            )
            return json.loads(response.content)["predictions"][0]

        async def reference_aiohttp() -> Any:
            async with self.aiohttp.post(url, data=BODY, headers=HEADERS) as response:
                return json.loads(await response.read())["predictions"][0]

        return {
            "RemoteBackend": ours,
            "httpx.AsyncClient": plain_httpx,
            "httpx tuned": tuned_httpx,
            "httpcore pool": raw_httpcore,
            "aiohttp": reference_aiohttp,
        }

    async def aclose(self) -> None:
        await self.backend.aclose()
        await self.httpx.aclose()
        await self.httpx_tuned.aclose()
        await self.httpcore.aclose()
        await self.aiohttp.close()


async def timed(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """CPU and wall microseconds per call for ``calls`` calls, ``concurrency`` in flight."""

    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    shares = [calls // concurrency + (i < calls % concurrency) for i in range(concurrency)]
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(n) for n in shares))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / calls * 1e6, wall / calls * 1e6


async def measure(
    url: str, calls: int, repeats: int, concurrency: int
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    clients = Clients(url, max_connections=max(concurrency, 1))
    try:
        table = clients.calls()
        for name, call in table.items():  # check the answer, warm the pools up
            got = await call()
            if abs(float(got) - EXPECTED) > 1e-9:
                raise SystemExit(f"{name} answered {got!r}; expected {EXPECTED}")
            await timed(call, 200, concurrency)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(repeats):
            for mode, in_flight in (("sequential", 1), (f"{concurrency} in flight", concurrency)):
                for name, call in table.items():
                    sample = await timed(call, calls, in_flight)
                    results.setdefault((name, mode), []).append(sample)
        return results
    finally:
        await clients.aclose()


def report(loop: str, results: dict[tuple[str, str], list[tuple[float, float]]]) -> None:
    modes = list(dict.fromkeys(mode for _, mode in results))
    names = list(dict.fromkeys(name for name, _ in results))
    medians = {
        key: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v))
        for key, v in results.items()
    }
    print(f"\nevent loop: {loop}")
    header = f"| client | {' | '.join(f'{m}: CPU µs/call | wall µs/call' for m in modes)} |"
    print(header)
    print("|---" * (1 + 2 * len(modes)) + "|")
    for name in names:
        cells = " | ".join(
            f"{medians[(name, m)][0]:,.0f} | {medians[(name, m)][1]:,.0f}" for m in modes
        )
        print(f"| {name} | {cells} |")
    for mode in modes:
        ours = medians[("RemoteBackend", mode)][0]
        ratios = ", ".join(
            f"{name} / RemoteBackend = {medians[(name, mode)][0] / ours:.2f}"
            for name in names
            if name != "RemoteBackend"
        )
        print(f"CPU ratios, {mode}: {ratios}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--loop", choices=["uvloop", "asyncio", "both"], default="both")
    args = parser.parse_args(argv)
    if args.calls < args.concurrency or args.repeats < 1 or args.concurrency < 1:
        parser.error("need --calls >= --concurrency >= 1 and --repeats >= 1")
    loops = ["uvloop", "asyncio"] if args.loop == "both" else [args.loop]
    print(
        f"{args.calls} calls x {args.repeats} repeats per client and mode; medians. "
        f"Python {sys.version.split()[0]}, httpx {httpx.__version__}, "
        f"httpcore {httpcore.__version__}, aiohttp {aiohttp.__version__}."
    )
    with ModelServerProcess() as server:
        for loop in loops:
            work = measure(server.predict_url, args.calls, args.repeats, args.concurrency)
            if loop == "uvloop":  # what uvicorn runs the gateway on when uvloop is installed
                import uvloop

                results = uvloop.run(work)
            else:
                results = asyncio.run(work)
            report(loop, results)


if __name__ == "__main__":
    main()
