"""`proving demo`: the main job, a simulated experiment analysed end to end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from proving.simulate.demo import DemoReport
    from proving.simulate.live_demo import LiveDemoResult


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
    if report.live is not None:
        render_live(report.live, console)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render_live(live: LiveDemoResult, console: Console) -> None:
    """Print the live loop: traffic, the shadow comparison and the A/B test vs truth."""
    traffic = Table(title=f"Live traffic to the gateway (deployment {live.deployment})")
    for column in ("phase", "requests", "failed", "variants", "req/s", "p50 ms", "p99 ms"):
        traffic.add_column(column, justify="right")
    traffic.add_column("outcomes", justify="right")
    for t in live.traffic:
        variants = ", ".join(f"{k} {v:,}" for k, v in t.variants.items())
        traffic.add_row(
            t.phase, f"{t.n_requests:,}", str(t.n_failed), variants, f"{t.requests_per_second:.0f}",
            _ms(t.latency_p50_ms), _ms(t.latency_p99_ms), f"{t.outcomes_accepted:,}",
        )  # fmt: skip
    console.print(traffic)
    s = live.shadow
    shadow = Table(
        title=f"Shadow phase: {live.champion_model} serves, {live.challenger_model} mirrored"
    )
    for column in ("pairs", "agreement", "95% CI", "truth", "shadow answers returned"):
        shadow.add_column(column, justify="right")
    for column in ("served p50/p99 ms", "shadow p50/p99 ms"):
        shadow.add_column(column, justify="right")
    leaks = s.returned_from_shadow
    shadow.add_row(
        f"{s.n_pairs:,}",
        _percent(s.agreement).lstrip("+"),
        f"[{_percent(s.ci_lower).lstrip('+')}, {_percent(s.ci_upper).lstrip('+')}]",
        _percent(s.true_agreement).lstrip("+"),
        "[green]0[/]" if leaks == 0 else f"[red]{leaks}[/]",
        f"{_ms(s.served_latency.p50)} / {_ms(s.served_latency.p99)}",
        f"{_ms(s.shadow_latency.p50)} / {_ms(s.shadow_latency.p99)}",
    )
    console.print(shadow)
    console.print(f"Switched to the A/B phase: {live.switch}.")
    ab = Table(title="A/B phase: metrics computed from the stored events, against the truth")
    for column in ("metric", "kind", "truth", "estimate", "95% CI", "p", "verdict"):
        ab.add_column(column, justify="right", no_wrap=column in ("metric", "95% CI"))
    for m in live.ab:
        r = m.result
        verdict = {True: "[green]recovered[/]", False: "[red]missed[/]", None: "guardrail"}
        ab.add_row(
            m.metric, m.kind, "n/a" if m.true_lift is None else _percent(m.true_lift),
            _percent(r.estimate), f"[{_percent(r.ci_lower)}, {_percent(r.ci_upper)}]",
            "n/a" if r.p_value is None else f"{r.p_value:.2g}", verdict[m.recovered],
        )  # fmt: skip
    console.print(ab)
    st = live.stored
    check = "[green]consistent[/]" if st.consistent else "[red]INCONSISTENT[/]"
    console.print(
        f"Event store after SIGTERM: {st.exposures:,} exposures, {st.served_predictions:,} "
        f"served and {st.shadow_predictions:,} shadow predictions, {st.outcomes:,} outcomes: "
        f"{check} with the {st.answered_requests:,} answers the users got."
    )
    for warning in live.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


DEFAULT_REPORT = Path("reports/demo.html")


def demo_command(
    units: int = typer.Option(200_000, min=1_000, help="Number of simulated users."),
    seed: int = typer.Option(2026, help="Random seed of the simulated world."),
    report: Annotated[
        Path, typer.Option(help="Where to write the HTML report with plots.")
    ] = DEFAULT_REPORT,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    live: bool = typer.Option(
        True,
        "--live/--no-live",
        help="Also run the live loop: a gateway, HTTP traffic, shadow, A/B.",
    ),
    requests: int = typer.Option(
        5_000, "--requests", min=200, max=200_000, help="Live loop: HTTP requests in total."
    ),
) -> None:
    """Run the main job on a simulated world with known truth and report what it found."""
    from dataclasses import replace

    from proving.errors import ProvingError
    from proving.simulate.demo import run_demo
    from proving.simulate.live_demo import run_live_demo
    from proving.ui.report import write_demo_report

    console = Console(width=max(Console().width, 110))
    try:
        if as_json:
            typer.echo(run_demo(units, seed=seed, live=live, live_requests=requests).to_json())
            return
        with console.status("starting") as status:
            result = run_demo(units, seed=seed, progress=lambda m: status.update(m))
        if live:
            console.print(f"Live loop: {requests:,} HTTP requests through a real gateway")
            live_result = run_live_demo(
                requests, seed=seed, console=console,
                progress=lambda m: console.print(f"  {m}", style="dim"),
            )  # fmt: skip
            result = replace(result, live=live_result)
    except ProvingError as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    render(result, console)
    path = write_demo_report(result, report)
    console.print(f"HTML report with plots: {path}")
