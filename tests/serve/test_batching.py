"""Micro-batching: size and time triggers; a failure reaches every waiter of the batch."""

from __future__ import annotations

import asyncio

import pytest

from proving.errors import ServeError
from proving.serve.batching import BatchingBackend
from proving.testing import FakeModel


def test_batches_fill_by_size_then_by_time() -> None:
    inner = FakeModel(output=lambda x: x * 10)

    async def main() -> list[int]:
        b = BatchingBackend(inner, variant="a", max_batch_size=4, max_wait_ms=5)
        return list(await asyncio.gather(*(b.predict(i) for i in range(10))))

    assert asyncio.run(main()) == [i * 10 for i in range(10)]
    assert inner.batches == [4, 4, 2]


def test_a_failed_batch_fails_each_request() -> None:
    inner = FakeModel(fail=True)

    async def main() -> list[object]:
        b = BatchingBackend(inner, variant="a", max_batch_size=3, max_wait_ms=1)
        return list(await asyncio.gather(*(b.predict(i) for i in range(3)), return_exceptions=True))

    results = asyncio.run(main())
    assert len(results) == 3 and all("told to fail" in str(r) for r in results)
    with pytest.raises(ServeError, match="max_batch_size must be >= 1"):
        BatchingBackend(inner, variant="a", max_batch_size=0)
