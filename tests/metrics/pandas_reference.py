"""A plain pandas/numpy implementation of the metric semantics, written independently of
the Ibis compiler, so tests can compare the warehouse's sufficient statistics against it.

Row loops and dictionaries over readability-first pandas; no code shared with
proving.metrics.compile (only the spec models are read)."""

from __future__ import annotations

import json
import math
import operator
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from proving.metrics.definitions import FilterSpec, MeasureSpec, MetricSpec, MetricsSpec
from proving.stats import ArmStats


def units_frame(
    exposures: pd.DataFrame,
    spec: MetricsSpec,
    experiment: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """unit_id -> variant at first exposure, first exposure time, multiple, segments."""
    e = exposures[exposures.experiment == experiment]
    if start is not None:
        e = e[e.timestamp >= start]
    if end is not None:
        e = e[e.timestamp < end]
    rows = []
    for unit, g in e.groupby("unit_id"):
        g = g.sort_values("timestamp")
        first = g.iloc[0]
        attrs = json.loads(first.attributes)
        row = {
            "unit_id": unit,
            "variant": first.variant,
            "first_exposure": first.timestamp,
            "multiple": g.variant.nunique() > 1,
        }
        for d in spec.segments:
            v = attrs.get(d)
            row[f"segment_{d}"] = "(missing)" if v is None else str(v)
        rows.append(row)
    return pd.DataFrame(rows)


_OPS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def _mask(df: pd.DataFrame, f: FilterSpec) -> pd.Series:
    """Rows where the filter holds; like SQL, a comparison with a missing value is false."""
    col = df[f.column]
    missing = col.isna()
    if f.op == "is_null":
        return missing
    if f.op == "not_null":
        return ~missing
    if f.op == "in":
        hit = col.isin(f.value)
    elif f.op == "not_in":
        hit = ~col.isin(f.value)
    else:
        hit = _OPS[f.op](col.where(~missing, other=f.value), f.value)
    return hit & ~missing


def measure_values(
    events: pd.DataFrame,
    measure: MeasureSpec,
    units: pd.DataFrame,
    *,
    after: tuple[Any, Any] | None = None,
    before: Any = None,
    end: datetime | None = None,
    aggregation: str | None = None,
) -> dict[str, float]:
    """unit_id -> aggregated value, for units with at least one event in the window."""
    ev = events[events.unit_id.notna()]
    if measure.event is not None:
        ev = ev[ev["name"] == measure.event]
    for f in measure.filters:
        ev = ev[_mask(ev, f)]
    if end is not None:
        ev = ev[ev.timestamp < end]
    ev = ev.merge(units[["unit_id", "first_exposure"]], on="unit_id")
    fe = ev.first_exposure
    if after is not None:
        lo, hi = after
        keep = ev.timestamp >= fe + lo
        if hi is not None:
            keep &= ev.timestamp < fe + hi
        ev = ev[keep]
    if before is not None:
        ev = ev[(ev.timestamp >= fe - before) & (ev.timestamp < fe)]
    col = measure.value_column()
    v = ev[col].astype(float) if col else pd.Series(1.0, index=ev.index)
    grouped = v.groupby(ev.unit_id)
    agg = aggregation or measure.aggregation
    fns = {
        "sum": grouped.sum(),
        "count": grouped.size().astype(float),
        "max": grouped.max(),
        "min": grouped.min(),
        "any": grouped.size().clip(upper=1).astype(float),
    }
    return {str(u): float(x) for u, x in fns[agg].items()}


def metric_unit_frame(
    tables: dict[str, pd.DataFrame],
    spec: MetricsSpec,
    metric: MetricSpec,
    units: pd.DataFrame,
    end: datetime | None = None,
) -> pd.DataFrame:
    """The per-unit table (y, d, x_i) after the exposure policy, window, fill and cap."""
    if spec.multiple_exposures == "exclude":
        units = units[~units.multiple]
    num = metric.numerator_measure()
    window = (metric.window.start, metric.window.end)
    y = measure_values(tables[num.source], num, units, after=window, end=end)
    df = units.copy()
    df["y"] = df.unit_id.map(y)
    if metric.fill_missing():
        df["y"] = df.y.fillna(0.0)
    else:
        df = df[df.y.notna()].copy()
    if metric.denominator is not None:
        den = metric.denominator
        d = measure_values(tables[den.source], den, units, after=window, end=end)
        df["d"] = df.unit_id.map(d).fillna(0.0)
    if metric.covariate is not None:
        w = metric.covariate.window
        pre = [measure_values(tables[num.source], num, units, before=w, end=end)]
        if metric.denominator is not None:
            den = metric.denominator
            pre.append(measure_values(tables[den.source], den, units, before=w, end=end))
        if metric.covariate.indicator:
            pre.append(
                measure_values(tables[num.source], num, units, before=w, end=end, aggregation="any")
            )
        for i, values in enumerate(pre, start=1):
            df[f"x_{i}"] = df.unit_id.map(values).fillna(0.0)
    if metric.capping is not None:
        cap = metric.capping.value
        if cap is None:
            cap = float(np.quantile(df.y.to_numpy(), metric.capping.quantile))
        df["y"] = np.minimum(df.y, cap)
        if metric.covariate is not None:
            df["x_1"] = np.minimum(df.x_1, cap)
    return df


def arm_stats(df: pd.DataFrame, metric: MetricSpec) -> ArmStats:
    """ArmStats.from_values over a unit frame (numpy's sums, not the warehouse's)."""
    names = metric.covariate_names()
    return ArmStats.from_values(
        df.y.to_numpy(),
        denominators=df.d.to_numpy() if metric.denominator is not None else None,
        covariates={n: df[f"x_{i}"].to_numpy() for i, n in enumerate(names, start=1)} or None,
    )


def resolve_requests(tables: dict[str, pd.DataFrame], spec: MetricsSpec) -> dict[str, pd.DataFrame]:
    """outcomes_by_request: give request-only outcomes the unit of their prediction."""
    if not spec.outcomes_by_request:
        return tables
    pr = tables["predictions"].dropna(subset=["unit_id"])
    unit_of = pr.groupby("request_id").unit_id.min()
    out = tables["outcomes"].copy()
    orphan = out.unit_id.isna()
    out.loc[orphan, "unit_id"] = out.loc[orphan, "request_id"].map(unit_of)
    return {**tables, "outcomes": out}


def expected_rows(
    tables: dict[str, pd.DataFrame],
    spec: MetricsSpec,
    metric: MetricSpec,
    experiment: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[tuple[str, str], ArmStats]:
    """(segment, variant) -> ArmStats for one mean/proportion/ratio/count metric."""
    tables = resolve_requests(tables, spec)
    units = units_frame(tables["exposures"], spec, experiment, start, end)
    df = metric_unit_frame(tables, spec, metric, units, end)
    out: dict[tuple[str, str], ArmStats] = {}
    for variant, g in df.groupby("variant"):
        out[("all", str(variant))] = arm_stats(g, metric)
    for d in spec.segments:
        for (variant, value), g in df.groupby(["variant", f"segment_{d}"]):
            out[(f"{d}={value}", str(variant))] = arm_stats(g, metric)
    return out


def expected_quantiles(
    tables: dict[str, pd.DataFrame],
    spec: MetricsSpec,
    metric: MetricSpec,
    experiment: str,
) -> dict[tuple[str, str], dict[str, float]]:
    """(segment, variant) -> estimate, n, n_events and clustered S/N sums."""
    assert metric.quantile is not None
    tables = resolve_requests(tables, spec)
    units = units_frame(tables["exposures"], spec, experiment)
    if spec.multiple_exposures == "exclude":
        units = units[~units.multiple]
    num = metric.numerator_measure()
    if metric.quantile.level == "unit":
        df = metric_unit_frame(tables, spec, metric, units)
        obs = df.rename(columns={"y": "v"})
    else:
        fe = dict(zip(units.unit_id, units.first_exposure, strict=True))
        ev = tables[num.source]
        rows = []
        for _, r in ev.iterrows():
            u = r["unit_id"]
            if u not in fe or (num.event is not None and r["name"] != num.event):
                continue
            if not all(_mask(ev.loc[[_]], f).iloc[0] for f in num.filters):
                continue
            lo, hi = metric.window.start, metric.window.end
            if r.timestamp < fe[u] + lo or (hi is not None and r.timestamp >= fe[u] + hi):
                continue
            rows.append({"unit_id": u, "v": float(r[num.value_column()])})
        obs = pd.DataFrame(rows).merge(units, on="unit_id")
    out = {}
    groups = [("all", obs.groupby("variant"))]
    groups += [(d, obs.groupby(["variant", f"segment_{d}"])) for d in spec.segments]
    for dim, grouped in groups:
        for key, g in grouped:
            variant = key if isinstance(key, str) else key[0]
            segment = "all" if dim == "all" else f"{dim}={key[1]}"
            values = np.sort(g.v.to_numpy())
            n, nu = len(values), metric.quantile.p
            q = float(np.quantile(values, nu, method="inverted_cdf"))
            z = float(stats.norm.ppf(1 - metric.quantile.rank_alpha / 2))
            half = z * math.sqrt(n * nu * (1 - nu))
            lo, hi = math.floor(n * nu - half), math.ceil(n * nu + half)
            per = (
                g.assign(s=(g.v <= q).astype(float))
                .groupby("unit_id")
                .agg(s=("s", "sum"), c=("v", "size"))
            )
            out[(segment, str(variant))] = {
                "estimate": q,
                "lower": float(values[lo - 1]) if 1 <= lo <= n else None,
                "upper": float(values[hi - 1]) if 1 <= hi <= n else None,
                "n": float(len(per)),
                "n_events": float(per.c.sum()),
                "sum": float(per.s.sum()),
                "sum_squares": float((per.s**2).sum()),
                "denominator_sum": float(per.c.sum()),
                "denominator_sum_squares": float((per.c**2).sum()),
                "sum_products": float((per.s * per.c).sum()),
            }
    return out
