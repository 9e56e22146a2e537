"""Interleaving analysis against scipy's binomial test, a direct bootstrap and simulations."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
from scipy import stats

import proving.stats.interleaving as interleaving_module
from proving.errors import StatsInputError
from proving.stats.interleaving import (
    InterleavingCounts,
    InterleavingResult,
    analyze_interleaving,
)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(interleaving_module).failed == 0


def test_counts_from_credits_and_merge() -> None:
    counts = InterleavingCounts.from_credits([3, 0, 1, 2, 0], [1, 0, 1, 5, 2])
    assert (counts.wins_a, counts.wins_b, counts.ties, counts.n) == (1, 2, 2, 5)
    merged = counts + InterleavingCounts(4, 1, 0)
    assert (merged.wins_a, merged.wins_b, merged.ties) == (5, 3, 2)


def test_sign_test_equals_scipy_binomtest() -> None:
    counts = InterleavingCounts(wins_a=137, wins_b=104, ties=500)
    for alternative in ("two-sided", "greater", "less"):
        result = analyze_interleaving(counts, alternative=alternative)
        expected = stats.binomtest(137, 241, 0.5, alternative=alternative).pvalue
        assert result.p_value == pytest.approx(expected, rel=1e-12)
    result = analyze_interleaving(counts)
    assert result.estimate == pytest.approx((137 - 104) / 741)
    assert result.preference_share == pytest.approx(137 / 241)


def test_multinomial_bootstrap_matches_resampling_users() -> None:
    # The multinomial shortcut must agree with literally resampling users.
    rng = np.random.default_rng(3)
    prefs = rng.choice([1, 0, -1], size=400, p=[0.3, 0.5, 0.2])
    counts = InterleavingCounts.from_credits((prefs > 0).astype(float), (prefs < 0).astype(float))
    result = analyze_interleaving(counts, n_bootstrap=20_000, seed=1)
    idx = rng.integers(0, prefs.size, size=(20_000, prefs.size))
    direct = prefs[idx].mean(axis=1)
    lo, hi = np.quantile(direct, [0.025, 0.975])
    assert result.ci_lower == pytest.approx(lo, abs=0.006)
    assert result.ci_upper == pytest.approx(hi, abs=0.006)
    assert result.std_err == pytest.approx(direct.std(), rel=0.03)


def test_simulation_recovers_known_preference_with_coverage() -> None:
    # Users prefer A with probability 0.25, B with 0.20, tie otherwise: Delta = 0.05.
    rng = np.random.default_rng(11)
    truth, n_users, reps = 0.05, 2_000, 400
    draws = rng.multinomial(n_users, [0.25, 0.55, 0.20], size=reps)
    covered = rejected = 0
    estimates = []
    for wins_a, ties, wins_b in draws:
        r = analyze_interleaving(InterleavingCounts(wins_a, wins_b, ties), n_bootstrap=2_000)
        assert r.ci_lower is not None and r.ci_upper is not None and r.p_value is not None
        covered += r.ci_lower <= truth <= r.ci_upper
        rejected += r.p_value < 0.05
        estimates.append(r.estimate)
    assert np.mean(estimates) == pytest.approx(truth, abs=0.004)
    assert 0.92 <= covered / reps <= 0.975
    assert rejected / reps > 0.7  # power against a 5-point preference with 2,000 users


def test_no_preference_rejects_at_about_alpha() -> None:
    rng = np.random.default_rng(5)
    draws = rng.multinomial(1_000, [0.2, 0.6, 0.2], size=1_000)
    p = np.array(
        [
            analyze_interleaving(InterleavingCounts(a, b, t), n_bootstrap=100).p_value
            for a, t, b in draws
        ]
    )
    # The exact sign test is conservative by discreteness, never liberal.
    assert 0.025 <= float(np.mean(p < 0.05)) <= 0.065


def test_one_sided_intervals() -> None:
    counts = InterleavingCounts(80, 50, 70)
    greater = analyze_interleaving(counts, alternative="greater")
    assert greater.ci_upper == float("inf") and greater.ci_lower is not None
    assert greater.ci_lower > 0
    less = analyze_interleaving(counts, alternative="less")
    assert less.ci_lower == float("-inf")
    assert less.p_value is not None and less.p_value > 0.99


def test_degenerate_data_gives_reason_not_numbers() -> None:
    empty = analyze_interleaving(InterleavingCounts(0, 0, 0))
    assert empty.estimate is None and empty.p_value is None and empty.reason
    all_ties = analyze_interleaving(InterleavingCounts(0, 0, 30))
    assert all_ties.estimate is None and all_ties.ci_lower is None
    assert all_ties.reason is not None and "ties" in all_ties.reason
    few = analyze_interleaving(InterleavingCounts(3, 1, 0))
    assert few.warnings


def test_result_round_trips_through_json() -> None:
    result = analyze_interleaving(InterleavingCounts(30, 20, 10), alternative="greater")
    plain = json.loads(result.to_json())
    assert plain["ci_upper"] is None  # infinity is not JSON
    assert InterleavingResult.from_dict(plain).to_dict() == plain


def test_bad_inputs_raise_with_a_message() -> None:
    with pytest.raises(StatsInputError, match="`wins_a` must be a non-negative whole"):
        InterleavingCounts(-1, 2)
    with pytest.raises(StatsInputError, match="`ties` must be a non-negative whole"):
        InterleavingCounts(1, 2, ties=1.5)  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match="one entry per user"):
        InterleavingCounts.from_credits([1, 2], [1])
    with pytest.raises(StatsInputError, match="NaN or infinite credit"):
        InterleavingCounts.from_credits([1, float("nan")], [1, 0])
    counts = InterleavingCounts(1, 2)
    with pytest.raises(StatsInputError, match="`alpha` must be in"):
        analyze_interleaving(counts, alpha=1.5)
    with pytest.raises(StatsInputError, match="`n_bootstrap` must be at least 100"):
        analyze_interleaving(counts, n_bootstrap=5)
    with pytest.raises(StatsInputError, match="`alternative` must be"):
        analyze_interleaving(counts, alternative="both")  # type: ignore[arg-type]
