"""Routing strategies: split, canary, blue/green, shadow, interleave, and the fallback.

The experiment's mode picks the strategy; the assignment engine has already decided the
variant, so the strategies differ only in what they call and what they return:

* **split** (``ab``, ``switchback``), **canary**, **blue/green**: call the assigned
  variant (the canary share and the active colour come from the runtime state, folded
  into the spec the assignment reads);
* **fallback**: when that variant is not the control and its call errors or passes
  ``challenger_timeout_ms``, the control answers; the response says ``fallback: true``
  and the events log the failed call and the champion's answer with status ``fallback``;
* **shadow**: the control answers; the challengers get a copy off the response path
  (:class:`~proving.serve.shadow.ShadowMirror`), logged with role ``shadow`` and the same
  request id, never returned;
* **interleave** (``/v1/rank``): both rankers are called concurrently and their lists
  merged by team draft (:mod:`proving.serve.interleave`); the team of every item is
  logged. If the challenger fails, the control's list is served as a fallback.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from proving.assign.assignment import Assignment
from proving.errors import HTTPError
from proving.serve.backends import BadFeaturesError, ModelBackend
from proving.serve.deployment import Deployment, ServeConfig
from proving.serve.interleave import team_draft
from proving.serve.recorder import ModelCall, Recorder
from proving.spec.experiment import ExperimentSpec

__all__ = ["RequestContext", "Served", "call_variant", "serve_predict", "serve_rank"]


@dataclass(slots=True)
class RequestContext:
    """Everything a strategy needs about one request."""

    deployment: Deployment
    spec: ExperimentSpec
    assignment: Assignment
    variant: str
    request_id: str
    features: Any
    config: ServeConfig
    recorder: Recorder


@dataclass(slots=True)
class Served:
    """What the gateway answers (the HTTP layer turns it into JSON)."""

    variant: str
    output: Any
    call: ModelCall
    fallback: bool = False
    teams: list[str] | None = None
    extra_calls: list[ModelCall] = field(default_factory=list)


def _call_inline(
    ctx: RequestContext,
    variant: str,
    backend: ModelBackend | None,
    features: Any,
    raise_bad_features: bool = True,
) -> ModelCall:
    """Call a value variant (``backend`` None) or an inline model, synchronously.

    Nothing can interrupt a call that runs on the loop, so there is no timeout; the
    gateway skips the coroutine, the timer and (for a shadow copy) the task.

    Raises:
        HTTPError: 422 when the model refuses the features as malformed (unless
            ``raise_bad_features`` is False: then it is the call's error).
    """
    if backend is None:  # a value variant (feature flag): the value is the answer
        value = ctx.spec.variant(variant).value
        return ModelCall(variant, f"value:{variant}", f"spec-{ctx.spec.version}", value)
    call = ModelCall(variant=variant, model=backend.name, version=backend.version)
    start = time.perf_counter()
    try:
        call.output = backend.predict_inline(features)
    except Exception as exc:
        _failed(call, exc, raise_bad_features)
    call.latency_ms = (time.perf_counter() - start) * 1000.0
    return call


async def call_variant(
    ctx: RequestContext,
    variant: str,
    features: Any,
    timeout: float,
    raise_bad_features: bool = True,
) -> ModelCall:
    """Call one variant's model within ``timeout`` seconds; never raises on model failure.

    Raises:
        HTTPError: 422 when the model refuses the features as malformed (unless
            ``raise_bad_features`` is False, as for a shadow copy, whose caller has
            already been answered: then it is the call's error).
    """
    backend = ctx.deployment.backends.get(variant)
    if backend is None or backend.inline:
        return _call_inline(ctx, variant, backend, features, raise_bad_features)
    call = ModelCall(variant=variant, model=backend.name, version=backend.version)
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            call.output = await backend.predict(features)
    except TimeoutError:
        call.status, call.error = "timeout", f"no answer within {timeout * 1000:g} ms"
    except Exception as exc:
        _failed(call, exc, raise_bad_features)
    call.latency_ms = (time.perf_counter() - start) * 1000.0
    return call


def _failed(call: ModelCall, exc: Exception, raise_bad_features: bool) -> None:
    """Record a model's failure on its call; raise a 422 if the features were at fault."""
    if raise_bad_features and isinstance(exc, BadFeaturesError):
        raise HTTPError(422, str(exc)) from exc
    # Any model failure is data, not a crash of the gateway.
    call.status, call.error = "error", f"{type(exc).__name__}: {exc}"[:500]


def _log(ctx: RequestContext, call: ModelCall, role: str = "served") -> None:
    ctx.recorder.prediction(
        call,
        deployment=ctx.deployment.name,
        request_id=ctx.request_id,
        unit_id=ctx.assignment.unit_id,
        features=ctx.features,
        role="shadow" if role == "shadow" else "served",
        experiment=ctx.spec.name,
    )


def _champion_failed(ctx: RequestContext, call: ModelCall) -> HTTPError:
    status = 504 if call.status == "timeout" else 502
    return HTTPError(
        status,
        f"deployment '{ctx.deployment.name}': the champion '{call.variant}' failed "
        f"({call.error}); request id {ctx.request_id}.",
    )


async def _serve_with_fallback(ctx: RequestContext, features: Any) -> Served:
    """Call the chosen variant; the control answers if a challenger fails."""
    control = ctx.spec.control_name
    champion_timeout = ctx.config.champion_timeout_ms / 1000.0
    if ctx.variant != control:
        call = await call_variant(
            ctx, ctx.variant, features, ctx.config.challenger_timeout_ms / 1000.0
        )
        if call.ok:
            _log(ctx, call)
            return Served(ctx.variant, call.output, call)
        _log(ctx, call)
        labels = (ctx.deployment.name, call.variant, call.model, call.version, call.status)
        ctx.recorder.metrics.fallbacks.labels(*labels).inc()
        champion = await call_variant(ctx, control, features, champion_timeout)
        if not champion.ok:
            _log(ctx, champion)
            raise _champion_failed(ctx, champion)
        champion.status = "fallback"
        _log(ctx, champion)
        return Served(control, champion.output, champion, fallback=True)
    call = await call_variant(ctx, control, features, champion_timeout)
    _log(ctx, call)
    if not call.ok:
        raise _champion_failed(ctx, call)
    return Served(control, call.output, call)


def _mirror(ctx: RequestContext, features: Any) -> None:
    """Send shadow copies to the challengers, off the response path."""
    dep = ctx.deployment
    for variant in ctx.assignment.shadow_variants:
        backend = dep.backends.get(variant)
        if backend is None or backend.inline:
            started = dep.mirror.submit_inline(_shadow_inline, ctx, variant, backend, features)
        else:
            started = dep.mirror.submit(_shadow, ctx, variant, features)
        if not started:
            ctx.recorder.metrics.shadow_skipped.labels(dep.name, variant, "concurrency").inc()


def _shadow_inline(
    ctx: RequestContext, variant: str, backend: ModelBackend | None, features: Any
) -> None:
    """A shadow copy run as a loop callback. Its caller has been answered, so features its
    model refuses are the call's error, not a 422."""
    call = _call_inline(ctx, variant, backend, features, raise_bad_features=False)
    _log(ctx, call, role="shadow")


async def _shadow(ctx: RequestContext, variant: str, features: Any) -> None:
    """A shadow copy run as a task, within the deployment's shadow timeout (refused
    features are the call's error, as in :func:`_shadow_inline`)."""
    timeout = ctx.deployment.shadow_timeout
    call = await call_variant(ctx, variant, features, timeout, raise_bad_features=False)
    _log(ctx, call, role="shadow")


async def serve_predict(ctx: RequestContext) -> Served:
    """``/v1/predict``: split, canary, blue/green, switchback and shadow, with fallback."""
    served = await _serve_with_fallback(ctx, ctx.features)
    if ctx.assignment.shadow_variants:
        _mirror(ctx, ctx.features)
    return served


def _as_list(call: ModelCall) -> list[Any] | None:
    return call.output if call.ok and isinstance(call.output, list) else None


async def serve_rank(ctx: RequestContext, ranker_input: Any, length: int) -> Served:
    """``/v1/rank``: interleave two rankers by team draft, or rank with the served variant."""
    names = ctx.assignment.interleave_variants
    if len(names) != 2 or ctx.variant != ctx.spec.control_name:
        served = _checked_list(ctx, await _serve_with_fallback(ctx, ranker_input), length)
        if ctx.assignment.shadow_variants:  # shadow mode ranks too: mirror the request
            _mirror(ctx, ranker_input)
        return served
    control, challenger = names
    champion_timeout = ctx.config.champion_timeout_ms / 1000.0
    challenger_timeout = ctx.config.challenger_timeout_ms / 1000.0
    a, b = await asyncio.gather(
        call_variant(ctx, control, ranker_input, champion_timeout),
        call_variant(ctx, challenger, ranker_input, challenger_timeout),
    )
    list_a, list_b = _as_list(a), _as_list(b)
    if list_a is None:
        _log(ctx, a)
        raise _champion_failed(ctx, a) if not a.ok else _not_a_list(ctx, a)
    if list_b is None:
        if b.ok:
            b.status, b.error = "error", "the ranker did not return a list"
        _log(ctx, b)
        labels = (ctx.deployment.name, b.variant, b.model, b.version, b.status)
        ctx.recorder.metrics.fallbacks.labels(*labels).inc()
        a.status = "fallback"
        _log(ctx, a)
        return Served(control, list_a[:length], a, fallback=True)
    for call in (a, b):
        _log(ctx, call)
    merged = team_draft(list_a, list_b, length=length, seed=ctx.request_id)
    teams = [control if t == "a" else challenger for t in merged.teams]
    merged_call = ModelCall(
        variant="interleaved",
        model="team_draft",
        version="1",
        output={"items": list(merged.items), "teams": teams},
        latency_ms=max(a.latency_ms, b.latency_ms),
    )
    _log(ctx, merged_call)
    return Served("interleaved", list(merged.items), merged_call, teams=teams)


def _not_a_list(ctx: RequestContext, call: ModelCall) -> HTTPError:
    return HTTPError(
        502,
        f"deployment '{ctx.deployment.name}': ranker '{call.variant}' returned "
        f"{type(call.output).__name__}, not a list. Fix: the model must return a ranked list.",
    )


def _checked_list(ctx: RequestContext, served: Served, length: int) -> Served:
    if not isinstance(served.output, list):
        # Outside interleave mode nothing declares the deployment a ranker: most likely
        # the request went to a predictor's deployment (a 4xx, not the model's fault).
        raise HTTPError(
            422,
            f"deployment '{ctx.deployment.name}' cannot rank: its model '{served.call.model}' "
            f"answered {type(served.output).__name__}, not a list. Fix: call "
            f"/v1/predict/{ctx.deployment.name}, or rank with a deployment whose models "
            "return ranked lists.",
        )
    served.output = served.output[:length]
    return served
