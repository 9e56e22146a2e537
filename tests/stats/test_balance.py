"""Pre-period balance: checked against scipy's Welch test and a direct Wald computation on
unit-level data, and by simulation (A/A flag rate equals the threshold)."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
from scipy import stats

from proving.errors import StatsInputError
from proving.stats import balance as balance_module
from proving.stats.balance import BalanceResult, balance_check, balance_table
from proving.stats.sufficient import ArmStats

COVARIATES = ("pre_revenue", "pre_sessions", "has_pre_period")


def units(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    revenue = rng.gamma(2, 10, n) + shift * 20
    sessions = rng.poisson(3 + 0.05 * revenue).astype(float)
    has_pre = (rng.uniform(size=n) < 0.8).astype(float)
    return dict(zip(COVARIATES, (revenue * has_pre, sessions * has_pre, has_pre), strict=True))


def arms_from(data: dict[str, dict[str, np.ndarray]], rng: np.random.Generator) -> dict:
    return {
        v: ArmStats.from_values(rng.normal(size=len(x["pre_revenue"])), covariates=x)
        for v, x in data.items()
    }


def test_each_covariate_matches_scipy_welch() -> None:
    rng = np.random.default_rng(1)
    data = {"control": units(rng, 900), "b": units(rng, 800), "c": units(rng, 850, 0.05)}
    result = balance_check(arms_from(data, rng), metric="revenue")
    assert len(result.covariates) == 6
    for row in result.covariates:
        x_c, x_t = data["control"][row.covariate], data[row.variant][row.covariate]
        ref = stats.ttest_ind(x_t, x_c, equal_var=False)
        assert row.statistic == pytest.approx(ref.statistic, rel=1e-9)
        assert row.p_value == pytest.approx(ref.pvalue, rel=1e-6)
        assert row.df == pytest.approx(ref.df, rel=1e-9)
        ci = ref.confidence_interval(0.95)
        assert (row.ci_lower, row.ci_upper) == (
            pytest.approx(ci.low, rel=1e-6),
            pytest.approx(ci.high, rel=1e-6),
        )
        smd = (x_t.mean() - x_c.mean()) / math.sqrt((x_t.var(ddof=1) + x_c.var(ddof=1)) / 2)
        assert row.standardized_difference == pytest.approx(smd, rel=1e-9)
        assert row.imbalanced == (ref.pvalue < 0.001)


def test_joint_test_is_the_wald_statistic() -> None:
    rng = np.random.default_rng(2)
    data = {"control": units(rng, 700), "b": units(rng, 650, 0.08)}
    result = balance_check(arms_from(data, rng))
    x_c = np.column_stack([data["control"][c] for c in COVARIATES])
    x_t = np.column_stack([data["b"][c] for c in COVARIATES])
    d = x_t.mean(0) - x_c.mean(0)
    v = np.cov(x_t, rowvar=False) / 650 + np.cov(x_c, rowvar=False) / 700
    stat = float(d @ np.linalg.solve(v, d))
    (joint,) = result.joint
    assert joint.statistic == pytest.approx(stat, rel=1e-9)
    assert joint.df == 3
    assert joint.p_value == pytest.approx(stats.chi2.sf(stat, 3), rel=1e-9)


def test_joint_test_with_one_covariate_is_the_squared_z() -> None:
    rng = np.random.default_rng(3)
    arms = {
        v: ArmStats.from_values(rng.normal(size=400), covariates={"pre": rng.normal(size=400)})
        for v in ("control", "b")
    }
    result = balance_check(arms, method="z")
    assert result.joint[0].statistic == pytest.approx(result.covariates[0].statistic ** 2)
    assert result.joint[0].p_value == pytest.approx(result.covariates[0].p_value, rel=1e-9)


def test_a_a_flag_rate_is_the_threshold() -> None:
    """Randomized arms: per-covariate and joint flags at threshold 0.05 occur 5% of the time."""
    rng = np.random.default_rng(4)
    reps, n = 1000, 300
    per_flags = joint_flags = 0
    for _ in range(reps):
        arms = {v: ArmStats.from_values(np.zeros(n), covariates=units(rng, n)) for v in "ab"}
        result = balance_check(arms, control="a", threshold=0.05)
        per_flags += bool(result.covariates[0].imbalanced)
        joint_flags += bool(result.joint[0].imbalanced)
    tolerance = 4 * math.sqrt(0.05 * 0.95 / reps)
    assert abs(per_flags / reps - 0.05) < tolerance
    assert abs(joint_flags / reps - 0.05) < tolerance


def test_a_real_imbalance_is_flagged_and_warned() -> None:
    rng = np.random.default_rng(5)
    data = {"control": units(rng, 5000), "b": units(rng, 5000, 0.2)}
    result = balance_check(arms_from(data, rng))
    assert result.imbalanced
    revenue = next(r for r in result.covariates if r.covariate == "pre_revenue")
    assert revenue.imbalanced and revenue.standardized_difference is not None
    assert revenue.standardized_difference > 0.1
    assert any("standardized difference" in w for w in result.warnings)
    assert result.joint[0].imbalanced


def test_balance_table_checks_every_metric_with_covariates() -> None:
    rng = np.random.default_rng(6)
    rows = []
    for variant in ("control", "b"):
        x = units(rng, 300)
        with_cov = ArmStats.from_values(rng.normal(size=300), covariates=x).to_flat()
        plain = ArmStats.from_values(rng.normal(size=300)).to_flat()
        rows.append({"variant": variant, "metric": "revenue", "experiment": "e1", **with_cov})
        rows.append({"variant": variant, "metric": "clicks", "experiment": "e1", **plain})
    results = balance_table(rows)
    assert [(r.experiment, r.metric) for r in results] == [("e1", "revenue")]
    assert [c.covariate for c in results[0].covariates] == list(COVARIATES)


def test_degenerate_inputs_are_explained() -> None:
    no_covariates = {"control": ArmStats.from_values([1.0, 2.0]), "b": ArmStats.from_values([3.0])}
    result = balance_check(no_covariates)
    assert not result.imbalanced and "no pre-period covariates" in (result.reason or "")
    empty = ArmStats.from_values([], covariates={"pre": []})
    full = ArmStats.from_values([1.0, 2.0, 3.0], covariates={"pre": [1.0, 5.0, 2.0]})
    result = balance_check({"control": full, "b": empty})
    assert result.covariates[0].p_value is None
    assert "empty" in (result.covariates[0].reason or "")
    assert result.joint[0].p_value is None and result.joint[0].reason
    constant = ArmStats.from_values([1.0, 2.0, 3.0], covariates={"pre": [2.0, 2.0, 2.0]})
    result = balance_check({"control": constant, "b": constant})
    assert "zero variance" in (result.covariates[0].reason or "")
    assert "no variance" in (result.joint[0].reason or "")
    assert not result.imbalanced


def test_merged_daily_statistics_give_the_same_answer() -> None:
    rng = np.random.default_rng(13)
    data = {"control": units(rng, 600), "b": units(rng, 640)}
    whole = balance_check(arms_from(data, rng))
    daily = {}
    for v, x in data.items():
        parts = [
            ArmStats.from_values(
                np.zeros(len(x["pre_revenue"][s])), covariates={k: c[s] for k, c in x.items()}
            )
            for s in (slice(0, 200), slice(200, None))
        ]
        daily[v] = parts[0] + parts[1]
    merged = balance_check(daily)
    for a, b in zip(whole.covariates, merged.covariates, strict=True):
        for name in ("estimate", "std_err", "p_value", "standardized_difference"):
            assert getattr(b, name) == pytest.approx(getattr(a, name), rel=1e-9), name
    assert merged.joint[0].statistic == pytest.approx(whole.joint[0].statistic, rel=1e-9)


def test_json_round_trip() -> None:
    rng = np.random.default_rng(7)
    result = balance_check(arms_from({"control": units(rng, 200), "b": units(rng, 200)}, rng))
    again = BalanceResult.from_dict(json.loads(result.to_json()))
    assert again == result


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"control": "ctrl"}, r"no control arm named 'ctrl' among \['b', 'control'\]"),
        ({"threshold": 0.0}, r"`threshold` must be in \(0, 1\); got 0.0"),
        ({"alpha": 2.0}, r"`alpha` must be a number in \(0, 0.5\]"),
    ],
)
def test_bad_parameters_raise(kwargs: dict[str, object], match: str) -> None:
    arm = ArmStats.from_values([1.0, 2.0, 3.0], covariates={"pre": [1.0, 2.0, 4.0]})
    with pytest.raises(StatsInputError, match=match):
        balance_check({"control": arm, "b": arm}, **kwargs)  # type: ignore[arg-type]


def test_arms_with_different_covariates_raise() -> None:
    a = ArmStats.from_values([1.0, 2.0], covariates={"pre": [1.0, 2.0]})
    b = ArmStats.from_values([1.0, 2.0], covariates={"other": [1.0, 2.0]})
    with pytest.raises(StatsInputError, match=r"variant 'b' has covariates \['other'\]"):
        balance_check({"control": a, "b": b})


def test_docstring_examples() -> None:
    assert doctest.testmod(balance_module).failed == 0
