"""The ingestion API: ``POST /v1/events`` and ``POST /v1/outcomes`` (an ASGI app).

Bodies are batches: ``{"events": [...]}`` or a bare JSON array (``/v1/outcomes`` also
takes ``{"outcomes": [...]}``; its items default to ``"type": "outcome"``). Each event is
validated on its own: bad ones are rejected with their index, field and reason, good ones
in the same batch are kept.

Response rules:

====== =================================================================================
200    every event accepted (an empty batch too)
207    some accepted, some rejected: the body lists both
400    every event rejected; or the body is not JSON, or not a batch
413    the body exceeds ``max_body_bytes`` or the batch ``max_events``
503    the writer's queue is full or the store failed: nothing of this batch was
       acknowledged; retry it (idempotent when the events carry their ``event_id``)
====== =================================================================================

The response is sent only after the accepted events are committed to the store (group
commit through :meth:`BatchWriter.submit`), so an acknowledged event survives ``kill -9``
of the server right after the acknowledgement.

Each accepted entry has a ``status``: ``stored`` (committed now, or already stored by an
earlier post of the same ``event_id``: posts are idempotent), ``duplicate`` (the same
``event_id`` appeared earlier in this batch; stored once) or ``sampled_out`` (left out by
the sampling policy).

Checks beyond the schema: an experiment not in ``known_experiments`` (when that set is
configured) is rejected; a timestamp more than ``max_future_skew`` ahead of the server's
clock is rejected; an outcome timestamped before its unit's first exposure is accepted
and stored, with a warning in the response (labels are legitimately backdated, and the
metrics layer's conversion window after first exposure already leaves it out).

Example:
    >>> from proving.telemetry.duckdb_store import DuckDBStore
    >>> from proving.telemetry.writer import BatchWriter
    >>> app = create_ingest_app(BatchWriter(DuckDBStore(":memory:")))
    >>> sorted(r.path for r in app.routes if r.path.startswith(("/v1", "/metrics")))
    ['/metrics', '/v1/events', '/v1/health', '/v1/outcomes']
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, TypeAdapter

from proving.errors import TelemetryError
from proving.telemetry.events import (
    Event,
    EventType,
    ExposureEvent,
    OutcomeEvent,
    PredictionEvent,
    to_record_batch,
    utc_now,
)
from proving.telemetry.privacy import PrivacyPolicy
from proving.telemetry.validation import Rejection, validate_events
from proving.telemetry.writer import BatchWriter, WriterOverloadedError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestConfig:
    """Limits and checks of the ingestion API.

    Args:
        known_experiments: when set, exposures and predictions naming another experiment
            are rejected.
        max_body_bytes: larger bodies get 413.
        max_events: larger batches get 413.
        max_future_skew: events timestamped further ahead of the server clock are rejected.
        check_outcome_skew: look up first exposures to flag outcomes that precede them.
        privacy: sampling, hashing and dropping applied before storage.
        commit_timeout: seconds to wait for the store to commit a batch before 503.
    """

    known_experiments: frozenset[str] | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    max_events: int = 10_000
    max_future_skew: timedelta = timedelta(minutes=5)
    check_outcome_skew: bool = True
    privacy: PrivacyPolicy = field(default_factory=PrivacyPolicy)
    commit_timeout: float = 30.0


class AcceptedItem(BaseModel):
    """One accepted event of a batch."""

    index: int
    event_id: str
    status: Literal["stored", "duplicate", "sampled_out"]


class RejectedItem(BaseModel):
    """One rejected event of a batch: where and why."""

    index: int
    event_id: str | None
    field: str
    reason: str


class WarningItem(BaseModel):
    """An accepted event that deserves a look (e.g. an outcome before its exposure)."""

    index: int
    event_id: str
    reason: str


class IngestResponse(BaseModel):
    """Body of every 200/207/400 answer to a batch."""

    accepted: list[AcceptedItem]
    rejected: list[RejectedItem]
    warnings: list[WarningItem]


class ErrorResponse(BaseModel):
    """Body of an answer that rejects the whole request."""

    error: str


_Item = Annotated[ExposureEvent | PredictionEvent | OutcomeEvent, Field(discriminator="type")]


def _body_schema(item: Any, key: str, defs: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI request body of a batch endpoint; model definitions are added to ``defs``.

    The endpoints read the raw body themselves (for 413 and per-event rejection), so
    FastAPI cannot infer the body; this documents it.
    """
    adapter: TypeAdapter[Any] = TypeAdapter(list[item])
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    defs.update(schema.pop("$defs", {}))
    body = {
        "oneOf": [
            {"type": "object", "properties": {key: schema}, "required": [key]},
            schema,
        ]
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    207: {"model": IngestResponse, "description": "Some events accepted, some rejected."},
    400: {"model": IngestResponse, "description": "Malformed JSON, or every event rejected."},
    413: {"model": ErrorResponse, "description": "Body or batch too large."},
    503: {"model": ErrorResponse, "description": "Overloaded or store down; retry."},
}


class _RequestRejectedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _read_items(request: Request, config: IngestConfig, key: str) -> list[Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > config.max_body_bytes:
        raise _RequestRejectedError(
            413, f"body of {declared} bytes exceeds {config.max_body_bytes}"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > config.max_body_bytes:
            raise _RequestRejectedError(413, f"body exceeds {config.max_body_bytes} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _RequestRejectedError(
            400, f"body is not valid JSON: {exc}. Fix: send a JSON batch."
        ) from exc
    items = body.get(key, body.get("events")) if isinstance(body, dict) else body
    if not isinstance(items, list):
        keys = f" with keys {sorted(body)}" if isinstance(body, dict) else ""
        raise _RequestRejectedError(
            400,
            f'body must be {{"{key}": [...]}} or a JSON array of events; got '
            f"{type(body).__name__}{keys}. Fix: wrap the events in a list.",
        )
    if len(items) > config.max_events:
        raise _RequestRejectedError(
            413,
            f"batch of {len(items)} events exceeds {config.max_events}. Fix: split the batch.",
        )
    return items


def _checks(
    accepted: list[tuple[int, Event]], config: IngestConfig, now: datetime
) -> tuple[list[tuple[int, Event]], list[Rejection]]:
    """Unknown experiments and future timestamps: rejected one by one."""
    kept: list[tuple[int, Event]] = []
    rejected: list[Rejection] = []
    horizon = now + config.max_future_skew
    known = config.known_experiments
    for index, event in accepted:
        experiment = getattr(event, "experiment", None)
        if known is not None and experiment is not None and experiment not in known:
            rejected.append(
                Rejection(
                    index,
                    "experiment",
                    f"event {index}: experiment {experiment!r} is not known to this server "
                    f"(known: {sorted(known)[:10]}). Fix: create its spec first, or check "
                    "the name.",
                    event.event_id,
                )
            )
        elif event.timestamp > horizon:
            rejected.append(
                Rejection(
                    index,
                    "timestamp",
                    f"event {index}: timestamp {event.timestamp.isoformat()} is more than "
                    f"{config.max_future_skew} ahead of the server clock "
                    f"({now.isoformat()}). Fix: check the client clock.",
                    event.event_id,
                )
            )
        else:
            kept.append((index, event))
    return kept, rejected


async def _skew_warnings(
    writer: BatchWriter, events: Sequence[tuple[int, Event]]
) -> list[WarningItem]:
    """Outcomes timestamped before their unit's first exposure (stored, but flagged)."""
    outcomes = [(i, e) for i, e in events if isinstance(e, OutcomeEvent) and e.unit_id]
    if not outcomes:
        return []
    units = sorted({e.unit_id for _, e in outcomes if e.unit_id})
    try:
        first = await asyncio.to_thread(writer.store.first_exposures, units)
    except Exception as exc:  # advisory only: a failed lookup must not fail the batch
        logger.warning("clock-skew lookup of first exposures failed: %s", exc)
        first = {}
    for _, event in events:
        if isinstance(event, ExposureEvent) and event.unit_id in units:
            seen = first.get(event.unit_id)
            first[event.unit_id] = event.timestamp if seen is None else min(seen, event.timestamp)
    warnings = []
    for index, event in outcomes:
        exposed = first.get(event.unit_id or "")
        if exposed is not None and event.timestamp < exposed:
            warnings.append(
                WarningItem(
                    index=index,
                    event_id=event.event_id,
                    reason=(
                        f"event {index}: outcome at {event.timestamp.isoformat()} precedes "
                        f"the first exposure of unit {event.unit_id!r} at {exposed.isoformat()}; "
                        "stored, but a conversion window after first exposure will not "
                        "count it. Check the client clock if this is unexpected."
                    ),
                )
            )
    return warnings


async def ingest_batch(
    raws: Sequence[Any],
    writer: BatchWriter,
    config: IngestConfig,
    default_type: EventType | None = None,
    only_type: EventType | None = None,
) -> IngestResponse:
    """Validate, check, transform and commit one batch; the heart of both endpoints.

    Raises:
        WriterOverloadedError: the writer has no room (nothing queued).
        TelemetryError: the store did not commit the batch.
    """
    valid, rejected = validate_events(raws, default_type)
    if only_type is not None:
        wrong = [(i, e) for i, e in valid if e.type != only_type]
        valid = [(i, e) for i, e in valid if e.type == only_type]
        rejected += [
            Rejection(
                i,
                "type",
                f"event {i}: this endpoint takes {only_type} events; got "
                f"{e.type}. Fix: post it to /v1/events.",
                _client_id(raws[i]),
            )
            for i, e in wrong
        ]
    valid, more = _checks(valid, config, utc_now())
    # A rejected event names the id the client sent, never one generated for it.
    rejected += [replace(r, event_id=_client_id(raws[r.index])) for r in more]
    accepted: list[AcceptedItem] = []
    to_store: list[tuple[int, Event]] = []
    first_index: dict[str, int] = {}
    for index, event in valid:
        if event.event_id in first_index:
            accepted.append(AcceptedItem(index=index, event_id=event.event_id, status="duplicate"))
            continue
        first_index[event.event_id] = index
        kept = config.privacy.apply(event)
        status: Literal["stored", "sampled_out"] = "stored" if kept is not None else "sampled_out"
        accepted.append(AcceptedItem(index=index, event_id=event.event_id, status=status))
        if kept is not None:
            to_store.append((index, kept))
    warnings = await _skew_warnings(writer, to_store) if config.check_outcome_skew else []
    if to_store:
        future = writer.submit([event for _, event in to_store])
        await asyncio.wait_for(asyncio.wrap_future(future), timeout=config.commit_timeout)
    return IngestResponse(
        accepted=sorted(accepted, key=lambda a: a.index),
        rejected=[RejectedItem(**r.to_dict()) for r in sorted(rejected, key=lambda r: r.index)],
        warnings=warnings,
    )


def _client_id(raw: Any) -> str | None:
    value = raw.get("event_id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def _status(response: IngestResponse) -> int:
    if not response.rejected:
        return 200
    return 207 if response.accepted else 400


def _endpoint(
    writer: BatchWriter,
    config: IngestConfig,
    key: str,
    default_type: EventType | None,
    only_type: EventType | None,
) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> JSONResponse:
        try:
            items = await _read_items(request, config, key)
            result = await ingest_batch(items, writer, config, default_type, only_type)
        except _RequestRejectedError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except WriterOverloadedError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})
        except (TelemetryError, TimeoutError) as exc:
            message = f"the batch was not committed: {exc or 'timed out'}. Retry it."
            return JSONResponse({"error": message}, status_code=503, headers={"Retry-After": "1"})
        return JSONResponse(result.model_dump(), status_code=_status(result))

    return endpoint


def create_ingest_app(
    writer: BatchWriter,
    config: IngestConfig | None = None,
    *,
    close_on_shutdown: bool = False,
    expose_metrics: bool = True,
) -> FastAPI:
    """The ingestion API as a FastAPI app, to run alone or to mount in the gateway.

    Args:
        writer: commits the events (its store decides where they go).
        config: limits and checks; defaults to :class:`IngestConfig()`.
        close_on_shutdown: close the writer and its store when the app shuts down.
        expose_metrics: serve ``GET /metrics`` (the writer's Prometheus registry), so
            dropped and queued counts are visible; turn off when the host app serves it.

    Example:
        >>> from proving.telemetry.store import open_store
        >>> app = create_ingest_app(BatchWriter(open_store("duckdb://:memory:")))
    """
    config = config or IngestConfig()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Warm up: the first Arrow timestamp conversion imports heavy modules; pay that at
        # startup, not in the first client's request.
        await asyncio.to_thread(to_record_batch, "outcomes", [OutcomeEvent(unit_id="-", name="-")])
        yield
        if close_on_shutdown:
            await asyncio.to_thread(writer.close)
            await asyncio.to_thread(writer.store.close)

    app = FastAPI(
        title="proving ingestion API",
        version="1",
        description="Exposures, predictions and outcomes, validated one by one and "
        "acknowledged only once committed.",
        lifespan=lifespan,
    )
    defs: dict[str, Any] = {}
    app.add_api_route(
        "/v1/events",
        _endpoint(writer, config, "events", None, None),
        methods=["POST"],
        response_model=IngestResponse,
        responses=_RESPONSES,
        summary="Ingest a batch of exposures, predictions and outcomes",
        openapi_extra=_body_schema(_Item, "events", defs),
    )
    app.add_api_route(
        "/v1/outcomes",
        _endpoint(writer, config, "outcomes", "outcome", "outcome"),
        methods=["POST"],
        response_model=IngestResponse,
        responses=_RESPONSES,
        summary="Ingest a batch of outcomes (labels, conversions)",
        openapi_extra=_body_schema(OutcomeEvent, "outcomes", defs),
    )
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def health() -> dict[str, Any]:
        stats = writer.stats
        return {"status": "ok", "pending": stats.pending, "dropped": dict(stats.dropped)}

    app.add_api_route("/v1/health", health, methods=["GET"], summary="Liveness and queue")
    if expose_metrics:

        async def metrics() -> Response:
            body = generate_latest(writer.metrics.registry)
            return Response(body, media_type=CONTENT_TYPE_LATEST)

        app.add_api_route(
            "/metrics", metrics, methods=["GET"], summary="Prometheus metrics of the writer"
        )
    return app


__all__ = ["IngestConfig", "IngestResponse", "create_ingest_app", "ingest_batch"]
