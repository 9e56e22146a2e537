"""Shadow traffic: a copy of the request to the challengers, off the response path.

The champion's answer is returned first; the copy is an :mod:`asyncio` task started
afterwards, so a shadow that is slow, hangs or raises never touches the served response.
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

__all__ = ["ShadowMirror"]

logger = logging.getLogger(__name__)


class ShadowMirror:
    """Runs shadow copies as background tasks, at most ``max_concurrency`` at once."""

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max_concurrency
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def inflight(self) -> int:
        """Shadow copies running now."""
        return len(self._tasks)

    def submit(self, copy: Callable[[], Awaitable[None]]) -> bool:
        """Start ``copy()`` in the background; False (not started) at the cap."""
        if len(self._tasks) >= self.max_concurrency:
            return False
        task = asyncio.get_running_loop().create_task(self._guard(copy))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    @staticmethod
    async def _guard(copy: Callable[[], Awaitable[None]]) -> None:
        try:
            await copy()
        except Exception:  # a shadow failure is logged, never raised to anyone
            logger.exception("shadow copy failed")

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for running copies, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
