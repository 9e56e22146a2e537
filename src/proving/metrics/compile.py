"""Compile metric definitions into Ibis expressions that return sufficient statistics.

The pipeline for one experiment and one metric, every step an Ibis expression (no SQL
strings; user values enter only as Ibis literals):

1. **Units.** Exposures of the experiment are grouped per unit: first exposure time,
   the variant and segment attributes at that first exposure, and whether the unit saw
   more than one variant. Policy ``exclude`` drops those units (they are counted in the
   exposure summary); ``first`` keeps them in their first variant.
2. **Unit values** (:mod:`proving.metrics.unit_values`). Events of the measure's table
   pass the filters, are joined to the units and kept inside
   ``[first_exposure + start, first_exposure + end)``; each unit's events are aggregated
   (sum, count, max, min, any). A unit with no event counts as 0 (``missing: zero``, the
   default for sum/count/any) or is dropped (``missing: drop``). A ratio metric does this
   for numerator and denominator. The CUPED covariate is the same measure over
   ``[first_exposure - window, first_exposure)``. All metrics reading one table share one
   join and one group-by.
3. **Capping.** ``y = min(y, cap)`` with an absolute cap or the pooled quantile of the
   unit values (one number for every arm, computed first, then bound as a literal).
4. **Arm sums.** Grouped by (variant, segment dimensions): n, sums, sums of squares and
   cross products (the flat columns of :class:`proving.stats.ArmStats`). The per-segment
   and overall rows are sums of these cells (sufficient statistics add), so one scan
   serves the segment ``all`` and every dimension.

Quantile metrics (:mod:`proving.metrics.quantiles`) follow steps 1-2 and then compute the
sample quantile per arm and segment and the clustered counts its interval needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from proving.errors import MetricsError
from proving.metrics.definitions import FilterSpec, MeasureSpec, MetricSpec, MetricsSpec
from proving.metrics.engines import MetricsEngine

MISSING_SEGMENT = "(missing)"


def segment_column(dimension: str) -> str:
    """Column name holding a segment dimension in the unit tables."""
    return f"segment_{dimension}"


def interval_literal(d: timedelta) -> ir.IntervalScalar:
    """An Ibis interval literal of whole seconds."""
    seconds = d.total_seconds()
    if seconds != int(seconds):
        raise MetricsError(f"durations must be whole seconds; got {d}.")
    return ibis.interval(seconds=int(seconds))


def exposure_units(
    engine: MetricsEngine,
    spec: MetricsSpec,
    experiment: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ir.Table:
    """One row per exposed unit: ``unit_id, uid, variant, first_exposure, multiple,
    segment_*``.

    ``multiple`` is true when the unit saw more than one variant. ``uid`` is an integer
    key (the rank of ``unit_id``): grouping and joining millions of events on it is
    measurably cheaper than on the string id. Ties of the first timestamp across variants
    resolve by the engine's ``arg_min`` (avoid them upstream).
    """
    e = engine.table("exposures")
    e = e.filter(e.experiment == ibis.literal(experiment))
    if start is not None:
        e = e.filter(e.timestamp >= ibis.literal(start))
    if end is not None:
        e = e.filter(e.timestamp < ibis.literal(end))
    aggs: dict[str, ir.Value] = {
        "first_exposure": e.timestamp.min(),
        "variant": e.variant.argmin(e.timestamp),
        "min_variant": e.variant.min(),
        "max_variant": e.variant.max(),
    }
    if spec.segments:
        # The first exposure's attributes, parsed once per unit rather than per exposure.
        aggs["attributes"] = e.attributes.argmin(e.timestamp)
    u = e.group_by("unit_id").aggregate(**aggs)
    segments = {
        segment_column(d): engine.json_text(u.attributes, d).fill_null(MISSING_SEGMENT)
        for d in spec.segments
    }
    u = u.mutate(
        uid=ibis.row_number().over(order_by=u.unit_id),
        multiple=u.min_variant != u.max_variant,
        **segments,
    )
    return u.drop("min_variant", "max_variant", *(["attributes"] if spec.segments else []))


def kept_units(units: ir.Table, policy: str) -> ir.Table:
    """Apply the multiple-exposure policy (``exclude`` or ``first``)."""
    return units.filter(~units.multiple) if policy == "exclude" else units


def exposure_summary(units: ir.Table) -> ir.Table:
    """Per first variant: exposed units and units seen in more than one variant."""
    return units.group_by("variant").aggregate(
        units=units.count(),
        units_multiple_variants=ibis.ifelse(units.multiple, 1, 0).sum(),
    )


def filter_predicate(t: ir.Table, f: FilterSpec) -> ir.BooleanValue:
    """The filter as a boolean expression; the value is bound as an Ibis literal."""
    col = t[f.column]
    v = f.value
    if f.op == "is_null":
        return col.isnull()
    if f.op == "not_null":
        return col.notnull()
    if f.op == "in":
        return col.isin([ibis.literal(x) for x in v])  # type: ignore[union-attr]
    if f.op == "not_in":
        return ~col.isin([ibis.literal(x) for x in v])  # type: ignore[union-attr]
    lit = ibis.literal(v)
    ops = {
        "eq": col == lit,
        "ne": col != lit,
        "lt": col < lit,
        "le": col <= lit,
        "gt": col > lit,
        "ge": col >= lit,
    }
    return ops[f.op]


def event_table(engine: MetricsEngine, source: str, *, by_request: bool = False) -> ir.Table:
    """An event table; with ``by_request``, outcomes that carry only a ``request_id`` get
    the ``unit_id`` of the prediction with that request id (labels joined back to the
    prediction they judge). Only those rows are joined, so the rest scan as before."""
    ev = engine.table(source)
    if source != "outcomes" or not by_request:
        return ev
    p = engine.table("predictions")
    p = p.filter(p.unit_id.notnull())
    lookup = p.group_by("request_id").aggregate(request_unit_id=p.unit_id.min())
    orphans = ev.filter(ev.unit_id.isnull(), ev.request_id.notnull())
    joined = orphans.join(lookup, "request_id")
    resolved = joined.mutate(unit_id=joined.request_unit_id).select(*ev.columns)
    return ev.filter(ev.unit_id.notnull()).union(resolved)


def measure_events(
    engine: MetricsEngine,
    measure: MeasureSpec,
    *,
    end: datetime | None = None,
    by_request: bool = False,
) -> ir.Table:
    """The measure's events after its filters: ``unit_id, timestamp, v``."""
    ev = event_table(engine, measure.source, by_request=by_request)
    if measure.event is not None:
        ev = ev.filter(ev.name == ibis.literal(measure.event))
    for f in measure.filters:
        ev = ev.filter(filter_predicate(ev, f))
    if end is not None:
        ev = ev.filter(ev.timestamp < ibis.literal(end))
    ev = ev.filter(ev.unit_id.notnull())
    column = measure.value_column()
    v = ev[column].cast("float64") if column else ibis.literal(1.0)
    return ev.select("unit_id", "timestamp", v=v)


def windowed_events(
    events: ir.Table,
    units: ir.Table,
    *,
    after: tuple[timedelta, timedelta | None] | None = None,
    before: timedelta | None = None,
    keep: Sequence[str] = (),
) -> ir.Table:
    """Events joined to units and kept inside the conversion window (``after``) or the
    pre-period (``before``), relative to each unit's first exposure."""
    u = units.select("unit_id", "first_exposure", *keep)
    j = events.join(u, "unit_id")
    fe = j.first_exposure
    if after is not None:
        lo, hi = after
        j = j.filter(j.timestamp >= fe + interval_literal(lo))
        if hi is not None:
            j = j.filter(j.timestamp < fe + interval_literal(hi))
    if before is not None:
        j = j.filter(j.timestamp >= fe - interval_literal(before), j.timestamp < fe)
    return j


def capping_value(engine: MetricsEngine, metric: MetricSpec, t: ir.Table) -> float | None:
    """The cap for ``y`` (absolute, or the pooled quantile of unit values), or None."""
    if metric.capping is None:
        return None
    if metric.capping.value is not None:
        return float(metric.capping.value)
    assert metric.capping.quantile is not None
    return engine.scalar(t.y.quantile(metric.capping.quantile))


def apply_cap(t: ir.Table, cap: float | None, metric: MetricSpec) -> ir.Table:
    """Winsorize y (and the matching pre-period covariate x_1) at ``cap``."""
    if cap is None:
        return t
    c = ibis.literal(cap)
    t = t.mutate(y=ibis.least(t.y, c))
    return t.mutate(x_1=ibis.least(t.x_1, c)) if metric.covariate is not None else t


def arm_cells(t: ir.Table, metric: MetricSpec, dimensions: Sequence[str]) -> ir.Table:
    """Sufficient statistics per (variant, segment cell): the flat ArmStats columns."""
    y = t.y
    k = len(metric.covariate_names())
    xs = [t[f"x_{i}"] for i in range(1, k + 1)]
    ratio = metric.denominator is not None
    aggs: dict[str, ir.Scalar] = {
        "n": t.count(),
        "sum": y.sum(),
        "sum_squares": (y * y).sum(),
    }
    if ratio:
        aggs |= {
            "denominator_sum": t.d.sum(),
            "denominator_sum_squares": (t.d * t.d).sum(),
            "sum_products": (y * t.d).sum(),
        }
    for i, x in enumerate(xs, start=1):
        aggs[f"covariate_{i}_sum"] = x.sum()
        aggs[f"covariate_{i}_sum_squares"] = (x * x).sum()
        aggs[f"covariate_{i}_sum_products"] = (y * x).sum()
        if ratio:
            aggs[f"covariate_{i}_denominator_sum_products"] = (t.d * x).sum()
        for j in range(i + 1, k + 1):
            aggs[f"covariate_{i}_{j}_sum_products"] = (x * xs[j - 1]).sum()
    keys = ["variant", *(segment_column(d) for d in dimensions)]
    return t.group_by(keys).aggregate(**aggs)


def rollup(cells: pd.DataFrame, dimensions: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """Sum cells into the segment ``all`` and one segment per dimension value.

    Sufficient statistics add, so the per-segment rows are sums of the (variant, all
    dimensions) cells: one scan of the events serves every segment.
    """
    stats = [c for c in cells.columns if c != "variant" and not c.startswith("segment_")]
    out = [("all", cells.groupby("variant", sort=True)[stats].sum().reset_index())]
    for d in dimensions:
        col = segment_column(d)
        g = cells.groupby(["variant", col], sort=True)[stats].sum().reset_index()
        for value, part in g.groupby(col, sort=True):
            out.append((f"{d}={value}", part.drop(columns=[col])))
    return out


def rows_from_cells(
    cells: pd.DataFrame,
    *,
    experiment: str,
    metric: MetricSpec,
    dimensions: Sequence[str],
) -> list[dict[str, Any]]:
    """Flat output rows (experiment, variant, segment, metric, kind, family, statistics)."""
    rows: list[dict[str, Any]] = []
    names = list(metric.covariate_names())
    for segment, part in rollup(cells, dimensions):
        for rec in part.to_dict("records"):
            row: dict[str, Any] = {
                "experiment": experiment,
                "variant": str(rec.pop("variant")),
                "segment": segment,
                "metric": metric.name,
                "kind": metric.output_kind(),
            }
            if metric.family is not None:
                row["family"] = metric.family
            if names:
                row["covariate_names"] = names
            row["n"] = int(rec.pop("n"))
            row |= {str(k): float(v) for k, v in rec.items()}
            rows.append(row)
    return rows
