"""Per-day state: refreshing day by day gives the same sufficient statistics as one full
scan, at every day along the way, on DuckDB and PostgreSQL; redoing a day is idempotent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from proving.errors import MetricsError
from proving.metrics import compute_metrics, parse_metrics_spec
from proving.metrics.engines import MetricsEngine
from proving.metrics.incremental import IncrementalMetrics
from tests.metrics.conftest import EventTables, duckdb_engine
from tests.metrics.test_compile import METRICS
from tests.metrics.test_engines import assert_identical

DAYS = [date(2024, 3, 1) + timedelta(days=i) for i in range(10)]
SPEC = {
    "experiments": ["checkout", "ranker"],
    "segments": ["country", "platform"],
    "outcomes_by_request": True,
    "metrics": [
        METRICS["cuped_ratio"],  # ratio + two covariates + indicator
        METRICS["cap_quantile"],
        METRICS["cap_absolute"],
        METRICS["mean_window"],
        METRICS["mean_max_drop"],  # max combines by max; units without events dropped
        METRICS["mean_min_zero"],
        METRICS["proportion_window"],
        METRICS["count_predictions"],
        METRICS["cuped_indicator"],
    ],
}


def end_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


@pytest.mark.parametrize(
    ("policy", "metrics", "checkpoints"),
    [("exclude", SPEC["metrics"], (DAYS[4],)), ("first", SPEC["metrics"][:3], ())],
)
def test_day_by_day_equals_full_scan(
    events: EventTables,
    policy: str,
    metrics: list[dict[str, object]],
    checkpoints: tuple[date, ...],
) -> None:
    engine = duckdb_engine(events)
    spec = parse_metrics_spec({**SPEC, "metrics": metrics, "multiple_exposures": policy})
    inc = IncrementalMetrics(engine, spec)
    for day in DAYS:
        inc.refresh(day)
        if day in checkpoints:  # part-way: equals a full scan up to the end of that day
            assert_identical(inc.compute(), compute_metrics(engine, spec, end=end_of(day)))
    assert inc.days() == DAYS
    assert_identical(inc.compute(), compute_metrics(engine, spec))


def test_refreshing_a_day_again_is_idempotent(events: EventTables) -> None:
    engine = duckdb_engine(events)
    spec = parse_metrics_spec({**SPEC, "metrics": SPEC["metrics"][:1]})
    inc = IncrementalMetrics(engine, spec)
    first = inc.refresh_days(DAYS)
    again = inc.refresh(DAYS[4])
    assert again.replaced and not first[4].replaced
    assert (again.exposure_rows, again.unit_rows) == (first[4].exposure_rows, first[4].unit_rows)
    assert_identical(inc.compute(), compute_metrics(engine, spec))


@pytest.mark.services
def test_postgres_day_by_day(
    postgres_engine_factory: Callable[[EventTables], MetricsEngine], events: EventTables
) -> None:
    engine = postgres_engine_factory(events)
    spec = parse_metrics_spec(
        {**SPEC, "metrics": [METRICS["cuped_ratio"], METRICS["cap_quantile"]]}
    )
    inc = IncrementalMetrics(engine, spec)
    inc.refresh_days(DAYS)
    assert_identical(inc.compute(), compute_metrics(duckdb_engine(events), spec))


def test_unsupported(events: EventTables) -> None:
    engine = duckdb_engine(events)
    quantile = {"name": "q", "kind": "quantile", "value": "value", "quantile": {"p": 0.5}}
    spec = parse_metrics_spec({"experiment": "checkout", "metrics": [quantile]})
    with pytest.raises(MetricsError, match="quantile metrics do not decompose by day"):
        IncrementalMetrics(engine, spec)
    spec = parse_metrics_spec({"experiment": "checkout", "metrics": [METRICS["count"]]})
    with pytest.raises(MetricsError, match="no day has been refreshed"):
        IncrementalMetrics(engine, spec).compute()
