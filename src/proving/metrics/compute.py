"""Run a metrics spec on an engine: sufficient statistics per experiment, variant, segment
and metric, ready for ``proving analyze``.

Example:
    >>> from proving.metrics import compute_metrics, connect, load_metrics_spec
    >>> engine = connect("duckdb:///events.duckdb")  # doctest: +SKIP
    >>> result = compute_metrics(engine, load_metrics_spec("metrics.yaml"))  # doctest: +SKIP
    >>> result.write("stats.json")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from proving.errors import MetricsError
from proving.metrics.compile import (
    apply_cap,
    arm_cells,
    capping_value,
    exposure_summary,
    exposure_units,
    kept_units,
    rows_from_cells,
)
from proving.metrics.definitions import MetricSpec, MetricsSpec
from proving.metrics.engines import MetricsEngine
from proving.metrics.quantiles import quantile_rows
from proving.metrics.unit_values import metric_unit_table, unit_values

#: Called after each step with (steps done, steps in total, a description).
ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class MetricsResult:
    """Sufficient statistics computed from events.

    Attributes:
        rows: mean, proportion, ratio and count metrics: one flat row per (experiment,
            variant, segment, metric), the columns ``proving analyze`` reads.
        quantile_rows: quantile metrics (see :mod:`proving.metrics.quantiles`).
        exposures: per (experiment, variant): units analysed and units seen in more than
            one variant (excluded under policy ``exclude``, kept under ``first``).
        caps: the cap applied to each capped metric, per experiment.
        engine: the backend that computed them.
        start: exposures from this time on (None: all).
        end: exposures and events before this time (None: all).
        warnings: things the reader should know (e.g. an experiment with no exposures).
    """

    rows: tuple[dict[str, Any], ...]
    quantile_rows: tuple[dict[str, Any], ...] = ()
    exposures: tuple[dict[str, Any], ...] = ()
    caps: tuple[dict[str, Any], ...] = ()
    engine: str = ""
    start: str | None = None
    end: str | None = None
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{"rows": [...], "quantile_rows": [...], ...}``."""
        return asdict(self)

    def to_frame(self) -> pd.DataFrame:
        """The ``rows`` as a DataFrame (covariate names as a list column)."""
        return pd.DataFrame(list(self.rows))

    def write(self, path: str | Path) -> list[Path]:
        """Write JSON (everything) or CSV (``rows``; quantile rows and the exposure summary
        go to ``<stem>.quantiles.csv`` and ``<stem>.exposures.csv``). Returns the paths."""
        p = Path(path)
        if p.suffix == ".json":
            p.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
            return [p]
        if p.suffix == ".csv":
            written = [p]
            _write_csv(p, self.rows)
            for name, part in (("quantiles", self.quantile_rows), ("exposures", self.exposures)):
                if part:
                    extra = p.with_name(f"{p.stem}.{name}.csv")
                    _write_csv(extra, part)
                    written.append(extra)
            return written
        raise MetricsError(
            f"output file {str(p)!r}: unknown format {p.suffix!r}; use .json or .csv."
        )


def _write_csv(path: Path, rows: tuple[dict[str, Any], ...]) -> None:
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: ";".join(v) if isinstance(v, list) else v for k, v in r.items()})


def metric_rows(
    engine: MetricsEngine,
    spec: MetricsSpec,
    metric: MetricSpec,
    table: Any,
    *,
    experiment: str,
) -> tuple[list[dict[str, Any]], float | None]:
    """Rows of one non-quantile metric from its unit table, and the cap applied (if any)."""
    cap = capping_value(engine, metric, table)
    t = apply_cap(table, cap, metric)
    cells: pd.DataFrame = engine.execute(arm_cells(t, metric, spec.segments))
    rows = rows_from_cells(cells, experiment=experiment, metric=metric, dimensions=spec.segments)
    return rows, cap


@dataclass
class _Collected:
    rows: list[dict[str, Any]] = field(default_factory=list)
    quantile_rows: list[dict[str, Any]] = field(default_factory=list)
    exposures: list[dict[str, Any]] = field(default_factory=list)
    caps: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _exposures(
    engine: MetricsEngine, spec: MetricsSpec, experiment: str, all_units: Any, out: _Collected
) -> None:
    summary: pd.DataFrame = engine.execute(exposure_summary(all_units))
    for rec in summary.sort_values("variant").to_dict("records"):
        out.exposures.append(
            {
                "experiment": experiment,
                "variant": str(rec["variant"]),
                "units": int(rec["units"]),
                "units_multiple_variants": int(rec["units_multiple_variants"]),
                "policy": spec.multiple_exposures,
            }
        )
    if summary.empty:
        out.warnings.append(f"experiment {experiment!r} has no exposures in the time range.")


def _experiment(
    engine: MetricsEngine,
    spec: MetricsSpec,
    experiment: str,
    out: _Collected,
    *,
    start: datetime | None,
    end: datetime | None,
    step: Callable[[str], None],
) -> None:
    # Materialized once (a temp table in DuckDB and PostgreSQL, a persisted DataFrame in
    # Spark): every metric reads the same units, and the wide table of unit values is one
    # scan per event table for all metrics (see proving.metrics.unit_values).
    all_units = exposure_units(engine, spec, experiment, start=start, end=end).cache()
    cached = [all_units]
    try:
        _exposures(engine, spec, experiment, all_units, out)
        step(f"{experiment}: exposures")
        units = kept_units(all_units, spec.multiple_exposures)
        plain = [m for m in spec.metrics if m.kind != "quantile"]
        if plain:
            wide = unit_values(engine, spec, plain, units, end=end).cache()
            cached.append(wide)
            step(f"{experiment}: unit values")
        for i, metric in enumerate(plain):
            table = metric_unit_table(wide, spec, metric, i)
            m_rows, cap = metric_rows(engine, spec, metric, table, experiment=experiment)
            out.rows += m_rows
            if metric.capping is not None:
                out.caps.append({"experiment": experiment, "metric": metric.name, "cap": cap})
            step(f"{experiment}: {metric.name}")
        for metric in spec.metrics:
            if metric.kind == "quantile":
                out.quantile_rows += quantile_rows(
                    engine, spec, metric, units, experiment=experiment, end=end
                )
                step(f"{experiment}: {metric.name}")
    finally:
        for t in cached:
            t.release()


def compute_metrics(
    engine: MetricsEngine,
    spec: MetricsSpec,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> MetricsResult:
    """Compute every metric of ``spec`` for every experiment on ``engine``.

    Args:
        engine: where the events live (:func:`proving.metrics.connect`).
        spec: the metric definitions.
        start: count exposures from this time on (timezone-aware; None: all).
        end: count exposures and metric events before this time (None: all).
        progress: called after each (experiment, metric) query.

    Returns:
        A :class:`MetricsResult`, rows sorted by experiment, metric, segment, variant.
    """
    for name, t in (("start", start), ("end", end)):
        if t is not None and t.tzinfo is None:
            raise MetricsError(f"`{name}` must be timezone-aware (UTC); got {t.isoformat()}.")
    out = _Collected()
    experiments = spec.experiment_names()
    has_plain = any(m.kind != "quantile" for m in spec.metrics)
    total = len(experiments) * (len(spec.metrics) + 1 + has_plain)
    done = 0

    def step(what: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total, what)

    for experiment in experiments:
        _experiment(engine, spec, experiment, out, start=start, end=end, step=step)
    return MetricsResult(
        rows=tuple(out.rows),
        quantile_rows=tuple(out.quantile_rows),
        exposures=tuple(out.exposures),
        caps=tuple(out.caps),
        engine=engine.name,
        start=start.isoformat() if start else None,
        end=end.isoformat() if end else None,
        warnings=tuple(out.warnings),
    )
