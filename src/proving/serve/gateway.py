"""The gateway: deployments, their runtime state, routing, telemetry and hot swaps.

:class:`Gateway` is the object behind the HTTP app (:mod:`proving.serve.app`); it can be
driven directly too. A request reads the deployment's current :class:`Deployment`
(backends of one spec version) and its effective spec (spec + runtime overrides) in one
step, assigns the unit, and hands over to the mode's strategy
(:mod:`proving.serve.strategies`).

Changes (a new spec version, a rollback, new weights, the kill switch, a blue/green
switch, a promotion) go through :meth:`Gateway.change`: one at a time, applied between
two requests' reads (the event loop does not interleave a synchronous swap), saved to the
store's state table when it has one. A new spec version loads its backends *before* the
swap, so a spec whose model cannot load is refused and the old version keeps serving;
the old version's backends are closed only after its last request finished.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from proving.assign.assignment import Assignment, assign
from proving.errors import AssignmentError, HTTPError, ProvingError, TelemetryError
from proving.serve.deployment import Deployment, ServeConfig, build_deployment
from proving.serve.observability import GatewayMetrics
from proving.serve.recorder import Recorder
from proving.serve.state import DeploymentState
from proving.serve.strategies import RequestContext, Served, serve_predict, serve_rank
from proving.spec.experiment import ExperimentSpec, ModelRefSpec
from proving.telemetry.store import EventStore
from proving.telemetry.writer import BatchWriter

__all__ = ["Gateway", "RoutedResult"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
STATE_NAMESPACE = "serve"


@dataclass(slots=True)
class RoutedResult:
    """A served answer with the assignment and spec that produced it."""

    served: Served
    assignment: Assignment
    spec_version: int


class Gateway:
    """Serves every deployment of a set of specs.

    Args:
        specs: one spec per deployment (the deployment is named after the experiment).
        writer: the telemetry writer events go through.
        state_store: where runtime state is saved (DuckDB or PostgreSQL), or None.
        models: in-process models by ``name`` or ``name:version``.
        config: timeouts, batching, limits.
        metrics: the Prometheus metrics (a fresh registry by default).
    """

    def __init__(
        self,
        specs: Sequence[ExperimentSpec],
        *,
        writer: BatchWriter,
        state_store: EventStore | None = None,
        models: Mapping[str, Any] | None = None,
        config: ServeConfig | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ProvingError(f"specs {dupes} are given twice. Fix: one spec per deployment.")
        self.config = config or ServeConfig()
        self.metrics = metrics or GatewayMetrics()
        self.writer = writer
        self.state_store = state_store
        self.models = dict(models or {})
        self.recorder = Recorder(
            writer, self.metrics, self.config.log_features, self.config.exposure_cache_size
        )
        self.states = {s.name: DeploymentState(s) for s in specs}
        self.deployments: dict[str, Deployment] = {}
        self.ready = False
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Resume saved state and load every deployment's backends."""
        for name, state in list(self.states.items()):
            saved = await self._load_state(name)
            if saved is not None:
                state = self.states[name] = _resume(state, saved)
            self.deployments[name] = await asyncio.to_thread(
                build_deployment, state.spec, self.models, self.config, {}
            )
            self.metrics.spec_version.labels(name).set(state.spec.version)
            if saved is not None and saved.get("revision") != state.revision:
                await self._save(state)
        self.ready = True

    async def close(self) -> None:
        """Let shadow copies finish, flush batches and close every backend."""
        self.ready = False
        timeout = self.config.drain_timeout
        for dep in self.deployments.values():
            await dep.wait_idle(timeout)
            await dep.close_batchers()
        if self._retiring:
            await asyncio.wait(set(self._retiring), timeout=timeout)
        closed: set[int] = set()
        for dep in self.deployments.values():
            for backend in dep.inner.values():
                if id(backend) not in closed:
                    closed.add(id(backend))
                    await backend.aclose()

    # -- serving -----------------------------------------------------------------------

    def lookup(self, name: str) -> tuple[DeploymentState, Deployment]:
        """The state and current backends of ``name``, or 404."""
        state = self.states.get(name)
        if state is None:
            raise HTTPError(
                404, f"unknown deployment '{name}'; deployments are {sorted(self.states)}."
            )
        return state, self.deployments[name]

    def _context(
        self, name: str, unit_id: str, attributes: dict[str, Any], features: Any, request_id: str
    ) -> RequestContext:
        state, dep = self.lookup(name)
        spec = state.effective_spec()
        now = datetime.now(UTC) if spec.is_time_based() else None
        try:
            assignment = assign(unit_id, attributes, spec, now=now)
        except AssignmentError as exc:
            raise HTTPError(400, str(exc)) from exc
        pinned = state.overrides.pinned
        if pinned is not None:
            assignment = replace(
                assignment, variant=pinned, in_experiment=False, reason="promoted",
                shadow_variants=(), interleave_variants=(),
            )  # fmt: skip
        return RequestContext(
            deployment=dep,
            spec=spec,
            assignment=assignment,
            variant=assignment.variant,
            request_id=request_id,
            features=features,
            config=self.config,
            recorder=self.recorder,
        )

    async def predict(
        self, name: str, unit_id: str, attributes: dict[str, Any], features: Any, request_id: str
    ) -> RoutedResult:
        """Answer ``POST /v1/predict/{name}``."""
        ctx = self._context(name, unit_id, attributes, features, request_id)
        ctx.deployment.enter()
        try:
            self.recorder.exposure(ctx.assignment, attributes)
            served = await serve_predict(ctx)
        finally:
            ctx.deployment.leave()
        return RoutedResult(served, ctx.assignment, ctx.spec.version)

    async def rank(
        self,
        name: str,
        unit_id: str,
        attributes: dict[str, Any],
        ranker_input: dict[str, Any],
        length: int | None,
        request_id: str,
    ) -> RoutedResult:
        """Answer ``POST /v1/rank/{name}``."""
        ctx = self._context(name, unit_id, attributes, ranker_input, request_id)
        block = ctx.spec.interleave
        length = length or (block.list_length if block else 10)
        ctx.deployment.enter()
        try:
            self.recorder.exposure(ctx.assignment, attributes)
            served = await serve_rank(ctx, ranker_input, length)
        finally:
            ctx.deployment.leave()
        return RoutedResult(served, ctx.assignment, ctx.spec.version)

    # -- changes -----------------------------------------------------------------------

    async def change(self, name: str, operation: Callable[[DeploymentState], T]) -> T:
        """Apply an admin operation to a deployment's state, swap backends if its spec
        version changed, and save the state. If the operation raises or a new model
        cannot load, nothing changes."""
        async with self._lock:
            state, old = self.lookup(name)
            candidate = copy.copy(state)
            result = operation(candidate)
            new: Deployment | None = None
            if candidate.spec is not old.spec:
                try:  # load models off the event loop: requests keep flowing meanwhile
                    new = await asyncio.to_thread(self._build, candidate.spec)
                except ProvingError as exc:
                    raise HTTPError(422, f"deployment '{name}': {exc}") from exc
            # Commit state and backends in one synchronous step: a request sees the old
            # pair or the new pair, never a mix.
            self.states[name] = candidate
            if new is not None:
                self._swap(name, new)
            await self._save(candidate)
            return result

    async def apply_spec(self, spec: ExperimentSpec) -> bool:
        """Serve a new spec version (file change or admin call); False if not newer."""
        state = self.states.get(spec.name)
        if state is None:
            raise HTTPError(
                404,
                f"spec '{spec.name}' names no deployment; deployments are {sorted(self.states)}.",
            )
        if spec.version <= state.spec.version:
            return False
        await self.change(spec.name, lambda s: s.set_spec(spec))
        return True

    def _build(self, spec: ExperimentSpec) -> Deployment:
        reusable: dict[ModelRefSpec, Any] = {}
        for dep in list(self.deployments.values()):
            reusable.update(dep.inner)
        return build_deployment(spec, self.models, self.config, reusable)

    def _swap(self, name: str, new: Deployment) -> None:
        old = self.deployments[name]
        self.deployments[name] = new
        self.metrics.spec_version.labels(name).set(new.spec.version)
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        logger.info("deployment %s now serves spec version %d", name, new.spec.version)

    async def _retire(self, old: Deployment) -> None:
        """Close the old version's backends that nobody uses, once it is idle."""
        await old.wait_idle(self.config.drain_timeout)
        await old.close_batchers()
        in_use = {id(b) for dep in self.deployments.values() for b in dep.inner.values()}
        for backend in old.inner.values():
            if id(backend) not in in_use:
                await backend.aclose()

    # -- persistence -------------------------------------------------------------------

    async def _save(self, state: DeploymentState) -> None:
        if self.state_store is None:
            return
        doc = state.to_dict()
        try:
            await asyncio.to_thread(self.state_store.put_state, STATE_NAMESPACE, state.name, doc)
        except TelemetryError as exc:
            logger.warning("runtime state not saved (%s); keeping it in memory only", exc)
            self.state_store = None

    async def _load_state(self, name: str) -> dict[str, Any] | None:
        if self.state_store is None:
            return None
        try:
            return await asyncio.to_thread(self.state_store.get_state, STATE_NAMESPACE, name)
        except TelemetryError as exc:
            logger.warning("runtime state not loaded (%s); keeping it in memory only", exc)
            self.state_store = None
            return None

    async def sync_state(self) -> list[str]:
        """Adopt state saved by another replica with a newer revision; names changed."""
        changed: list[str] = []
        for name in list(self.states):
            saved = await self._load_state(name)
            if saved is None or int(saved.get("revision", 0)) <= self.states[name].revision:
                continue
            newer = DeploymentState.from_dict(saved)
            await self.change(name, _adopter(newer))
            changed.append(name)
        return changed


def _adopter(newer: DeploymentState) -> Callable[[DeploymentState], None]:
    def adopt(state: DeploymentState) -> None:
        state.spec, state.history = newer.spec, newer.history
        state.overrides, state.revision = newer.overrides, newer.revision
        state._effective = None

    return adopt


def _resume(state: DeploymentState, saved: dict[str, Any]) -> DeploymentState:
    """The state to start with, given the file's spec and the saved document."""
    resumed = DeploymentState.from_dict(saved)
    if resumed.spec.version >= state.spec.version:
        return resumed  # the saved spec is the file's or newer (pushed by the admin API)
    # The file holds a newer version than the one saved: it wins; the saved one is history.
    resumed.history = [*resumed.history, resumed.spec][-20:]
    resumed.spec = state.spec
    resumed.overrides = state.overrides
    resumed.revision += 1
    resumed._effective = None
    return resumed
