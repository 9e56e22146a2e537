"""Shadow traffic: a copy of the request to the challengers, off the response path.

The champion's answer is returned first; the copy is an :mod:`asyncio` task started
afterwards, so a shadow that is slow, hangs or raises never touches the served response.
A copy to an inline model (one that answers synchronously on the loop) needs no task: it
is a callback the loop runs after the current step, once the response has been written
(a task would be scheduled the same way, at several times the cost).
A :class:`ShadowMirror` caps the shadow calls in flight per deployment
(``shadow.max_concurrency``): when the cap is reached the copy is skipped and counted,
never queued, so shadows cannot pile up behind a slow challenger and starve the process.
Each copy has its own deadline (``shadow.timeout_ms``). Which units are mirrored
(``shadow.sample_rate``) is decided by the assignment engine, by a hash of the unit.

Example:
    >>> import asyncio
    >>> async def main():
    ...     mirror = ShadowMirror(max_concurrency=1)
    ...     async def copy(): await asyncio.sleep(0.01)
    ...     first, second = mirror.submit(copy), mirror.submit(copy)
    ...     await mirror.drain(1.0)
    ...     return first, second
    >>> asyncio.run(main())
    (True, False)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ShadowMirror"]

logger = logging.getLogger(__name__)


class ShadowMirror:
    """Runs shadow copies as background tasks, or as loop callbacks for inline models, at
    most ``max_concurrency`` at once."""

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max_concurrency
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled = 0  # inline copies waiting for their turn on the loop

    @property
    def inflight(self) -> int:
        """Shadow copies started and not finished."""
        return len(self._tasks) + self._scheduled

    def submit(self, copy: Callable[..., Awaitable[None]], *args: Any) -> bool:
        """Start ``copy(*args)`` in the background; False (not started) at the cap."""
        if self.inflight >= self.max_concurrency:
            return False
        task = asyncio.get_running_loop().create_task(self._guard(copy(*args)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def submit_inline(self, copy: Callable[..., None], *args: Any) -> bool:
        """Run the synchronous ``copy(*args)`` after the current step; False at the cap."""
        if self.inflight >= self.max_concurrency:
            return False
        self._scheduled += 1
        asyncio.get_running_loop().call_soon(self._run_inline, copy, args)
        return True

    def _run_inline(self, copy: Callable[..., None], args: tuple[Any, ...]) -> None:
        try:
            copy(*args)
        except Exception:  # a shadow failure is logged, never raised to anyone
            logger.exception("shadow copy failed")
        finally:
            self._scheduled -= 1

    @staticmethod
    async def _guard(copy: Awaitable[None]) -> None:
        try:
            await copy
        except Exception:  # a shadow failure is logged, never raised to anyone
            logger.exception("shadow copy failed")

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for running copies, then cancel the rest."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._scheduled and loop.time() < deadline:  # they run on the loop's next turn
            await asyncio.sleep(0)
        if not self._tasks:
            return
        remaining = max(0.0, deadline - loop.time())
        _, pending = await asyncio.wait(set(self._tasks), timeout=remaining)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
