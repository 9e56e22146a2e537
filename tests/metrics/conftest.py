"""Fixtures for the metrics tests: one small event data set with known structure, loaded
into DuckDB, PostgreSQL and one session-wide local Spark (Spark takes ~13 s to start)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from proving.metrics.engines import MetricsEngine, connect

T0 = pd.Timestamp("2024-03-01", tz="UTC")
EventTables = dict[str, pd.DataFrame]


def make_events(seed: int = 7, units: int = 80) -> EventTables:
    """Exposures for two experiments, outcomes and predictions over 10 days.

    Built so every rule matters: units seen twice in one variant and in two variants,
    events before exposure (pre-period) and after the windows, outcomes of unexposed
    units, outcomes with only a request id, missing segment attributes, null scores.
    Timestamps are distinct seconds (no ties for first exposure).
    """
    rng = np.random.default_rng(seed)
    seconds = rng.choice(10 * 86400, size=6000, replace=False)
    take = iter(seconds.tolist())

    def ts(lo_day: float, hi_day: float) -> pd.Timestamp:
        while True:
            s = next(take)
            if lo_day * 86400 <= s < hi_day * 86400:
                return T0 + pd.Timedelta(seconds=s)

    exposures = []
    for i in range(units):
        unit = f"u{i:03d}"
        variant = ["control", "treatment"][i % 2]
        country = ["US", "DE", "FR", None][i % 4]
        platform = ["ios", "web"][(i // 3) % 2]
        attrs = {"platform": platform}
        if country is not None:
            attrs["country"] = country
        first = ts(2, 6)
        n_exp = 1 + (i % 3 == 0)
        for k in range(n_exp):
            v = variant
            if k == 1 and i % 9 == 0:  # seen in the other variant later
                v = "treatment" if variant == "control" else "control"
            t = first if k == 0 else first + pd.Timedelta(hours=5 + i % 7)
            exposures.append(
                {
                    "experiment": "checkout",
                    "variant": v,
                    "unit_id": unit,
                    "timestamp": t,
                    "attributes": json.dumps(attrs),
                }
            )
        if i % 4 == 1:  # a second experiment sharing the units
            exposures.append(
                {
                    "experiment": "ranker",
                    "variant": ["a", "b", "c"][i % 3],
                    "unit_id": unit,
                    "timestamp": ts(1, 7),
                    "attributes": json.dumps({"platform": platform}),
                }
            )
    ex = pd.DataFrame(exposures)
    ex.insert(0, "event_id", [uuid.UUID(int=int(rng.integers(2**62))).hex for _ in range(len(ex))])
    ex["received_at"] = ex.timestamp

    outcomes = []
    for _ in range(900):
        unit = f"u{int(rng.integers(0, units + 10)):03d}"
        name = str(rng.choice(["purchase", "click", "label"], p=[0.4, 0.5, 0.1]))
        value = float(np.round(rng.lognormal(2.5, 1.0), 2)) if name == "purchase" else 1.0
        outcomes.append(
            {
                "unit_id": unit,
                "request_id": None,
                "name": name,
                "value": value,
                "timestamp": ts(0, 10),
            }
        )
    for j in range(40):  # a label for a prediction (request id only, no unit)
        outcomes.append(
            {
                "unit_id": None,
                "request_id": f"q{j * 17}" if j < 35 else f"unknown{j}",
                "name": "purchase",
                "value": 5.0 + j,
                "timestamp": ts(0, 10),
            }
        )
    out = pd.DataFrame(outcomes)
    out.insert(0, "event_id", [f"o{k}" for k in range(len(out))])
    out["received_at"] = out.timestamp

    predictions = []
    for k in range(700):
        unit = f"u{int(rng.integers(0, units)):03d}"
        role = "served" if k % 4 else "shadow"
        predictions.append(
            {
                "request_id": f"q{k}",
                "unit_id": unit,
                "deployment": "ranker",
                "experiment": "checkout",
                "variant": None,
                "model": "m",
                "model_version": ["1", "2"][k % 2],
                "role": role,
                "status": "ok" if k % 17 else "error",
                "features": "{}",
                "output": "{}",
                "score": None if k % 11 == 0 else float(np.round(rng.uniform(), 4)),
                "latency_ms": float(np.round(rng.gamma(2.0, 20.0), 3)),
                "timestamp": ts(0, 10),
            }
        )
    pr = pd.DataFrame(predictions)
    pr.insert(0, "event_id", [f"p{k}" for k in range(len(pr))])
    pr["received_at"] = pr.timestamp
    return {"exposures": ex, "outcomes": out, "predictions": pr}


def to_arrow(df: pd.DataFrame) -> pa.Table:
    """Arrow table with explicit types (NaN and None become NULL)."""
    fields = []
    for c in df.columns:
        if c in ("timestamp", "received_at"):
            fields.append(pa.field(c, pa.timestamp("us", tz="UTC")))
        elif c in ("value", "score", "latency_ms"):
            fields.append(pa.field(c, pa.float64()))
        else:
            fields.append(pa.field(c, pa.string()))
    return pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)


def duckdb_engine(tables: EventTables) -> MetricsEngine:
    con = ibis.duckdb.connect()
    return MetricsEngine(
        con, {name: con.create_table(name, to_arrow(df)) for name, df in tables.items()}
    )


@pytest.fixture(scope="session")
def events() -> EventTables:
    return make_events()


@pytest.fixture(scope="session")
def duckdb_events(events: EventTables) -> MetricsEngine:
    """The data set in an in-memory DuckDB, shared read-only by the tests."""
    return duckdb_engine(events)


@pytest.fixture
def postgres_engine_factory(
    postgres_dsn: str, postgres_schema: str
) -> Callable[[EventTables], MetricsEngine]:
    def build(tables: EventTables) -> MetricsEngine:
        # Through the store URL, as the CLI opens it.
        sep = "&" if "?" in postgres_dsn else "?"
        engine = connect(f"{postgres_dsn}{sep}schema={postgres_schema}")
        for name, df in tables.items():
            engine.backend.create_table(name, to_arrow(df), database=postgres_schema)
        return engine

    return build


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """ONE local Spark session for the whole test session."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'proving[spark]')")
    from proving.metrics.engines import spark_session as make_session

    session = make_session("local[2]")
    yield session
    session.stop()


@pytest.fixture
def spark_engine_factory(spark_session: Any) -> Callable[[EventTables], MetricsEngine]:
    def build(tables: EventTables) -> MetricsEngine:
        con = ibis.pyspark.connect(spark_session)
        out = {}
        for name, df in tables.items():
            view = f"t_{name}_{uuid.uuid4().hex[:8]}"
            spark_session.createDataFrame(to_arrow(df)).createOrReplaceTempView(view)
            out[name] = con.table(view)
        return MetricsEngine(con, out)

    return build
