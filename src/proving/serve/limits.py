"""Request body limit: bodies over ``max_body_bytes`` get 413 before they are parsed.

A pure ASGI middleware (no per-request objects when the body is small): it refuses a
declared ``Content-Length`` over the limit at once, and counts the bytes of bodies sent
without one (chunked), refusing as soon as the count passes the limit, so a client cannot
make the gateway buffer an unbounded body.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "declared_length", "too_large_message"]


def too_large_message(max_body_bytes: int) -> str:
    """The 413 message: the limit and where to change it."""
    return (
        f"the body exceeds {max_body_bytes} bytes. Fix: send a smaller body (the limit is "
        "ServeConfig.max_body_bytes, --max-body-bytes)."
    )


def declared_length(scope: Scope) -> int:
    """The request's ``Content-Length`` (0 when absent or not a number)."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class _TooLargeError(Exception):
    pass


class BodyLimitMiddleware:
    """Answers 413 to bodies over ``max_body_bytes`` (paths in ``exempt`` have their own)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, exempt: Sequence[str] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.exempt = tuple(exempt)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = JSONResponse({"error": too_large_message(self.max_body_bytes)}, status_code=413)
        await answer(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):  # ASGI puts the root path in front of the path
            path = path[len(root) :]
        if scope["type"] != "http" or path.startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        if declared_length(scope) > self.max_body_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise _TooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLargeError:
            if not started:
                await self._refuse(scope, receive, send)
