"""Ratio metrics by the delta method, against a direct computation of the linearization."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from proving.stats.analyze import analyze
from proving.stats.ratio import linearize, ratio_moments
from proving.stats.sufficient import ArmStats, stack


def _sessions(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    sessions = rng.poisson(4, n) + 1.0
    clicks = rng.binomial(sessions.astype(int), rate).astype(float)
    return clicks, sessions


def _linearized(y: np.ndarray, d: np.ndarray) -> np.ndarray:
    """z_i = (y_i - R d_i) / dbar, computed unit by unit (Deng et al. 2018, eq. 3)."""
    r = y.sum() / d.sum()
    return (y - r * d) / d.mean()


def test_ratio_variance_equals_variance_of_the_unit_linearization():
    rng = np.random.default_rng(5)
    y, d = _sessions(rng, 800, 0.3)
    a = ArmStats.from_values(y, denominators=d)
    r, v = ratio_moments(
        a.n, a.sum, a.sum_squares, a.denominator_sum, a.denominator_sum_squares, a.sum_products
    )
    z = _linearized(y, d)
    assert_allclose(r, y.sum() / d.sum(), rtol=1e-12)
    assert_allclose(v, z.var(ddof=1) / len(z), rtol=1e-9)


def test_ratio_variance_matches_the_textbook_delta_formula():
    rng = np.random.default_rng(6)
    y, d = _sessions(rng, 500, 0.2)
    n = len(y)
    mu_y, mu_d = y.mean(), d.mean()
    cov = np.cov(y, d, ddof=1)
    # Var(Ybar/Dbar) ~ (s_y^2 / mu_d^2 - 2 mu_y s_yd / mu_d^3 + mu_y^2 s_d^2 / mu_d^4) / n
    expected = (
        cov[0, 0] / mu_d**2 - 2 * mu_y * cov[0, 1] / mu_d**3 + mu_y**2 * cov[1, 1] / mu_d**4
    ) / n
    a = ArmStats.from_values(y, denominators=d)
    _, v = ratio_moments(
        a.n, a.sum, a.sum_squares, a.denominator_sum, a.denominator_sum_squares, a.sum_products
    )
    assert_allclose(v, expected, rtol=1e-9)


def test_linearize_gives_the_covariance_of_z_and_the_covariates():
    rng = np.random.default_rng(8)
    arms, units = [], []
    for rate in (0.3, 0.33):
        y, d = _sessions(rng, 600, rate)
        x1 = d + rng.normal(size=600)
        x2 = rng.normal(size=600)
        arms.append(ArmStats.from_values(y, denominators=d, covariates={"a": x1, "b": x2}))
        units.append((y, d, x1, x2))
    lin = linearize(*stack(arms), ratio=True)
    for i, (y, d, x1, x2) in enumerate(units):
        z = _linearized(y, d)
        assert_allclose(lin.cov[i], np.cov(np.vstack([z, x1, x2]), ddof=1), rtol=1e-9, atol=1e-12)
        assert_allclose(lin.covariate_means[i], [x1.mean(), x2.mean()], rtol=1e-12)
        assert_allclose(lin.variance[i], z.var(ddof=1) / 600, rtol=1e-9)


def test_linearize_mean_metric_is_the_plain_covariance():
    rng = np.random.default_rng(9)
    y, x = rng.normal(size=300), rng.normal(size=300)
    lin = linearize(*stack([ArmStats.from_values(y, covariates={"x": x})]), ratio=False)
    assert_allclose(lin.cov[0], np.cov(y, x, ddof=1), rtol=1e-9)
    assert_allclose(lin.estimate[0], y.mean(), rtol=1e-12)


def test_proportion_uses_the_bernoulli_variance():
    y = np.r_[np.ones(30), np.zeros(70)]
    lin = linearize(*stack([ArmStats.from_values(y)]), ratio=False, ddof=0)
    assert_allclose(lin.variance[0], 0.3 * 0.7 / 100, rtol=1e-12)


def test_ratio_effect_through_analyze_matches_the_direct_computation():
    rng = np.random.default_rng(10)
    (yc, dc), (yt, dt) = _sessions(rng, 1000, 0.3), _sessions(rng, 1100, 0.32)
    rows = [
        {"variant": v, "metric": "ctr", **ArmStats.from_values(y, denominators=d).to_flat()}
        for v, y, d in (("control", yc, dc), ("b", yt, dt))
    ]
    c = analyze(rows, effect="absolute", method="z").comparisons[0]
    assert c.kind == "ratio"
    zc, zt = _linearized(yc, dc), _linearized(yt, dt)
    se = np.sqrt(zc.var(ddof=1) / len(zc) + zt.var(ddof=1) / len(zt))
    assert_allclose(c.estimate, yt.sum() / dt.sum() - yc.sum() / dc.sum(), rtol=1e-12)
    assert_allclose(c.std_err, se, rtol=1e-9)


def test_ratio_coverage_by_simulation():
    # Clicks per session with a known true ratio: 95% intervals cover it ~95% of the time.
    rng = np.random.default_rng(12)
    reps, n, rate = 2000, 400, 0.25
    sessions = rng.poisson(3, (reps, n)) + 1.0
    clicks = rng.binomial(sessions.astype(int), rate).astype(float)
    r, v = ratio_moments(
        n,
        clicks.sum(1),
        (clicks**2).sum(1),
        sessions.sum(1),
        (sessions**2).sum(1),
        (clicks * sessions).sum(1),
    )
    z = (r - rate) / np.sqrt(v)
    coverage = np.mean(np.abs(z) < 1.959964)
    assert abs(coverage - 0.95) < 3 * np.sqrt(0.95 * 0.05 / reps)


@pytest.mark.parametrize("denominator_sum", [0.0])
def test_zero_denominator_is_explained(denominator_sum):
    rows = [
        {
            "variant": "control",
            "metric": "m",
            "n": 10,
            "sum": 0,
            "sum_squares": 0,
            "denominator_sum": denominator_sum,
            "denominator_sum_squares": 0,
            "sum_products": 0,
        },
        {
            "variant": "b",
            "metric": "m",
            "n": 10,
            "sum": 3,
            "sum_squares": 5,
            "denominator_sum": 12,
            "denominator_sum_squares": 20,
            "sum_products": 6,
        },
    ]
    c = analyze(rows).comparisons[0]
    assert c.estimate is None and c.p_value is None
    assert "denominator sum of variant 'control' is 0" in (c.reason or "")
