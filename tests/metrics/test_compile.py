"""The compiled Ibis queries (on DuckDB) give the same sufficient statistics as a plain
pandas computation (tests/metrics/pandas_reference.py), for every metric kind, window,
segment, filter, capping and exposure policy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from proving.metrics import compute_metrics, parse_metrics_spec
from proving.metrics.compile import rollup
from proving.metrics.engines import MetricsEngine
from proving.stats import ArmStats
from tests.metrics.conftest import EventTables
from tests.metrics.pandas_reference import expected_rows

METRICS: dict[str, dict[str, Any]] = {
    "mean_sum": {"name": "revenue", "kind": "mean", "event": "purchase"},
    "mean_window": {
        "name": "revenue_1d",
        "event": "purchase",
        "window": {"start": "1h", "end": "1d"},
    },
    "mean_max_drop": {"name": "biggest", "event": "purchase", "aggregation": "max"},
    "mean_min_zero": {
        "name": "smallest",
        "event": "purchase",
        "aggregation": "min",
        "missing": "zero",
    },
    "proportion": {"name": "converted", "kind": "proportion", "event": "purchase"},
    "proportion_window": {
        "name": "converted_2d",
        "kind": "proportion",
        "event": "purchase",
        "window": {"end": "2d"},
    },
    "count": {"name": "clicks", "kind": "count", "event": "click"},
    "count_predictions": {
        "name": "served",
        "kind": "count",
        "source": "predictions",
        "filters": [{"column": "role", "op": "eq", "value": "served"}],
    },
    "ratio": {
        "name": "order_value",
        "kind": "ratio",
        "numerator": {"event": "purchase", "value": "value"},
        "denominator": {"event": "purchase", "aggregation": "count"},
    },
    "ratio_predictions": {
        "name": "latency_per_request",
        "kind": "ratio",
        "numerator": {"source": "predictions", "value": "latency_ms"},
        "denominator": {"source": "predictions", "aggregation": "count"},
        "window": {"end": "3d"},
    },
    "cuped": {"name": "revenue_cuped", "event": "purchase", "covariate": {"window": "2d"}},
    "cuped_indicator": {
        "name": "clicks_cuped",
        "kind": "count",
        "event": "click",
        "covariate": {"window": "3d", "indicator": True},
    },
    "cuped_ratio": {
        "name": "ratio_cuped",
        "kind": "ratio",
        "numerator": {"event": "purchase", "value": "value"},
        "denominator": {"event": "click", "aggregation": "count"},
        "covariate": {"window": "2d", "indicator": True},
    },
    "cap_absolute": {
        "name": "revenue_capped",
        "event": "purchase",
        "capping": {"value": 40.0},
        "covariate": {"window": "2d"},
    },
    "cap_quantile": {"name": "revenue_p90cap", "event": "purchase", "capping": {"quantile": 0.9}},
    "filters": {
        "name": "score_sum",
        "source": "predictions",
        "value": "score",
        "filters": [
            {"column": "status", "op": "ne", "value": "error"},
            {"column": "model_version", "op": "in", "value": ["2"]},
            {"column": "score", "op": "not_null"},
            {"column": "latency_ms", "op": "lt", "value": 60},
        ],
    },
    "filters_value": {
        "name": "big_orders",
        "kind": "proportion",
        "event": "purchase",
        "filters": [{"column": "value", "op": "ge", "value": 20}],
    },
}


def assert_same(row: dict[str, Any], expected: ArmStats) -> None:
    got = ArmStats.from_flat(row)
    assert got.n == expected.n
    assert got.variable_names == expected.variable_names
    _, s1, c1 = got.moments()
    _, s2, c2 = expected.moments()
    np.testing.assert_allclose(s1, s2, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(c1, c2, rtol=1e-9, atol=1e-9)


def check_against_pandas(
    engine: MetricsEngine,
    events: EventTables,
    doc: dict[str, Any],
    **kwargs: Any,
) -> list[dict[str, Any]]:
    spec = parse_metrics_spec(doc)
    result = compute_metrics(engine, spec, **kwargs)
    for experiment in spec.experiment_names():
        for metric in spec.metrics:
            expected = expected_rows(events, spec, metric, experiment, **kwargs)
            got = {
                (r["segment"], r["variant"]): r
                for r in result.rows
                if r["metric"] == metric.name and r["experiment"] == experiment
            }
            assert set(got) == set(expected), metric.name
            for key, arm in expected.items():
                assert_same(got[key], arm)
    return list(result.rows)


# Every case under policy "exclude"; the cases that read the exposure policy differently
# (counts, ratios, covariates, quantile caps) also under "first".
FIRST_POLICY_CASES = ("count", "ratio", "cuped_ratio", "cap_quantile", "mean_max_drop")


@pytest.mark.parametrize(
    ("case", "policy"),
    [(c, "exclude") for c in sorted(METRICS)] + [(c, "first") for c in FIRST_POLICY_CASES],
)
def test_every_metric_kind_matches_pandas(
    duckdb_events: MetricsEngine, events: EventTables, case: str, policy: str
) -> None:
    doc = {
        "experiment": "checkout",
        "segments": ["country", "platform"],
        "multiple_exposures": policy,
        "metrics": [{**METRICS[case], "family": "primary"}],
    }
    rows = check_against_pandas(duckdb_events, events, doc)
    assert {r["segment"] for r in rows} == {
        "all",
        "country=US",
        "country=DE",
        "country=FR",
        "country=(missing)",
        "platform=ios",
        "platform=web",
    }
    assert all(r["family"] == "primary" for r in rows)


def test_time_range_and_several_experiments(
    duckdb_events: MetricsEngine, events: EventTables
) -> None:
    doc = {
        "experiments": ["checkout", "ranker"],
        "segments": ["platform"],
        "metrics": [METRICS["cuped"], METRICS["ratio"], METRICS["proportion_window"]],
    }
    start = datetime(2024, 3, 3, tzinfo=UTC)
    end = datetime(2024, 3, 6, 12, tzinfo=UTC)
    rows = check_against_pandas(duckdb_events, events, doc, start=start, end=end)
    assert {r["variant"] for r in rows if r["experiment"] == "ranker"} == {"a", "b", "c"}


@pytest.mark.parametrize("by_request", [False, True])
def test_outcomes_attributed_through_their_prediction(
    duckdb_events: MetricsEngine, events: EventTables, by_request: bool
) -> None:
    doc = {
        "experiment": "checkout",
        "segments": ["platform"],
        "outcomes_by_request": by_request,
        "metrics": [METRICS["mean_sum"], METRICS["cuped_ratio"]],
    }
    rows = check_against_pandas(duckdb_events, events, doc)
    total = sum(r["sum"] for r in rows if r["metric"] == "revenue" and r["segment"] == "all")
    doc["outcomes_by_request"] = not by_request
    other = compute_metrics(duckdb_events, parse_metrics_spec(doc)).rows
    total_other = sum(r["sum"] for r in other if r["metric"] == "revenue" and r["segment"] == "all")
    assert (total > total_other) is by_request  # the labels add revenue only when resolved


def test_exclusion_is_counted(duckdb_events: MetricsEngine, events: EventTables) -> None:
    spec = parse_metrics_spec({"experiment": "checkout", "metrics": [METRICS["count"]]})
    result = compute_metrics(duckdb_events, spec)
    ex = events["exposures"]
    ex = ex[ex.experiment == "checkout"]
    multi = ex.groupby("unit_id").variant.nunique() > 1
    assert sum(e["units_multiple_variants"] for e in result.exposures) == int(multi.sum()) > 0
    assert sum(e["units"] for e in result.exposures) == ex.unit_id.nunique()
    analysed = sum(r["n"] for r in result.rows if r["segment"] == "all")
    assert analysed == ex.unit_id.nunique() - int(multi.sum())


def test_rows_are_read_by_the_stats_contract(
    duckdb_events: MetricsEngine,
) -> None:
    spec = parse_metrics_spec(
        {"experiment": "checkout", "metrics": [METRICS["cuped_ratio"], METRICS["count"]]}
    )
    rows = compute_metrics(duckdb_events, spec).rows
    kinds = {r["metric"]: r["kind"] for r in rows}
    assert kinds == {"ratio_cuped": "ratio", "clicks": "mean"}  # a count is a mean of counts
    ratio = ArmStats.from_flat(next(r for r in rows if r["metric"] == "ratio_cuped"))
    assert ratio.is_ratio
    assert ratio.covariate_names == (
        "pre_ratio_cuped",
        "pre_ratio_cuped_denominator",
        "pre_ratio_cuped_any",
    )


def test_segments_add_up_to_all(duckdb_events: MetricsEngine) -> None:
    spec = parse_metrics_spec(
        {"experiment": "checkout", "segments": ["country"], "metrics": [METRICS["cuped"]]}
    )
    rows = compute_metrics(duckdb_events, spec).rows
    for variant in ("control", "treatment"):
        parts = [
            ArmStats.from_flat(r)
            for r in rows
            if r["variant"] == variant and r["segment"].startswith("country=")
        ]
        total = sum(parts[1:], parts[0])
        whole = ArmStats.from_flat(
            next(r for r in rows if r["variant"] == variant and r["segment"] == "all")
        )
        np.testing.assert_allclose(total.moments()[2], whole.moments()[2], rtol=1e-12)


def test_rollup_sums_cells() -> None:
    import pandas as pd

    cells = pd.DataFrame(
        {
            "variant": ["a", "a", "b"],
            "segment_country": ["US", "DE", "US"],
            "n": [1, 2, 3],
            "sum": [1.0, 2.0, 3.0],
        }
    )
    parts = dict(rollup(cells, ["country"]))
    assert parts["all"].set_index("variant")["n"].to_dict() == {"a": 3, "b": 3}
    assert parts["country=DE"]["variant"].tolist() == ["a"]


def test_unknown_table_is_a_clear_error(events: EventTables) -> None:
    import ibis

    from proving.errors import MetricsError

    con = ibis.duckdb.connect()
    engine = MetricsEngine(con)
    spec = parse_metrics_spec({"experiment": "checkout", "metrics": [METRICS["count"]]})
    with pytest.raises(MetricsError, match="no table 'exposures'"):
        compute_metrics(engine, spec)


def test_naive_time_range_is_rejected(duckdb_events: MetricsEngine) -> None:
    from proving.errors import MetricsError

    spec = parse_metrics_spec({"experiment": "checkout", "metrics": [METRICS["count"]]})
    with pytest.raises(MetricsError, match="timezone-aware"):
        compute_metrics(duckdb_events, spec, start=datetime(2024, 3, 1))
