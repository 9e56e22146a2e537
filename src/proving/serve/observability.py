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

The four metrics every request updates (requests, request and model latency, model calls)
are :class:`LoopCounter` and :class:`LoopHistogram`: prometheus-client's own types take a
lock and run a Python loop over the buckets on every update: about 2.5 µs of the 24 µs a
request costs in-process (BENCHMARKS.md, "Gateway overhead"). Their children are plain
numbers, updated by the event loop's thread only; prometheus-client still does the
exposition.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["GatewayMetrics", "LoopCounter", "LoopHistogram"]

# Latency buckets from 0.25 ms: the gateway's own overhead is sub-millisecond.
_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound counts in that bound's bucket (le).
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _LoopMetric(Collector):
    """Labelled children in a dict; registered with ``registry`` like a prometheus-client
    metric. Updates take no lock: make them from one thread (the event loop)."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = list(labelnames)
        self._children: dict[tuple[str, ...], Any] = {}
        registry.register(self)

    def _check(self, values: tuple[str, ...]) -> None:
        if len(values) != len(self.labelnames):
            raise ValueError(
                f"{self.name}: expected {len(self.labelnames)} label values "
                f"({', '.join(self.labelnames)}); got {len(values)}."
            )


class LoopCounter(_LoopMetric):
    """A labelled Prometheus counter for the event loop's hot path.

    Example:
        >>> registry = CollectorRegistry()
        >>> calls = LoopCounter("calls_total", "Calls.", ["model"], registry)
        >>> calls.labels("m1").inc()
        >>> registry.get_sample_value("calls_total", {"model": "m1"})
        1.0
    """

    def labels(self, *values: str) -> _CounterChild:
        """The child of these label values (created on first use)."""
        child = self._children.get(values)
        if child is None:
            self._check(values)
            child = self._children[values] = _CounterChild()
        return child

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family


class LoopHistogram(_LoopMetric):
    """A labelled Prometheus histogram for the event loop's hot path (see
    :class:`LoopCounter`)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        buckets: Sequence[float],
    ) -> None:
        super().__init__(name, documentation, labelnames, registry)
        self.bounds = tuple(sorted(float(b) for b in buckets))

    def labels(self, *values: str) -> _HistogramChild:
        """The child of these label values (created on first use)."""
        child = self._children.get(values)
        if child is None:
            self._check(values)
            child = self._children[values] = _HistogramChild(self.bounds)
        return child

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            counts, total, cumulative = list(child.counts), child.sum, []
            running = 0
            for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
                running += count
                le = floatToGoString(bound)  # type: ignore[no-untyped-call]
                cumulative.append((le, running))
            family.add_metric(list(values), cumulative, total)
        yield family


class GatewayMetrics:
    """The gateway's metrics, in their own registry (one per app, so tests do not clash)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = LoopCounter(
            "proving_serve_requests",
            "Requests answered by the gateway.",
            ["deployment", "endpoint", "variant", "status"],
            r,
        )
        self.request_seconds = LoopHistogram(
            "proving_serve_request_seconds",
            "Latency of served responses, inside the gateway.",
            ["deployment", "variant", "model", "version"],
            r,
            _BUCKETS,
        )
        self.model_calls = LoopCounter(
            "proving_serve_model_calls",
            "Model calls by role and status.",
            ["deployment", "variant", "model", "version", "role", "status"],
            r,
        )
        self.model_seconds = LoopHistogram(
            "proving_serve_model_seconds",
            "Latency of model calls.",
            ["deployment", "variant", "model", "version", "role"],
            r,
            _BUCKETS,
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

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric in the registry."""
        return generate_latest(self.registry)
