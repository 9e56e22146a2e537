"""Kill test: what the HTTP ingestion API acknowledged survives SIGKILL, stored once.

A child process runs ``proving ingest`` (uvicorn, DuckDB file) on 127.0.0.1. Three
threads post batches over real HTTP; right after an acknowledgement arrives the child gets
SIGKILL. Then: every acknowledged event is in the file, and none twice. The child is
restarted on the same file, every batch (acknowledged or not) is posted again, and each
event is still stored exactly once.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from proving.telemetry.duckdb_store import DuckDBStore

pytestmark = pytest.mark.slow
BATCH = 40
INGEST = [
    sys.executable,
    "-c",
    "import typer; from proving.cli.telemetry import ingest_command; typer.run(ingest_command)",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`proving ingest` in a child process."""

    def __init__(self, db: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("ab")
        # The `proving ingest` command, run through its own module: the full CLI app
        # imports every stage (scipy, ...), which only slows the restarts down.
        self.proc = subprocess.Popen(
            [*INGEST, "--store", f"duckdb://{db}", "--port", str(self.port)],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}; see {log}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise AssertionError(f"server did not come up in 60 s; see {log}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: -15 is a clean exit.
        assert self.proc.wait(30) in (0, -signal.SIGTERM)
        self.log.close()


def batch(sender: int, k: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "exposure",
            "event_id": f"s{sender}-b{k}-{i}",
            "experiment": "kill",
            "variant": "ab"[i % 2],
            "unit_id": f"u{sender}-{k}-{i}",
        }
        for i in range(BATCH)
    ]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "events.duckdb"


def stored_ids(db: Path) -> list[str]:
    store = DuckDBStore(db)
    try:
        return list(store.read_table("exposures").column("event_id").to_pylist())
    finally:
        store.close()


def test_acknowledged_events_survive_sigkill_and_are_stored_once(db: Path, tmp_path: Path) -> None:
    server = Server(db, tmp_path / "server.log")
    acked: set[str] = set()
    posted: list[list[dict[str, Any]]] = []
    lock = threading.Lock()
    first_ack_after = threading.Event()
    stop = threading.Event()

    def send(sender: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            k = 0
            while not stop.is_set():
                body = batch(sender, k)
                with lock:
                    posted.append(body)
                try:
                    r = client.post("/v1/events", json={"events": body})
                except httpx.HTTPError:
                    return  # the server died mid-request: this batch is not acknowledged
                if r.status_code == 200:
                    with lock:
                        acked.update(e["event_id"] for e in body)
                        if len(acked) >= 10 * BATCH:
                            first_ack_after.set()
                k += 1

    threads = [threading.Thread(target=send, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    assert first_ack_after.wait(60), "the server acknowledged too little in 60 s"
    server.kill()  # SIGKILL right after an acknowledgement, with requests in flight
    stop.set()
    for t in threads:
        t.join(15)

    with lock:
        acknowledged = set(acked)
        everything = [e for body in posted for e in body]
    ids = stored_ids(db)
    assert len(ids) == len(set(ids)), "an event was stored twice"
    missing = acknowledged - set(ids)
    assert not missing, f"{len(missing)} acknowledged events were lost"
    # Unacknowledged in-flight batches may or may not have been stored; nothing else is.
    assert set(ids) <= {e["event_id"] for e in everything}

    # Restart on the same file and re-post everything: each event ends up stored once.
    server = Server(db, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for start in range(0, len(everything), 1000):
                r = client.post("/v1/events", json=everything[start : start + 1000])
                assert r.status_code == 200, r.text
    finally:
        server.stop()
    ids = stored_ids(db)
    assert len(ids) == len(set(ids)) == len({e["event_id"] for e in everything})
