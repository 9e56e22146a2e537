"""Model backends: in-process callables, scikit-learn (object and joblib file), entry points,
and the remote backend: retries, timeouts and circuit breaker (httpx MockTransport), and
its connection pool against scripted servers on real sockets (HTTP, TLS, proxy) and the
fake model server in a subprocess."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from proving.errors import ServeError
from proving.serve.backends import (
    BackendError,
    BadFeaturesError,
    CallableBackend,
    RemoteBackend,
    SklearnBackend,
    load_backend,
)
from proving.serve.breaker import CircuitBreaker, CircuitOpenError
from proving.spec import ModelRefSpec
from proving.testing.model_server import ModelServerProcess, free_port


def _fitted() -> LogisticRegression:
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (x["a"] - x["b"] > 0).astype(int)
    return LogisticRegression().fit(x, y)


def test_sklearn_backend_matches_the_estimator_and_orders_dict_features(tmp_path: Path) -> None:
    model = _fitted()
    backend = SklearnBackend(model, method="predict_proba")
    rows = [{"b": 0.5, "a": 1.0}, {"a": -2.0, "b": 0.1}]
    got = asyncio.run(backend.predict_batch(rows))
    expected = model.predict_proba(pd.DataFrame(rows)[["a", "b"]])[:, 1]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    loaded = load_backend(ModelRefSpec(name="m", version="3", uri=f"file://{path}"))
    assert isinstance(loaded, SklearnBackend) and loaded.version == "3"
    expected_one = model.predict(pd.DataFrame({"a": [1.0], "b": [0.5]}))[0]
    assert asyncio.run(loaded.predict([1.0, 0.5])) == expected_one
    with pytest.raises(BadFeaturesError, match=r"features \['b'\] are missing"):
        asyncio.run(backend.predict({"a": 1.0}))


def test_entry_point_and_registered_models() -> None:
    ref = ModelRefSpec(name="c", entry_point="tests.serve.e2e_models:champion")
    assert asyncio.run(load_backend(ref).predict({})) == 1.0
    backend = load_backend(ModelRefSpec(name="x", version="2"), {"x:2": lambda f: f["v"] * 3})
    assert asyncio.run(backend.predict({"v": 2})) == 6
    threaded = CallableBackend(lambda f: f + 1, threaded=True)
    assert asyncio.run(threaded.predict(1)) == 2
    with pytest.raises(ServeError, match="has no attribute 'nope'"):
        load_backend(ModelRefSpec(name="c", entry_point="tests.serve.e2e_models:nope"))
    with pytest.raises(ServeError, match="not among the registered models"):
        load_backend(ModelRefSpec(name="ghost"))
    with pytest.raises(ServeError, match="cannot serve uri 's3://b/m'"):
        load_backend(ModelRefSpec(name="s", uri="s3://b/m"))


def test_inline_backends_answer_synchronously_and_others_refuse_to() -> None:
    model = _fitted()
    sklearn = SklearnBackend(model, method="predict_proba")
    assert sklearn.inline
    expected = model.predict_proba(pd.DataFrame({"a": [1.0], "b": [0.5]}))[0, 1]
    assert sklearn.predict_inline({"b": 0.5, "a": 1.0}) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(BadFeaturesError, match=r"features \['b'\] are missing"):
        sklearn.predict_inline({"a": 1.0})
    with pytest.raises(BadFeaturesError, match="model 'model'"):  # sklearn's own check
        sklearn.predict_inline([1.0, 2.0, 3.0])
    plain = CallableBackend(lambda f: f * 2, name="double")
    assert plain.inline and plain.predict_inline(21) == 42

    async def coroutine(f: Any) -> Any:
        return f

    not_inline = [
        CallableBackend(coroutine, name="async"),
        CallableBackend(lambda f: f, name="threaded", threaded=True),
        SklearnBackend(model, name="threaded-sk", threaded=True),
        _remote(lambda request: httpx.Response(200, json={"predictions": [1]})),
    ]
    for backend in not_inline:
        assert not backend.inline
        with pytest.raises(NotImplementedError, match=f"'{backend.name}' is not inline"):
            backend.predict_inline({})


def _remote(handler: Any, **kwargs: Any) -> RemoteBackend:
    return RemoteBackend("http://model/predict", transport=httpx.MockTransport(handler), **kwargs)


def test_remote_speaks_kserve_v1() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        import json

        instances = json.loads(request.content)["instances"]
        return httpx.Response(200, json={"predictions": [x["v"] * 2 for x in instances]})

    assert asyncio.run(_remote(handler).predict_batch([{"v": 1}, {"v": 4}])) == [2, 8]


def test_remote_retries_only_what_is_safe() -> None:
    calls: list[str] = []

    def connect_fails_once(request: httpx.Request) -> httpx.Response:
        calls.append("c")
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"predictions": [1]})

    assert asyncio.run(_remote(connect_fails_once, retries=1).predict({})) == 1
    assert len(calls) == 2  # a connection never made is always retried

    calls.clear()

    def unavailable(request: httpx.Request) -> httpx.Response:
        calls.append("u")
        return httpx.Response(503, text="busy")

    with pytest.raises(BackendError, match="HTTP 503"):
        asyncio.run(_remote(unavailable, retries=2).predict({}))
    assert len(calls) == 1  # not idempotent: a 503 may have run it, no retry
    calls.clear()
    with pytest.raises(BackendError, match="HTTP 503"):
        asyncio.run(_remote(unavailable, retries=2, idempotent=True).predict({}))
    assert len(calls) == 3


def test_remote_bad_input_timeout_and_breaker() -> None:
    def refuses(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": "bad"})

    with pytest.raises(BadFeaturesError, match="refused the features"):
        asyncio.run(_remote(refuses).predict({}))

    async def hangs(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    backend = _remote(hangs, timeout=0.05, breaker=CircuitBreaker(failure_threshold=2))

    async def twice() -> None:
        for _ in range(2):
            with pytest.raises(BackendError, match=r"no answer within 0\.05 s") as info:
                await backend.predict({})
            assert info.value.kind == "timeout"
        with pytest.raises(CircuitOpenError, match=r"circuit breaker open"):
            await backend.predict({})

    asyncio.run(twice())


def test_remote_refuses_bad_settings_and_features_that_are_not_json() -> None:
    with pytest.raises(ServeError, match=r"timeout must be > 0 seconds; got 0"):
        RemoteBackend("http://model/predict", timeout=0)
    with pytest.raises(ServeError, match=r"retries must be >= 0; got -1"):
        RemoteBackend("http://model/predict", retries=-1)
    with pytest.raises(ServeError, match=r"max_connections must be >= 1; got 0"):
        RemoteBackend("http://model/predict", max_connections=0)
    with pytest.raises(ServeError, match=r"url must be http\(s\); got 'ftp://m'"):
        RemoteBackend("ftp://m")

    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"predictions": [1]})

    backend = _remote(handler, breaker=CircuitBreaker(failure_threshold=1))
    for bad in ({"x": float("nan")}, {"x": float("inf")}, {"x": object()}):
        with pytest.raises(BadFeaturesError, match="cannot be sent as JSON"):
            asyncio.run(backend.predict(bad))
    assert calls == [] and backend.breaker.state == "closed"  # never sent, not a failure
    assert asyncio.run(backend.predict({"x": "é"})) == 1
    assert calls[0].content == '{"instances":[{"x":"é"}]}'.encode()  # compact UTF-8


def test_remote_breaker_counts_callers_that_give_up() -> None:
    """A caller's deadline shorter than the backend's (the gateway's challenger timeout)
    cancels the call: it counts as a failure, and a cancelled half-open trial re-opens the
    breaker instead of keeping its one trial slot forever."""
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=5.0, clock=lambda: now[0])

    async def hangs(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    backend = _remote(hangs, timeout=10.0, breaker=breaker)

    async def give_up() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await backend.predict({})

    async def scenario() -> None:
        states: list[str] = []
        for _ in range(2):
            await give_up()
            states.append(breaker.state)
        with pytest.raises(CircuitOpenError):
            await backend.predict({})
        now[0] = 5.0
        await give_up()  # the half-open trial, abandoned
        states.append(breaker.state)
        assert states == ["closed", "open", "open"]
        now[0] = 10.0
        assert breaker.allow()  # a new trial is possible: the breaker is not wedged

    asyncio.run(scenario())


# -- the built-in connection pool, against scripted servers on real sockets -----------------


class _Seen:
    def __init__(self, target: str, headers: dict[str, str], body: bytes) -> None:
        self.target = target
        self.headers = headers
        self.body = body


Answer = Callable[[_Seen], Awaitable[bytes | None]]


def _answer(obj: Any = None, *, status: int = 200, extra: bytes = b"", body: bytes = b"") -> bytes:
    payload = body or json.dumps(obj).encode()
    return (
        f"HTTP/1.1 {status} X\r\ncontent-length: {len(payload)}\r\n".encode()
        + extra
        + b"\r\n"
        + payload
    )


def _predictions(seen: _Seen) -> list[Any]:
    return [x["v"] * 2 for x in json.loads(seen.body)["instances"]]


class _ScriptedServer:
    """An HTTP/1.1 server in the test's event loop; ``answer`` returns the raw response,
    or None to drop the connection without one. ``close_idle`` closes every connection
    after its answer without saying so (as a keep-alive timeout does)."""

    def __init__(
        self,
        answer: Answer,
        ssl_context: ssl.SSLContext | None = None,
        close_idle: bool = False,
    ) -> None:
        self.answer = answer
        self.ssl_context = ssl_context
        self.close_idle = close_idle
        self.connections = 0
        self.requests: list[_Seen] = []
        self.open = 0
        self.most_open = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> _ScriptedServer:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.ssl_context
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/v1/models/m:predict"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                lines = head.split("\r\n")
                target = lines[0].split(" ")[1]
                headers = dict(
                    (k.strip().lower(), v.strip())
                    for k, v in (line.split(":", 1) for line in lines[1:] if line)
                )
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = _Seen(target, headers, body)
                self.requests.append(seen)
                raw = await self.answer(seen)
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
                if self.close_idle or b"connection: close" in raw.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


def test_pool_keeps_connections_alive_and_bounds_them() -> None:
    async def answer(seen: _Seen) -> bytes:
        await asyncio.sleep(0.005)
        return _answer({"predictions": _predictions(seen)})

    async def scenario() -> None:
        async with _ScriptedServer(answer) as server:
            backend = RemoteBackend(server.url(), timeout=5.0, max_connections=4)
            for v in range(5):
                assert await backend.predict({"v": v}) == 2 * v
            assert server.connections == 1  # one keep-alive connection, reused
            seen = server.requests[0]
            assert seen.target == "/v1/models/m:predict"
            assert seen.headers["host"] == f"127.0.0.1:{server.port}"
            assert seen.headers["content-type"] == "application/json"
            assert seen.body == b'{"instances":[{"v":0}]}'
            got = await asyncio.gather(*(backend.predict({"v": v}) for v in range(40)))
            assert got == [2 * v for v in range(40)]
            assert server.most_open == 4  # 40 in flight, never more than the pool's size
            assert await backend.predict_batch([{"v": 1}, {"v": 2}]) == [2, 4]
            await backend.aclose()
            with pytest.raises(BackendError, match="pool is closed"):
                await backend.predict({"v": 1})

    asyncio.run(scenario())


def test_pool_replaces_connections_the_server_closed() -> None:
    async def answer(seen: _Seen) -> bytes:
        return _answer({"predictions": _predictions(seen)})

    async def says_close(seen: _Seen) -> bytes:
        return _answer({"predictions": _predictions(seen)}, extra=b"connection: close\r\n")

    async def scenario() -> None:
        async with _ScriptedServer(answer, close_idle=True) as server:
            backend = RemoteBackend(server.url(), retries=0)
            for v in range(3):
                assert await backend.predict({"v": v}) == 2 * v
                await asyncio.sleep(0.05)  # the server's FIN arrives while the connection idles
            assert server.connections == 3
            await backend.aclose()
        async with _ScriptedServer(says_close) as server:
            backend = RemoteBackend(server.url(), retries=0)
            for v in range(3):  # no pause: the header said so
                assert await backend.predict({"v": v}) == 2 * v
            assert server.connections == 3
            await backend.aclose()

    asyncio.run(scenario())


def test_pool_timeout_frees_the_slot_and_drops_the_connection() -> None:
    async def first_hangs(seen: _Seen) -> bytes:
        if len(server.requests) == 1:
            await asyncio.sleep(10)
        return _answer({"predictions": _predictions(seen)})

    server = _ScriptedServer(first_hangs)

    async def scenario() -> None:
        async with server:
            backend = RemoteBackend(server.url(), timeout=0.1, max_connections=1)
            with pytest.raises(BackendError, match=r"no answer within 0\.1 s") as info:
                await backend.predict({"v": 1})
            assert info.value.kind == "timeout"
            # The only slot is free again, and the half-used connection is not reused.
            assert await backend.predict({"v": 2}) == 4
            assert server.connections == 2
            await backend.aclose()

    asyncio.run(scenario())


def test_pool_maps_network_failures_and_retries_only_what_is_safe() -> None:
    async def drops(seen: _Seen) -> bytes | None:
        return None

    async def scenario() -> None:
        dead = f"http://127.0.0.1:{free_port()}/predict"
        with pytest.raises(BackendError, match="cannot connect") as info:
            await RemoteBackend(dead, retries=2).predict({"v": 1})
        assert info.value.kind == "unavailable"
        async with _ScriptedServer(drops) as server:
            backend = RemoteBackend(server.url(), retries=2)
            with pytest.raises(BackendError, match="RemoteProtocolError") as info:
                await backend.predict({"v": 1})
            assert info.value.kind == "error" and len(server.requests) == 1  # may have run
            idempotent = RemoteBackend(server.url(), retries=2, idempotent=True)
            with pytest.raises(BackendError, match="Server disconnected"):
                await idempotent.predict({"v": 1})
            assert len(server.requests) == 4

    asyncio.run(scenario())


def test_pool_sends_large_and_reads_chunked_compressed_large_and_error_answers() -> None:
    big = ["x" * 1000] * 3000  # 3 MB: many reads, some split at httpcore's 64 KiB

    async def answer(seen: _Seen) -> bytes:
        kind = json.loads(seen.body)["instances"][0]["kind"]
        if kind == "chunked":
            payload = json.dumps({"predictions": [7]}).encode()
            half = len(payload) // 2
            chunks = b"".join(
                b"%x\r\n%s\r\n" % (len(p), p) for p in (payload[:half], payload[half:])
            )
            return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        if kind == "gzip":
            body = gzip.compress(json.dumps({"predictions": [8]}).encode())
            return _answer(body=body, extra=b"content-encoding: gzip\r\n")
        if kind == "big":
            return _answer({"predictions": [big]})
        if kind == "size":
            return _answer({"predictions": [len(seen.body)]})
        if kind == "bad":
            return _answer({"detail": "feature x missing"}, status=422)
        return _answer(body=b"<html>oops</html>", status=500)

    async def scenario() -> None:
        async with _ScriptedServer(answer) as server:
            backend = RemoteBackend(server.url(), timeout=5.0)
            assert await backend.predict({"kind": "chunked"}) == 7
            assert await backend.predict({"kind": "gzip"}) == 8
            assert await backend.predict({"kind": "big"}) == big
            request = {"kind": "size", "pad": "y" * 8_000_000}  # fills the socket's buffers
            sent = json.dumps({"instances": [request]}, separators=(",", ":"))
            assert await backend.predict(request) == len(sent)
            with pytest.raises(BadFeaturesError, match=r"HTTP 422: .*feature x missing"):
                await backend.predict({"kind": "bad"})
            with pytest.raises(BackendError, match=r"HTTP 500: <html>oops</html>"):
                await backend.predict({"kind": "500"})
            assert server.connections == 1  # every answer left the connection reusable
            await backend.aclose()

    asyncio.run(scenario())


def test_pool_speaks_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cryptography", reason="generating a test certificate needs it")
    cert, key = _self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def answer(seen: _Seen) -> bytes:
        return _answer({"predictions": _predictions(seen)})

    async def scenario(trusted: bool) -> None:
        async with _ScriptedServer(answer, ssl_context=server_context) as server:
            backend = RemoteBackend(server.url("https"), timeout=5.0, retries=0)
            if trusted:
                assert await backend.predict({"v": 2}) == 4
                assert await backend.predict({"v": 3}) == 6
                assert server.connections == 1
            else:
                with pytest.raises(BackendError, match="CERTIFICATE_VERIFY_FAILED"):
                    await backend.predict({"v": 2})
            await backend.aclose()

    asyncio.run(scenario(trusted=False))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # honoured, as by httpx
    asyncio.run(scenario(trusted=True))


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proving test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_remote_goes_through_the_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    async def proxy(seen: _Seen) -> bytes:
        return _answer({"predictions": _predictions(seen)})

    async def scenario() -> None:
        async with _ScriptedServer(proxy) as server:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
            backend = RemoteBackend("http://model.invalid:8080/predict", retries=0)
            assert await backend.predict({"v": 5}) == 10
            assert server.requests[0].target == "http://model.invalid:8080/predict"
            await backend.aclose()
            # NO_PROXY wins: the backend connects directly (the proxy would answer 10).
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            direct = RemoteBackend(server.url(), retries=0)
            assert await direct.predict({"v": 6}) == 12
            assert server.requests[-1].target == "/v1/models/m:predict"
            await direct.aclose()

    asyncio.run(scenario())


def test_remote_against_the_model_server_process_across_event_loops() -> None:
    with ModelServerProcess(bias=0.5) as server:
        backend = RemoteBackend(server.predict_url, timeout=5.0)
        assert asyncio.run(backend.predict({"a": 1.0, "b": 2.0})) == 3.5
        # A second asyncio.run: the idle connection of the first loop is not reused.
        assert asyncio.run(backend.predict_batch([[1.0], [2.0, 3.0]])) == [1.5, 5.5]
        assert server.requests() == 2
        server.set_mode("error")
        with pytest.raises(BackendError, match=r"HTTP 500: .*told to fail"):
            asyncio.run(backend.predict([1.0]))
        asyncio.run(backend.aclose())
