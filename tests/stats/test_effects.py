"""proving.stats.effects against SciPy and statsmodels on the same data, plus edge cases."""

from __future__ import annotations

import time

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats import proportion as smp
from statsmodels.stats import weightstats as smw

from proving.errors import StatsInputError
from proving.stats.effects import (
    compare,
    interval_and_p_value,
    mean_moments,
    proportion_moments,
)


def _arm(values: np.ndarray) -> tuple[float, float, int]:
    m, v = mean_moments(len(values), values.sum(), (values**2).sum())
    return float(m), float(v), len(values)


@pytest.fixture
def samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.lognormal(1.0, 0.8, 400), rng.lognormal(1.08, 0.9, 370)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_welch_absolute_matches_scipy_ttest_ind(samples, alternative):
    control, treatment = samples
    out = compare(*_arm(control), *_arm(treatment), effect="absolute", alternative=alternative)
    ref = stats.ttest_ind(treatment, control, equal_var=False, alternative=alternative)
    ci = ref.confidence_interval(0.95)
    assert_allclose(out.estimate[0], treatment.mean() - control.mean(), rtol=1e-12)
    assert_allclose(out.statistic[0], ref.statistic, rtol=1e-9)
    assert_allclose(out.df[0], ref.df, rtol=1e-9)
    assert_allclose(out.p_value[0], ref.pvalue, rtol=1e-6)
    assert_allclose([out.ci_lower[0], out.ci_upper[0]], [ci.low, ci.high], rtol=1e-6)


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
def test_z_absolute_matches_statsmodels(samples, alternative):
    control, treatment = samples
    ours = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    out = compare(*_arm(control), *_arm(treatment), effect="absolute", method="z", alternative=ours)
    cm = smw.CompareMeans(smw.DescrStatsW(treatment), smw.DescrStatsW(control))
    z, p = cm.ztest_ind(alternative=alternative, usevar="unequal")
    lo, hi = cm.zconfint_diff(alpha=0.05, alternative=alternative, usevar="unequal")
    assert_allclose(out.statistic[0], z, rtol=1e-9)
    assert_allclose(out.p_value[0], p, rtol=1e-9)
    assert_allclose([out.ci_lower[0], out.ci_upper[0]], [lo, hi], rtol=1e-9)
    assert np.isinf(out.df[0])


def test_proportion_difference_matches_statsmodels_wald():
    n_c, x_c, n_t, x_t = 2000, 200, 2100, 252
    p_c, v_c = proportion_moments(n_c, x_c)
    p_t, v_t = proportion_moments(n_t, x_t)
    out = compare(p_c, v_c, n_c, p_t, v_t, n_t, effect="absolute", method="z")
    stat, p = smp.test_proportions_2indep(x_t, n_t, x_c, n_c, method="wald")
    lo, hi = smp.confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald")
    assert_allclose(out.p_value[0], p, rtol=1e-9)
    assert_allclose(out.statistic[0], stat, rtol=1e-9)
    assert_allclose([out.ci_lower[0], out.ci_upper[0]], [lo, hi], rtol=1e-9)


def test_relative_log_matches_statsmodels_log_risk_ratio():
    # statsmodels' "log" interval for a risk ratio is exp(log(p1/p2) +- z se) with
    # se^2 = (1-p1)/(n1 p1) + (1-p2)/(n2 p2): our log-ratio method with Bernoulli variances.
    n_c, x_c, n_t, x_t = 3000, 240, 2900, 290
    p_c, v_c = proportion_moments(n_c, x_c)
    p_t, v_t = proportion_moments(n_t, x_t)
    out = compare(p_c, v_c, n_c, p_t, v_t, n_t, relative_method="log", method="z")
    lo, hi = smp.confint_proportions_2indep(x_t, n_t, x_c, n_c, method="log", compare="ratio")
    assert_allclose(out.estimate[0], (x_t / n_t) / (x_c / n_c) - 1, rtol=1e-12)
    assert_allclose([out.ci_lower[0], out.ci_upper[0]], [lo - 1, hi - 1], rtol=1e-9)
    _, p = smp.test_proportions_2indep(x_t, n_t, x_c, n_c, method="log", compare="ratio")
    assert_allclose(out.p_value[0], p, rtol=1e-9)


def test_relative_delta_variance_is_the_taylor_expansion():
    m_c, v_c, m_t, v_t = 4.0, 0.02, 4.4, 0.03
    out = compare(m_c, v_c, 500, m_t, v_t, 500, method="z")
    # Gradient of f(a, b) = b / a - 1 at (m_c, m_t), computed by central differences.
    h = 1e-6
    g_c = ((m_t / (m_c + h)) - (m_t / (m_c - h))) / (2 * h)
    g_t = (((m_t + h) / m_c) - ((m_t - h) / m_c)) / (2 * h)
    assert_allclose(out.std_err[0] ** 2, g_c**2 * v_c + g_t**2 * v_t, rtol=1e-8)
    z = stats.norm.ppf(0.975)
    assert_allclose(out.ci_upper[0] - out.estimate[0], z * out.std_err[0], rtol=1e-12)


def test_relative_delta_std_err_matches_simulated_spread_of_the_lift():
    rng = np.random.default_rng(11)
    reps, n = 4000, 300
    c = rng.gamma(2.0, 2.0, (reps, n))
    t = rng.gamma(2.0, 2.2, (reps, n))
    m_c, v_c = mean_moments(n, c.sum(1), (c**2).sum(1))
    m_t, v_t = mean_moments(n, t.sum(1), (t**2).sum(1))
    out = compare(m_c, v_c, n, m_t, v_t, n, method="z")
    # The empirical sd of the lift across replications is the truth the delta method
    # approximates; 4000 replications pin it to about 1.1% (sd of a sd: 1/sqrt(2 reps)).
    assert_allclose(np.mean(out.std_err), np.std(out.estimate), rtol=0.04)


def test_vectorized_equals_one_at_a_time(samples):
    rng = np.random.default_rng(3)
    m = 50
    args = [rng.uniform(1, 2, m), rng.uniform(0.001, 0.01, m), rng.integers(20, 500, m)] * 2
    batch = compare(*args, relative_method="log")
    for i in range(m):
        one = compare(*(a[i] for a in args), relative_method="log")
        assert_allclose(batch.p_value[i], one.p_value[0], rtol=1e-14)
        assert_allclose(batch.ci_lower[i], one.ci_lower[0], rtol=1e-14)


def test_ten_thousand_comparisons_take_milliseconds():
    rng = np.random.default_rng(0)
    m = 10_000
    args = [rng.uniform(1, 2, m), rng.uniform(0.001, 0.01, m), np.full(m, 1000.0)] * 2
    compare(*args)  # warm-up
    start = time.perf_counter()
    out = compare(*args)
    elapsed = time.perf_counter() - start
    assert len(out) == m
    assert elapsed < 0.25, f"10,000 comparisons took {elapsed * 1000:.0f} ms"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((1.0, 0.01, 0, 1.1, 0.01, 100), "empty"),
        ((1.0, 0.01, 1, 1.1, 0.01, 100), "fewer than 2"),
        ((1.0, 0.01, -5, 1.1, 0.01, 100), "negative"),
        ((1.0, 0.01, np.nan, 1.1, 0.01, 100), "NaN"),
        ((np.nan, 0.01, 100, 1.1, 0.01, 100), "NaN"),
        ((1.0, 0.0, 100, 1.0, 0.0, 100), "zero variance"),
        ((0.0, 0.01, 100, 1.1, 0.01, 100), "control mean is 0"),
        ((1.0, -0.01, 100, 1.1, 0.01, 100), "negative"),
    ],
)
def test_degenerate_inputs_give_nan_and_a_reason(args, reason):
    out = compare(*args)
    assert reason in out.reason[0]
    for name in ("estimate", "std_err", "p_value", "ci_lower", "ci_upper"):
        assert np.isnan(getattr(out, name)[0]), name


def test_degenerate_entries_do_not_disturb_their_neighbours():
    out = compare([1.0, 1.0], [0.01, 0.0], [100, 100], [1.2, 1.0], [0.01, 0.0], [100, 100])
    assert out.reason[0] is None and np.isfinite(out.p_value[0])
    assert "zero variance" in out.reason[1]


def test_log_method_needs_a_positive_ratio():
    out = compare(-1.0, 0.01, 100, 1.0, 0.01, 100, relative_method="log")
    assert "log-ratio" in out.reason[0]
    assert compare(-1.0, 0.01, 100, 1.0, 0.01, 100).reason[0] is None


def test_zero_variance_in_one_arm_is_still_testable():
    out = compare(1.0, 0.0, 100, 1.2, 0.01, 100, effect="absolute")
    assert out.reason[0] is None
    assert_allclose(out.df[0], 99.0)  # all the variance comes from the treatment arm


def test_given_reasons_take_precedence():
    given = np.array(["the denominator is 0", None], dtype=object)
    out = compare([1.0, 1.0], 0.01, 100, [1.1, 1.1], 0.01, 100, reason=given)
    assert out.reason[0] == "the denominator is 0" and np.isnan(out.p_value[0])
    assert out.reason[1] is None


def test_mean_moments_constant_data_has_exactly_zero_variance():
    values = np.full(1000, 0.1)
    _, v = mean_moments(1000, values.sum(), (values**2).sum())
    assert v == 0.0


def test_interval_and_p_value_mixes_z_and_t_entries():
    p, _, hi = interval_and_p_value(
        np.array([1.0, 1.0]), np.array([0.5, 0.5]), np.array([np.inf, 10.0])
    )
    assert_allclose(p, [2 * stats.norm.sf(2.0), 2 * stats.t.sf(2.0, 10)], rtol=1e-12)
    assert_allclose(hi[1], 1.0 + stats.t.ppf(0.975, 10) * 0.5, rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.7}, r"`alpha` must be a number in \(0, 0.5\]; got 0.7"),
        ({"alpha": 0.0}, "alpha"),
        ({"effect": "ratio"}, "`effect` must be one of 'absolute', 'relative'; got 'ratio'"),
        ({"relative_method": "fieller"}, "relative_method"),
        ({"method": "t"}, "`method` must be one of 'welch', 'z'"),
        ({"alternative": "larger"}, "`alternative` must be one of"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(StatsInputError, match=match):
        compare(1.0, 0.01, 100, 1.1, 0.01, 100, **kwargs)


def test_mismatched_lengths_raise():
    with pytest.raises(StatsInputError, match="`var_c` has 3 entries but other inputs have 4"):
        compare([1, 1, 1, 1], [0.1, 0.1, 0.1], 10, 1, 0.1, 10)
