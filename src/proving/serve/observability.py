"""Prometheus metrics of the gateway (``GET /metrics``).

Labels are bounded sets only: deployment, variant, model, version, role, status. Never a
unit id or a request id: each distinct label value is a new time series, and per-user
series would exhaust Prometheus (its naming guide: "do not use labels to store
dimensions with high cardinality").

================================================  ===========================================
``proving_serve_requests_total``                  requests answered, by endpoint and status
``proving_serve_request_seconds``                 served latency (whole request, in the app)
``proving_serve_model_calls_total``               model calls by role (served, shadow) and
                                                  status (ok, error, timeout, fallback)
``proving_serve_model_seconds``                   model call latency
``proving_serve_fallbacks_total``                 challengers replaced by the champion
``proving_serve_shadow_skipped_total``            shadow copies not sent (concurrency cap)
``proving_serve_spec_version``                    running spec version per deployment
``proving_serve_invalid_events_total``            events the event schema refused (not logged)
``proving_serve_inflight``                        requests in flight
================================================  ===========================================

The telemetry writer's metrics (queue depth, drops) live in the same registry.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["GatewayMetrics"]

# Latency buckets from 0.25 ms: the gateway's own overhead is sub-millisecond.
_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


class GatewayMetrics:
    """The gateway's metrics, in their own registry (one per app, so tests do not clash)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "proving_serve_requests_total",
            "Requests answered by the gateway.",
            ["deployment", "endpoint", "variant", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "proving_serve_request_seconds",
            "Latency of served responses, inside the gateway.",
            ["deployment", "variant", "model", "version"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.model_calls = Counter(
            "proving_serve_model_calls_total",
            "Model calls by role and status.",
            ["deployment", "variant", "model", "version", "role", "status"],
            registry=r,
        )
        self.model_seconds = Histogram(
            "proving_serve_model_seconds",
            "Latency of model calls.",
            ["deployment", "variant", "model", "version", "role"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "proving_serve_fallbacks_total",
            "Challenger calls that failed and were answered by the champion.",
            ["deployment", "variant", "model", "version", "reason"],
            registry=r,
        )
        self.shadow_skipped = Counter(
            "proving_serve_shadow_skipped_total",
            "Shadow copies not sent, by reason.",
            ["deployment", "variant", "reason"],
            registry=r,
        )
        self.spec_version = Gauge(
            "proving_serve_spec_version",
            "Spec version running per deployment.",
            ["deployment"],
            registry=r,
        )
        self.invalid_events = Counter(
            "proving_serve_invalid_events_total",
            "Prediction events not logged because the event schema refused them.",
            ["deployment"],
            registry=r,
        )
        self.inflight = Gauge(
            "proving_serve_inflight", "Requests in flight in the gateway.", registry=r
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: the lookup costs microseconds per request."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric in the registry."""
        return generate_latest(self.registry)
