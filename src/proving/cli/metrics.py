"""`proving metrics`: compute sufficient statistics from events where they live.

    proving metrics compute --spec metrics.yaml --store duckdb:///events.duckdb --out stats.json
    proving metrics refresh --spec metrics.yaml --store duckdb:///events.duckdb --day 2024-03-05
    proving metrics validate --spec metrics.yaml

The output of ``compute`` (JSON or CSV) is what ``proving analyze`` reads.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from proving.errors import ProvingError

metrics_app = typer.Typer(
    name="metrics",
    help="Compute per-variant sufficient statistics from exposures, predictions and outcomes.",
    no_args_is_help=True,
)

SpecOption = Annotated[Path, typer.Option("--spec", help="Metric definitions (YAML).")]
StoreOption = Annotated[
    str,
    typer.Option(
        "--store",
        help="duckdb:///file.duckdb, postgresql://user@host/db?schema=..., parquet:///dir or "
        "spark+parquet:///dir.",
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn proving's errors into a message and exit code 2, backend failures into 1."""
    try:
        yield
    except ProvingError as exc:
        raise _fail(str(exc)) from None
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # a database error: say which, without a traceback
        raise _fail(f"the query failed: {type(exc).__name__}: {exc}", code=1) from None


def _parse_time(value: str | None, option: str, *, end: bool) -> datetime | None:
    """A date (``2024-03-05``) or ISO time; naive means UTC. An end date includes its day."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            t = datetime(d.year, d.month, d.day, tzinfo=UTC)
            return t + timedelta(days=1) if end else t
        t = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(
            f"{option}: expected a date such as 2024-03-05 or a time such as "
            f"2024-03-05T12:00:00Z; got {value!r}."
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _summary(rows: tuple[dict[str, Any], ...], quantiles: tuple[dict[str, Any], ...]) -> Table:
    table = Table(title="sufficient statistics")
    for col in ("experiment", "metric", "segment", "variant", "kind", "n", "mean"):
        table.add_column(col, justify="right" if col in ("n", "mean") else "left")
    for r in rows:
        if r["kind"] == "ratio":
            den = r["denominator_sum"]
            mean = f"{r['sum'] / den:.6g}" if den else "-"
        else:
            mean = f"{r['sum'] / r['n']:.6g}" if r["n"] else "-"
        table.add_row(
            r["experiment"], r["metric"], r["segment"], r["variant"], r["kind"], str(r["n"]), mean
        )
    for r in quantiles:
        table.add_row(
            r["experiment"],
            r["metric"],
            r["segment"],
            r["variant"],
            f"p{r['quantile'] * 100:g}",
            str(r["n_events"]),
            f"{r['estimate']:.6g}",
        )
    return table


@metrics_app.command("compute")
def compute_command(
    spec: SpecOption,
    store: StoreOption,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the statistics to FILE.json or FILE.csv.")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Exposures from this date/time on (UTC).")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Exposures and events up to this date (inclusive) or time."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Compute the sufficient statistics of every metric in SPEC over the events in STORE.

    Example: proving metrics compute --spec metrics.yaml --store duckdb:///events.duckdb
    --out stats.json
    """
    from proving.metrics import compute_metrics, connect, load_metrics_spec

    start = _parse_time(from_, "--from", end=False)
    end = _parse_time(to, "--to", end=True)
    if out is not None and out.suffix not in (".json", ".csv"):
        raise _fail(f"--out {str(out)!r}: use a .json or .csv file name.")
    with _user_errors():
        definitions = load_metrics_spec(spec)
        engine = connect(store)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
            disable=as_json or not sys.stderr.isatty(),
        ) as progress:
            task = progress.add_task("metrics", total=None)

            def report(done: int, total: int, what: str) -> None:
                progress.update(task, completed=done, total=total, description=what)

            result = compute_metrics(engine, definitions, start=start, end=end, progress=report)
        written = result.write(out) if out is not None else []
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    console = Console()
    console.print(_summary(result.rows, result.quantile_rows))
    for e in result.exposures:
        console.print(
            f"{e['experiment']} / {e['variant']}: {e['units']} units, "
            f"{e['units_multiple_variants']} seen in several variants (policy {e['policy']})"
        )
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    for p in written:
        console.print(f"wrote {p}")


@metrics_app.command("refresh")
def refresh_command(
    spec: SpecOption,
    store: StoreOption,
    day: Annotated[list[str], typer.Option("--day", help="UTC day(s) to add, e.g. 2024-03-05.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Then write the statistics of all refreshed days to FILE."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was refreshed as JSON.")
    ] = False,
) -> None:
    """Add one or more days to the per-day state kept in STORE (DuckDB or PostgreSQL)."""
    from proving.metrics import connect, load_metrics_spec
    from proving.metrics.incremental import IncrementalMetrics

    days = []
    for d in day:
        try:
            days.append(date.fromisoformat(d))
        except ValueError:
            raise _fail(f"--day: expected a date such as 2024-03-05; got {d!r}.") from None
    with _user_errors():
        engine = connect(store, read_only=False)
        inc = IncrementalMetrics(engine, load_metrics_spec(spec))
        done = inc.refresh_days(days)
        written = inc.compute().write(out) if out is not None else []
    report = [
        {
            "day": r.day.isoformat(),
            "exposure_rows": r.exposure_rows,
            "unit_rows": r.unit_rows,
            "replaced": r.replaced,
        }
        for r in done
    ]
    if as_json:
        typer.echo(json.dumps({"refreshed": report, "written": [str(p) for p in written]}))
        return
    for r in report:
        typer.echo(
            f"{r['day']}: {r['exposure_rows']} unit exposure rows, {r['unit_rows']} unit "
            f"metric rows{' (replaced)' if r['replaced'] else ''}"
        )
    for p in written:
        typer.echo(f"wrote {p}")


@metrics_app.command("validate")
def validate_command(spec: SpecOption) -> None:
    """Check a metrics spec and list its metrics."""
    from proving.metrics import load_metrics_spec
    from proving.metrics.definitions import format_duration

    with _user_errors():
        definitions = load_metrics_spec(spec)
    table = Table(title=f"{spec}: experiments {', '.join(definitions.experiment_names())}")
    for col in ("metric", "kind", "family", "source", "aggregation", "window", "covariates"):
        table.add_column(col)
    for m in definitions.metrics:
        num = m.numerator_measure()
        table.add_row(
            m.name,
            m.kind,
            m.family or "",
            num.source,
            num.aggregation,
            f"{format_duration(m.window.start)} .. "
            f"{format_duration(m.window.end) if m.window.end else 'open'}",
            ", ".join(m.covariate_names()),
        )
    Console().print(table)
