"""Normal-normal posterior: numerical integration, z interval, Monte Carlo losses, Bayes factors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from proving.stats.always_valid import log_mixture_ratio
from proving.stats.effects import compare
from proving.stats.normal_posterior import (
    bayes_factor,
    bayesian_compare,
    posterior,
)
from proving.stats.priors import FLAT_PRIOR, NormalPrior


def test_posterior_equals_numerical_integration_of_likelihood_times_prior() -> None:
    d, se, mu0, s0 = 0.08, 0.03, 0.01, 0.05
    post = posterior([d], [se], prior_mean=mu0, prior_variance=s0**2, alpha=0.1)

    def density(th: float) -> float:
        return float(stats.norm.pdf(d, th, se) * stats.norm.pdf(th, mu0, s0))

    lo, hi = -1.0, 1.0
    z = integrate.quad(density, lo, hi, epsabs=1e-14, points=[d])[0]
    mean = integrate.quad(lambda th: th * density(th), lo, hi, epsabs=1e-14, points=[d])[0] / z
    second = integrate.quad(lambda th: th * th * density(th), lo, hi, epsabs=1e-14, points=[d])[0]
    sd = math.sqrt(second / z - mean**2)
    assert post.posterior_mean[0] == pytest.approx(mean, rel=1e-8)
    assert post.posterior_std[0] == pytest.approx(sd, rel=1e-7)

    def cdf(x: float) -> float:
        return integrate.quad(density, lo, x, epsabs=1e-14)[0] / z

    assert cdf(post.ci_lower[0]) == pytest.approx(0.05, abs=1e-8)
    assert cdf(post.ci_upper[0]) == pytest.approx(0.95, abs=1e-8)
    assert post.chance_to_win[0] == pytest.approx(1 - cdf(0.0), abs=1e-8)


def test_flat_prior_interval_equals_the_frequentist_z_interval() -> None:
    rng = np.random.default_rng(1)
    m_c, m_t = rng.normal(10, 1, 50), rng.normal(10.2, 1, 50)
    v_c, v_t = rng.uniform(0.01, 0.05, 50), rng.uniform(0.01, 0.05, 50)
    for effect in ("absolute", "relative"):
        freq = compare(m_c, v_c, 1000, m_t, v_t, 1000, effect=effect, method="z")  # type: ignore[arg-type]
        bay = bayesian_compare(m_c, v_c, 1000, m_t, v_t, 1000, effect=effect, prior=FLAT_PRIOR)  # type: ignore[arg-type]
        np.testing.assert_allclose(bay.ci_lower, freq.ci_lower, rtol=0, atol=1e-9)
        np.testing.assert_allclose(bay.ci_upper, freq.ci_upper, rtol=0, atol=1e-9)
        np.testing.assert_allclose(bay.posterior_mean, freq.estimate, rtol=1e-12)
        # P(theta > 0) under a flat prior is one minus the one-sided p-value.
        greater = compare(
            m_c,
            v_c,
            1000,
            m_t,
            v_t,
            1000,
            effect=effect,
            method="z",
            alternative="greater",  # type: ignore[arg-type]
        )
        np.testing.assert_allclose(bay.chance_to_win, 1 - greater.p_value, atol=1e-12)


def test_expected_loss_matches_monte_carlo_and_truncated_normal() -> None:
    post = posterior([0.02, -0.01], [0.015, 0.02], prior_mean=0.0, prior_variance=0.03**2)
    rng = np.random.default_rng(2)
    for i in range(2):
        m, s = post.posterior_mean[i], post.posterior_std[i]
        draws = rng.normal(m, s, 2_000_000)
        mc_treat = np.maximum(0, -draws)
        mc_ctrl = np.maximum(0, draws)
        for ours, sample in (
            (post.expected_loss_treatment[i], mc_treat),
            (post.expected_loss_control[i], mc_ctrl),
        ):
            tol = 4 * sample.std() / math.sqrt(draws.size)  # 4 Monte Carlo standard errors
            assert ours == pytest.approx(sample.mean(), abs=tol)
        # gbstats' form: P(theta < 0) * E[theta | theta < 0], by scipy's truncnorm.
        a = (0 - m) / s
        neg = stats.truncnorm(-np.inf, a, loc=m, scale=s).mean()
        assert post.expected_loss_treatment[i] == pytest.approx(-stats.norm.cdf(a) * neg, rel=1e-9)
    lower = posterior([0.02], [0.015], higher_is_better=False)
    assert lower.expected_loss_treatment[0] == pytest.approx(
        posterior([0.02], [0.015]).expected_loss_control[0], rel=1e-12
    )
    assert lower.chance_to_win[0] == pytest.approx(stats.norm.cdf(-0.02 / 0.015), rel=1e-12)


def test_bayes_factor_is_the_marginal_likelihood_ratio_and_the_msprt_mixture() -> None:
    d, se, mu0, s2 = 0.05, 0.02, 0.01, 0.03**2
    expected = stats.norm.pdf(d, mu0, math.sqrt(se**2 + s2)) / stats.norm.pdf(d, 0, se)
    assert bayes_factor([d], [se], prior_mean=mu0, prior_variance=s2)[0] == pytest.approx(
        expected, rel=1e-12
    )
    mixture = math.exp(log_mixture_ratio([d], [se], [s2])[0])
    assert bayes_factor([d], [se], prior_mean=0.0, prior_variance=s2)[0] == pytest.approx(
        mixture, rel=1e-12
    )


def test_default_prior_is_weakly_informative_and_scaled_for_absolute_effects() -> None:
    out = bayesian_compare(20.0, 0.01, 5000, 21.0, 0.01, 5000, effect="absolute")
    assert out.prior_variance[0] == pytest.approx((0.3 * 20.0) ** 2)
    rel = bayesian_compare(20.0, 0.01, 5000, 21.0, 0.01, 5000, effect="relative")
    assert rel.prior_variance[0] == pytest.approx(0.09)
    # Weak: with this much data the posterior barely moves from the estimate.
    assert rel.posterior_mean[0] == pytest.approx(rel.estimate[0], rel=1e-3)
    absolute_prior = NormalPrior(mean=0.5, std=2.0, scale="absolute", source="user")
    conv = bayesian_compare(20.0, 0.01, 5000, 21.0, 0.01, 5000, prior=absolute_prior)
    assert conv.prior_mean[0] == pytest.approx(0.5 / 20.0)
    assert conv.prior_variance[0] == pytest.approx(4.0 / 400.0)
