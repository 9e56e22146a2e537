"""`proving monitor FILE`: replay looks of cumulative statistics through a sequential monitor.

The file is a table of per-arm sufficient statistics (docs/stats/table.md) with one more
column, ``look`` (1, 2, ...): the statistics of every arm *at* that look, cumulative since
the start (or per-look increments with ``--increments``). Every treatment variant of every
(experiment, metric, segment) gets its own :class:`~proving.stats.monitor.SequentialMonitor`.

Example:
    proving monitor looks.csv --method confidence_sequence --effect absolute
    proving monitor looks.csv --method group_sequential --max-n 40000 --json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from proving.errors import StatsInputError
from proving.stats.results import Kind
from proving.stats.sufficient import ArmStats
from proving.stats.table import parse_row, read_records

_COLOURS = {
    "stop_for_effect": "green",
    "stop_for_harm": "red",
    "stop_inconclusive": "yellow",
    "continue": "white",
    "need_more_data": "dim",
}
Key = tuple[str, str, str]


def read_looks(path: Path) -> dict[Key, dict[int, dict[str, tuple[Kind, ArmStats]]]]:
    """Group a file of per-look statistics: key -> look -> variant -> (kind, ArmStats)."""
    out: dict[Key, dict[int, dict[str, tuple[Kind, ArmStats]]]] = {}
    for where, record in read_records(path):
        if not isinstance(record, dict):
            raise StatsInputError(f"{where}: a row must be an object of column to value.")
        raw = record.pop("look", None)
        try:
            look = int(str(raw).strip())
        except ValueError:
            raise StatsInputError(
                f"{where}: field `look` must be a whole number (1, 2, ...); got {raw!r}."
            ) from None
        row = parse_row(record, where=where)
        arms = out.setdefault((row.experiment, row.metric, row.segment), {}).setdefault(look, {})
        if row.variant in arms:
            arms[row.variant] = (row.kind, arms[row.variant][1] + row.stats)
        else:
            arms[row.variant] = (row.kind, row.stats)
    return out


def run_monitors(
    path: Path, *, control: str, increments: bool, lower_is_better: list[str], **spec: Any
) -> list[dict[str, Any]]:
    """One monitor per (experiment, metric, segment, treatment variant), replayed in order."""
    # Imported here, not at the top: the command line should not load SciPy to start.
    from proving.stats.monitor import MonitorSpec, SequentialMonitor

    looks_by_key = read_looks(path)
    results = []
    for (experiment, metric, segment), looks in looks_by_key.items():
        variants = sorted({v for arms in looks.values() for v in arms} - {control})
        if not any(control in arms for arms in looks.values()):
            raise StatsInputError(
                f"{path}: metric {metric!r} has no arm named {control!r} (the control); "
                "pass --control NAME."
            )
        for variant in variants:
            kind = next(a[variant][0] for a in looks.values() if variant in a)
            monitor = SequentialMonitor(
                MonitorSpec(
                    metric=metric,
                    kind=kind,
                    higher_is_better=metric not in lower_is_better,
                    **spec,
                )
            )
            total: dict[str, ArmStats] = {}
            for look in sorted(looks):
                arms = looks[look]
                if control not in arms or variant not in arms:
                    raise StatsInputError(
                        f"{path}: look {look} of metric {metric!r} lacks the "
                        f"{'control' if control not in arms else variant!r} arm; every look "
                        "needs both arms."
                    )
                for name in (control, variant):
                    stats = arms[name][1]
                    total[name] = total[name] + stats if increments and name in total else stats
                monitor.update(total[control], total[variant])
            results.append(
                {"experiment": experiment, "segment": segment, "variant": variant,
                 "control": control, "decision": monitor.decision, **monitor.to_dict()}
            )  # fmt: skip
    return results


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def render(result: dict[str, Any], console: Console) -> None:
    """Print one monitor's looks as a Rich table and its decision with the reason."""
    from proving.stats.monitor import MonitorLook

    spec = result["spec"]
    title = (
        f"{spec['metric']}: {result['variant']} vs {result['control']} "
        f"({spec['method']}, {spec['effect']} effect, alpha {spec['alpha']:g})"
    )
    table = Table(title=title)
    for column in ("look", "n control", "n treatment", "estimate", "interval", "p-value",
                   "z", "threshold", "decision"):  # fmt: skip
        table.add_column(column, justify="left" if column == "decision" else "right")
    for h in (MonitorLook.from_dict(x) for x in result["history"]):
        lo = h.running_ci_lower if h.running_ci_lower is not None else h.ci_lower
        hi = h.running_ci_upper if h.running_ci_upper is not None else h.ci_upper
        interval = "-" if h.estimate is None else f"[{_fmt(lo)}, {_fmt(hi)}]"
        table.add_row(
            str(h.look), f"{h.n_control:g}", f"{h.n_treatment:g}", _fmt(h.estimate), interval,
            _fmt(h.p_value), _fmt(h.statistic), _fmt(h.threshold),
            f"[{_COLOURS[h.decision]}]{h.decision}[/]",
        )  # fmt: skip
    console.print(table)
    last = result["history"][-1] if result["history"] else None
    reason = last["reason"] if last else "no looks"
    colour = _COLOURS[result["decision"]]
    console.print(f"[{colour}]{result['decision']}[/]: {reason}", highlight=False)


def monitor_command(
    file: Annotated[
        Path, typer.Argument(help="JSON or CSV of per-arm statistics with a `look` column.")
    ],
    control: Annotated[str, typer.Option(help="Name of the control variant.")] = "control",
    method: Annotated[
        str, typer.Option(help="confidence_sequence, msprt or group_sequential.")
    ] = "confidence_sequence",
    alpha: Annotated[float, typer.Option(help="Error over all looks together.")] = 0.05,
    effect: Annotated[str, typer.Option(help="relative or absolute.")] = "relative",
    relative_method: Annotated[str, typer.Option(help="delta or log.")] = "delta",
    alternative: Annotated[str, typer.Option(help="two-sided, greater or less.")] = "two-sided",
    tuning_n: Annotated[
        float, typer.Option(help="N*: total units where the confidence sequence is tightest.")
    ] = 5000.0,
    max_n: Annotated[
        float | None, typer.Option(help="Planned total units (required by group_sequential).")
    ] = None,
    spending: Annotated[
        str, typer.Option(help="obrien_fleming, pocock, hwang_shih_decani or power.")
    ] = "obrien_fleming",
    min_n: Annotated[float, typer.Option(help="Units per arm before any decision.")] = 100.0,
    lower_is_better: Annotated[
        list[str] | None,
        typer.Option(help="Metric where lower is better (repeat for several)."),
    ] = None,
    increments: Annotated[
        bool, typer.Option("--increments", help="Rows hold per-look increments, not totals.")
    ] = False,
    cuped: Annotated[bool, typer.Option("--cuped/--no-cuped", help="Use covariates.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the monitors as JSON.")] = False,
) -> None:
    """Replay looks of cumulative statistics and say, per look: continue or stop, and why."""
    try:
        results = run_monitors(
            file, control=control, increments=increments,
            lower_is_better=list(lower_is_better or []), method=method, alpha=alpha,
            effect=effect, relative_method=relative_method, alternative=alternative,
            tuning_n=tuning_n, max_n=max_n, spending=spending, min_n=min_n, cuped=cuped,
        )  # fmt: skip
    except StatsInputError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
    if as_json:
        typer.echo(json.dumps(results, indent=2, allow_nan=False))
        return
    console = Console()
    for result in results:
        render(result, console)
