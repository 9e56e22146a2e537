"""Turns what the gateway did into telemetry events and metrics, without blocking.

Every exposure (the first of a unit in its variant, see
``ServeConfig.exposure_cache_size``) and every model call (served, shadow, failed,
fallback) becomes an event handed to
:meth:`BatchWriter.emit <proving.telemetry.writer.BatchWriter.emit>`, which never blocks
the request: a full queue is a counted drop
(``proving_telemetry_dropped_total``), visible in ``/metrics``. All events of one request
carry its request id, so a shadow prediction pairs with the served one and a late outcome
joins on it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from proving.assign.assignment import Assignment
from proving.serve.observability import GatewayMetrics
from proving.telemetry.events import (
    ExposureRow,
    PredictionRow,
    attributes_json,
    json_text,
    now_micros,
    to_record_batch,
)
from proving.telemetry.writer import BatchWriter

__all__ = ["ModelCall", "Recorder", "warm_up_events"]

CallStatus = Literal["ok", "error", "timeout", "fallback"]
Role = Literal["served", "shadow"]


@dataclass(slots=True)
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


def warm_up_events() -> None:
    """Convert one row of each kind to Arrow, so the imports happen at startup."""
    now = now_micros()
    to_record_batch("exposures", [ExposureRow(None, "w", "w", "w", now, "{}")])
    to_record_batch(
        "predictions",
        [PredictionRow(None, "w", None, "w", None, None, "w", "w", "served", "ok", "{}", "null",
                       None, 0.0, now)],
    )  # fmt: skip


def _score(output: Any) -> float | None:
    if type(output) is float:  # a model's usual answer: one check
        return output if math.isfinite(output) else None
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

    def __init__(
        self,
        writer: BatchWriter,
        metrics: GatewayMetrics,
        log_features: bool,
        exposure_cache_size: int = 0,
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.log_features = log_features
        self.exposure_cache_size = exposure_cache_size
        # (experiment, variant, unit) already logged, oldest first.
        self._exposed: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def exposure(self, assignment: Assignment, attributes: dict[str, Any]) -> None:
        """Log that the unit saw its variant (only units in the experiment), once per unit
        and variant while the unit is among the last ``exposure_cache_size`` logged."""
        unit_id = assignment.unit_id
        if not assignment.in_experiment or unit_id is None:
            return
        key = (assignment.experiment, assignment.variant, unit_id)
        exposed = self._exposed
        if key in exposed:
            return
        try:  # valid by construction (spec names, the request model's unit id): a row
            row = ExposureRow(
                None,  # an id is given to the whole chunk when it is converted
                assignment.experiment,
                assignment.variant,
                unit_id,
                now_micros(),
                attributes_json(_scalar_attributes(attributes)),
            )
        except ValueError:  # an attribute JSON cannot encode: count, never fail
            self.metrics.invalid_events.labels(assignment.experiment).inc()
            return
        self.writer.emit(row)
        if self.exposure_cache_size:  # remembered once logged: a failure is tried again
            exposed[key] = None
            if len(exposed) > self.exposure_cache_size:
                exposed.popitem(last=False)

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
        metrics = self.metrics
        labels = (deployment, call.variant, call.model, call.version, role)
        metrics.model_calls.labels(*labels, call.status).inc()
        metrics.model_seconds.labels(*labels).observe(call.latency_ms / 1000.0)
        logged: dict[str, Any] = {}
        if self.log_features:
            logged = features if isinstance(features, dict) else {"instance": features}
        try:
            row = PredictionRow(
                None,
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
                now_micros(),
            )
        except ValueError:  # an output JSON cannot encode must not fail the request
            self.metrics.invalid_events.labels(deployment).inc()
            return
        self.writer.emit(row)
