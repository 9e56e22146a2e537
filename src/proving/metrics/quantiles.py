"""Quantile metrics in the warehouse: the sample quantile per arm and its clustered counts.

A quantile metric (p50, p90, p99 of latency, of order value...) is not a sum, so its
per-arm statistics are not additive across arms, segments or days. What the metrics layer
returns per (experiment, variant, segment, metric):

==============================  ==============================================================
``quantile``                    the probability p
``level``                       ``event`` (all events in the window) or ``unit`` (unit values)
``estimate``                    the sample quantile Q at p (linear interpolation, type 7)
``n``                           units contributing (clusters)
``n_events``                    observations (events, or units at level ``unit``)
``sum``, ``sum_squares``        over units of S_i = #observations of unit i with value <= Q
``denominator_sum``, ...        over units of N_i = #observations of unit i
``sum_products``                over units of S_i * N_i
==============================  ==============================================================

The share of observations below Q, ``p_hat = sum / denominator_sum``, is a ratio of unit
sums, so its variance follows from the delta method on these columns (the clustered
formula of Deng, Knoblich and Lu (2018), "Applying the Delta Method in Metric Analytics",
section 4.1); the interval for the quantile is then read at the order statistics of
``p -/+ z * se(p_hat)``. Those two values depend on alpha and need the data again, so the
stats engine asks for them by calling :func:`quantile_values` with the ranks it wants, or
uses a density estimate. At level ``unit`` every unit has N_i = 1 and S_i is 0/1, and the
formula reduces to the i.i.d. binomial one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from proving.metrics.compile import (
    measure_events,
    metric_units,
    segment_column,
    windowed_events,
)
from proving.metrics.definitions import MetricSpec, MetricsSpec
from proving.metrics.engines import MetricsEngine

QUANTILE_STAT_COLUMNS = (
    "n",
    "n_events",
    "sum",
    "sum_squares",
    "denominator_sum",
    "denominator_sum_squares",
    "sum_products",
)


def observations(
    engine: MetricsEngine,
    spec: MetricsSpec,
    metric: MetricSpec,
    units: ir.Table,
    *,
    end: datetime | None = None,
) -> ir.Table:
    """The values the quantile is taken over: ``unit_id, variant, segment_*, v``."""
    keep = ["variant", *(segment_column(d) for d in spec.segments)]
    assert metric.quantile is not None
    if metric.quantile.level == "unit":
        t = metric_units(engine, spec, metric, units, end=end)
        return t.select("unit_id", *keep, v=t.y)
    ev = measure_events(engine, metric.numerator_measure(), end=end)
    window = (metric.window.start, metric.window.end)
    j = windowed_events(ev, units, after=window, keep=keep)
    j = j.filter(j.v.notnull())
    return j.select("unit_id", *keep, "v")


def quantile_stats(obs: ir.Table, p: float, keys: Sequence[str]) -> ir.Table:
    """Per group of ``keys``: the sample quantile and the clustered counts around it."""
    q = obs.group_by(list(keys)).aggregate(estimate=obs.v.quantile(p))
    j = obs.join(q, list(keys))
    below = ibis.ifelse(j.v <= j.estimate, 1.0, 0.0)
    per_unit = j.group_by([*keys, "unit_id", "estimate"]).aggregate(
        s=below.sum(), c=j.count().cast("float64")
    )
    return per_unit.group_by([*keys, "estimate"]).aggregate(
        n=per_unit.count(),
        n_events=per_unit.c.sum(),
        sum=per_unit.s.sum(),
        sum_squares=(per_unit.s * per_unit.s).sum(),
        denominator_sum=per_unit.c.sum(),
        denominator_sum_squares=(per_unit.c * per_unit.c).sum(),
        sum_products=(per_unit.s * per_unit.c).sum(),
    )


def quantile_rows(
    engine: MetricsEngine,
    spec: MetricsSpec,
    metric: MetricSpec,
    units: ir.Table,
    *,
    experiment: str,
    end: datetime | None = None,
) -> list[dict[str, Any]]:
    """Output rows of one quantile metric for the segment ``all`` and every dimension."""
    assert metric.quantile is not None
    obs = observations(engine, spec, metric, units, end=end)
    groupings: list[tuple[str | None, list[str]]] = [(None, ["variant"])]
    groupings += [(d, ["variant", segment_column(d)]) for d in spec.segments]
    rows: list[dict[str, Any]] = []
    for dim, keys in groupings:
        df: pd.DataFrame = engine.execute(quantile_stats(obs, metric.quantile.p, keys))
        df = df.sort_values(keys).reset_index(drop=True)
        for rec in df.to_dict("records"):
            segment = "all" if dim is None else f"{dim}={rec[segment_column(dim)]}"
            row: dict[str, Any] = {
                "experiment": experiment,
                "variant": str(rec["variant"]),
                "segment": segment,
                "metric": metric.name,
                "kind": "quantile",
            }
            if metric.family is not None:
                row["family"] = metric.family
            row["quantile"] = metric.quantile.p
            row["level"] = metric.quantile.level
            row["estimate"] = float(rec["estimate"])
            row["n"] = int(rec["n"])
            row["n_events"] = int(rec["n_events"])
            for c in QUANTILE_STAT_COLUMNS[2:]:
                row[c] = float(rec[c])
            rows.append(row)
    return rows


def quantile_values(
    engine: MetricsEngine,
    spec: MetricsSpec,
    metric: MetricSpec,
    units: ir.Table,
    probabilities: Sequence[float],
    *,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Sample quantiles at several probabilities per variant (segment ``all``): the order
    statistics an interval needs (e.g. at ``p -/+ z * se``). Columns: variant, q_0, q_1..."""
    obs = observations(engine, spec, metric, units, end=end)
    aggs = {f"q_{i}": obs.v.quantile(float(p)) for i, p in enumerate(probabilities)}
    df: pd.DataFrame = engine.execute(obs.group_by("variant").aggregate(**aggs))
    return df.sort_values("variant").reset_index(drop=True)
