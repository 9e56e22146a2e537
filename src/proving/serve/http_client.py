"""The remote model backend's HTTP client: keep-alive HTTP/1.1 to one origin, cheaply.

:class:`httpx.AsyncClient` costs about 0.5 ms of CPU a call on a small machine, and about
1 ms with 32 calls in flight (``benchmarks/remote_client.py``): httpcore's pool rescans
every connection for every request (and asks each idle socket whether it is readable
through anyio), and its anyio streams add event-loop turns and cancel scopes to every read
and write. A :class:`~proving.serve.backends.RemoteBackend` sends one kind of request to
one origin, so it keeps httpcore's HTTP/1.1 protocol code (``httpcore.AsyncHTTP11Connection``,
over h11) and replaces the two costly layers through httpcore's public extension points: a
pool that hands out an idle connection in O(1) (:class:`ConnectionPool`), and a network
stream on a plain asyncio protocol (``httpcore.AsyncNetworkStream``). Behind an
environment proxy, or with a transport given (tests), it sends through httpx's own
transport instead (:class:`TransportSender`).

Errors are httpx's exception classes, so callers handle one family.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.request
from collections import deque
from typing import Any, Protocol

import httpcore
import httpx

__all__ = ["ConnectionPool", "Sender", "TransportSender", "environment_proxy"]


class Sender(Protocol):
    """POSTs a JSON body to the backend's URL; raises ``httpx.HTTPError`` subclasses."""

    async def post(self, body: bytes) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


def environment_proxy(url: httpx.URL) -> str | None:
    """The proxy httpx would use for ``url`` from ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(url.host):
        return None
    return proxy


class TransportSender:
    """Sends through any httpx transport (a mock in tests; httpx's pool behind a proxy)."""

    def __init__(self, url: httpx.URL, transport: httpx.AsyncBaseTransport) -> None:
        self._url = url
        self._transport = transport
        self._headers = {"user-agent": _USER_AGENT, "content-type": "application/json"}

    async def post(self, body: bytes) -> tuple[int, bytes]:
        request = httpx.Request("POST", self._url, headers=self._headers, content=body)
        response = await self._transport.handle_async_request(request)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        return response.status_code, content

    async def aclose(self) -> None:
        await self._transport.aclose()


_USER_AGENT = f"python-httpx/{httpx.__version__}"
_WRITE_FLUSH_BYTES = 1 << 16
_HTTPCORE_TO_HTTPX: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    # Most specific first (httpx maps the same classes in its own transport).
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


def _to_httpx_error(exc: Exception) -> httpx.HTTPError:
    for source, target in _HTTPCORE_TO_HTTPX:
        if isinstance(exc, source):
            return target(str(exc) or type(exc).__name__)
    return httpx.TransportError(f"{type(exc).__name__}: {exc}")


_HTTPCORE_ERRORS = tuple(source for source, _ in _HTTPCORE_TO_HTTPX)


class _StreamProtocol(asyncio.Protocol):
    """Buffers what the socket receives for :class:`_AsyncioStream` (one reader at a time)."""

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        # Not bounded: the reader (httpcore, for one response at a time) consumes every
        # chunk as soon as it is woken, and keeps the whole answer anyway.
        self.chunks.append(data)
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _AsyncioStream(httpcore.AsyncNetworkStream):
    """A TCP (or TLS) connection on an asyncio protocol, as httpcore's network stream.

    Writes are held until the next read, so a request's head and body leave in one
    ``send`` (one syscall and one segment instead of two); HTTP/1.1 always reads after
    writing a request.
    """

    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._outgoing: list[bytes] = []
        self._outgoing_size = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._outgoing:
            await self._flush(timeout)
        protocol = self._protocol
        if not protocol.chunks:
            if protocol.eof:
                return self._at_eof()
            if timeout is None:
                await self._wait_data()
            else:
                try:
                    async with asyncio.timeout(timeout):
                        await self._wait_data()
                except TimeoutError:
                    raise httpcore.ReadTimeout(f"no data within {timeout} s") from None
            if not protocol.chunks:
                return self._at_eof()
        chunk = protocol.chunks.popleft()
        if len(chunk) > max_bytes:
            protocol.chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        return chunk

    async def _wait_data(self) -> None:
        protocol = self._protocol
        protocol.waiter = asyncio.get_running_loop().create_future()
        try:
            await protocol.waiter
        finally:
            protocol.waiter = None

    def _at_eof(self) -> bytes:
        error = self._protocol.error
        if error is not None:
            raise httpcore.ReadError(str(error) or type(error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._outgoing.append(buffer)
        self._outgoing_size += len(buffer)
        if self._outgoing_size >= _WRITE_FLUSH_BYTES:
            await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:
        data = self._outgoing[0] if len(self._outgoing) == 1 else b"".join(self._outgoing)
        self._outgoing.clear()
        self._outgoing_size = 0
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(data)
        drained = self._protocol.drained
        if drained is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(drained)
        except TimeoutError:
            raise httpcore.WriteTimeout(f"could not send within {timeout} s") from None
        if self._protocol.error is not None:
            raise httpcore.WriteError(str(self._protocol.error))

    async def aclose(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once (its loop may be gone)."""
        with contextlib.suppress(RuntimeError):  # "Event loop is closed"
            self._transport.abort()

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle keep-alive connection the server closed
            return bool(self._protocol.chunks) or self._protocol.eof
        extra = {
            "ssl_object": "ssl_object",
            "client_addr": "sockname",
            "server_addr": "peername",
            "socket": "socket",
        }.get(info)
        return None if extra is None else self._transport.get_extra_info(extra)


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one origin; a call takes one in O(1).

    At most ``max_connections`` calls are in flight (the rest wait, bounded by the
    caller's timeout), so at most that many connections are open: a new one is opened
    only when no idle one is left. The most recently used idle connection is reused first,
    which keeps the set of warm connections small. A connection is returned to the pool
    only if its exchange completed (httpcore marks it idle); one interrupted mid-request
    (timeout, cancellation, protocol error) is closed.
    """

    def __init__(
        self,
        url: httpx.URL,
        *,
        max_connections: int,
        connect_timeout: float | None,
        keepalive_expiry: float | None,
    ) -> None:
        self._url = httpcore.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        )
        self._origin = self._url.origin
        self._host = url.raw_host.decode("ascii")
        self._port = self._origin.port
        self._headers = [
            (b"Host", url.netloc),
            (b"User-Agent", _USER_AGENT.encode()),
            (b"Content-Type", b"application/json"),
        ]
        self._ssl_context: ssl.SSLContext | None = None
        if url.scheme == "https":
            self._ssl_context = httpx.create_ssl_context()
            self._ssl_context.set_alpn_protocols(["http/1.1"])
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._keepalive_expiry = keepalive_expiry
        self._idle: list[tuple[httpcore.AsyncHTTP11Connection, _AsyncioStream]] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self._closed:
            raise httpx.ConnectError("the backend's connection pool is closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        slots = self._slots
        await slots.acquire()
        connection: httpcore.AsyncHTTP11Connection | None = None
        stream: _AsyncioStream | None = None
        try:
            connection, stream = await self._checkout()
            request = httpcore.Request(
                b"POST",
                self._url,
                headers=[*self._headers, (b"Content-Length", b"%d" % len(body))],
                content=body,
            )
            try:
                response = await connection.handle_async_request(request)
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
            except _HTTPCORE_ERRORS as exc:
                raise _to_httpx_error(exc) from exc
            if any(name.lower() == b"content-encoding" for name, _ in response.headers):
                content = httpx.Response(
                    response.status, headers=response.headers, content=content
                ).content
            return response.status, content
        finally:
            if connection is not None and stream is not None:
                if connection.is_idle() and not self._closed:
                    self._idle.append((connection, stream))
                else:
                    stream.abort()
            slots.release()

    async def _checkout(self) -> tuple[httpcore.AsyncHTTP11Connection, _AsyncioStream]:
        idle = self._idle
        while idle:
            connection, stream = idle.pop()
            if not connection.has_expired():
                return connection, stream
            stream.abort()
        stream = await self._connect()
        connection = httpcore.AsyncHTTP11Connection(
            self._origin, stream, keepalive_expiry=self._keepalive_expiry
        )
        return connection, stream

    async def _connect(self) -> _AsyncioStream:
        loop = asyncio.get_running_loop()
        tls = self._ssl_context
        try:
            async with asyncio.timeout(self._connect_timeout):
                transport, protocol = await loop.create_connection(
                    _StreamProtocol,
                    self._host,
                    self._port,
                    ssl=tls,
                    server_hostname=self._host if tls is not None else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection within {self._connect_timeout} s") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake (ssl.SSLError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return _AsyncioStream(transport, protocol)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        # Connections and the semaphore belong to one event loop; a backend reused under a
        # new loop (asyncio.run twice) starts afresh instead of touching the old loop.
        for _, stream in self._idle:
            stream.abort()
        self._idle.clear()
        self._slots = asyncio.Semaphore(self._max_connections)
        self._loop = loop

    async def aclose(self) -> None:
        self._closed = True
        for _, stream in self._idle:
            stream.abort()
        self._idle.clear()
