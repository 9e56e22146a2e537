"""Non-inferiority (guardrails): checked against scipy and statsmodels computed directly on
the same data, and by simulation (type I error at the margin equals alpha)."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion as sm_proportion

from proving.errors import StatsInputError
from proving.stats import noninferiority as ni_module
from proving.stats.noninferiority import (
    NonInferiorityResult,
    all_non_inferior,
    check_guardrails,
    noninferiority_check,
    noninferiority_from_comparison,
)
from proving.stats.results import ComparisonResult
from proving.stats.sufficient import ArmStats


@pytest.fixture
def latency() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    return rng.gamma(4, 25, 800), rng.gamma(4, 25.4, 700)  # control, candidate (ms)


@pytest.mark.parametrize(
    ("direction", "margin"), [("higher_is_better", 3.0), ("lower_is_better", 8.0)]
)
def test_absolute_margin_is_welch_on_shifted_data(
    latency: tuple[np.ndarray, np.ndarray], direction: str, margin: float
) -> None:
    y_c, y_t = latency
    result = noninferiority_check(
        ArmStats.from_values(y_c),
        ArmStats.from_values(y_t),
        margin=margin,
        margin_type="absolute",
        direction=direction,  # type: ignore[arg-type]
    )
    # H0 "worse by the margin" is Welch's test of y_t shifted by the margin against y_c.
    higher = direction == "higher_is_better"
    shifted = y_t + margin if higher else y_t - margin
    ref = stats.ttest_ind(
        shifted, y_c, equal_var=False, alternative="greater" if higher else "less"
    )
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert result.df == pytest.approx(ref.df, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    bound = (ci.low - margin) if higher else (ci.high + margin)
    assert result.bound == pytest.approx(bound, rel=1e-6)
    assert result.threshold == (-margin if higher else margin)
    assert result.non_inferior == (ref.pvalue < 0.05)
    assert result.non_inferior == ((bound > -margin) if higher else (bound < margin))


def test_relative_margin_delta_method_direct(latency: tuple[np.ndarray, np.ndarray]) -> None:
    y_c, y_t = latency
    result = noninferiority_check(
        ArmStats.from_values(y_c),
        ArmStats.from_values(y_t),
        margin=0.05,
        direction="lower_is_better",
        method="z",
        metric="latency_ms",
    )
    m_c, m_t = y_c.mean(), y_t.mean()
    v_c, v_t = y_c.var(ddof=1) / y_c.size, y_t.var(ddof=1) / y_t.size
    lift = m_t / m_c - 1
    se = math.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4)  # delta method
    z = (lift - 0.05) / se
    assert result.estimate == pytest.approx(lift, rel=1e-12)
    assert result.statistic == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(stats.norm.cdf(z), rel=1e-9)
    assert result.bound == pytest.approx(lift + stats.norm.ppf(0.95) * se, rel=1e-9)
    assert result.metric == "latency_ms" and result.kind == "mean"


def test_relative_margin_log_ratio_direct(latency: tuple[np.ndarray, np.ndarray]) -> None:
    y_c, y_t = latency
    result = noninferiority_check(
        ArmStats.from_values(y_c),
        ArmStats.from_values(y_t),
        margin=0.04,
        method="z",
        relative_method="log",
    )
    m_c, m_t = y_c.mean(), y_t.mean()
    se_log = math.sqrt(y_t.var(ddof=1) / y_t.size / m_t**2 + y_c.var(ddof=1) / y_c.size / m_c**2)
    z = (math.log(m_t / m_c) - math.log(1 - 0.04)) / se_log
    assert result.statistic == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(stats.norm.sf(z), rel=1e-9)
    bound = math.expm1(math.log(m_t / m_c) - stats.norm.ppf(0.95) * se_log)
    assert result.bound == pytest.approx(bound, rel=1e-9)


def test_proportion_matches_statsmodels_wald() -> None:
    control = ArmStats(n=20_000, sum=2_400, sum_squares=2_400)
    candidate = ArmStats(n=19_500, sum=2_290, sum_squares=2_290)
    result = noninferiority_check(
        control, candidate, margin=0.01, margin_type="absolute", kind="proportion", method="z"
    )
    ref = sm_proportion.test_proportions_2indep(
        2_290, 19_500, 2_400, 20_000, value=-0.01, method="wald", alternative="larger"
    )
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert result.kind == "proportion"


def test_from_comparison_equals_the_direct_test(latency: tuple[np.ndarray, np.ndarray]) -> None:
    y_c, y_t = latency
    direct = noninferiority_check(ArmStats.from_values(y_c), ArmStats.from_values(y_t), margin=0.03)
    comparison = ComparisonResult(
        metric="metric",
        variant="treatment",
        estimate=direct.estimate,
        std_err=direct.std_err,
        df=direct.df,
        control_mean=direct.control_mean,
        treatment_mean=direct.treatment_mean,
        n_control=direct.n_control,
        n_treatment=direct.n_treatment,
    )
    again = noninferiority_from_comparison(comparison, margin=0.03)
    assert again == direct


def test_cuped_narrows_the_test_and_reports_the_reduction() -> None:
    rng = np.random.default_rng(3)
    pre = rng.normal(50, 10, (2, 3000))
    y = pre + rng.normal(0, 5, (2, 3000))
    arms = [ArmStats.from_values(y[i], covariates={"pre": pre[i]}) for i in range(2)]
    with_cuped = noninferiority_check(*arms, margin=0.01)
    without = noninferiority_check(*arms, margin=0.01, cuped=False)
    assert with_cuped.cuped and not without.cuped
    assert with_cuped.std_err is not None and without.std_err is not None
    assert with_cuped.std_err < 0.6 * without.std_err
    reduction = 1 - (with_cuped.std_err / without.std_err) ** 2
    assert with_cuped.variance_reduction == pytest.approx(reduction, rel=1e-9)
    # rho^2 = 100 / 125 = 0.8 of the variance is explained by the pre-period value.
    assert with_cuped.variance_reduction == pytest.approx(0.8, abs=0.03)


@pytest.mark.parametrize("direction", ["higher_is_better", "lower_is_better"])
def test_type_one_error_at_the_margin_is_alpha(direction: str) -> None:
    """Truth exactly at the margin: 'non-inferior' is concluded at rate alpha."""
    rng = np.random.default_rng(7 if direction == "higher_is_better" else 8)
    reps, n, sigma, margin = 3000, 200, 3.0, 0.5
    truth = -margin if direction == "higher_is_better" else margin
    wins = 0
    for _ in range(reps):
        # Exact sampling distributions for normal data: mean ~ N, (n-1) s^2 / sigma^2 ~ chi2.
        means = rng.normal([10.0, 10.0 + truth], sigma / math.sqrt(n))
        ss = sigma**2 * rng.chisquare(n - 1, 2)
        arms = [
            ArmStats(n=n, sum=n * m, sum_squares=s + n * m * m)
            for m, s in zip(means, ss, strict=True)
        ]
        result = noninferiority_check(
            *arms, margin=margin, margin_type="absolute", direction=direction  # type: ignore[arg-type]
        )  # fmt: skip
        wins += bool(result.non_inferior)
    assert abs(wins / reps - 0.05) < 4 * math.sqrt(0.05 * 0.95 / reps)


def test_type_one_error_at_a_relative_margin_for_a_proportion() -> None:
    rng = np.random.default_rng(11)
    reps, n, p, margin = 3000, 40_000, 0.1, 0.05
    counts = rng.binomial(n, [p, p * (1 - margin)], size=(reps, 2))
    wins = sum(
        bool(
            noninferiority_check(
                ArmStats(n=n, sum=c, sum_squares=c),
                ArmStats(n=n, sum=t, sum_squares=t),
                margin=margin,
                kind="proportion",
                method="z",
            ).non_inferior
        )
        for c, t in counts
    )
    assert abs(wins / reps - 0.05) < 4 * math.sqrt(0.05 * 0.95 / reps)


def test_no_difference_with_enough_units_is_non_inferior() -> None:
    rng = np.random.default_rng(2)
    arms = [ArmStats.from_values(rng.normal(20, 4, 20_000)) for _ in range(2)]
    result = noninferiority_check(*arms, margin=0.02)
    assert result.conclusion == "non-inferior" and result.p_value is not None
    assert result.p_value < 1e-6


@pytest.mark.parametrize(
    ("control", "reason"),
    [
        (ArmStats(n=0, sum=0, sum_squares=0), "empty"),
        (ArmStats(n=1, sum=3, sum_squares=9), "fewer than 2 units"),
        (ArmStats(n=10, sum=float("nan"), sum_squares=1), "NaN"),
    ],
)
def test_degenerate_data_is_explained(control: ArmStats, reason: str) -> None:
    result = noninferiority_check(control, ArmStats.from_values([1.0, 2.0, 3.0]), margin=0.1)
    assert result.conclusion is None and result.non_inferior is None
    assert result.p_value is None and result.bound is None
    assert reason in (result.reason or "")
    assert json.loads(result.to_json())["reason"]


def test_zero_variance_is_explained() -> None:
    arm = ArmStats.from_values([2.0] * 5)
    result = noninferiority_check(arm, arm, margin=0.1)
    assert result.conclusion is None and "zero variance" in (result.reason or "")


def test_merged_daily_statistics_give_the_same_answer() -> None:
    """Sufficient statistics add: testing the sum of daily arms equals testing the union."""
    rng = np.random.default_rng(12)
    pre = rng.normal(5, 2, (2, 900))
    y = pre + rng.normal(0, 1, (2, 900))
    whole = [ArmStats.from_values(y[i], covariates={"pre": pre[i]}) for i in range(2)]
    days = [
        sum(
            (ArmStats.from_values(y[i, s], covariates={"pre": pre[i, s]})
             for s in (slice(0, 300), slice(300, 650), slice(650, None))),
            start=ArmStats.from_values([], covariates={"pre": []}),
        )
        for i in range(2)
    ]  # fmt: skip
    a = noninferiority_check(*whole, margin=0.02)
    b = noninferiority_check(*days, margin=0.02)
    for name in ("estimate", "std_err", "statistic", "p_value", "bound", "variance_reduction"):
        assert getattr(b, name) == pytest.approx(getattr(a, name), rel=1e-9), name
    assert a.conclusion == b.conclusion


def test_guardrails_of_an_analysis() -> None:
    """check_guardrails on analyze() output equals the direct test on the same arms."""
    from proving.stats.analyze import analyze

    rng = np.random.default_rng(21)
    data = {
        "control": {"latency": rng.gamma(4, 25, 3000), "revenue": rng.gamma(2, 10, 3000)},
        "b": {"latency": rng.gamma(4, 25.2, 3000), "revenue": rng.gamma(2, 10, 3000)},
        "c": {"latency": rng.gamma(4, 28, 3000), "revenue": rng.gamma(2, 10, 3000)},
    }
    rows = [
        {"variant": v, "metric": m, "family": "guardrail",
         **ArmStats.from_values(y).to_flat()}
        for v, metrics in data.items() for m, y in metrics.items()
    ]  # fmt: skip
    analysis = analyze(rows, cuped=False)
    checks = check_guardrails(
        analysis.comparisons,
        {"latency": 0.08, "revenue": 0.05},
        directions={"latency": "lower_is_better"},
    )
    assert len(checks) == 4
    for r in checks:
        direct = noninferiority_check(
            ArmStats.from_values(data["control"][r.metric]),
            ArmStats.from_values(data[r.variant][r.metric]),
            margin=0.08 if r.metric == "latency" else 0.05,
            direction="lower_is_better" if r.metric == "latency" else "higher_is_better",
        )
        assert r.p_value == pytest.approx(direct.p_value, rel=1e-9)
        assert r.bound == pytest.approx(direct.bound, rel=1e-9)
    by = {(r.metric, r.variant): r.conclusion for r in checks}
    assert by[("latency", "b")] == "non-inferior"  # +0.8% latency (+2.9% drawn), margin 8%
    assert by[("latency", "c")] == "not shown"  # +12% latency
    assert all_non_inferior([r for r in checks if r.variant == "b"]) is True
    assert all_non_inferior([r for r in checks if r.variant == "c"]) is False
    pending = noninferiority_check(
        ArmStats(n=0, sum=0, sum_squares=0), ArmStats.from_values([1.0, 2.0]), margin=0.1
    )
    assert all_non_inferior([checks[0], pending]) is None


def test_all_guardrails_pass_at_most_at_alpha_when_one_is_at_its_margin() -> None:
    """Intersection-union test (Berger 1982): one guardrail exactly at its margin, the
    other clearly fine: 'all non-inferior' happens at rate alpha, without correction."""
    rng = np.random.default_rng(22)
    reps, n, sigma = 2000, 400, 2.0
    passes = 0
    for _ in range(reps):
        means = rng.normal([0.0, -0.3, 0.0, 0.0], sigma / math.sqrt(n))
        ss = sigma**2 * rng.chisquare(n - 1, 4)
        arms = [ArmStats(n=n, sum=n * m, sum_squares=s + n * m * m)
                for m, s in zip(means, ss, strict=True)]  # fmt: skip
        results = [
            noninferiority_check(arms[0], arms[1], margin=0.3, margin_type="absolute"),
            noninferiority_check(arms[2], arms[3], margin=0.3, margin_type="absolute"),
        ]
        passes += bool(all_non_inferior(results))
    assert passes / reps < 0.05 + 4 * math.sqrt(0.05 * 0.95 / reps)
    assert passes / reps > 0.05 - 4 * math.sqrt(0.05 * 0.95 / reps) - 0.01


def test_json_round_trip(latency: tuple[np.ndarray, np.ndarray]) -> None:
    y_c, y_t = latency
    result = noninferiority_check(ArmStats.from_values(y_c), ArmStats.from_values(y_t), margin=0.05)
    assert NonInferiorityResult.from_dict(json.loads(result.to_json())) == result


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"margin": 0.0}, r"`margin` must be a positive number .*got 0.0"),
        ({"margin": -1}, r"`margin` must be a positive number"),
        ({"margin": 1.5}, r"relative `margin` must be below 1 .*got 1.5"),
        ({"margin": 0.1, "direction": "up"}, r"`direction` must be 'higher_is_better'"),
        ({"margin": 0.1, "alpha": 0.6}, r"`alpha` must be a number in \(0, 0.5\]"),
        ({"margin": 0.1, "kind": "ratio"}, r"`kind` is 'ratio' but the statistics lack"),
        ({"margin": 0.1, "margin_type": "percent"}, r"`effect` must be one of"),
    ],
)
def test_bad_parameters_raise(kwargs: dict[str, object], match: str) -> None:
    arm = ArmStats.from_values([1.0, 2.0, 3.0])
    with pytest.raises(StatsInputError, match=match):
        noninferiority_check(arm, arm, **kwargs)  # type: ignore[arg-type]


def test_docstring_examples() -> None:
    assert doctest.testmod(ni_module).failed == 0
