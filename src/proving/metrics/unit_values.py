"""Unit values of many metrics in one pass per event table.

Every metric needs, per unit, a few *parts*: ``y`` (the measure in the conversion window),
``d`` (a ratio's denominator) and ``x_1..x_k`` (CUPED covariates: the measures in the
pre-period). Computing each part as its own join of events to units scans the big event
tables once per part (a spec of five CUPED metrics is 10-20 scans). Here all parts that
read the same table are conditional aggregates of **one** join of that table to the
units, grouped by unit:

    per unit:  sum(v) FILTER (WHERE event matches AND ts in window), count(...), max(...)

so a spec costs one scan of ``outcomes`` and one of ``predictions``, whatever the number
of metrics. The result is one wide row per unit (columns ``m<i>_<part>``), materialized
once and then reduced per metric (:func:`metric_unit_table` -> ``compile.arm_cells``).

A part is NULL for a unit with no matching event (``sum``, ``count``, ``max``, ``min`` and
``any`` alike); the metric's ``missing`` policy then fills it with 0 or drops the unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce

import ibis
import ibis.expr.types as ir

from proving.metrics.compile import (
    event_table,
    filter_predicate,
    interval_literal,
    segment_column,
)
from proving.metrics.definitions import MeasureSpec, MetricSpec, MetricsSpec
from proving.metrics.engines import MetricsEngine


@dataclass(frozen=True)
class Part:
    """One per-unit quantity of a metric: a measure, aggregated over a window."""

    name: str
    measure: MeasureSpec
    aggregation: str
    after: tuple[timedelta, timedelta | None] | None = None
    before: timedelta | None = None


def metric_parts(metric: MetricSpec) -> list[Part]:
    """The parts of a metric in column order: y, [d], x_1..x_k (see covariate_names)."""
    num = metric.numerator_measure()
    window = (metric.window.start, metric.window.end)
    parts = [Part("y", num, num.aggregation, after=window)]
    den = metric.denominator
    if den is not None:
        parts.append(Part("d", den, den.aggregation, after=window))
    if metric.covariate is not None:
        w = metric.covariate.window
        pre = [Part("x", num, num.aggregation, before=w)]
        if den is not None:
            pre.append(Part("x", den, den.aggregation, before=w))
        if metric.covariate.indicator:
            pre.append(Part("x", num, "any", before=w))
        parts += [
            Part(f"x_{i}", p.measure, p.aggregation, before=p.before)
            for i, p in enumerate(pre, start=1)
        ]
    return parts


def measure_predicate(t: ir.Table, measure: MeasureSpec) -> ir.BooleanValue | None:
    """Rows of ``t`` that belong to the measure (event name and filters), or None: all."""
    conds = [filter_predicate(t, f) for f in measure.filters]
    if measure.event is not None:
        conds.insert(0, t.name == ibis.literal(measure.event))
    return reduce(lambda a, b: a & b, conds) if conds else None


_US = 1_000_000


def _window(j: ir.Table, part: Part) -> ir.BooleanValue:
    if "rel_us" in j.columns:  # microseconds since first exposure, as an integer
        rel = j.rel_us
        if part.before is not None:
            return (rel >= -int(part.before.total_seconds()) * _US) & (rel < 0)
        assert part.after is not None
        lo, hi = part.after
        cond = rel >= int(lo.total_seconds()) * _US
        return cond & (rel < int(hi.total_seconds()) * _US) if hi is not None else cond
    fe = j.first_exposure
    if part.before is not None:
        return (j.timestamp >= fe - interval_literal(part.before)) & (j.timestamp < fe)
    assert part.after is not None
    lo, hi = part.after
    cond = j.timestamp >= fe + interval_literal(lo)
    return cond & (j.timestamp < fe + interval_literal(hi)) if hi is not None else cond


def _aggregate(j: ir.Table, part: Part) -> ir.Scalar:
    cond = _window(j, part)
    pred = measure_predicate(j, part.measure)
    if pred is not None:
        cond = cond & pred
    column = part.measure.value_column()
    one = ibis.ifelse(cond, 1.0, ibis.null("float64"))
    if part.aggregation == "count":
        return one.sum()  # NULL, not 0, when nothing matches: `missing` decides
    if part.aggregation == "any":
        return one.max()
    assert column is not None
    v = ibis.ifelse(cond, j[column].cast("float64"), ibis.null("float64"))
    return {"sum": v.sum(), "max": v.max(), "min": v.min()}[part.aggregation]


def column_name(index: int, part: str) -> str:
    """Column of metric number ``index``'s part in the wide unit table."""
    return f"m{index}_{part}"


def unit_values(
    engine: MetricsEngine,
    spec: MetricsSpec,
    metrics: Sequence[MetricSpec],
    units: ir.Table,
    *,
    end: datetime | None = None,
) -> ir.Table:
    """One row per unit: ``unit_id, variant, segment_*`` and every metric's parts."""
    keep = ["unit_id", "uid", "variant", *(segment_column(d) for d in spec.segments)]
    t = units.select(*keep)
    by_source: dict[str, list[tuple[str, Part]]] = {}
    for i, metric in enumerate(metrics):
        for part in metric_parts(metric):
            by_source.setdefault(part.measure.source, []).append((column_name(i, part.name), part))
    for source, parts in sorted(by_source.items()):
        ev = event_table(engine, source, by_request=spec.outcomes_by_request)
        ev = ev.filter(ev.unit_id.notnull())
        if end is not None:
            ev = ev.filter(ev.timestamp < ibis.literal(end))
        preds = [measure_predicate(ev, p.measure) for _, p in parts]
        needed = [p for p in preds if p is not None]
        if len(needed) == len(preds):  # read only the rows some part needs
            ev = ev.filter(reduce(lambda a, b: a | b, needed))
        j = ev.join(units.select("unit_id", "uid", "first_exposure"), "unit_id")
        ts_us, fe_us = engine.micros(j.timestamp), engine.micros(j.first_exposure)
        if ts_us is not None and fe_us is not None:
            j = j.mutate(rel_us=ts_us - fe_us)
        values = j.group_by("uid").aggregate(**{name: _aggregate(j, part) for name, part in parts})
        values = values.rename({f"{source}_uid": "uid"})
        joined = t.left_join(values, t.uid == values[f"{source}_uid"])
        t = joined.select(*t.columns, *(name for name, _ in parts))
    return t


def metric_unit_table(
    wide: ir.Table, spec: MetricsSpec, metric: MetricSpec, index: int
) -> ir.Table:
    """The per-unit table of one metric (``y, [d], x_i``), with its missing-value policy."""
    keep = ["unit_id", "variant", *(segment_column(d) for d in spec.segments)]
    cols: dict[str, ir.Value] = {}
    for part in metric_parts(metric):
        c = wide[column_name(index, part.name)]
        fill = part.name != "y" or metric.fill_missing()
        cols[part.name] = c.fill_null(0.0) if fill else c
    t = wide.select(*keep, **cols)
    return t if metric.fill_missing() else t.filter(t.y.notnull())


def metric_units(
    engine: MetricsEngine,
    spec: MetricsSpec,
    metric: MetricSpec,
    units: ir.Table,
    *,
    end: datetime | None = None,
) -> ir.Table:
    """One row per analysed unit of one metric: ``unit_id, variant, segment_*, y, [d], x_i``."""
    wide = unit_values(engine, spec, [metric], units, end=end)
    return metric_unit_table(wide, spec, metric, 0)
