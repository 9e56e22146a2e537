"""Calibration by simulation with known truth (fixed seeds, vectorized, seconds).

- A/A tests reject at alpha (two-sided and one-sided, t and z, means and proportions);
- 95% intervals cover the true effect about 95% of the time (absolute, relative by the delta
  method and by the log ratio, and with CUPED);
- CUPED removes the share rho^2 of the variance that theory predicts (Deng et al. 2013,
  sec. 3.1: Var(Y_cv) = Var(Y) (1 - rho^2)).

Tolerances are binomial: a rate estimated from ``reps`` replications has standard error
``sqrt(p (1 - p) / reps)``; the tests allow 4 of them (false failure rate ~6e-5 per check).
"""

from __future__ import annotations

import numpy as np
import pytest

from proving.stats.cuped import cuped_adjust
from proving.stats.effects import compare, mean_moments, proportion_moments
from proving.stats.ratio import linearize

REPS = 4000


def _tolerance(p: float, reps: int = REPS) -> float:
    return 4 * float(np.sqrt(p * (1 - p) / reps))


def _arms(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    n = values.shape[1]
    mean, var = mean_moments(n, values.sum(1), (values**2).sum(1))
    return mean, var, float(n)


@pytest.mark.parametrize("method", ["welch", "z"])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_a_a_rejects_at_alpha(method, alternative):
    rng = np.random.default_rng(41)
    # Skewed data and unequal sizes: the regime where a t test's calibration is earned.
    control = rng.gamma(3.0, 2.0, (REPS, 120))
    treatment = rng.gamma(3.0, 2.0, (REPS, 180))
    out = compare(
        *_arms(control),
        *_arms(treatment),
        effect="absolute",
        method=method,
        alternative=alternative,
        alpha=0.05,
    )
    rate = np.mean(out.p_value < 0.05)
    assert abs(rate - 0.05) < _tolerance(0.05), rate


def test_a_a_proportions_reject_at_alpha():
    rng = np.random.default_rng(42)
    n = 2000
    x_c = rng.binomial(n, 0.1, REPS)
    x_t = rng.binomial(n, 0.1, REPS)
    out = compare(*proportion_moments(n, x_c), n, *proportion_moments(n, x_t), n, method="z")
    rate = np.mean(out.p_value < 0.05)
    assert abs(rate - 0.05) < _tolerance(0.05), rate


@pytest.mark.parametrize(
    ("effect", "relative_method"),
    [("absolute", "delta"), ("relative", "delta"), ("relative", "log")],
)
def test_intervals_cover_the_true_effect(effect, relative_method):
    rng = np.random.default_rng(43)
    mu_c, mu_t = 5.0, 5.4
    control = rng.normal(mu_c, 2.0, (REPS, 300))
    treatment = rng.normal(mu_t, 2.5, (REPS, 250))
    out = compare(
        *_arms(control),
        *_arms(treatment),
        effect=effect,
        relative_method=relative_method,
    )
    truth = mu_t - mu_c if effect == "absolute" else mu_t / mu_c - 1
    coverage = np.mean((out.ci_lower <= truth) & (truth <= out.ci_upper))
    assert abs(coverage - 0.95) < _tolerance(0.95), coverage


def test_one_sided_intervals_cover_at_their_level():
    rng = np.random.default_rng(44)
    control = rng.exponential(2.0, (REPS, 400))
    treatment = rng.exponential(2.2, (REPS, 400))
    out = compare(*_arms(control), *_arms(treatment), alternative="greater", alpha=0.1)
    coverage = np.mean(out.ci_lower <= 0.1)  # true lift 2.2 / 2.0 - 1
    assert np.all(np.isinf(out.ci_upper))
    assert abs(coverage - 0.9) < _tolerance(0.9), coverage


def _cuped_world(rng: np.random.Generator, rho: float, reps: int, n: int, lift: float):
    """Unit data (2 reps arms, n units, [y, x]) with corr(y, x) = rho; arms alternate."""
    x = rng.normal(size=(2 * reps, n))
    e = rng.normal(size=(2 * reps, n))
    y = 3.0 + rho * x + np.sqrt(1 - rho**2) * e + lift * np.tile([0.0, 1.0], reps)[:, None]
    v = np.stack([y, x], axis=2)
    return np.full(2 * reps, float(n)), v.sum(axis=1), np.einsum("aui,auj->aij", v, v)


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_cuped_variance_reduction_matches_rho_squared(rho):
    rng = np.random.default_rng(45)
    reps, n, lift = 1500, 500, 0.1
    n_arr, sums, cross = _cuped_world(rng, rho, reps, n, lift)
    lin = linearize(n_arr, sums, cross, ratio=False)
    adj = cuped_adjust(lin, np.repeat(np.arange(reps), 2))
    raw = compare(lin.estimate[0::2], lin.variance[0::2], n, lin.estimate[1::2],
                  lin.variance[1::2], n, effect="absolute")  # fmt: skip
    cup = compare(adj.estimate[0::2], adj.variance[0::2], n, adj.estimate[1::2],
                  adj.variance[1::2], n, effect="absolute")  # fmt: skip
    reported = 1 - cup.std_err**2 / raw.std_err**2
    # What each analysis reports, on average, is rho^2 ...
    assert abs(reported.mean() - rho**2) < 0.01
    # ... and it is real: the spread of the CUPED estimates across replications shrank so.
    realized = 1 - cup.estimate.var() / raw.estimate.var()
    # The ratio of two sample variances over `reps` replications has a relative standard
    # error of about sqrt(2 / reps) (3.7%) on the residual share 1 - rho^2: allow 4 of them.
    assert abs(realized - rho**2) < 4 * (1 - rho**2) * np.sqrt(2 / reps), realized
    # CUPED intervals still cover the truth at 95%.
    coverage = np.mean((cup.ci_lower <= lift) & (lift <= cup.ci_upper))
    assert abs(coverage - 0.95) < _tolerance(0.95, reps), coverage


def test_cuped_relative_intervals_cover_the_true_lift():
    rng = np.random.default_rng(46)
    reps, n, lift = 2000, 400, 0.1
    n_arr, sums, cross = _cuped_world(rng, 0.7, reps, n, 3.0 * lift)  # y has mean 3.0
    lin = linearize(n_arr, sums, cross, ratio=False)
    adj = cuped_adjust(lin, np.repeat(np.arange(reps), 2))
    for relative_method in ("delta", "log"):
        out = compare(adj.estimate[0::2], adj.variance[0::2], n, adj.estimate[1::2],
                      adj.variance[1::2], n, relative_method=relative_method)  # fmt: skip
        coverage = np.mean((out.ci_lower <= lift) & (lift <= out.ci_upper))
        assert abs(coverage - 0.95) < _tolerance(0.95, reps), (relative_method, coverage)
