"""Interaction checks against scipy, statsmodels OLS and simulations with known truth."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

import proving.stats.interaction as interaction_module
from proving.errors import StatsInputError
from proving.stats.interaction import (
    AssignmentIndependenceResult,
    InteractionResult,
    InteractionTestResult,
    assignment_independence,
    crosstab,
    interaction_contrast,
    interaction_test,
)
from proving.stats.sufficient import ArmStats


def test_docstring_examples_run() -> None:
    assert doctest.testmod(interaction_module).failed == 0


def _cells(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[ArmStats]:
    return [ArmStats.from_values(y[(a == i) & (b == j)]) for j in (0, 1) for i in (0, 1)]


def _world(
    rng: np.random.Generator, n: int, interaction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = rng.integers(0, 2, n)
    b = rng.integers(0, 2, n)
    noise = rng.normal(0, 1 + a + 0.5 * b, n)  # unequal variances across the cells
    y = 10 + 0.5 * a + 0.3 * b + interaction * a * b + noise
    return y, a, b


def test_chi_square_matches_scipy_and_crosstab_counts() -> None:
    rng = np.random.default_rng(1)
    va = rng.choice(["control", "t1", "t2"], 3_000)
    vb = rng.choice(["off", "on"], 3_000)
    table, rows, cols = crosstab(va, vb)
    assert rows == ("control", "t1", "t2") and cols == ("off", "on")
    assert table.sum() == 3_000
    assert table[1, 1] == np.sum((va == "t1") & (vb == "on"))
    result = assignment_independence(table, rows=rows, columns=cols)
    ref = stats.chi2_contingency(table, correction=False)
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert result.df == 2
    assert np.allclose(result.expected, ref.expected_freq)
    yates = assignment_independence([[30, 20], [18, 32]], correction=True)
    assert yates.p_value == pytest.approx(stats.chi2_contingency([[30, 20], [18, 32]]).pvalue)


def test_independent_hashing_alarms_rarely_and_dependence_is_caught() -> None:
    rng = np.random.default_rng(2)
    tables = rng.multinomial(4_000, [0.25] * 4, size=2_000).reshape(-1, 2, 2)
    p = np.array([assignment_independence(t).p_value for t in tables])
    assert 0.035 <= float(np.mean(p < 0.05)) <= 0.065  # chi-square is calibrated
    # A shared salt sends 55% of A's treated units to B's treatment: caught.
    skewed = rng.multinomial(20_000, [0.25, 0.25, 0.225, 0.275]).reshape(2, 2)
    assert assignment_independence(skewed).alarm is True


def test_contrast_pooled_equals_ols_interaction_coefficient() -> None:
    rng = np.random.default_rng(3)
    y, a, b = _world(rng, 3_000, interaction=0.4)
    fit = smf.ols("y ~ a * b", data=pd.DataFrame({"y": y, "a": a, "b": b})).fit()
    result = interaction_contrast(*_cells(y, a, b), variance="pooled")
    assert result.estimate == pytest.approx(fit.params["a:b"], rel=1e-10)
    assert result.std_err == pytest.approx(fit.bse["a:b"], rel=1e-10)
    assert result.p_value == pytest.approx(fit.pvalues["a:b"], rel=1e-8)
    lo, hi = fit.conf_int().loc["a:b"]
    assert (result.ci_lower, result.ci_upper) == pytest.approx((lo, hi), rel=1e-10)
    assert result.df == fit.df_resid


def test_contrast_unequal_variance_equals_hc2_robust_error() -> None:
    # In the saturated cell-means model HC2 gives exactly sum_i s_i^2 / n_i.
    rng = np.random.default_rng(4)
    y, a, b = _world(rng, 2_000, interaction=0.0)
    fit = smf.ols("y ~ a * b", data=pd.DataFrame({"y": y, "a": a, "b": b})).fit(cov_type="HC2")
    result = interaction_contrast(*_cells(y, a, b))
    assert result.std_err == pytest.approx(fit.bse["a:b"], rel=1e-10)
    assert result.df is not None and 1_000 < result.df < 2_000


def test_simulation_injected_interaction_is_found_and_none_rejects_at_alpha() -> None:
    rng = np.random.default_rng(5)
    null_p, alt_p, covered = [], [], 0
    for _ in range(600):
        y, a, b = _world(rng, 1_600, interaction=0.0)
        null_p.append(interaction_contrast(*_cells(y, a, b)).p_value)
        y, a, b = _world(rng, 1_600, interaction=0.6)
        r = interaction_contrast(*_cells(y, a, b))
        alt_p.append(r.p_value)
        assert r.ci_lower is not None and r.ci_upper is not None
        covered += r.ci_lower <= 0.6 <= r.ci_upper
    assert 0.03 <= np.mean(np.array(null_p) < 0.05) <= 0.07
    assert np.mean(np.array(alt_p) < 0.05) > 0.7
    assert 0.93 <= covered / 600 <= 0.97


def test_joint_wald_test_equals_regression_with_hc2_errors() -> None:
    rng = np.random.default_rng(9)
    n = 6_000
    a = rng.choice(["control", "t1", "t2"], n)
    b = rng.choice(["off", "low", "high"], n)
    boost = ((a == "t2") & (b == "high")) * 0.3
    y = rng.normal(5 + (a == "t1") * 0.2 + boost, 1 + (b == "low") * 0.5)
    cells = {
        (va, vb): ArmStats.from_values(y[(a == va) & (b == vb)])
        for va in ("control", "t1", "t2")
        for vb in ("off", "low", "high")
    }
    result = interaction_test(cells, metric="revenue")
    frame = pd.DataFrame({"y": y, "a": a, "b": b})
    fit = smf.ols("y ~ C(a, Treatment('control')) * C(b, Treatment('off'))", data=frame).fit(
        cov_type="HC2"
    )
    terms = [t for t in fit.params.index if ":" in t]
    wald = fit.wald_test(", ".join(f"{t} = 0" for t in terms), use_f=False, scalar=True)
    assert result.df == 4
    assert result.statistic == pytest.approx(float(wald.statistic), rel=1e-8)
    assert result.p_value == pytest.approx(float(wald.pvalue), rel=1e-6)
    assert result.rows == ("control", "t1", "t2") and result.columns == ("off", "low", "high")
    # On a 2x2 the joint test is the square of the contrast's z statistic.
    two = {k: v for k, v in cells.items() if k[0] in ("control", "t2") and k[1] in ("off", "high")}
    single = interaction_contrast(
        two[("control", "off")], two[("t2", "off")], two[("control", "high")], two[("t2", "high")]
    )
    assert interaction_test(two).statistic == pytest.approx(single.statistic**2, rel=1e-10)


def test_joint_wald_test_rejects_at_about_alpha_without_interaction() -> None:
    rng = np.random.default_rng(10)
    p = []
    for _ in range(600):
        cells = {
            (va, vb): ArmStats.from_values(rng.normal(va + vb, 1 + va, 150))
            for va in range(3)
            for vb in range(2)
        }
        p.append(interaction_test(cells).p_value)  # type: ignore[arg-type]
    assert 0.03 <= np.mean(np.array(p) < 0.05) <= 0.075


def test_relative_contrast_is_ratio_of_lifts() -> None:
    rng = np.random.default_rng(6)
    scale = np.array([[1.0, 1.1], [1.2, 1.2 * 1.1 * 1.05]])  # [b][a]: 5% multiplicative boost
    cells = [
        ArmStats.from_values(rng.exponential(10 * scale[j, i], 40_000))
        for j in (0, 1)
        for i in (0, 1)
    ]
    r = interaction_contrast(*cells, effect="relative")
    m = [c.sum / c.n for c in cells]
    assert r.estimate == pytest.approx((m[3] / m[2]) / (m[1] / m[0]) - 1, rel=1e-12)
    assert r.ci_lower is not None and r.ci_upper is not None
    assert r.ci_lower < 0.05 < r.ci_upper
    # Log-scale standard error by the delta method, checked against a direct formula.
    v = np.array([c.sum_squares - c.sum**2 / c.n for c in cells]) / np.array(
        [c.n * (c.n - 1) for c in cells]
    )
    se_log = np.sqrt(np.sum(v / np.array(m) ** 2))
    assert r.std_err == pytest.approx((1 + r.estimate) * se_log, rel=1e-10)


def test_one_sided_alternatives() -> None:
    rng = np.random.default_rng(7)
    y, a, b = _world(rng, 4_000, interaction=0.5)
    cells = _cells(y, a, b)
    greater = interaction_contrast(*cells, alternative="greater")
    less = interaction_contrast(*cells, alternative="less")
    assert greater.p_value is not None and less.p_value is not None
    assert greater.p_value + less.p_value == pytest.approx(1.0)
    assert greater.ci_upper == float("inf")


def test_degenerate_cells_give_reasons() -> None:
    ok = ArmStats.from_values([1.0, 2.0, 3.0])
    one = ArmStats.from_values([1.0])
    assert "at least 2 units" in (interaction_contrast(ok, ok, ok, one).reason or "")
    flat = ArmStats.from_values([2.0, 2.0])
    r = interaction_contrast(flat, flat, flat, flat)
    assert r.estimate is None and r.p_value is None and "zero variance" in (r.reason or "")
    nan = ArmStats(n=3, sum=float("nan"), sum_squares=1.0)
    assert "NaN" in (interaction_contrast(ok, ok, nan, ok).reason or "")
    neg = ArmStats.from_values([-1.0, -2.0])
    assert "needs means > 0" in (
        interaction_contrast(ok, neg, ok, ok, effect="relative").reason or ""
    )
    empty_col = assignment_independence([[10, 0], [12, 0]])
    assert empty_col.p_value is None and "non-empty" in (empty_col.reason or "")
    small = assignment_independence([[3, 2], [1, 4]])
    assert small.warnings


def test_joint_wald_test_degenerate_and_bad_inputs() -> None:
    ok = ArmStats.from_values([1.0, 2.0, 3.0])
    flat = ArmStats.from_values([1.0, 1.0])
    single = ArmStats.from_values([1.0])
    zero = interaction_test({(a, b): flat for a in "xy" for b in "uv"})
    assert zero.statistic is None and "zero variance" in (zero.reason or "")
    partly = {(a, b): flat for a in "xyz" for b in "uv"} | {("x", "u"): ok}
    singular = interaction_test(partly)
    assert singular.statistic is None and "singular" in (singular.reason or "")
    thin = interaction_test({("x", "u"): ok, ("x", "v"): ok, ("y", "u"): ok, ("y", "v"): single})
    assert thin.p_value is None and "at least 2 units" in (thin.reason or "")
    with pytest.raises(StatsInputError, match=r"missing \[\('y', 'v'\)\]"):
        interaction_test({("x", "u"): ok, ("x", "v"): ok, ("y", "u"): ok})
    with pytest.raises(StatsInputError, match="at least 2 x 2"):
        interaction_test({("x", "u"): ok, ("x", "v"): ok})
    r = interaction_test({(a, b): ok for a in "xy" for b in "uv"})
    assert InteractionTestResult.from_dict(json.loads(r.to_json())) == r


def test_results_round_trip_through_json() -> None:
    rng = np.random.default_rng(8)
    y, a, b = _world(rng, 400, interaction=0.2)
    r = interaction_contrast(*_cells(y, a, b))
    assert InteractionResult.from_dict(json.loads(r.to_json())) == r
    ind = assignment_independence([[100, 90], [95, 110]], rows=["c", "t"], columns=["x", "y"])
    assert AssignmentIndependenceResult.from_dict(json.loads(ind.to_json())) == ind


def test_bad_inputs_raise_with_a_message() -> None:
    ok = ArmStats.from_values([1.0, 2.0, 3.0])
    with pytest.raises(StatsInputError, match="must be a 2-d table"):
        assignment_independence([1, 2, 3])
    with pytest.raises(StatsInputError, match="non-negative unit counts"):
        assignment_independence([[1, -2], [3, 4]])
    with pytest.raises(StatsInputError, match="`threshold` must be in"):
        assignment_independence([[1, 2], [3, 4]], threshold=2)
    with pytest.raises(StatsInputError, match="3 labels given for 2 rows"):
        assignment_independence([[1, 2], [3, 4]], rows=["a", "b", "c"])
    with pytest.raises(StatsInputError, match="one entry per unit"):
        crosstab(["a"], ["x", "y"])
    with pytest.raises(StatsInputError, match="`variance` must be"):
        interaction_contrast(ok, ok, ok, ok, variance="robust")  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match="`alpha` must be"):
        interaction_contrast(ok, ok, ok, ok, alpha=0.9)
    ratio = ArmStats.from_values([1.0, 2.0], denominators=[1.0, 1.0])
    with pytest.raises(StatsInputError, match="cell a1_b1 holds a ratio metric"):
        interaction_contrast(ok, ok, ok, ratio)
    with pytest.raises(StatsInputError, match="cell a0_b0 must be an ArmStats"):
        interaction_contrast([1, 2], ok, ok, ok)  # type: ignore[arg-type]
