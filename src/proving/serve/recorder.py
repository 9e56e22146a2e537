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
from proving.telemetry.events import (
    ExposureRow,
    PredictionRow,
    attributes_json,
    json_text,
    to_record_batch,
    utc_now,
)
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
    """Convert one row of each kind to Arrow, so the imports happen at startup."""
    now = utc_now()
    to_record_batch("exposures", [ExposureRow("w", "w", "w", "w", now, "{}")])
    to_record_batch(
        "predictions",
        [PredictionRow("w", "w", None, "w", None, None, "w", "w", "served", "ok", "{}", "null",
                       None, 0.0, now)],
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
        try:  # valid by construction (spec names, the request model's unit id): a row
            row = ExposureRow(
                event_id(),
                assignment.experiment,
                assignment.variant,
                assignment.unit_id,
                utc_now(),
                attributes_json(_scalar_attributes(attributes)),
            )
        except ValueError:  # an attribute JSON cannot encode: count, never fail
            self.metrics.invalid_events.labels(assignment.experiment).inc()
            return
        self.writer.emit(row)

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
            row = PredictionRow(
                event_id(),
                request_id,
                unit_id,
                deployment,
                experiment or deployment,
                call.variant,
                call.model,
                call.version,
                role,
                call.status,
                json_text(logged),
                json_text(call.output if call.status in ("ok", "fallback") else call.error),
                _score(call.output),
                max(0.0, call.latency_ms),
                utc_now(),
            )
        except ValueError:  # an output JSON cannot encode must not fail the request
            self.metrics.invalid_events.labels(deployment).inc()
            return
        self.writer.emit(row)
