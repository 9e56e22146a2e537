"""The traffic driver: simulated users sending real HTTP requests to a gateway.

:func:`drive` sends every :class:`PlannedRequest` of a phase to
``POST {base_url}/v1/predict/{deployment}`` with :mod:`httpx` (one pooled async client, at
most ``concurrency`` requests in flight), each with its own ``X-Request-ID``. For every
answer it asks the world what the user did (the ``outcome`` callback sees the request and
the served prediction) and posts the resulting outcomes back to ``POST /v1/outcomes`` with
the unit id and the request id, in batches, as a product's event pipeline would. Outcome
event ids are derived from the request id, so a retried batch (after a 503 from a full
writer queue) is stored once.

Everything the caller got back is kept in :class:`ServedRecord` s, so the caller can later
check the store against what was actually returned (for instance, that a shadow model's
prediction never reached a user). A Rich progress bar shows the phase when a
:class:`rich.progress.Progress` is given.

Example:
    >>> import asyncio
    >>> plan = [PlannedRequest("u-1", {"country": "US"}, [0.1, 0.2, 0.3, 0.4])]
    >>> run = asyncio.run(drive("http://127.0.0.1:8000", "ranker", plan))  # doctest: +SKIP
    >>> run.summary().n_ok  # doctest: +SKIP
    1
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from proving.errors import ServeError
from proving.stats.results import ResultBase

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["OutcomeFn", "PhaseRun", "PlannedRequest", "ServedRecord", "TrafficSummary", "drive"]

#: (the request, the gateway's JSON answer) -> outcome events ``{"name", "value"}`` to post.
OutcomeFn = Callable[["PlannedRequest", dict[str, Any]], Sequence[dict[str, Any]]]

_RETRY_STATUSES = (503,)
_MAX_ERRORS_KEPT = 5


@dataclass(frozen=True)
class PlannedRequest:
    """One request a simulated user will send.

    ``key`` is free for the outcome callback, e.g. to seed this request's outcome draw so
    a run is reproducible whatever order concurrent requests complete in.
    """

    unit_id: str
    attributes: dict[str, Any]
    features: Any
    key: int = 0


@dataclass(frozen=True)
class ServedRecord:
    """What the caller got back for one request (status 0: no HTTP answer at all)."""

    index: int
    request_id: str
    unit_id: str
    status_code: int
    latency_ms: float
    variant: str | None = None
    prediction: Any = None
    fallback: bool = False
    spec_version: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The gateway answered 200."""
        return self.status_code == 200


@dataclass(frozen=True)
class TrafficSummary(ResultBase):
    """A phase's traffic in numbers (JSON-serializable).

    Latencies are measured by the client, end to end over loopback HTTP.
    """

    phase: str
    deployment: str
    n_requests: int
    n_ok: int
    n_failed: int
    n_fallback: int
    variants: dict[str, int]
    outcomes_posted: int
    outcomes_accepted: int
    duration_s: float
    requests_per_second: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    concurrency: int
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhaseRun:
    """A phase's records (one per request, in plan order) and outcome counts."""

    phase: str
    deployment: str
    records: tuple[ServedRecord, ...]
    outcomes_posted: int
    outcomes_accepted: int
    duration_s: float
    concurrency: int
    outcome_errors: tuple[str, ...] = field(default=())

    def summary(self) -> TrafficSummary:
        """The phase in numbers."""
        ok = [r for r in self.records if r.ok]
        lat = np.asarray([r.latency_ms for r in ok], dtype=float)
        errors = [
            f"{r.request_id}: HTTP {r.status_code}: {r.error}" for r in self.records if not r.ok
        ]
        return TrafficSummary(
            phase=self.phase,
            deployment=self.deployment,
            n_requests=len(self.records),
            n_ok=len(ok),
            n_failed=len(self.records) - len(ok),
            n_fallback=sum(r.fallback for r in ok),
            variants=dict(sorted(Counter(str(r.variant) for r in ok).items())),
            outcomes_posted=self.outcomes_posted,
            outcomes_accepted=self.outcomes_accepted,
            duration_s=self.duration_s,
            requests_per_second=len(self.records) / self.duration_s if self.duration_s else 0.0,
            latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else None,
            latency_p99_ms=float(np.percentile(lat, 99)) if lat.size else None,
            concurrency=self.concurrency,
            errors=tuple((errors + list(self.outcome_errors))[:_MAX_ERRORS_KEPT]),
        )


class _OutcomeSink:
    """Buffers outcome events and posts them to ``/v1/outcomes`` in batches."""

    def __init__(self, client: httpx.AsyncClient, url: str, batch_size: int) -> None:
        self.client = client
        self.url = url
        self.batch_size = batch_size
        self.buffer: list[dict[str, Any]] = []
        self.posted = 0
        self.accepted = 0
        self.errors: list[str] = []

    async def add(self, events: Sequence[dict[str, Any]]) -> None:
        self.buffer.extend(events)
        if len(self.buffer) >= self.batch_size:
            await self.flush()

    async def flush(self) -> None:
        batch, self.buffer = self.buffer, []
        if not batch:
            return
        self.posted += len(batch)
        for attempt in range(5):
            try:
                response = await self.client.post(self.url, json={"outcomes": batch})
            except httpx.HTTPError as exc:
                error = f"outcomes: {type(exc).__name__}: {exc}"
            else:
                if response.status_code in (200, 207):
                    self.accepted += len(response.json().get("accepted", []))
                    if response.status_code == 207:
                        self.errors.append(f"outcomes: HTTP 207: {response.text[:300]}")
                    return
                error = f"outcomes: HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in _RETRY_STATUSES:
                    break
            # Event ids are fixed per request, so a retry cannot store an outcome twice.
            await asyncio.sleep(0.05 * 2**attempt)
        self.errors.append(error)


async def _send(
    client: httpx.AsyncClient, url: str, index: int, request: PlannedRequest, request_id: str
) -> tuple[ServedRecord, dict[str, Any] | None]:
    body = {
        "unit_id": request.unit_id,
        "attributes": request.attributes,
        "features": request.features,
    }
    started = time.perf_counter()
    try:
        response = await client.post(url, json=body, headers={"X-Request-ID": request_id})
    except httpx.HTTPError as exc:
        latency = (time.perf_counter() - started) * 1000.0
        error = f"{type(exc).__name__}: {exc}"
        return ServedRecord(index, request_id, request.unit_id, 0, latency, error=error), None
    latency = (time.perf_counter() - started) * 1000.0
    if response.status_code != 200:
        record = ServedRecord(
            index, request_id, request.unit_id, response.status_code, latency,
            error=response.text[:300],
        )  # fmt: skip
        return record, None
    answer: dict[str, Any] = response.json()
    echoed = response.headers.get("X-Request-ID")
    record = ServedRecord(
        index=index,
        request_id=str(answer.get("request_id")),
        unit_id=request.unit_id,
        status_code=200,
        latency_ms=latency,
        variant=answer.get("variant"),
        prediction=answer.get("prediction"),
        fallback=bool(answer.get("fallback", False)),
        spec_version=answer.get("spec_version"),
        error=None if echoed == request_id == answer.get("request_id") else (
            f"request id not echoed: sent {request_id}, header {echoed}, "
            f"body {answer.get('request_id')}"
        ),
    )  # fmt: skip
    return record, answer


async def drive(
    base_url: str,
    deployment: str,
    plan: Sequence[PlannedRequest],
    *,
    outcome: OutcomeFn | None = None,
    phase: str = "traffic",
    concurrency: int = 8,
    outcome_batch_size: int = 100,
    timeout: float = 10.0,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PhaseRun:
    """Send ``plan`` to the gateway and post the outcomes back.

    Args:
        base_url: the gateway, e.g. ``http://127.0.0.1:8000``.
        deployment: the deployment to call (``/v1/predict/{deployment}``).
        plan: the requests, sent in this order (up to ``concurrency`` at once).
        outcome: what the user did after an answer; None posts no outcomes.
        phase: a label, also the prefix of the request ids.
        concurrency: requests in flight at most.
        outcome_batch_size: outcomes per ``POST /v1/outcomes``.
        timeout: seconds per HTTP call.
        progress: a Rich progress display to add this phase's bar to.
        transport: an httpx transport (e.g. ``httpx.ASGITransport`` for an in-process
            app); the network by default.

    Returns:
        A :class:`PhaseRun` with one record per planned request, in plan order.

    Raises:
        ServeError: a parameter is out of range.
    """
    if concurrency < 1 or outcome_batch_size < 1:
        raise ServeError(
            f"drive: concurrency and outcome_batch_size must be >= 1; got {concurrency} and "
            f"{outcome_batch_size}."
        )
    base = base_url.rstrip("/")
    predict_url = f"{base}/v1/predict/{deployment}"
    task = progress.add_task(f"{phase}: {deployment}", total=len(plan)) if progress else None
    limits = httpx.Limits(
        max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2
    )
    records: list[ServedRecord | None] = [None] * len(plan)
    tag = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport) as client:
        sink = _OutcomeSink(client, f"{base}/v1/outcomes", outcome_batch_size)
        cursor = iter(range(len(plan)))

        async def worker() -> None:
            for index in cursor:  # the iterator is shared: each index is taken once
                request = plan[index]
                record, answer = await _send(
                    client, predict_url, index, request, f"{phase}-{tag}-{index}"
                )
                records[index] = record
                if answer is not None and outcome is not None:
                    events = [
                        {
                            "event_id": f"{record.request_id}:{e['name']}:{k}",
                            "unit_id": request.unit_id,
                            "request_id": record.request_id,
                            **e,
                        }
                        for k, e in enumerate(outcome(request, answer))
                    ]
                    await sink.add(events)
                if progress is not None and task is not None:
                    progress.advance(task)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, max(1, len(plan))))))
        await sink.flush()
    duration = time.perf_counter() - started
    return PhaseRun(
        phase=phase,
        deployment=deployment,
        records=tuple(r for r in records if r is not None),
        outcomes_posted=sink.posted,
        outcomes_accepted=sink.accepted,
        duration_s=duration,
        concurrency=concurrency,
        outcome_errors=tuple(sink.errors),
    )
