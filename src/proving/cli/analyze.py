"""`proving analyze FILE`: every variant against control from a file of sufficient statistics.

Example:
    proving analyze docs/examples/stats.csv --effect absolute --correction holm
    proving analyze stats.json --json > result.json
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from proving.errors import StatsInputError

if TYPE_CHECKING:
    from proving.stats.results import AnalysisResult, ComparisonResult


def _effect(value: float | None, relative: bool) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.2f}%" if relative else f"{value:+.4g}"


def _interval(c: ComparisonResult) -> str:
    if c.estimate is None:
        return "-"
    relative = c.effect == "relative"
    lo = "-inf" if c.ci_lower is None else _effect(c.ci_lower, relative)
    hi = "+inf" if c.ci_upper is None else _effect(c.ci_upper, relative)
    return f"[{lo}, {hi}]"


def _pfmt(p: float) -> str:
    # Below double precision's resolution of 1 - p the exact value means nothing.
    return "< 1e-16" if p < 1e-16 else f"{p:.3g}"


def _p(c: ComparisonResult) -> str:
    if c.p_value is None:
        return "-"
    text = _pfmt(c.p_value)
    if c.adjusted_p_value is not None:
        text += f" (adj {_pfmt(c.adjusted_p_value)})"
    return f"[bold]{text}[/]" if c.significant else text


def render(result: AnalysisResult, console: Console) -> None:
    """Print the comparisons as a Rich table, then the SRM checks and warnings."""
    comps = result.comparisons
    first = comps[0] if comps else None
    level = f"{100 * (1 - first.alpha):g}% CI" if first else "CI"
    experiments = sorted({c.experiment for c in comps})
    segments = sorted({c.segment for c in comps})
    # Columns that hold one value everywhere go in the title, to keep the table narrow.
    scope = []
    if len(experiments) == 1 and experiments[0]:
        scope.append(f"experiment {experiments[0]}")
    if len(segments) == 1:
        scope.append(f"segment {segments[0]}")
    if first:
        scope.append(f"{first.effect} effect, {first.method}, {first.alternative}")
    table = Table(title="; ".join(scope))
    keys = [k for k, vals in (("experiment", experiments), ("segment", segments)) if len(vals) > 1]
    for column in (*keys, "metric", "variant", "estimate", level, "p-value", "CUPED"):
        right = column in ("estimate", "CUPED")
        # fold, not ellipsis: a metric name or a reason cut short misleads.
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    table.add_column("reason / warnings", overflow="fold")
    for c in comps:
        relative = c.effect == "relative"
        notes = c.reason if c.reason else "; ".join(c.warnings)
        table.add_row(
            *(getattr(c, k) for k in keys),
            c.metric,
            c.variant,
            _effect(c.estimate, relative),
            _interval(c),
            _p(c),
            "-" if c.variance_reduction is None else f"{100 * c.variance_reduction:.1f}%",
            f"[red]{notes}[/]" if c.reason else f"[yellow]{notes}[/]",
        )
    console.print(table)
    for (experiment, segment), srm in zip(result.srm_scope, result.srm, strict=False):
        where = f"experiment {experiment or '-'!s}, segment {segment}"
        if srm.p_value is None:
            console.print(f"SRM check ({where}): no test: {srm.reason}")
            continue
        verdict = "[red]MISMATCH[/]" if srm.alarm else "[green]ok[/]"
        counts = ", ".join(f"{v}={o:g}" for v, o in zip(srm.variants, srm.observed, strict=True))
        p = _pfmt(srm.p_value)
        p = p if p.startswith("<") else f"= {p}"
        console.print(f"SRM check ({where}): {verdict} p {p} ({counts})")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def analyze_command(
    file: Annotated[
        Path, typer.Argument(help="JSON or CSV file of per-arm sufficient statistics.")
    ],
    control: Annotated[str, typer.Option(help="Name of the control variant.")] = "control",
    alpha: Annotated[float, typer.Option(help="Test level; intervals are 1 - alpha.")] = 0.05,
    effect: Annotated[
        str, typer.Option(help="relative (lift) or absolute (difference).")
    ] = "relative",
    relative_method: Annotated[
        str, typer.Option(help="Interval of a relative effect: delta or log (log-ratio).")
    ] = "delta",
    method: Annotated[str, typer.Option(help="welch (t, Satterthwaite df) or z.")] = "welch",
    alternative: Annotated[str, typer.Option(help="two-sided, greater or less.")] = "two-sided",
    correction: Annotated[
        str, typer.Option(help="Multiple comparisons within each metric family: none, holm, bh.")
    ] = "none",
    cuped: Annotated[
        bool, typer.Option("--cuped/--no-cuped", help="Use the covariates (CUPED).")
    ] = True,
    srm_threshold: Annotated[
        float, typer.Option(help="SRM alarm when its p-value is below this.")
    ] = 0.001,
    weights: Annotated[
        str | None,
        typer.Option(help="Configured traffic split for the SRM check, e.g. control=50,b=50."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the AnalysisResult as JSON.")
    ] = False,
) -> None:
    """Compare every variant with control from a file of sufficient statistics.

    The file format is documented in docs/stats/table.md (example: docs/examples/stats.csv).
    """
    from proving.stats.analyze import analyze

    try:
        result = analyze(
            file,
            control=control,
            alpha=alpha,
            effect=effect,  # type: ignore[arg-type]  # validated by analyze
            relative_method=relative_method,  # type: ignore[arg-type]
            method=method,  # type: ignore[arg-type]
            alternative=alternative,  # type: ignore[arg-type]
            cuped=cuped,
            correction=correction,  # type: ignore[arg-type]
            srm_threshold=srm_threshold,
            weights=parse_weights(weights) if weights else None,
        )
    except StatsInputError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
    if as_json:
        typer.echo(result.to_json(indent=2))
        return
    render(result, Console())


def parse_weights(text: str) -> dict[str, float]:
    """Parse ``control=50,b=50`` into ``{"control": 50.0, "b": 50.0}``."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name.strip() or not weight >= 0:
            raise StatsInputError(
                f"--weights: {part.strip()!r} is not VARIANT=WEIGHT with a weight >= 0; "
                "write e.g. --weights control=50,b=50."
            )
        out[name.strip()] = weight
    return out
