"""A fake remote model server (KServe V1 protocol), to run in its own process.

``POST /v1/models/{name}:predict`` (and ``POST /predict``) take ``{"instances": [...]}``
and answer ``{"predictions": [...]}``. Each prediction is ``bias + sum`` of the numeric
values of the instance's features; an instance with ``candidates`` is a ranking request
and gets the candidates sorted (``order`` ``asc`` or ``desc``). Behaviour changes at
runtime with ``POST /control {"mode": "ok" | "error" | "hang" | "slow", "delay": s}``:
``error`` answers 500, ``hang`` never answers, ``slow`` waits ``delay`` seconds.
``GET /stats`` counts the requests received.

Run it with ``python -m proving.testing.model_server --port 8081 --bias 0.1``, or from a
test with :class:`ModelServerProcess` (a real subprocess on a free loopback port).

Example:
    >>> app = create_model_server(bias=0.5)
    >>> sorted(r.path for r in app.routes if "predict" in r.path)
    ['/predict', '/v1/models/{name}:predict']
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import Any, Literal, Self

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

__all__ = ["ModelServerProcess", "create_model_server", "free_port"]

Mode = Literal["ok", "error", "hang", "slow"]


class _Control(BaseModel):
    mode: Mode = "ok"
    delay: float = 0.0


class _Instances(BaseModel):
    instances: list[Any]


def _score(instance: Any, bias: float) -> float:
    values = instance.values() if isinstance(instance, dict) else instance
    if not isinstance(values, list) and not hasattr(values, "__iter__"):
        values = [values]
    total = sum(float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool))
    return bias + total


def _predict_one(instance: Any, bias: float, order: str) -> Any:
    if isinstance(instance, dict) and isinstance(instance.get("candidates"), list):
        return sorted(instance["candidates"], key=str, reverse=order == "desc")
    if isinstance(instance, dict) and isinstance(instance.get("features"), dict | list):
        return _score(instance["features"], bias)
    return _score(instance, bias)


def create_model_server(bias: float = 0.0, order: str = "asc") -> FastAPI:
    """The fake model server as an app (see the module docstring)."""
    app = FastAPI(title="proving fake model server")
    control = _Control()
    stats = {"requests": 0}

    async def predict(body: _Instances) -> Any:
        stats["requests"] += 1
        if control.mode == "hang":
            await asyncio.Event().wait()
        if control.mode == "slow":
            await asyncio.sleep(control.delay)
        if control.mode == "error":
            return JSONResponse({"error": "fake model server told to fail"}, status_code=500)
        return {"predictions": [_predict_one(x, bias, order) for x in body.instances]}

    async def kserve(name: str, body: _Instances) -> Any:
        return await predict(body)

    app.add_api_route("/predict", predict, methods=["POST"])
    app.add_api_route("/v1/models/{name}:predict", kserve, methods=["POST"])

    @app.post("/control")
    async def set_control(body: _Control) -> dict[str, Any]:
        control.mode, control.delay = body.mode, body.delay
        return body.model_dump()

    @app.get("/stats")
    async def get_stats() -> dict[str, int]:
        return stats

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(
    url: str, timeout: float = 20.0, process: subprocess.Popen[Any] | None = None
) -> None:
    """Poll ``url`` until it answers 200 (raise if the process died or time ran out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before {url} was up")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout} s")


class ModelServerProcess:
    """The fake model server in a subprocess on a free 127.0.0.1 port (a context manager)."""

    def __init__(self, bias: float = 0.0, order: str = "asc") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.predict_url = f"{self.url}/predict"
        self._args = ["--port", str(self.port), "--bias", str(bias), "--order", order]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start the process and wait until it answers."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "proving.testing.model_server", *self._args],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_up(f"{self.url}/healthz", process=self.process)
        return self

    def set_mode(self, mode: Mode, delay: float = 0.0) -> None:
        """Change the behaviour (ok, error, hang, slow)."""
        httpx.post(f"{self.url}/control", json={"mode": mode, "delay": delay}, timeout=5.0)

    def requests(self) -> int:
        """Requests the server received."""
        return int(httpx.get(f"{self.url}/stats", timeout=5.0).json()["requests"])

    def stop(self) -> None:
        """Terminate the process."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m proving.testing.model_server --port N [--bias B] [--order asc|desc]``."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--bias", type=float, default=0.0)
    parser.add_argument("--order", choices=["asc", "desc"], default="asc")
    args = parser.parse_args(argv)
    app = create_model_server(args.bias, args.order)
    # A short graceful shutdown: requests held by `hang` mode would otherwise keep it open.
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", access_log=False,
        timeout_graceful_shutdown=1,
    )  # fmt: skip


if __name__ == "__main__":
    main()
