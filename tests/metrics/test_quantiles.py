"""Quantile metrics computed in the engine equal numpy on the same events, and the rows
feed proving.stats.quantiles exactly as its own summariser of the raw values does."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from proving.metrics import compute_metrics, parse_metrics_spec
from proving.metrics.engines import MetricsEngine
from proving.stats.quantiles import QuantileStats
from tests.metrics.conftest import EventTables
from tests.metrics.pandas_reference import expected_quantiles, metric_unit_frame, units_frame

LATENCY = {
    "name": "latency_p90",
    "kind": "quantile",
    "source": "predictions",
    "value": "latency_ms",
    "filters": [{"column": "role", "op": "eq", "value": "served"}],
    "window": {"end": "4d"},
    "quantile": {"p": 0.9},
}
MEDIAN_ORDER = {
    "name": "order_median",
    "kind": "quantile",
    "event": "purchase",
    "value": "value",
    "quantile": {"p": 0.5, "level": "event", "rank_alpha": 0.1},
}
UNIT_REVENUE = {
    "name": "revenue_p75_unit",
    "kind": "quantile",
    "event": "purchase",
    "value": "value",
    "quantile": {"p": 0.75, "level": "unit"},
}


@pytest.mark.parametrize("metric", [LATENCY, MEDIAN_ORDER, UNIT_REVENUE], ids=lambda m: m["name"])
@pytest.mark.parametrize("policy", ["exclude", "first"])
def test_quantile_rows_match_numpy(
    duckdb_events: MetricsEngine, events: EventTables, metric: dict[str, Any], policy: str
) -> None:
    doc = {
        "experiment": "checkout",
        "segments": ["country"],
        "multiple_exposures": policy,
        "metrics": [metric],
    }
    spec = parse_metrics_spec(doc)
    rows = compute_metrics(duckdb_events, spec).quantile_rows
    expected = expected_quantiles(events, spec, spec.metrics[0], "checkout")
    got = {(r["segment"], r["variant"]): r for r in rows}
    assert set(got) == set(expected)
    for key, want in expected.items():
        for field, value in want.items():
            if value is None:
                assert got[key][field] is None, (key, field)
            else:
                assert got[key][field] == pytest.approx(value, rel=1e-12), (key, field)


def test_rows_feed_the_stats_engine(duckdb_events: MetricsEngine, events: EventTables) -> None:
    """QuantileStats.from_flat(row) gives the same standard error as QuantileStats.from_values
    on the raw events with their unit ids (the clustered variance)."""
    spec = parse_metrics_spec({"experiment": "checkout", "metrics": [MEDIAN_ORDER]})
    rows = compute_metrics(duckdb_events, spec).quantile_rows
    units = units_frame(events["exposures"], spec, "checkout")
    units = units[~units.multiple]
    out = events["outcomes"].merge(units, on="unit_id")
    out = out[(out["name"] == "purchase") & (out.timestamp >= out.first_exposure)]
    for row in rows:
        arm = out[out.variant == row["variant"]]
        direct = QuantileStats.from_values(
            arm.value.to_numpy(), 0.5, clusters=arm.unit_id.to_numpy(), rank_alpha=0.1
        )
        flat = QuantileStats.from_flat(row, lower=row["lower"], upper=row["upper"], rank_alpha=0.1)
        assert (flat.quantile, flat.lower, flat.upper, flat.n) == (
            direct.quantile,
            direct.lower,
            direct.upper,
            direct.n,
        )
        se_flat, reason = flat.std_err()
        se_direct, _ = direct.std_err()
        assert reason is None
        assert se_flat == pytest.approx(se_direct, rel=1e-12)


def test_unit_level_is_over_unit_values(duckdb_events: MetricsEngine, events: EventTables) -> None:
    spec = parse_metrics_spec({"experiment": "checkout", "metrics": [UNIT_REVENUE]})
    rows = compute_metrics(duckdb_events, spec).quantile_rows
    units = units_frame(events["exposures"], spec, "checkout")
    frame = metric_unit_frame(events, spec, spec.metrics[0], units)
    for row in rows:
        y = frame[frame.variant == row["variant"]].y.to_numpy()
        assert row["n"] == row["n_events"] == len(y)  # one observation per unit
        assert row["estimate"] == pytest.approx(
            np.quantile(y, 0.75, method="inverted_cdf"), rel=1e-12
        )
        assert row["sum_squares"] == row["sum"]  # a_i is 0/1
