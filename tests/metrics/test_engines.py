"""One data set, one spec, four ways of running it (DuckDB, PostgreSQL, Spark local mode,
a hive-partitioned Parquet lake read by DuckDB and by Spark): identical sufficient
statistics (exact counts, sums to 1e-9 relative)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from proving.errors import MetricsError
from proving.metrics import MetricsResult, compute_metrics, connect, parse_metrics_spec
from proving.metrics.engines import MetricsEngine, spark_engine
from tests.metrics.conftest import EventTables, duckdb_engine, to_arrow
from tests.metrics.test_compile import METRICS

SPEC = {
    "experiments": ["checkout", "ranker"],
    "segments": ["country", "platform"],
    "multiple_exposures": "exclude",
    "outcomes_by_request": True,
    "metrics": [
        METRICS["cuped_ratio"],
        METRICS["cap_quantile"],
        METRICS["proportion_window"],
        METRICS["filters"],
        METRICS["cuped_indicator"],
        METRICS["mean_max_drop"],
        {
            "name": "latency_p90",
            "kind": "quantile",
            "source": "predictions",
            "value": "latency_ms",
            "quantile": {"p": 0.9},
        },
        {
            "name": "revenue_median_unit",
            "kind": "quantile",
            "event": "purchase",
            "value": "value",
            "quantile": {"p": 0.5, "level": "unit"},
        },
    ],
}


# Spark runs each query in ~1-3 s however small the data, so it gets the features that
# differ between SQL dialects (JSON segments, windows, ratio + CUPED, quantile cap and
# quantile metric, filters) in one experiment rather than the whole SPEC.
SPARK_SPEC = {
    "experiment": "checkout",
    "outcomes_by_request": True,
    "segments": ["country"],
    "metrics": [
        METRICS["cuped_ratio"],
        METRICS["cap_quantile"],
        METRICS["filters"],
        SPEC["metrics"][6],
    ],
}


def keyed(rows: Any) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return {(r["experiment"], r["metric"], r["segment"], r["variant"]): r for r in rows}


def assert_identical(a: MetricsResult, b: MetricsResult) -> None:
    for got, want in ((a.rows, b.rows), (a.quantile_rows, b.quantile_rows)):
        ka, kb = keyed(got), keyed(want)
        assert set(ka) == set(kb)
        for key, ra in ka.items():
            rb = kb[key]
            assert set(ra) == set(rb), key
            for field, va in ra.items():
                vb = rb[field]
                if isinstance(va, float):
                    np.testing.assert_allclose(
                        va, vb, rtol=1e-9, atol=1e-12, err_msg=f"{key} {field}"
                    )
                else:
                    assert va == vb, (key, field)
    assert a.exposures == b.exposures
    assert [c["cap"] for c in a.caps] == pytest.approx([c["cap"] for c in b.caps], rel=1e-12)


@pytest.fixture(scope="module")
def duckdb_result(events: EventTables) -> MetricsResult:
    return compute_metrics(duckdb_engine(events), parse_metrics_spec(SPEC))


def test_duckdb_output_is_complete(duckdb_result: MetricsResult) -> None:
    metrics = {r["metric"] for r in duckdb_result.rows}
    assert metrics == {m["name"] for m in SPEC["metrics"] if m.get("kind") != "quantile"}
    assert {r["metric"] for r in duckdb_result.quantile_rows} == {
        "latency_p90",
        "revenue_median_unit",
    }
    assert duckdb_result.engine == "duckdb"


@pytest.mark.services
def test_postgres_agrees_with_duckdb(
    postgres_engine_factory: Callable[[EventTables], MetricsEngine],
    events: EventTables,
    duckdb_result: MetricsResult,
) -> None:
    engine = postgres_engine_factory(events)
    result = compute_metrics(engine, parse_metrics_spec(SPEC))
    assert result.engine == "postgres"
    assert_identical(result, duckdb_result)


@pytest.mark.slow
def test_spark_agrees_with_duckdb(
    spark_engine_factory: Callable[[EventTables], MetricsEngine],
    events: EventTables,
    duckdb_result: MetricsResult,
) -> None:
    spec = parse_metrics_spec(SPARK_SPEC)
    result = compute_metrics(spark_engine_factory(events), spec)
    assert result.engine == "pyspark"
    assert_identical(result, compute_metrics(duckdb_engine(events), spec))


def write_lake(events: EventTables, root: Path) -> None:
    """The telemetry Parquet layout: hive partitions by date (and experiment)."""
    for name, df in events.items():
        table = to_arrow(df)
        dates = pa.array(df.timestamp.dt.strftime("%Y-%m-%d"))
        table = table.append_column("date", dates)
        parts = ["date"] + (["experiment"] if "experiment" in table.column_names else [])
        schema = pa.schema([pa.field(p, pa.string()) for p in parts])
        ds.write_dataset(
            table,
            root / name,
            format="parquet",
            partitioning=ds.partitioning(schema, flavor="hive"),
        )


def test_parquet_lake_agrees_with_duckdb(
    tmp_path: Path, events: EventTables, duckdb_result: MetricsResult
) -> None:
    write_lake(events, tmp_path)
    result = compute_metrics(connect(f"parquet://{tmp_path}"), parse_metrics_spec(SPEC))
    assert_identical(result, duckdb_result)


@pytest.mark.slow
def test_spark_reads_the_parquet_lake(
    tmp_path: Path, spark_session: Any, events: EventTables
) -> None:
    write_lake(events, tmp_path)
    spec = parse_metrics_spec(
        {"experiment": "checkout", "segments": ["platform"], "metrics": [METRICS["count"]]}
    )
    result = compute_metrics(spark_engine(spark_session, tmp_path), spec)
    assert_identical(result, compute_metrics(duckdb_engine(events), spec))


def test_duckdb_file_url(tmp_path: Path, events: EventTables) -> None:
    import duckdb

    path = tmp_path / "events.duckdb"
    with duckdb.connect(str(path)) as con:
        for name, df in events.items():
            arrow = to_arrow(df)  # noqa: F841  (read by DuckDB's replacement scan)
            con.execute(f"create table {name} as select * from arrow")
    spec = parse_metrics_spec({"experiment": "checkout", "metrics": [METRICS["count"]]})
    a = compute_metrics(connect(f"duckdb://{path}"), spec)
    b = compute_metrics(duckdb_engine(events), spec)
    assert_identical(a, b)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x", "unknown scheme 'mysql'"),
        ("duckdb:///no/such/file.duckdb", "does not exist"),
        ("parquet:///no/such/dir", "not a directory"),
    ],
)
def test_bad_store_urls(url: str, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        connect(url)
