"""`proving plan`: sample size, minimum detectable effect, power and duration of a test.

What is solved for follows from what is given:

* ``--effect-size`` alone: the sample size (and the days, with ``--daily-traffic``);
* ``--effect-size`` with ``--n-total`` or ``--days``: the power;
* ``--n-total`` or ``--days`` alone: the minimum detectable effect.

Example:
    proving plan --kind proportion --baseline 0.1 --effect-size 0.05 --daily-traffic 8000
    proving plan --kind mean --baseline 42 --std 30 --days 14 --daily-traffic 5000 --json
    proving plan --history last_month.csv --metric revenue --effect-size 0.02 --variants 2
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from proving.errors import StatsInputError
from proving.stats.plan_metric import PlanMetric

if TYPE_CHECKING:
    from proving.stats.power import PowerResult

_FLAGS = {
    "n_total": "--n-total",
    "daily_traffic": "--daily-traffic",
    "cuped_correlation": "--cuped-correlation",
    "baseline proportion": "--baseline",
    "mean": "--baseline",
    "numerator_mean": "--numerator-mean",
    "denominator_mean": "--denominator-mean",
    "numerator_std": "--numerator-std",
    "denominator_std": "--denominator-std",
    "effect": "--effect-size",
    "effect type": "--effect",
}


def _fail(message: str) -> typer.Exit:
    """Print a user error naming the command-line flag, and return the exit to raise."""
    # The library names its parameters (`daily_traffic`); say which flag sets each one.
    message = re.sub(
        r"`([a-z_ ]+)`",
        lambda m: f"`{m.group(1)}` ({_FLAGS.get(m.group(1), '--' + m.group(1).replace('_', '-'))})",
        message,
    )
    Console(stderr=True).print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


def _need(value: float | None, flag: str, kind: str) -> float:
    if value is None:
        raise StatsInputError(f"a {kind} metric needs {flag}; give it (see proving plan --help).")
    return value


def _metric(
    kind: str,
    baseline: float | None,
    std: float | None,
    ratio: tuple[float | None, float | None, float | None, float | None, float],
    history: Path | None,
    metric_name: str,
    control: str,
) -> PlanMetric:
    if history is not None:
        from proving.stats.table import read_table

        rows = [r for r in read_table(history) if r.metric == metric_name]
        # Segments partition the units; the "all" segment, when present, already sums them.
        rows = [r for r in rows if r.segment == "all"] or rows
        # The control's history; without a control (e.g. pre-launch logs) every row counts.
        arms = [r for r in rows if r.variant == control] or rows
        if not arms:
            raise StatsInputError(
                f"{history}: no rows for metric {metric_name!r}; pass --metric with a metric "
                "of the file."
            )
        stats = arms[0].stats
        for extra in arms[1:]:
            stats = stats + extra.stats
        return PlanMetric.from_arm(stats, kind=arms[0].kind, name=metric_name)
    if kind == "proportion":
        return PlanMetric.proportion(_need(baseline, "--baseline", kind), name=metric_name)
    if kind == "ratio":
        num, den, num_std, den_std, corr = ratio
        return PlanMetric.ratio(
            _need(num, "--numerator-mean", kind),
            _need(den, "--denominator-mean", kind),
            _need(num_std, "--numerator-std", kind),
            _need(den_std, "--denominator-std", kind),
            corr,
            name=metric_name,
        )
    if kind != "mean":
        raise StatsInputError(f"`kind` must be one of mean, proportion, ratio; got {kind!r}.")
    return PlanMetric.mean_metric(
        _need(baseline, "--baseline", kind), _need(std, "--std", kind), name=metric_name
    )


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise StatsInputError(
            f"`weights` must be comma-separated numbers, control first; got {text!r}. "
            "Use e.g. 50,50 or 0.5,0.25,0.25."
        ) from None


def _effect_text(value: float | None, relative: bool) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.3g}%" if relative else f"{value:+.4g}"


def render(plan: PowerResult, console: Console, mde_by_days: list[PowerResult]) -> None:
    """Print a plan: the answer first, then the inputs that produced it."""
    relative = plan.effect_type == "relative"
    title = {"sample_size": "Sample size", "mde": "Minimum detectable effect", "power": "Power"}
    table = Table(title=f"{title[plan.solve_for]}: {plan.metric} ({plan.kind})", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    rows: list[tuple[str, str]] = [
        ("units per arm", "-" if plan.n_per_arm is None else ", ".join(map(str, plan.n_per_arm))),
        ("units in total", "-" if plan.n_total is None else f"{plan.n_total:,}"),
        ("days", "-" if plan.days is None else str(plan.days)),
        ("effect", _effect_text(plan.effect, relative) + f" ({plan.effect_type})"),
        ("absolute effect", _effect_text(plan.absolute_effect, False)),
        ("power", "-" if plan.power is None else f"{100 * plan.power:.1f}%"),
        ("alpha / per test", f"{plan.alpha:g} / {plan.alpha_per_test:.4g}"),
        ("comparisons", f"{plan.comparisons} ({plan.correction})"),
        ("test", f"{plan.alternative}, {plan.distribution}"),
        ("baseline", f"{plan.baseline_mean:.6g} (variance per unit {plan.unit_variance:.4g})"),
        ("CUPED variance reduction", f"{100 * plan.variance_reduction:.1f}%"),
        ("weights", ", ".join(f"{w:.3g}" for w in plan.weights)),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    if mde_by_days:
        by_days = Table(title="Minimum detectable effect by duration")
        for column in ("days", "units in total", "MDE", "absolute MDE"):
            by_days.add_column(column, justify="right")
        for m in mde_by_days:
            by_days.add_row(
                str(m.days),
                "-" if m.n_total is None else f"{m.n_total:,}",
                _effect_text(m.effect, relative),
                _effect_text(m.absolute_effect, False),
            )
        console.print(by_days)
    if plan.reason:
        console.print(f"[red]no answer:[/] {plan.reason}")
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def _solve(
    metric: PlanMetric,
    effect_size: float | None,
    n_total: float | None,
    days: float | None,
    power: float,
    options: dict[str, Any],
) -> tuple[PowerResult, list[PowerResult]]:
    # Imported here, not at the top: the command line should not load SciPy to start.
    from proving.stats.power import achieved_power, minimum_detectable_effect, sample_size

    sized = n_total is not None or days is not None
    if effect_size is None and not sized:
        raise StatsInputError(
            "nothing to solve for: give --effect-size (for the sample size), --n-total or "
            "--days (for the minimum detectable effect), or both (for the power)."
        )
    if effect_size is None:
        plan = minimum_detectable_effect(metric, n_total=n_total, days=days, power=power, **options)
    elif sized:
        return achieved_power(metric, effect_size, n_total=n_total, days=days, **options), []
    else:
        plan = sample_size(metric, effect_size, power=power, **options)
    by_days = []
    if options.get("daily_traffic") is not None:
        by_days = [
            minimum_detectable_effect(metric, days=d, power=power, **options)
            for d in (7, 14, 21, 28, 42, 56)
        ]
    return plan, by_days


def plan_command(
    kind: Annotated[str, typer.Option(help="Metric kind: mean, proportion or ratio.")] = "mean",
    baseline: Annotated[
        float | None, typer.Option(help="Control's mean (mean metric) or rate (proportion).")
    ] = None,
    std: Annotated[float | None, typer.Option(help="Standard deviation per unit (mean).")] = None,
    numerator_mean: Annotated[float | None, typer.Option(help="Ratio: mean numerator.")] = None,
    denominator_mean: Annotated[
        float | None, typer.Option(help="Ratio: mean denominator per unit.")
    ] = None,
    numerator_std: Annotated[float | None, typer.Option(help="Ratio: numerator std.")] = None,
    denominator_std: Annotated[float | None, typer.Option(help="Ratio: denominator std.")] = None,
    correlation: Annotated[
        float, typer.Option(help="Ratio: correlation of numerator and denominator.")
    ] = 0.0,
    history: Annotated[
        Path | None,
        typer.Option(help="CSV/JSON of historical sufficient statistics for the baseline."),
    ] = None,
    metric: Annotated[str, typer.Option(help="Metric name (selects it in --history).")] = "metric",
    control: Annotated[str, typer.Option(help="Control variant in --history.")] = "control",
    effect_size: Annotated[
        float | None, typer.Option(help="Effect to detect (0.02 = +2% when relative).")
    ] = None,
    effect: Annotated[str, typer.Option(help="relative (lift) or absolute.")] = "relative",
    n_total: Annotated[float | None, typer.Option(help="Units in the test, all arms.")] = None,
    days: Annotated[float | None, typer.Option(help="Duration in days.")] = None,
    daily_traffic: Annotated[
        float | None, typer.Option(help="New units entering the test per day, all arms.")
    ] = None,
    power: Annotated[float, typer.Option(help="Target power, in (alpha, 1).")] = 0.8,
    alpha: Annotated[float, typer.Option(help="Family-wise level, in (0, 0.5].")] = 0.05,
    alternative: Annotated[str, typer.Option(help="two-sided, greater or less.")] = "two-sided",
    weights: Annotated[
        str | None, typer.Option(help="Traffic shares, control first, e.g. 50,25,25.")
    ] = None,
    variants: Annotated[int, typer.Option(help="Treatments besides control.")] = 1,
    metrics: Annotated[int, typer.Option(help="Metrics in the same family.")] = 1,
    correction: Annotated[str, typer.Option(help="bonferroni, sidak or none.")] = "bonferroni",
    cuped_correlation: Annotated[
        float | None, typer.Option(help="Correlation with the pre-period covariate (CUPED).")
    ] = None,
    distribution: Annotated[str, typer.Option(help="z (normal) or t (small samples).")] = "z",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Plan a test: sample size, minimum detectable effect, power and duration."""
    try:
        if effect not in ("relative", "absolute"):
            raise StatsInputError(f"`effect type` must be relative or absolute; got {effect!r}.")
        base = _metric(
            kind,
            baseline,
            std,
            (numerator_mean, denominator_mean, numerator_std, denominator_std, correlation),
            history,
            metric,
            control,
        )
        options: dict[str, Any] = {
            "relative": effect == "relative",
            "alpha": alpha,
            "alternative": alternative,
            "weights": _weights(weights),
            "variants": variants,
            "metrics": metrics,
            "correction": correction,
            "cuped_correlation": cuped_correlation,
            "distribution": distribution,
            "daily_traffic": daily_traffic,
        }
        plan, by_days = _solve(base, effect_size, n_total, days, power, options)
    except StatsInputError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(plan.to_json(indent=2))
        return
    render(plan, Console(), by_days)
