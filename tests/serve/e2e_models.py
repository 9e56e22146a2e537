"""In-process models that the gateway subprocess of the end-to-end tests imports by entry point."""

from __future__ import annotations

import asyncio
from typing import Any


def champion(features: Any) -> float:
    """The champion answers 1.0 whatever the features."""
    return 1.0


async def slow_champion(features: Any) -> float:
    """A champion that takes 400 ms (for the drain-on-SIGTERM test)."""
    await asyncio.sleep(0.4)
    return 1.0


def reverse_ranker(request: dict[str, Any]) -> list[Any]:
    """A ranker that returns the candidates in reverse order."""
    return list(reversed(request.get("candidates") or []))
