"""A fake model backend with configurable latency, errors and hangs.

:class:`FakeModel` is a real :class:`~proving.serve.backends.ModelBackend`: give it to the
gateway in ``models`` (or point an ``entry_point`` at one) to test what happens when a
challenger is slow, fails, or never answers, without monkeypatching. Every call is
recorded in ``calls`` (the features) and ``batches`` (sizes of batched calls).

Example:
    >>> import asyncio
    >>> model = FakeModel(output=lambda f: f["x"] * 2, name="double")
    >>> asyncio.run(model.predict({"x": 4})), model.calls
    (8, [{'x': 4}])
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from proving.serve.backends import ModelBackend

__all__ = ["FakeModel", "FakeModelError"]


class FakeModelError(RuntimeError):
    """The failure a :class:`FakeModel` raises when told to fail."""


class FakeModel(ModelBackend):
    """A model whose behaviour is set by its fields (change them at any time).

    Args:
        output: the answer, or a function of the features returning it.
        latency: seconds to wait before answering (``asyncio.sleep``, off the loop).
        fail: raise :class:`FakeModelError` instead of answering.
        hang: never answer (until cancelled by a timeout).
        name: model name; version: model version.
    """

    def __init__(
        self,
        output: Any = 0.5,
        *,
        latency: float = 0.0,
        fail: bool = False,
        hang: bool = False,
        name: str = "fake",
        version: str = "1",
    ) -> None:
        self.output = output
        self.latency = latency
        self.fail = fail
        self.hang = hang
        self.name = name
        self.version = version
        self.calls: list[Any] = []
        self.batches: list[int] = []

    def _answer(self, features: Any) -> Any:
        return self.output(features) if callable(self.output) else self.output

    async def _behave(self) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if self.fail:
            raise FakeModelError(f"fake model '{self.name}' told to fail")

    async def predict(self, features: Any) -> Any:
        self.calls.append(features)
        await self._behave()
        return self._answer(features)

    async def predict_batch(self, instances: Sequence[Any]) -> list[Any]:
        self.calls.extend(instances)
        self.batches.append(len(instances))
        await self._behave()
        return [self._answer(x) for x in instances]


def constant(value: Any) -> Callable[[Any], Any]:
    """A model function that always answers ``value``."""
    return lambda _features: value
