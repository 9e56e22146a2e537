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

The prediction routes are plain ASGI apps (:mod:`proving.serve.prediction_api`, the hot
path); the rest are FastAPI routes. The request id comes from the ``X-Request-ID`` header
when it is a plain token and is generated otherwise; it is returned in the body and the
header, and every event of the request carries it.

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
import gc
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from proving.errors import HTTPError
from proving.serve.admin import create_admin_router
from proving.serve.deployment import ServeConfig
from proving.serve.gateway import Gateway
from proving.serve.limits import BodyLimitMiddleware
from proving.serve.observability import GatewayMetrics
from proving.serve.prediction_api import PredictionEndpoint, prediction_openapi, validation_message
from proving.serve.protocol import ErrorBody
from proving.serve.recorder import warm_up_events
from proving.serve.reload import SpecWatcher
from proving.spec.experiment import ExperimentSpec
from proving.telemetry.ingest import IngestConfig, create_ingest_app
from proving.telemetry.store import EventStore, open_store
from proving.telemetry.writer import BatchWriter

__all__ = ["GatewayApp", "create_app"]


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"error": validation_message(exc.errors())}, status_code=400)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return JSONResponse({"error": exc.message}, status_code=exc.status_code, headers=headers)


async def _starlette_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


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


class GatewayApp(FastAPI):
    """The gateway's FastAPI app, with a shortcut for the prediction API.

    ``POST /v1/predict/{name}`` and ``POST /v1/rank/{name}`` go straight to their
    :class:`~proving.serve.prediction_api.PredictionEndpoint`, skipping the middleware
    stack and the route table, which cost more than the gateway's own work; they check
    their body size and answer their own errors. Every other request (and those two paths
    with another method or under a root path) goes through FastAPI as usual.
    """

    prediction_endpoints: dict[str, PredictionEndpoint]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            parts = scope["path"].split("/")
            if len(parts) == 4 and parts[1] == "v1" and parts[3]:
                endpoint = self.prediction_endpoints.get(parts[2])
                if endpoint is not None:
                    scope["path_params"] = {"name": parts[3]}
                    await endpoint(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def _add_documented_routes(app: GatewayApp, gateway: Gateway, writer: BatchWriter) -> None:
    """Mount the plain-ASGI routes (prediction, ingestion) and add them to the OpenAPI spec,
    which FastAPI derives from its own routes only."""
    app.prediction_endpoints = {}
    for endpoint in ("rank", "predict"):
        asgi = app.prediction_endpoints[endpoint] = PredictionEndpoint(gateway, endpoint)
        app.router.routes.insert(0, Route(f"/v1/{endpoint}/{{name}}", asgi, methods=["POST"]))
    ingest = create_ingest_app(writer, IngestConfig())
    app.router.routes.extend(
        r for r in ingest.routes if getattr(r, "path", "") in ("/v1/events", "/v1/outcomes")
    )
    paths, schemas = prediction_openapi()
    schemas = {**ingest.openapi().get("components", {}).get("schemas", {}), **schemas}
    derived = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = derived()
            schema["paths"] = {**paths, **schema.get("paths", {})}
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
) -> GatewayApp:
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
        writer_options: keyword arguments of :class:`~proving.telemetry.writer.BatchWriter`
            (its ``nice`` is ``config.telemetry_nice`` unless given here).
    """
    config = config or ServeConfig()
    event_store = open_store(store if isinstance(store, str) else ":memory:") if not isinstance(
        store, EventStore) else store  # fmt: skip
    metrics = GatewayMetrics()
    options = {"nice": config.telemetry_nice, **dict(writer_options or {})}
    writer = BatchWriter(event_store, registry=metrics.registry, **options)
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
        # What exists now (modules, models, specs) lives as long as the process: move it
        # out of the collector's sight, so a full collection walks only what requests
        # made. Full collections of the whole heap paused serving for ~30 ms each.
        gc.collect()
        gc.freeze()
        yield
        await watcher.stop()
        await gateway.close()
        await asyncio.to_thread(writer.close)
        await asyncio.to_thread(event_store.close)

    app = GatewayApp(
        title="proving gateway",
        version="1",
        description="Serve models with A/B, shadow, canary, blue/green and interleaving; "
        "log every exposure and prediction.",
        lifespan=lifespan,
        # FastAPI's OpenTelemetry hooks check their providers on every request; proving
        # reports through Prometheus (/metrics) and the event store.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.gateway = gateway
    app.state.writer = writer
    app.state.watcher = watcher
    app.state.store = event_store
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPError, _http_error)
    app.add_exception_handler(StarletteHTTPException, _starlette_error)
    _add_ops_routes(app, gateway)
    _add_documented_routes(app, gateway, writer)
    app.include_router(create_admin_router(gateway, admin_token, watcher))
    # The ingestion and prediction routes check their own body sizes.
    exempt = ("/v1/events", "/v1/outcomes", *(f"/v1/{e}/" for e in app.prediction_endpoints))
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.max_body_bytes, exempt=exempt)
    return app
