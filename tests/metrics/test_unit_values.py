"""Parts of a metric, and the one-pass wide table of unit values."""

from __future__ import annotations

import ibis
import pandas as pd

from proving.metrics import parse_metrics_spec
from proving.metrics.compile import exposure_units
from proving.metrics.engines import MetricsEngine
from proving.metrics.unit_values import metric_parts, metric_unit_table, unit_values
from tests.metrics.conftest import to_arrow

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def test_parts_follow_the_covariate_names() -> None:
    spec = parse_metrics_spec(
        {
            "experiment": "x",
            "metrics": [
                {
                    "name": "r",
                    "kind": "ratio",
                    "numerator": {"event": "buy"},
                    "denominator": {"event": "visit", "aggregation": "count"},
                    "covariate": {"window": "7d", "indicator": True},
                }
            ],
        }
    )
    metric = spec.metrics[0]
    parts = metric_parts(metric)
    assert [p.name for p in parts] == ["y", "d", "x_1", "x_2", "x_3"]
    assert [p.aggregation for p in parts] == ["sum", "count", "sum", "count", "any"]
    assert [p.measure.event for p in parts] == ["buy", "visit", "buy", "visit", "buy"]
    assert len(metric.covariate_names()) == 3


def small_engine() -> MetricsEngine:
    ex = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3"],
            "experiment": "x",
            "variant": ["a", "b", "a"],
            "unit_id": ["u1", "u2", "u3"],
            "timestamp": [T0, T0, T0],
            "attributes": ["{}"] * 3,
            "received_at": T0,
        }
    )
    hour = pd.Timedelta(hours=1)
    out = pd.DataFrame(
        {
            "event_id": ["o1", "o2", "o3", "o4"],
            "unit_id": ["u1", "u1", "u2", "u2"],
            "request_id": "r",
            "name": ["buy", "buy", "buy", "visit"],
            "value": [2.0, 3.0, 0.0, 1.0],
            "timestamp": [T0 + hour, T0 - hour, T0 + 30 * 24 * hour, T0 + hour],
            "received_at": T0,
        }
    )
    con = ibis.duckdb.connect()
    return MetricsEngine(
        con,
        {"exposures": con.create_table("exposures", to_arrow(ex)),
         "outcomes": con.create_table("outcomes", to_arrow(out))},
    )  # fmt: skip


def test_null_means_no_event_and_missing_policy_applies() -> None:
    engine = small_engine()
    spec = parse_metrics_spec(
        {
            "experiment": "x",
            "metrics": [
                {"name": "spend", "event": "buy", "window": {"end": "7d"},
                 "covariate": {"window": "1d"}},
                {"name": "buys", "kind": "count", "event": "buy", "missing": "drop",
                 "window": {"end": "7d"}},
            ],
        }
    )  # fmt: skip
    units = exposure_units(engine, spec, "x")
    wide = engine.execute(unit_values(engine, spec, spec.metrics, units)).set_index("unit_id")
    assert wide.loc["u1", "m0_y"] == 2.0 and wide.loc["u1", "m0_x_1"] == 3.0
    assert pd.isna(wide.loc["u2", "m0_y"])  # its purchase is outside the 7-day window
    assert pd.isna(wide.loc["u3", "m1_y"])  # no event: NULL, not 0
    spend = engine.execute(
        metric_unit_table(ibis.memtable(wide.reset_index()), spec, spec.metrics[0], 0)
    )
    assert sorted(spend.y) == [0.0, 0.0, 2.0]  # missing: zero
    buys = engine.execute(
        metric_unit_table(ibis.memtable(wide.reset_index()), spec, spec.metrics[1], 1)
    )
    assert buys.unit_id.tolist() == ["u1"]  # missing: drop
