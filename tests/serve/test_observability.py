"""The gateway's hot-path metrics against prometheus-client's own types as the oracle."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families

from proving.serve.observability import GatewayMetrics, LoopCounter, LoopHistogram

BUCKETS = (0.00025, 0.001, 0.01, 0.1, 1.0, 5.0)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but ``_created`` (prometheus-client stamps its own metrics' creation)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_loop_metrics_expose_what_prometheus_client_exposes_for_the_same_updates() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = LoopCounter("calls_total", "Calls.", ["model", "status"], ours)
    histogram = LoopHistogram("latency_seconds", "Latency.", ["model"], ours, BUCKETS)
    oracle_counter = Counter("calls_total", "Calls.", ["model", "status"], registry=theirs)
    oracle_histogram = Histogram(
        "latency_seconds", "Latency.", ["model"], buckets=BUCKETS, registry=theirs
    )
    rng = random.Random(7)
    # Values on the bucket bounds too: `le` means less than or equal.
    values = [rng.choice([*BUCKETS, 0.0, 7.5]) for _ in range(200)]
    values += [rng.lognormvariate(-5, 2) for _ in range(2000)]
    for value in values:
        model, status = rng.choice(["m1", "m2"]), rng.choice(["ok", "error"])
        amount = rng.choice([1, 2.5])
        counter.labels(model, status).inc(amount)
        oracle_counter.labels(model, status).inc(amount)
        histogram.labels(model).observe(value)
        oracle_histogram.labels(model).observe(value)
    got, want = samples(ours), samples(theirs)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key


def test_loop_metrics_render_as_valid_exposition_text() -> None:
    metrics = GatewayMetrics()
    metrics.requests.labels("d", "predict", "a", "ok").inc()
    metrics.request_seconds.labels("d", "a", "m", "1").observe(0.0004)
    text = metrics.render().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["proving_serve_requests"].type == "counter"
    buckets = {
        s.labels["le"]: s.value
        for s in families["proving_serve_request_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert buckets["0.00025"] == 0 and buckets["0.0005"] == 1 and buckets["+Inf"] == 1


def test_a_wrong_number_of_label_values_is_refused_with_the_label_names() -> None:
    counter = LoopCounter("c_total", "C.", ["deployment", "variant"], CollectorRegistry())
    with pytest.raises(ValueError, match=r"expected 2 label values \(deployment, variant\); got 1"):
        counter.labels("only-one")
    histogram = LoopHistogram("h", "H.", ["model"], CollectorRegistry(), BUCKETS)
    with pytest.raises(ValueError, match="expected 1 label values"):
        histogram.labels("a", "b")
