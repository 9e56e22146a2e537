"""The demo: a simulated experiment with known truth, analysed end to end.

`proving demo` runs :func:`run_demo` and renders its :class:`DemoReport`. The report says,
for every metric, whether the analysis recovered the truth the world was built with, and
how much CUPED narrowed the interval against the same analysis without covariates.

Example:
    >>> report = run_demo(n_units=20_000, seed=1)
    >>> [m.metric for m in report.metrics]
    ['revenue', 'conversion', 'clicks_per_session']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from proving.simulate.experiment import METRIC_KINDS, SimulatedExperiment, simulate_experiment
from proving.simulate.live_demo import LiveDemoResult, run_live_demo
from proving.stats.analyze import analyze
from proving.stats.monitor import MonitorLook, MonitorSpec, SequentialMonitor
from proving.stats.results import ComparisonResult, ResultBase
from proving.stats.sufficient import ArmStats

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MetricOutcome(ResultBase):
    """One metric of the demo: the truth, and what the analysis said with and without CUPED."""

    metric: str
    kind: str
    true_lift: float
    with_cuped: ComparisonResult
    without_cuped: ComparisonResult

    @property
    def covered(self) -> bool:
        """The CUPED interval contains the true lift."""
        r = self.with_cuped
        return (
            r.ci_lower is not None
            and r.ci_upper is not None
            and (r.ci_lower <= self.true_lift <= r.ci_upper)
        )

    @property
    def significant(self) -> bool:
        """The CUPED analysis rejects 'no effect' at its alpha."""
        p = self.with_cuped.p_value
        return p is not None and p < self.with_cuped.alpha

    @property
    def recovered(self) -> bool:
        """Covered the truth, and called an effect exactly when there was one."""
        return self.covered and self.significant == (self.true_lift != 0.0)

    @property
    def interval_narrowing(self) -> float | None:
        """1 - (CUPED interval width / plain interval width)."""
        a, b = self.with_cuped, self.without_cuped
        if None in (a.ci_lower, a.ci_upper, b.ci_lower, b.ci_upper):
            return None
        assert a.ci_lower is not None and a.ci_upper is not None
        assert b.ci_lower is not None and b.ci_upper is not None
        return 1.0 - (a.ci_upper - a.ci_lower) / (b.ci_upper - b.ci_lower)


@dataclass(frozen=True)
class DemoReport(ResultBase):
    """Everything the demo found, JSON-serializable."""

    n_units: int
    seed: int
    variants: tuple[str, ...]
    metrics: tuple[MetricOutcome, ...]
    srm_p_value: float | None
    srm_alarm: bool
    monitor_metric: str
    monitor_true_lift: float
    monitor: tuple[MonitorLook, ...]
    warnings: tuple[str, ...] = field(default=())
    live: LiveDemoResult | None = None

    @property
    def stopped_at(self) -> MonitorLook | None:
        """The first look at which the sequential monitor stopped, if it did."""
        return next((look for look in self.monitor if look.decision.startswith("stop")), None)


def monitor_daily(
    world: SimulatedExperiment, metric: str = "revenue", *, alpha: float = 0.05
) -> tuple[MonitorLook, ...]:
    """Watch one metric day by day with an always-valid confidence sequence.

    Each day's statistics are added to the running totals (sufficient statistics merge by
    addition) and the monitor looks once a day; peeking daily keeps its error at alpha.
    """
    monitor = SequentialMonitor(
        MonitorSpec(
            metric=metric,
            method="confidence_sequence",
            kind=METRIC_KINDS[metric],  # type: ignore[arg-type]
            effect="relative",
            alpha=alpha,
            tuning_n=float(world.n_units),
            cuped=True,
        )
    )
    control, treatment = world.variants[0], world.variants[1]
    totals: dict[str, ArmStats] | None = None
    looks = []
    for day in range(world.days):
        today = world.arm_stats(metric, units=world.columns["day"] == day)
        totals = today if totals is None else {v: totals[v] + today[v] for v in totals}
        looks.append(monitor.update(totals[control], totals[treatment]))
    return tuple(looks)


def run_demo(
    n_units: int = 200_000,
    *,
    seed: int = 2026,
    progress: Progress | None = None,
    live: bool = False,
    live_requests: int = 5_000,
) -> DemoReport:
    """Simulate an experiment with known lifts, analyse it with and without CUPED.

    With ``live=True`` the report also holds the live loop
    (:func:`~proving.simulate.live_demo.run_live_demo`): about ``live_requests`` real HTTP
    requests to a gateway subprocess, a shadow phase then an A/B phase.
    """
    say = progress or (lambda _message: None)
    say(f"simulating {n_units:,} users with known lifts")
    world = simulate_experiment(n_units, seed=seed)
    say("reducing unit-level data to sufficient statistics")
    rows_cuped = world.stats_rows(covariates=True)
    rows_plain = world.stats_rows(covariates=False)
    say("analysing every metric, with and without CUPED")
    weights = dict(zip(world.variants, world.weights, strict=True))
    with_cuped = analyze(rows_cuped, effect="relative", cuped=True, weights=weights)
    without = analyze(rows_plain, effect="relative", cuped=False)
    plain_by_metric = {c.metric: c for c in without.comparisons}
    outcomes = tuple(
        MetricOutcome(
            metric=c.metric,
            kind=METRIC_KINDS[c.metric],
            true_lift=world.truth.get(c.metric, 0.0),
            with_cuped=c,
            without_cuped=plain_by_metric[c.metric],
        )
        for c in with_cuped.comparisons
    )
    say("replaying the experiment day by day through a sequential monitor")
    looks = monitor_daily(world)
    srm = with_cuped.srm[0] if with_cuped.srm else None
    return DemoReport(
        n_units=world.n_units,
        seed=seed,
        variants=world.variants,
        metrics=outcomes,
        srm_p_value=getattr(srm, "p_value", None),
        srm_alarm=bool(getattr(srm, "alarm", False)),
        monitor_metric="revenue",
        monitor_true_lift=world.truth.get("revenue", 0.0),
        monitor=looks,
        warnings=tuple(with_cuped.warnings),
        live=run_live_demo(live_requests, seed=seed, progress=say) if live else None,
    )
