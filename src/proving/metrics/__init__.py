"""Warehouse-native metrics: metric definitions compiled to Ibis, run where the events live
(DuckDB, PostgreSQL, Spark), returning the sufficient statistics ``proving.stats`` takes."""

from proving.metrics.compute import MetricsResult, compute_metrics
from proving.metrics.definitions import (
    MeasureSpec,
    MetricSpec,
    MetricsSpec,
    load_metrics_spec,
    parse_metrics_spec,
)
from proving.metrics.engines import MetricsEngine, connect
from proving.metrics.incremental import IncrementalMetrics

__all__ = [
    "IncrementalMetrics",
    "MeasureSpec",
    "MetricSpec",
    "MetricsEngine",
    "MetricsResult",
    "MetricsSpec",
    "compute_metrics",
    "connect",
    "load_metrics_spec",
    "parse_metrics_spec",
]
