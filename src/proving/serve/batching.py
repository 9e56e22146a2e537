"""Micro-batching: gather concurrent requests to one model into one batched call.

A :class:`BatchingBackend` wraps one backend *for one variant of one deployment*. The
gateway builds a separate wrapper per (deployment, variant), even when two variants point
at the same model object, so a batch never mixes arms. Mixing them would be a hidden
shared variable: arm B's requests would wait on arm A's and a latency difference between
the arms would vanish from the data (the seeds' warning, after Kohavi, Tang and Xu 2020,
ch. 22 on interference between variants).

A batch is sent when ``max_batch_size`` requests are waiting or ``max_wait_ms`` after
the first one arrived, whichever is first.

Example:
    >>> import asyncio
    >>> from proving.serve.backends import CallableBackend
    >>> inner = CallableBackend(lambda x: x + 1, batch_fn=lambda xs: [x + 1 for x in xs])
    >>> async def main():
    ...     b = BatchingBackend(inner, variant="a", max_batch_size=8, max_wait_ms=2)
    ...     return await asyncio.gather(*(b.predict(i) for i in range(3)))
    >>> asyncio.run(main())
    [1, 2, 3]
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from proving.errors import ServeError
from proving.serve.backends import ModelBackend

__all__ = ["BatchingBackend"]


class BatchingBackend(ModelBackend):
    """One variant's micro-batching queue in front of ``inner``.

    Args:
        inner: the model backend (its ``predict_batch`` is called).
        variant: the variant this queue belongs to (kept for description and checks).
        max_batch_size: the most instances per call.
        max_wait_ms: the longest the first request of a batch waits for company.
    """

    def __init__(
        self,
        inner: ModelBackend,
        *,
        variant: str,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
    ) -> None:
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ServeError(
                f"micro-batching for variant '{variant}': max_batch_size must be >= 1 and "
                f"max_wait_ms >= 0; got {max_batch_size} and {max_wait_ms}."
            )
        self.inner = inner
        self.variant = variant
        self.name = inner.name
        self.version = inner.version
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.batch_sizes: list[int] = []
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def describe(self) -> dict[str, Any]:
        return {
            **self.inner.describe(),
            "variant": self.variant,
            "max_batch_size": self.max_batch_size,
            "max_wait_ms": self.max_wait * 1000.0,
        }

    async def predict(self, features: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((features, future))
        if len(self._pending) >= self.max_batch_size:
            self._send()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait, self._send)
        return await future

    async def predict_batch(self, instances: Sequence[Any]) -> list[Any]:
        return await self.inner.predict_batch(instances)

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            outputs = await self.inner.predict_batch([features for features, _ in batch])
            if len(outputs) != len(batch):
                raise ServeError(
                    f"model '{self.name}': predict_batch returned {len(outputs)} outputs for "
                    f"{len(batch)} instances."
                )
        except BaseException as exc:  # every waiter must learn of the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), output in zip(batch, outputs, strict=True):
            if not future.done():
                future.set_result(output)

    async def aclose(self) -> None:
        """Send what is waiting and wait for it; the inner backend is closed by its owner."""
        if self._pending:
            self._send()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
