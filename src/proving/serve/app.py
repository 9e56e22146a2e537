"""The gateway's HTTP app: prediction, ranking, ingestion, health, metrics and admin.

==============================  ==============================================================
``POST /v1/predict/{name}``     unit id, attributes, features in; prediction, variant and
                                request id out
``POST /v1/rank/{name}``        a ranked list (team-draft interleaved in interleave mode)
``POST /v1/events``             the telemetry ingestion API (:mod:`proving.telemetry.ingest`)
``POST /v1/outcomes``           idem, outcomes (labels, clicks) joined later by request id
``GET  /healthz``               the process is alive
``GET  /readyz``                every deployment is loaded and the writer is running
``GET  /metrics``               Prometheus
``/admin/...``                  the admin API (:mod:`proving.serve.admin`), bearer token
==============================  ==============================================================

The request id comes from the ``X-Request-ID`` header when it is a plain token (letters,
digits, ``._:-``, up to 128 characters) and is generated otherwise; it is returned in the
body and the header, and every event of the request carries it.

Errors are JSON ``{"error": message}``: 400 for malformed JSON or a missing/invalid field
(the message names it), 404 for an unknown deployment, 413 for a body over
``max_body_bytes``, 401 for an admin call without the token, 422 when the model refuses
the features, 502/504 only when the *champion* fails (a failing challenger is a fallback).

Shutdown (SIGTERM to uvicorn): uvicorn stops accepting connections and lets in-flight
requests finish; then the lifespan drains shadow copies, closes backends, and closes the
telemetry writer, which commits every queued event before the process exits.

Example:
    >>> from proving.spec import parse_spec
    >>> spec = parse_spec("name: demo\\nvariants: [{name: a, value: 1}, {name: b, value: 2}]")
    >>> app = create_app([spec])
    >>> sorted(p for p in app.openapi()["paths"] if p.startswith("/v1/p"))
    ['/v1/predict/{name}']
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from proving.errors import HTTPError
from proving.serve.admin import create_admin_router
from proving.serve.deployment import ServeConfig
from proving.serve.gateway import Gateway, RoutedResult
from proving.serve.limits import BodyLimitMiddleware
from proving.serve.observability import GatewayMetrics
from proving.serve.protocol import (
    ErrorBody,
    PredictRequest,
    PredictResponse,
    RankRequest,
    RankResponse,
)
from proving.serve.recorder import warm_up_events
from proving.serve.reload import SpecWatcher
from proving.spec.experiment import ExperimentSpec
from proving.telemetry.ingest import IngestConfig, create_ingest_app
from proving.telemetry.store import EventStore, open_store
from proving.telemetry.writer import BatchWriter

__all__ = ["create_app", "request_id_of"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed JSON or an invalid field"},
    404: {"model": ErrorBody, "description": "Unknown deployment"},
    413: {"model": ErrorBody, "description": "Body too large"},
    422: {"model": ErrorBody, "description": "The model refused the features"},
}


def request_id_of(header: str | None) -> str:
    """The request id: the header's if it is a plain token, else a new one."""
    if header and _REQUEST_ID.match(header):
        return header
    # 128 random bits from the process's PRNG (seeded from os.urandom at start): unique
    # enough for a join key and ~10x cheaper than uuid4 under load (no syscall per id).
    return f"{random.getrandbits(128):032x}"


def _location(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _validation_message(errors: Sequence[Any]) -> str:
    problems = []
    for err in errors:
        if err.get("type") == "json_invalid":
            problems.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', '')})")
        else:
            problems.append(f"`{_location(err.get('loc', ()))}`: {err.get('msg', 'invalid')}")
    fix = 'Fix: send JSON such as {"unit_id": "u1", "features": {}}.'
    return "; ".join(problems) + ". " + fix


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"error": _validation_message(exc.errors())}, status_code=400)


Body = TypeVar("Body", PredictRequest, RankRequest)


async def _parse(request: Request, model: type[Body]) -> Body:
    """Validate the raw body in one pass (pydantic-core parses the JSON itself)."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise HTTPError(400, _validation_message(exc.errors())) from None


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    content = {"application/json": {"schema": schema}}
    header = {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "description": "Your request id (a plain token); generated when absent.",
        "schema": {"type": "string"},
    }
    return {"requestBody": {"required": True, "content": content}, "parameters": [header]}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return JSONResponse({"error": exc.message}, status_code=exc.status_code, headers=headers)


async def _starlette_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


def _response(
    result: RoutedResult, name: str, request_id: str, started: float, gateway: Gateway
) -> dict[str, Any]:
    served, a = result.served, result.assignment
    labels = (name, served.variant, served.call.model, served.call.version)
    metrics = gateway.metrics
    metrics.child(metrics.request_seconds, *labels).observe(time.perf_counter() - started)
    return {
        "request_id": request_id,
        "deployment": name,
        "variant": served.variant,
        "assigned_variant": a.variant,
        "in_experiment": a.in_experiment,
        "reason": a.reason,
        "model": served.call.model,
        "model_version": served.call.version,
        "fallback": served.fallback,
        "spec_version": result.spec_version,
    }


def _count_error(gateway: Gateway, name: str, endpoint: str) -> None:
    # The deployment comes from the URL: label unknown names as one series, never as
    # themselves (a scanner would otherwise create a time series per path).
    label = name if name in gateway.states else "unknown"
    gateway.metrics.child(gateway.metrics.requests, label, endpoint, "", "error").inc()


def _add_prediction_routes(app: FastAPI, gateway: Gateway) -> None:
    @app.post(
        "/v1/predict/{name}",
        response_model=PredictResponse,
        responses=_ERRORS,
        tags=["predict"],
        summary="Predict with the deployment's strategy",
        openapi_extra=_body_doc(PredictRequest),
    )
    async def predict(name: str, request: Request) -> Response:
        started = time.perf_counter()
        request_id = request_id_of(request.headers.get("x-request-id"))
        try:
            body = await _parse(request, PredictRequest)
            result = await gateway.predict(
                name, str(body.unit_id), body.attributes, body.features, request_id
            )
        except HTTPError:
            _count_error(gateway, name, "predict")
            raise
        out = _response(result, name, request_id, started, gateway)
        out["prediction"] = result.served.output
        metrics = gateway.metrics
        metrics.child(metrics.requests, name, "predict", out["variant"], "ok").inc()
        return JSONResponse(out, headers={"X-Request-ID": request_id})

    @app.post(
        "/v1/rank/{name}",
        response_model=RankResponse,
        responses=_ERRORS,
        tags=["predict"],
        summary="Rank (team-draft interleaving in interleave mode)",
        openapi_extra=_body_doc(RankRequest),
    )
    async def rank(name: str, request: Request) -> Response:
        started = time.perf_counter()
        request_id = request_id_of(request.headers.get("x-request-id"))
        try:
            body = await _parse(request, RankRequest)
            ranker_input = {"features": body.features, "candidates": body.candidates}
            result = await gateway.rank(
                name, str(body.unit_id), body.attributes, ranker_input, body.length, request_id
            )
        except HTTPError:
            _count_error(gateway, name, "rank")
            raise
        out = _response(result, name, request_id, started, gateway)
        out["items"] = result.served.output
        out["teams"] = result.served.teams
        metrics = gateway.metrics
        metrics.child(metrics.requests, name, "rank", out["variant"], "ok").inc()
        return JSONResponse(out, headers={"X-Request-ID": request_id})


def _add_ops_routes(app: FastAPI, gateway: Gateway) -> None:
    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness", responses={503: {"model": ErrorBody}})
    async def readyz() -> Response:
        if not gateway.ready:
            return JSONResponse({"error": "not ready: starting or shutting down"}, 503)
        versions = {n: s.spec.version for n, s in gateway.states.items()}
        return JSONResponse({"status": "ready", "deployments": versions})

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def metrics() -> Response:
        gateway.metrics.inflight.set(sum(d.inflight for d in gateway.deployments.values()))
        return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")


def _mount_ingestion(app: FastAPI, writer: BatchWriter, config: IngestConfig) -> None:
    """Add the ingestion routes (and their OpenAPI schemas) to the gateway app."""
    ingest = create_ingest_app(writer, config)
    routes: list[BaseRoute] = [r for r in ingest.routes if getattr(r, "path", "") in (
        "/v1/events", "/v1/outcomes")]  # fmt: skip
    app.router.routes.extend(routes)
    schemas = ingest.openapi().get("components", {}).get("schemas", {})
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for key, value in schemas.items():
                components.setdefault(key, value)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    specs: Sequence[ExperimentSpec],
    *,
    store: EventStore | str | None = None,
    models: Mapping[str, Any] | None = None,
    config: ServeConfig | None = None,
    admin_token: str | None = None,
    spec_paths: Mapping[str, Path] | None = None,
    writer_options: Mapping[str, Any] | None = None,
) -> FastAPI:
    """The gateway as a FastAPI app (run it with uvicorn, or ``proving serve``).

    Args:
        specs: one spec per deployment.
        store: the event store (or its URL) for telemetry and runtime state; an
            in-memory DuckDB by default. The app closes it at shutdown.
        models: in-process models by ``name`` or ``name:version`` (see
            :func:`~proving.serve.backends.load_backend`).
        config: timeouts, batching and limits.
        admin_token: the admin API's bearer token (None: admin API refused).
        spec_paths: spec file per deployment, watched for new versions.
        writer_options: keyword arguments of :class:`~proving.telemetry.writer.BatchWriter`.
    """
    config = config or ServeConfig()
    event_store = open_store(store if isinstance(store, str) else ":memory:") if not isinstance(
        store, EventStore) else store  # fmt: skip
    metrics = GatewayMetrics()
    writer = BatchWriter(event_store, registry=metrics.registry, **dict(writer_options or {}))
    gateway = Gateway(
        specs, writer=writer, state_store=event_store, models=models, config=config,
        metrics=metrics,
    )  # fmt: skip
    watcher = SpecWatcher(gateway, spec_paths or {}, config.reload_interval)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Warm up: the first Arrow conversion imports heavy modules; pay it now, not while
        # the writer thread holds the GIL during the first requests.
        await asyncio.to_thread(warm_up_events)
        await gateway.start()
        if spec_paths:
            watcher.start()
        yield
        await watcher.stop()
        await gateway.close()
        await asyncio.to_thread(writer.close)
        await asyncio.to_thread(event_store.close)

    app = FastAPI(
        title="proving gateway",
        version="1",
        description="Serve models with A/B, shadow, canary, blue/green and interleaving; "
        "log every exposure and prediction.",
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.state.writer = writer
    app.state.watcher = watcher
    app.state.store = event_store
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPError, _http_error)
    app.add_exception_handler(StarletteHTTPException, _starlette_error)
    _add_prediction_routes(app, gateway)
    _add_ops_routes(app, gateway)
    _mount_ingestion(app, writer, IngestConfig())
    app.include_router(create_admin_router(gateway, admin_token, watcher))
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.max_body_bytes,
                       exempt=("/v1/events", "/v1/outcomes"))  # fmt: skip
    return app
