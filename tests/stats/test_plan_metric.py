"""PlanMetric: the planner's baseline and variance per unit, against numpy, OLS and the
delta method of proving.stats.ratio."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import statsmodels.api as sm

from proving.errors import StatsInputError
from proving.stats import plan_metric as plan_metric_module
from proving.stats import power as power_module
from proving.stats.plan_metric import PlanMetric
from proving.stats.ratio import ratio_moments
from proving.stats.sufficient import ArmStats


def test_plan_metric_from_arm_matches_numpy_and_ols() -> None:
    rng = np.random.default_rng(11)
    x1, x2 = rng.normal(size=400), rng.exponential(size=400)
    y = 2 + x1 + 0.5 * x2 + rng.normal(size=400)
    arm = ArmStats.from_values(y, covariates={"x1": x1, "x2": x2})
    metric = PlanMetric.from_arm(arm, name="revenue")
    assert metric.kind == "mean" and metric.name == "revenue"
    assert metric.mean == pytest.approx(y.mean(), rel=1e-12)
    assert metric.variance == pytest.approx(y.var(ddof=1), rel=1e-10)
    ols = sm.OLS(y, sm.add_constant(np.column_stack([x1, x2]))).fit()
    assert metric.r_squared == pytest.approx(ols.rsquared, rel=1e-9)


def test_ratio_metric_variance_is_the_delta_method() -> None:
    rng = np.random.default_rng(5)
    sessions = rng.poisson(4, 2000) + 1.0
    clicks = rng.binomial(sessions.astype(int), 0.3).astype(float)
    arm = ArmStats.from_values(clicks, denominators=sessions)
    metric = PlanMetric.from_arm(arm)
    r = clicks.sum() / sessions.sum()
    z = (clicks - r * sessions) / sessions.mean()
    assert metric.kind == "ratio"
    assert metric.mean == pytest.approx(r, rel=1e-12)
    assert metric.variance == pytest.approx(z.var(ddof=1), rel=1e-9)
    _, var_of_ratio = ratio_moments(
        arm.n, arm.sum, arm.sum_squares, arm.denominator_sum, arm.denominator_sum_squares,
        arm.sum_products,
    )  # fmt: skip
    assert metric.variance / 2000 == pytest.approx(float(var_of_ratio), rel=1e-9)
    rho = np.corrcoef(clicks, sessions)[0, 1]
    moments = PlanMetric.ratio(
        clicks.mean(), sessions.mean(), clicks.std(ddof=1), sessions.std(ddof=1), rho
    )
    assert moments.variance == pytest.approx(metric.variance, rel=1e-9)


def test_proportion_variance_follows_the_treatment_rate() -> None:
    metric = PlanMetric.proportion(0.2)
    assert metric.variance == pytest.approx(0.2 * 0.8, rel=1e-15)
    assert metric.treatment_variance(0.05, relative=False) == pytest.approx(0.25 * 0.75)
    assert metric.treatment_variance(0.5, relative=True) == pytest.approx(0.3 * 0.7)
    mean = PlanMetric.mean_metric(10.0, 3.0)
    assert mean.treatment_variance(2.0, relative=False) == mean.variance == 9.0


@pytest.mark.parametrize(
    ("metric", "relative", "bounds"),
    [
        (PlanMetric.proportion(0.25), False, (-0.25, 0.75)),
        (PlanMetric.proportion(0.25), True, (-1.0, 3.0)),
        (PlanMetric.mean_metric(5.0, 1.0), True, (-1.0, math.inf)),
        (PlanMetric.mean_metric(-5.0, 1.0), True, (-math.inf, math.inf)),
        (PlanMetric.mean_metric(5.0, 1.0), False, (-math.inf, math.inf)),
    ],
)
def test_effect_bounds_keep_the_treatment_valid(
    metric: PlanMetric, relative: bool, bounds: tuple[float, float]
) -> None:
    assert metric.effect_bounds(relative=relative) == pytest.approx(bounds)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: PlanMetric.proportion(1.0), r"`baseline proportion` must be in \(0, 1\)"),
        (lambda: PlanMetric.mean_metric(1.0, 0.0), r"`std` must be a positive number; got 0.0"),
        (lambda: PlanMetric.ratio(1.0, 0.0, 1.0, 1.0), r"`denominator_mean` must be"),
        (lambda: PlanMetric.ratio(1.0, 2.0, 1.0, 1.0, 1.5), r"`correlation` must be in"),
        (lambda: PlanMetric.from_arm(ArmStats(n=1, sum=1, sum_squares=1)), r"`n` of the hist"),
        (
            lambda: PlanMetric.from_arm(ArmStats(n=3, sum=3, sum_squares=3)),
            r"`variance` of metric 'metric' must be positive",
        ),
    ],
)
def test_bad_baselines_raise(build: object, match: str) -> None:
    with pytest.raises(StatsInputError, match=match):
        build()  # type: ignore[operator]


def test_still_importable_from_power() -> None:
    """PlanMetric moved out of proving.stats.power; the old import path keeps working."""
    import proving.stats

    assert power_module.PlanMetric is PlanMetric is proving.stats.PlanMetric


def test_docstring_examples() -> None:
    assert doctest.testmod(plan_metric_module).failed == 0
