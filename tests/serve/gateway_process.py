"""Start `proving serve` in a subprocess on a free loopback port (shared by the e2e tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from proving.testing.model_server import free_port, wait_until_up

ROOT = Path(__file__).parents[2]
TOKEN = "e2e-token"


class GatewayProcess:
    """`proving serve --spec ...` as a real uvicorn process on 127.0.0.1."""

    def __init__(self, specs: list[Path], store: str, *extra: str) -> None:
        self._client: httpx.Client | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # `python -m proving.cli.serve` runs the same command as `proving serve` without
        # importing the other command groups.
        args = [
            sys.executable,
            "-m",
            "proving.cli.serve",
            "--store",
            store,
            "--port",
            str(self.port),
        ]
        for spec in specs:
            args += ["--spec", str(spec)]
        env = {
            **os.environ,
            "PROVING_ADMIN_TOKEN": TOKEN,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }
        self.process = subprocess.Popen(
            [*args, "--log-level", "warning", "--reload-interval", "0.2", *extra],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_until_up(f"{self.url}/readyz", process=self.process)
        except RuntimeError as exc:
            output = self.process.stdout.read().decode() if self.process.stdout else ""
            raise RuntimeError(f"{exc}\n{output}") from None

    @property
    def client(self) -> httpx.Client:
        # One pooled client: a new client per call would build an SSL context each time.
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=10.0)
        return self._client

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.put(path, **kwargs)

    def terminate(self, timeout: float = 20.0) -> int:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.terminate()
