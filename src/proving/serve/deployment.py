"""A deployment at one spec version: its backends per variant, and its in-flight count.

A request takes the :class:`Deployment` current when it arrives and keeps it to the end,
so a hot reload (a new spec version swapping in a new Deployment) never changes the
backends under a running request. Backends whose model reference did not change are
reused across versions; the others are closed once the last request of the old version
has finished (:meth:`Deployment.wait_idle`).

Each variant with a model gets its own :class:`~proving.serve.batching.BatchingBackend`
when micro-batching is on, so a batch never mixes variants, even when two variants share
one model object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proving.errors import ServeError
from proving.serve.backends import ModelBackend, load_backend
from proving.serve.batching import BatchingBackend
from proving.serve.shadow import ShadowMirror
from proving.spec.experiment import ExperimentSpec, ModelRefSpec
from proving.spec.mode import ShadowSpec

__all__ = ["Deployment", "ServeConfig", "build_deployment"]


@dataclass(frozen=True)
class ServeConfig:
    """Settings of the gateway.

    Args:
        challenger_timeout_ms: deadline of a non-control variant's call; past it (or on an
            error) the champion answers and the response is a fallback.
        champion_timeout_ms: deadline of the control's call; past it the request fails (504).
        max_body_bytes: larger prediction and admin bodies get 413.
        batch_max_size: turn on micro-batching with this batch size (None: off).
        batch_max_wait_ms: the longest a request waits for its batch to fill.
        threaded_models: run plain in-process models in worker threads.
        reload_interval: seconds between checks of the spec files and the state table.
        drain_timeout: seconds to let shadow copies finish at shutdown.
        log_features: include the features in prediction events.
        exposure_cache_size: units whose exposure this process remembers: a unit's repeat
            requests in the same variant log no new exposure (metrics count a unit's first
            exposure; GrowthBook's SDKs dedupe their tracking calls the same way). The
            oldest are forgotten first; 0 logs an exposure on every request.
        telemetry_nice: on Linux, how much nicer (0 to 19) the telemetry writer's threads
            run than the server's event loop, so that an event-store commit does not take
            the loop's core (:class:`~proving.telemetry.writer.BatchWriter`'s ``nice``).
    """

    challenger_timeout_ms: float = 250.0
    champion_timeout_ms: float = 2000.0
    max_body_bytes: int = 1 << 20
    batch_max_size: int | None = None
    batch_max_wait_ms: float = 2.0
    threaded_models: bool = False
    reload_interval: float = 1.0
    drain_timeout: float = 10.0
    log_features: bool = True
    exposure_cache_size: int = 100_000
    telemetry_nice: int = 10

    def __post_init__(self) -> None:
        if self.exposure_cache_size < 0:
            raise ServeError(
                f"ServeConfig: exposure_cache_size must be >= 0 (0 logs every request's "
                f"exposure); got {self.exposure_cache_size}."
            )
        if not 0 <= self.telemetry_nice <= 19:
            raise ServeError(
                f"ServeConfig: telemetry_nice must be between 0 (the telemetry threads as "
                f"the event loop) and 19; got {self.telemetry_nice}."
            )


class Deployment:
    """The backends of one spec version of a deployment (see the module docstring)."""

    def __init__(
        self,
        spec: ExperimentSpec,
        backends: Mapping[str, ModelBackend | None],
        inner: Mapping[ModelRefSpec, ModelBackend],
    ) -> None:
        self.spec = spec
        self.backends = dict(backends)
        self.inner = dict(inner)
        shadow = spec.shadow or ShadowSpec()
        self.shadow_timeout = shadow.timeout_ms / 1000.0
        self.mirror = ShadowMirror(shadow.max_concurrency)
        self.inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def name(self) -> str:
        """The deployment's name."""
        return self.spec.name

    def enter(self) -> None:
        """A request starts using this version."""
        self.inflight += 1
        self._idle.clear()

    def leave(self) -> None:
        """A request is done with this version."""
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request (and no shadow copy) uses this version; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        await self.mirror.drain(timeout)
        return True

    def describe(self) -> dict[str, Any]:
        """The variants' backends, for the admin API."""
        return {v: (b.describe() if b else None) for v, b in self.backends.items()}

    async def close_batchers(self) -> None:
        """Flush the micro-batching queues of this version."""
        for backend in self.backends.values():
            if isinstance(backend, BatchingBackend):
                await backend.aclose()


def build_deployment(
    spec: ExperimentSpec,
    models: Mapping[str, Any],
    config: ServeConfig,
    reusable: Mapping[ModelRefSpec, ModelBackend],
) -> Deployment:
    """Load (or reuse) every variant's backend for ``spec``.

    Raises:
        ServeError: a model cannot be loaded; nothing is swapped in.
    """
    inner: dict[ModelRefSpec, ModelBackend] = {}
    backends: dict[str, ModelBackend | None] = {}
    timeout = config.champion_timeout_ms / 1000.0
    for variant in spec.variants:
        ref = variant.model
        if ref is None:
            backends[variant.name] = None
            continue
        if ref not in inner:
            inner[ref] = reusable.get(ref) or load_backend(
                ref, models, timeout=timeout, threaded=config.threaded_models
            )
        backend: ModelBackend = inner[ref]
        if config.batch_max_size is not None:
            backend = BatchingBackend(
                backend,
                variant=variant.name,
                max_batch_size=config.batch_max_size,
                max_wait_ms=config.batch_max_wait_ms,
            )
        backends[variant.name] = backend
    return Deployment(spec, backends, inner)
