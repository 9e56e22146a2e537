"""Incremental metrics: per-day, per-unit partial values stored so a daily refresh scans
one day of events instead of everything.

What is additive, and what is not. Arm-level sufficient statistics are sums over units of
*unit values* (y, y², y·x, ...). A unit's value over many days is **not** the sum of its
daily squares, so per-day arm sums cannot simply be added when units span days. What
does combine across days is the unit-level aggregation itself: sum and count add, max and
min take the max and min, ``any`` takes the max. So the state kept is one row per
(experiment, metric, unit, day, part) with the day's partial aggregate, where part is
``y`` (the metric's measure), ``d`` (a ratio's denominator) or ``x_i`` (a CUPED
covariate). The statistics are then one pass over this state, which has at most one row
per unit per active day (far smaller than the events):

    unit value = combine(partials over days)  ->  cap  ->  arm sums (compile.arm_cells)

Exposures are kept the same way: per (experiment, unit, day) the first exposure that day,
its variant and segment attributes, and the smallest and largest variant seen (so a unit
that shows up in a second variant on a later day becomes "multiple" and is excluded under
policy ``exclude``).

Refresh rules (what is supported):

* Refresh days in order. Events of day D count for units whose first exposure is already
  known; the window is relative to that first exposure. A unit first exposed on day D
  gets its pre-period covariate from a bounded look-back scan (events in
  [first exposure - window, first exposure)), computed when day D is refreshed.
* Refreshing a day again replaces that day's rows (idempotent). Late exposures that move a
  unit's first exposure to an earlier day need a rebuild (refresh from the first day).
* Quantile metrics are not decomposable by day and are not supported here; compute them
  with :func:`proving.metrics.compute_metrics`.
* State lives in the engine's own database (DuckDB or PostgreSQL tables named
  ``<prefix>exposure_days`` and ``<prefix>unit_days``).

Example:
    >>> inc = IncrementalMetrics(engine, spec)  # doctest: +SKIP
    >>> inc.refresh(date(2024, 3, 1)); inc.refresh(date(2024, 3, 2))  # doctest: +SKIP
    >>> result = inc.compute()  # same statistics as a full scan  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from proving.errors import MetricsError
from proving.metrics.compile import (
    MISSING_SEGMENT,
    apply_cap,
    arm_cells,
    capping_value,
    measure_events,
    rows_from_cells,
    segment_column,
    windowed_events,
)
from proving.metrics.compute import MetricsResult
from proving.metrics.definitions import MetricSpec, MetricsSpec
from proving.metrics.engines import MetricsEngine
from proving.metrics.unit_values import metric_parts

#: How a part combines across days, by the measure's unit-level aggregation.
COMBINE = {"sum": "sum", "count": "sum", "max": "max", "min": "min", "any": "max"}


def _union(tables: list[ir.Table]) -> ir.Table:
    return tables[0].union(*tables[1:]) if len(tables) > 1 else tables[0]


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class RefreshResult:
    """What one day's refresh wrote."""

    day: date
    exposure_rows: int
    unit_rows: int
    replaced: bool


class IncrementalMetrics:
    """Per-day state of a metrics spec on one engine (DuckDB or PostgreSQL).

    Args:
        engine: the store holding the events; the state tables are written there too.
        spec: the metric definitions (no quantile metrics).
        prefix: name prefix of the state tables.
    """

    def __init__(
        self, engine: MetricsEngine, spec: MetricsSpec, *, prefix: str = "proving_metrics_"
    ) -> None:
        if engine.name == "pyspark":
            raise MetricsError(
                "incremental state is kept in DuckDB or PostgreSQL tables; on Spark, run "
                "compute_metrics over the date range instead."
            )
        for m in spec.metrics:
            if m.kind == "quantile":
                raise MetricsError(
                    f"metric {m.name!r}: quantile metrics do not decompose by day, so they "
                    "cannot be refreshed incrementally; compute them with `proving metrics "
                    "compute` or drop them from this spec."
                )
        self.engine = engine
        self.spec = spec
        self.exposure_table = f"{prefix}exposure_days"
        self.unit_table = f"{prefix}unit_days"
        self.day_table = f"{prefix}days"

    # -- state tables -------------------------------------------------------------------

    def _existing(self, name: str) -> ir.Table | None:
        # (Ibis 12's list_tables fails on DuckDB 2, so ask for the table itself.)
        try:
            table: ir.Table = self.engine.backend.table(name, database=self.engine.database)
            return table
        except Exception:  # each backend raises its own "no such table"
            return None

    def _write(self, name: str, new: ir.Table, day: date) -> bool:
        """Append ``new`` to state table ``name``, replacing the rows of ``day``."""
        con = self.engine.backend
        old = self._existing(name)
        if old is None:
            con.create_table(name, new, database=self.engine.database)
            return False
        replaced = int(con.execute(old.filter(old.day == ibis.literal(day)).count())) > 0
        if replaced:
            # Ibis has no DELETE: rewrite the state without that day (state is small:
            # one row per unit and active day), then append the day again.
            kept = con.execute(old.filter(old.day != ibis.literal(day)))
            con.create_table(
                name, kept, schema=old.schema(), database=self.engine.database, overwrite=True
            )
        con.insert(name, new, database=self.engine.database)
        return replaced

    def days(self) -> list[date]:
        """The days refreshed so far, in order."""
        t = self._existing(self.day_table)
        if t is None:
            return []
        return sorted({pd.Timestamp(v).date() for v in self.engine.execute(t)["day"]})

    # -- exposures ----------------------------------------------------------------------

    def _exposure_day(self, experiment: str, day: date) -> ir.Table:
        lo, hi = _day_bounds(day)
        e = self.engine.table("exposures")
        e = e.filter(
            e.experiment == ibis.literal(experiment),
            e.timestamp >= ibis.literal(lo),
            e.timestamp < ibis.literal(hi),
        )
        aggs: dict[str, ir.Value] = {
            "first_exposure": e.timestamp.min(),
            "variant": e.variant.argmin(e.timestamp),
            "min_variant": e.variant.min(),
            "max_variant": e.variant.max(),
        }
        for d in self.spec.segments:
            aggs[segment_column(d)] = self.engine.json_text(e.attributes, d).argmin(e.timestamp)
        t = e.group_by("unit_id").aggregate(**aggs)
        return t.mutate(experiment=ibis.literal(experiment), day=ibis.literal(day))

    def units(self, experiment: str) -> ir.Table:
        """Units as of the refreshed days: the columns of :func:`compile.exposure_units`."""
        t = self._existing(self.exposure_table)
        if t is None:
            raise MetricsError("no day has been refreshed yet; call refresh(day) first.")
        t = t.filter(t.experiment == ibis.literal(experiment))
        aggs: dict[str, ir.Value] = {
            "first_exposure": t.first_exposure.min(),
            "variant": t.variant.argmin(t.first_exposure),
            "min_variant": t.min_variant.min(),
            "max_variant": t.max_variant.max(),
        }
        for d in self.spec.segments:
            c = segment_column(d)
            aggs[c] = t[c].argmin(t.first_exposure)
        u = t.group_by("unit_id").aggregate(**aggs)
        fills = {
            segment_column(d): u[segment_column(d)].fill_null(MISSING_SEGMENT)
            for d in self.spec.segments
        }
        return u.mutate(multiple=u.min_variant != u.max_variant, **fills).drop(
            "min_variant", "max_variant"
        )

    # -- metric partials ----------------------------------------------------------------

    def _unit_day(
        self, experiment: str, metric: MetricSpec, units: ir.Table, day: date
    ) -> list[ir.Table]:
        lo, hi = _day_bounds(day)
        out = []
        for p in metric_parts(metric):
            ev = measure_events(
                self.engine, p.measure, end=hi, by_request=self.spec.outcomes_by_request
            )
            if p.before is not None:
                # Units first exposed today: look back over their pre-period only.
                new = units.filter(units.first_exposure >= lo, units.first_exposure < hi)
                ev = ev.filter(ev.timestamp >= ibis.literal(lo - p.before))
                j = windowed_events(ev, new, before=p.before)
            else:
                ev = ev.filter(ev.timestamp >= ibis.literal(lo))
                j = windowed_events(ev, units, after=p.after)
            part, aggregation = p.name, p.aggregation
            agg = {
                "sum": j.v.sum(),
                "count": j.count().cast("float64"),
                "max": j.v.max(),
                "min": j.v.min(),
                "any": ibis.ifelse(j.count() > 0, 1.0, 0.0),
            }[aggregation]
            t = j.group_by("unit_id").aggregate(value=agg.cast("float64"))
            out.append(
                t.mutate(
                    experiment=ibis.literal(experiment),
                    metric=ibis.literal(metric.name),
                    part=ibis.literal(part),
                    day=ibis.literal(day),
                ).select("experiment", "metric", "unit_id", "day", "part", "value")
            )
        return out

    def refresh(self, day: date) -> RefreshResult:
        """Add (or redo) one UTC day: its exposures, then its metric partials."""
        exposure = [self._exposure_day(x, day) for x in self.spec.experiment_names()]
        replaced = self._write(self.exposure_table, _union(exposure), day)
        parts: list[ir.Table] = []
        cached = []
        for experiment in self.spec.experiment_names():
            # Materialized once per refresh: every part joins today's events to them.
            units = self.units(experiment).cache()
            cached.append(units)
            for metric in self.spec.metrics:
                parts += self._unit_day(experiment, metric, units, day)
        try:
            self._write(self.unit_table, _union(parts), day)
        finally:
            for units in cached:
                units.release()
        self._write(self.day_table, ibis.memtable({"day": [day]}), day)
        return RefreshResult(
            day, self._count(self.exposure_table, day), self._count(self.unit_table, day), replaced
        )

    def _count(self, name: str, day: date) -> int:
        t = self._existing(name)
        return 0 if t is None else int(self.engine.execute(t.filter(t.day == day).count()))

    def refresh_days(self, days: Iterable[date]) -> list[RefreshResult]:
        """Refresh several days, in order."""
        return [self.refresh(d) for d in sorted(days)]

    # -- statistics from the state ------------------------------------------------------

    def metric_units(self, experiment: str, metric: MetricSpec, units: ir.Table) -> ir.Table:
        """Per unit ``y, [d], x_i`` combined over days: the input of ``arm_cells``."""
        state = self._existing(self.unit_table)
        if state is None:
            raise MetricsError("no day has been refreshed yet; call refresh(day) first.")
        state = state.filter(
            state.experiment == ibis.literal(experiment), state.metric == ibis.literal(metric.name)
        )
        keep = ["unit_id", "variant", *(segment_column(d) for d in self.spec.segments)]
        t = units.select(*keep)
        for p in metric_parts(metric):
            part = p.name
            s = state.filter(state.part == ibis.literal(part))
            how = COMBINE[p.aggregation]
            combined = s.group_by("unit_id").aggregate(
                value=s.value.sum()
                if how == "sum"
                else s.value.max()
                if how == "max"
                else s.value.min()
            )
            c = combined.rename({f"{part}_unit_id": "unit_id", part: "value"})
            j = t.left_join(c, t.unit_id == c[f"{part}_unit_id"])
            t = j.select(*t.columns, **{part: j[part]})
            if part != "y" or metric.fill_missing():
                t = t.mutate(**{part: t[part].fill_null(0.0)})
        if not metric.fill_missing():
            t = t.filter(t.y.notnull())
        return t

    def compute(self) -> MetricsResult:
        """Sufficient statistics from the stored days (equal to a full scan of them)."""
        rows: list[dict[str, Any]] = []
        exposures: list[dict[str, Any]] = []
        caps: list[dict[str, Any]] = []
        for experiment in self.spec.experiment_names():
            all_units = self.units(experiment)
            summary = self.engine.execute(
                all_units.group_by("variant").aggregate(
                    units=all_units.count(),
                    units_multiple_variants=ibis.ifelse(all_units.multiple, 1, 0).sum(),
                )
            )
            for rec in summary.sort_values("variant").to_dict("records"):
                exposures.append(
                    {
                        "experiment": experiment,
                        "variant": str(rec["variant"]),
                        "units": int(rec["units"]),
                        "units_multiple_variants": int(rec["units_multiple_variants"]),
                        "policy": self.spec.multiple_exposures,
                    }
                )
            units = all_units
            if self.spec.multiple_exposures == "exclude":
                units = units.filter(~units.multiple)
            for metric in self.spec.metrics:
                t = self.metric_units(experiment, metric, units)
                cap = capping_value(self.engine, metric, t)
                t = apply_cap(t, cap, metric)
                cells = self.engine.execute(arm_cells(t, metric, self.spec.segments))
                rows += rows_from_cells(
                    cells, experiment=experiment, metric=metric, dimensions=self.spec.segments
                )
                if metric.capping is not None:
                    caps.append({"experiment": experiment, "metric": metric.name, "cap": cap})
        return MetricsResult(
            rows=tuple(rows),
            exposures=tuple(exposures),
            caps=tuple(caps),
            engine=self.engine.name,
        )
