"""Turns what the gateway did into telemetry events and metrics, without blocking.

Every exposure and every model call (served, shadow, failed, fallback) becomes an event
handed to :meth:`BatchWriter.emit <proving.telemetry.writer.BatchWriter.emit>`, which
never blocks the request: a full queue is a counted drop
(``proving_telemetry_dropped_total``), visible in ``/metrics``. All events of one request
carry its request id, so a shadow prediction pairs with the served one and a late outcome
joins on it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Literal

from proving.assign.assignment import Assignment
from proving.serve.observability import GatewayMetrics
from proving.telemetry.events import ExposureEvent, PredictionEvent, to_record_batch
from proving.telemetry.writer import BatchWriter

__all__ = ["ModelCall", "Recorder", "event_id", "warm_up_events"]

CallStatus = Literal["ok", "error", "timeout", "fallback"]
Role = Literal["served", "shadow"]


@dataclass
class ModelCall:
    """One call of one variant's model (or a value variant's value)."""

    variant: str
    model: str
    version: str
    output: Any = None
    latency_ms: float = 0.0
    status: CallStatus = "ok"
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The call returned an output."""
        return self.status == "ok"


def event_id() -> str:
    """A random 128-bit event id (the process PRNG: no system call on the hot path)."""
    return f"{random.getrandbits(128):032x}"


def warm_up_events() -> None:
    """Convert one event of each kind to Arrow, so the imports happen at startup."""
    to_record_batch("exposures", [ExposureEvent(experiment="w", variant="w", unit_id="w")])
    to_record_batch(
        "predictions",
        [PredictionEvent(request_id="w", deployment="w", model="w", model_version="w",
                         latency_ms=0.0)],
    )  # fmt: skip


def _score(output: Any) -> float | None:
    if isinstance(output, int | float) and not isinstance(output, bool):
        value = float(output)
        return value if math.isfinite(value) else None
    return None


def _scalar_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    # Exposures keep scalar attributes only (segments); nested values stay in the request.
    return {
        k: v
        for k, v in attributes.items()
        if v is None
        or isinstance(v, str | bool | int)
        or (isinstance(v, float) and math.isfinite(v))
    }


class Recorder:
    """Emits the gateway's events and updates its metrics."""

    def __init__(self, writer: BatchWriter, metrics: GatewayMetrics, log_features: bool) -> None:
        self.writer = writer
        self.metrics = metrics
        self.log_features = log_features

    def exposure(self, assignment: Assignment, attributes: dict[str, Any]) -> None:
        """Log that the unit saw its variant (only units in the experiment)."""
        if not assignment.in_experiment or assignment.unit_id is None:
            return
        try:
            event = ExposureEvent(
                event_id=event_id(),
                experiment=assignment.experiment,
                variant=assignment.variant,
                unit_id=assignment.unit_id,
                attributes=_scalar_attributes(attributes),
            )
        except ValueError:  # e.g. an attribute key the schema refuses: count, never fail
            self.metrics.invalid_events.labels(assignment.experiment).inc()
            return
        self.writer.emit(event)

    def prediction(
        self,
        call: ModelCall,
        *,
        deployment: str,
        request_id: str,
        unit_id: str | None,
        features: Any,
        role: Role = "served",
        experiment: str | None = None,
    ) -> None:
        """Log one model call and count it."""
        labels = (deployment, call.variant, call.model, call.version)
        metrics = self.metrics
        metrics.child(metrics.model_calls, *labels, role, call.status).inc()
        metrics.child(metrics.model_seconds, *labels, role).observe(call.latency_ms / 1000.0)
        logged: dict[str, Any] = {}
        if self.log_features:
            logged = features if isinstance(features, dict) else {"instance": features}
        try:
            event = PredictionEvent(
                event_id=event_id(),
                request_id=request_id,
                unit_id=unit_id,
                deployment=deployment,
                experiment=experiment or deployment,
                variant=call.variant,
                model=call.model,
                model_version=call.version,
                role=role,
                status=call.status,
                features=logged,
                output=call.output if call.status in ("ok", "fallback") else call.error,
                score=_score(call.output),
                latency_ms=max(0.0, call.latency_ms),
            )
        except ValueError:  # an output the event schema refuses must not fail the request
            self.metrics.invalid_events.labels(deployment).inc()
            return
        self.writer.emit(event)
