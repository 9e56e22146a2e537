"""Quantile metrics in the warehouse: per arm, the order statistics a quantile test needs.

A quantile metric (p50, p90, p99 of latency, of order value...) is not a sum, so its
per-arm statistics do not add across arms, segments or days. The row per (experiment,
variant, segment, metric) is what :meth:`proving.stats.quantiles.QuantileStats.from_flat`
reads (see docs/stats/quantiles.md for the statistics):

==============================  ==============================================================
``quantile``, ``level``         the level nu, and ``event`` (all events in the window,
                                clustered by unit) or ``unit`` (one value per unit)
``estimate``                    the sample quantile X_(ceil(n nu)) (``inverted_cdf``)
``lower``, ``upper``            the order statistics X_(l), X_(u) with
                                l = floor(n nu - z sqrt(n nu (1 - nu))),
                                u = ceil(n nu + z sqrt(n nu (1 - nu))), z at ``rank_alpha``
                                (None when the ranks fall outside 1..n: too few values)
``n_events``                    observations n (events, or units at level ``unit``)
``n``                           units contributing (clusters)
``sum``, ``sum_squares``        over units of a_i = the unit's observations <= estimate
``denominator_sum``, ...        over units of b_i = the unit's observations
``sum_products``                over units of a_i * b_i
==============================  ==============================================================

The ranks and values are computed in the engine with a window ``row_number`` per group,
so the three order statistics come from one sort. The ``a_i, b_i`` columns feed the
clustered (delta method) variance of the share below the quantile (Deng, Knoblich and Lu
2018, "Applying the Delta Method in Metric Analytics", KDD).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
from scipy import special

from proving.metrics.compile import measure_events, segment_column, windowed_events
from proving.metrics.definitions import MetricSpec, MetricsSpec
from proving.metrics.engines import MetricsEngine
from proving.metrics.unit_values import metric_units

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
    ev = measure_events(
        engine, metric.numerator_measure(), end=end, by_request=spec.outcomes_by_request
    )
    window = (metric.window.start, metric.window.end)
    j = windowed_events(ev, units, after=window, keep=keep)
    j = j.filter(j.v.notnull())
    return j.select("unit_id", *keep, "v")


def quantile_stats(
    obs: ir.Table, p: float, keys: Sequence[str], *, rank_alpha: float = 0.05
) -> ir.Table:
    """Per group of ``keys``: the sample quantile, the bracketing order statistics and the
    clustered counts around the quantile."""
    z = float(special.ndtri(1.0 - rank_alpha / 2.0))
    group = ibis.window(group_by=list(keys))
    ranked = obs.mutate(
        rank=ibis.row_number().over(ibis.window(group_by=list(keys), order_by=obs.v)) + 1,
        n_obs=obs.count().over(group).cast("float64"),
    )
    # The same float expressions as proving.stats.quantiles.rank_bounds, so the ranks
    # agree to the bit: n nu, then z * sqrt(n nu (1 - nu)).
    center = ranked.n_obs * ibis.literal(p)
    half = ibis.literal(z) * (center * ibis.literal(1.0 - p)).sqrt()
    ranked = ranked.mutate(
        r_q=center.ceil(), r_l=(center - half).floor(), r_u=(center + half).ceil()
    )

    def at(rank: ir.NumericValue) -> ir.Scalar:
        return ibis.ifelse(ranked["rank"] == rank, ranked.v, ibis.null("float64")).max()

    q = ranked.group_by(list(keys)).aggregate(
        estimate=at(ranked.r_q), lower=at(ranked.r_l), upper=at(ranked.r_u)
    )
    j = obs.join(q, list(keys))
    below = ibis.ifelse(j.v <= j.estimate, 1.0, 0.0)
    per_unit = j.group_by([*keys, "unit_id", "estimate", "lower", "upper"]).aggregate(
        s=below.sum(), c=j.count().cast("float64")
    )
    return per_unit.group_by([*keys, "estimate", "lower", "upper"]).aggregate(
        n=per_unit.count(),
        n_events=per_unit.c.sum(),
        sum=per_unit.s.sum(),
        sum_squares=(per_unit.s * per_unit.s).sum(),
        denominator_sum=per_unit.c.sum(),
        denominator_sum_squares=(per_unit.c * per_unit.c).sum(),
        sum_products=(per_unit.s * per_unit.c).sum(),
    )


def _optional(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


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
        expr = quantile_stats(obs, metric.quantile.p, keys, rank_alpha=metric.quantile.rank_alpha)
        df: pd.DataFrame = engine.execute(expr)
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
            row["rank_alpha"] = metric.quantile.rank_alpha
            row["estimate"] = float(rec["estimate"])
            row["lower"] = _optional(rec["lower"])
            row["upper"] = _optional(rec["upper"])
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
