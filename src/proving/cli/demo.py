"""`proving demo`: the main job, a simulated experiment analysed end to end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from proving.simulate.demo import DemoReport


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f}%"


def render(report: DemoReport, console: Console) -> None:
    """Print the demo report as Rich tables and plain verdicts."""
    table = Table(title=f"Simulated experiment: {report.n_units:,} users, seed {report.seed}")
    for column in ("metric", "kind", "truth", "estimate", "95% CI", "p", "verdict"):
        table.add_column(column, justify="right", no_wrap=column in ("metric", "95% CI"))
    table.add_column("CUPED narrows CI", justify="right")
    for m in report.metrics:
        r = m.with_cuped
        ci = f"[{_percent(r.ci_lower)}, {_percent(r.ci_upper)}]"
        verdict = "[green]recovered[/]" if m.recovered else "[red]missed[/]"
        narrowing = m.interval_narrowing
        table.add_row(
            m.metric,
            m.kind,
            _percent(m.true_lift),
            _percent(r.estimate),
            ci,
            "n/a" if r.p_value is None else f"{r.p_value:.2g}",
            verdict,
            "n/a" if narrowing is None else f"{100 * narrowing:.0f}%",
        )
    console.print(table)
    srm = "n/a" if report.srm_p_value is None else f"p = {report.srm_p_value:.3g}"
    console.print(
        f"Sample-ratio check: {srm}: "
        + ("[red]MISMATCH[/]" if report.srm_alarm else "[green]traffic split as configured[/]")
    )
    looks = Table(
        title=f"Sequential monitor on {report.monitor_metric} (true lift "
        f"{_percent(report.monitor_true_lift)}), one look a day, always-valid 95% interval"
    )
    for column in ("day", "units", "estimate", "always-valid interval", "decision"):
        looks.add_column(column, justify="right")
    for look in report.monitor:
        decision = look.decision.replace("_", " ")
        looks.add_row(
            str(look.look),
            f"{look.n_control + look.n_treatment:,.0f}",
            _percent(look.estimate),
            f"[{_percent(look.running_ci_lower)}, {_percent(look.running_ci_upper)}]",
            f"[bold]{decision}[/]" if look is report.stopped_at else decision,
        )
    console.print(looks)
    stop = report.stopped_at
    if stop is not None:
        console.print(f"Stopped on day {stop.look} of {len(report.monitor)}: {stop.reason}")
    else:
        console.print("The monitor did not stop: it needs more data.")
    recovered = sum(m.recovered for m in report.metrics)
    console.print(f"Truth recovered on {recovered} of {len(report.metrics)} metrics.")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def demo_command(
    units: int = typer.Option(200_000, min=1_000, help="Number of simulated users."),
    seed: int = typer.Option(2026, help="Random seed of the simulated world."),
    report: Path = typer.Option(
        Path("reports/demo.html"), help="Where to write the HTML report with plots."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Run the main job on a simulated world with known truth and report what it found."""
    from proving.simulate.demo import run_demo
    from proving.ui.report import write_demo_report

    console = Console(width=max(Console().width, 110))
    if as_json:
        typer.echo(run_demo(units, seed=seed).to_json())
        return
    with console.status("starting") as status:
        result = run_demo(units, seed=seed, progress=lambda m: status.update(m))
    render(result, console)
    path = write_demo_report(result, report)
    console.print(f"HTML report with plots: {path}")
