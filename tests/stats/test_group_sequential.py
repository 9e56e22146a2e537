"""Group-sequential boundaries against published tables, scipy's multivariate normal and
simulation.

Published values:
- Lan-DeMets O'Brien-Fleming-type spending, 4 equally spaced looks, alpha = 0.05 two-sided:
  4.333, 2.963, 2.359, 2.014 (gsDesign / ldbounds; Jennison & Turnbull 2000, Table 7.?).
- Pocock (1977) constant, K = 4, alpha = 0.05 two-sided: 2.361; O'Brien & Fleming (1979)
  constant C = 2.024 (Jennison & Turnbull 2000, Tables 2.1 and 2.3).
- Sample size inflation factors for power 0.8, alpha = 0.05 two-sided, K = 4:
  Pocock 1.202, O'Brien-Fleming 1.022 (Jennison & Turnbull 2000, Tables 2.2 and 2.4).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from proving.errors import StatsInputError
from proving.stats.group_sequential import (
    GroupSequentialDesign,
    SpendingBoundaries,
    alpha_spent,
    design_boundaries,
    pocock_constant,
    wang_tsiatis_boundaries,
)

EQUAL4 = [0.25, 0.5, 0.75, 1.0]


def test_obrien_fleming_spending_matches_published_boundaries() -> None:
    d = design_boundaries(EQUAL4, alpha=0.05)
    np.testing.assert_allclose(d.upper, [4.333, 2.963, 2.359, 2.014], atol=1e-3)
    np.testing.assert_allclose(d.lower, -np.array(d.upper))
    assert d.cumulative_alpha[-1] == pytest.approx(0.05, abs=1e-8)


def test_pocock_constant_matches_published_value() -> None:
    assert pocock_constant(4) == pytest.approx(2.361, abs=1e-3)
    # K = 2 and K = 5 from Pocock (1977), Table 1: 2.178 and 2.413.
    assert pocock_constant(2) == pytest.approx(2.178, abs=1e-3)
    assert pocock_constant(5) == pytest.approx(2.413, abs=1e-3)


def test_obrien_fleming_constant_matches_published_value() -> None:
    d = wang_tsiatis_boundaries(EQUAL4, delta=0.0)
    assert d.upper[-1] == pytest.approx(2.024, abs=1e-3)
    np.testing.assert_allclose(np.array(d.upper) * np.sqrt(EQUAL4), 2.024, atol=1e-3)


def test_pocock_type_spending_is_nearly_flat_and_spends_as_claimed() -> None:
    d = design_boundaries(EQUAL4, alpha=0.05, spending="pocock")
    # Lan-DeMets Pocock-type boundaries are close to, not equal to, Pocock's constant.
    assert max(d.upper) - min(d.upper) < 0.03
    assert all(abs(b - 2.361) < 0.02 for b in d.upper)
    # What the function claims: cumulative error spent = alpha log(1 + (e - 1) t).
    claimed = 0.05 * np.log1p((math.e - 1) * np.array(EQUAL4))
    np.testing.assert_allclose(d.cumulative_alpha, claimed, atol=1e-8)


@pytest.mark.parametrize(
    ("alternative", "spending"),
    [
        ("two-sided", "obrien_fleming"),
        ("greater", "pocock"),
        ("less", "hwang_shih_decani"),
        ("two-sided", "power"),
    ],
)
def test_unequal_fractions_spend_exactly_per_scipy_multivariate_normal(
    alternative: str, spending: str
) -> None:
    t = np.array([0.12, 0.4, 0.45, 0.81, 1.0])
    d = design_boundaries(t, alpha=0.05, alternative=alternative, spending=spending)  # type: ignore[arg-type]
    side = 0.025 if alternative == "two-sided" else 0.05
    factor = 2 if alternative == "two-sided" else 1
    np.testing.assert_allclose(
        d.cumulative_alpha,
        factor * alpha_spent(t, alpha=side, spending=spending),  # type: ignore[arg-type]
        atol=1e-8,
    )
    # Independent check: Z ~ MVN with corr sqrt(t_i / t_j); P(no crossing) = 1 - alpha.
    corr = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    mvn = stats.multivariate_normal(np.zeros(t.size), corr, seed=1)
    upper = np.minimum(np.array(d.upper), 40.0)
    lower = np.maximum(np.array(d.lower), -40.0)
    stay = mvn.cdf(upper, lower_limit=lower)
    assert 1.0 - stay == pytest.approx(0.05, abs=2e-4)


def test_simulated_type_one_error_equals_alpha() -> None:
    rng = np.random.default_rng(2024)
    t = np.array([0.2, 0.5, 0.65, 1.0])
    d = design_boundaries(t, alpha=0.05)
    sims = 200_000
    increments = rng.standard_normal((sims, t.size)) * np.sqrt(np.diff(t, prepend=0.0))
    z = np.cumsum(increments, axis=1) / np.sqrt(t)
    rejected = np.any(np.abs(z) >= np.array(d.upper), axis=1).mean()
    tolerance = 4 * math.sqrt(0.05 * 0.95 / sims)
    print(f"simulated type I error {rejected:.4f} (alpha 0.05, +/- {tolerance:.4f})")
    assert abs(rejected - 0.05) < tolerance


def test_power_and_inflation_factor_match_published_tables() -> None:
    pocock = wang_tsiatis_boundaries(EQUAL4, delta=0.5)
    obf = wang_tsiatis_boundaries(EQUAL4, delta=0.0)
    assert pocock.inflation_factor(0.8) == pytest.approx(1.202, abs=2e-3)
    assert obf.inflation_factor(0.8) == pytest.approx(1.022, abs=2e-3)
    # Power by simulation at the drift the design reports for 80 % power.
    drift = pocock.drift_for_power(0.8)
    rng = np.random.default_rng(5)
    t = np.array(EQUAL4)
    inc = rng.standard_normal((100_000, 4)) * 0.5 + drift * 0.25
    z = np.cumsum(inc, axis=1) / np.sqrt(t)
    assert np.any(z >= np.array(pocock.upper), axis=1).mean() == pytest.approx(0.8, abs=0.006)


def test_one_sided_designs_mirror_each_other() -> None:
    g = design_boundaries([0.3, 0.6, 1.0], alpha=0.025, alternative="greater")
    s = design_boundaries([0.3, 0.6, 1.0], alpha=0.025, alternative="less")
    np.testing.assert_allclose(g.upper, -np.array(s.lower))
    assert all(math.isinf(b) for b in g.lower)
    assert all(math.isinf(b) for b in s.upper)
    assert s.power(-3.0) == pytest.approx(g.power(3.0), rel=1e-9)


def test_final_look_short_of_plan_spends_the_rest() -> None:
    d = design_boundaries([0.3, 0.6, 0.8], alpha=0.05, final=True)
    assert d.cumulative_alpha[-1] == pytest.approx(0.05, abs=1e-8)
    partial = design_boundaries([0.3, 0.6, 0.8], alpha=0.05)
    assert partial.cumulative_alpha[-1] < 0.05
    assert d.upper[:2] == partial.upper[:2]


def test_design_round_trips_through_json() -> None:
    d = design_boundaries([0.5, 1.0], alpha=0.05, alternative="greater")
    back = GroupSequentialDesign.from_dict(json.loads(json.dumps(d.to_dict())))
    assert back == d


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"information_fractions": [0.5, 0.4]}, "strictly increasing"),
        ({"information_fractions": [0.0, 1.0]}, r"must lie in \(0, 1\]"),
        ({"information_fractions": [0.5, 1.2]}, r"must lie in \(0, 1\]"),
        ({"information_fractions": [], "alpha": 0.05}, "non-empty"),
        ({"information_fractions": [1.0], "alpha": 1.5}, r"`alpha` must be a number in \(0, 1\)"),
        ({"information_fractions": [1.0], "alternative": "both"}, "`alternative` must be"),
        ({"information_fractions": [1.0], "spending": "linear"}, "`spending` must be one of"),
        (
            {"information_fractions": [1.0], "spending": "power", "parameter": -1.0},
            r"must be > 0; got -1.0",
        ),
    ],
)
def test_bad_parameters_raise_with_the_fix(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(StatsInputError, match=match):
        design_boundaries(**kwargs)  # type: ignore[arg-type]


def test_bad_looks_and_power_raise() -> None:
    with pytest.raises(StatsInputError, match="`looks` must be a positive integer; got 0"):
        pocock_constant(0)
    with pytest.raises(StatsInputError, match=r"`power` must be in \(0, 1\)"):
        design_boundaries([1.0]).drift_for_power(1.5)


def test_incremental_boundaries_equal_the_batch_design_and_stay_fast() -> None:
    import time

    t = np.linspace(0.005, 1.0, 200)
    plan = SpendingBoundaries(alpha=0.05, spending="pocock")
    start = time.perf_counter()
    bounds = [plan.add_look(float(x)) for x in t]
    elapsed = time.perf_counter() - start
    batch = design_boundaries(t, alpha=0.05, spending="pocock")
    np.testing.assert_allclose(bounds, batch.upper, rtol=1e-12)
    assert plan.cumulative_alpha == pytest.approx(batch.cumulative_alpha[-1], abs=1e-9)
    assert plan.cumulative_alpha == pytest.approx(0.05, abs=1e-6)
    print(f"200 incremental looks in {elapsed:.2f} s")
    assert elapsed < 10.0
    with pytest.raises(StatsInputError, match=r"must be in \(1, 1\]"):
        plan.add_look(1.0)
    with pytest.raises(StatsInputError, match="no looks yet"):
        SpendingBoundaries().design()
