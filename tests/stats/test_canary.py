"""The fixed-sample canary judge against scipy, brute force and simulations."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
from scipy import stats

import proving.stats.canary as canary_module
from proving.errors import StatsInputError
from proving.stats.canary import (
    CanaryJudgement,
    CanaryMetricSpec,
    compare_distributions,
    hodges_lehmann,
    judge,
    pairwise_difference_quantiles,
)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(canary_module).failed == 0


@pytest.mark.parametrize(
    "draw",
    [
        lambda r: (r.normal(0, 1, 40), r.normal(0.3, 1, 55)),
        lambda r: (r.poisson(3, 300), r.poisson(3.4, 280)),  # heavy ties
        lambda r: (r.lognormal(0, 1, 5), r.lognormal(0, 1, 7)),  # small: exact p-value
    ],
)
def test_mann_whitney_statistic_and_p_value_equal_scipy(draw: object) -> None:
    rng = np.random.default_rng(0)
    base, canary = draw(rng)  # type: ignore[operator]
    r = compare_distributions(base, canary, CanaryMetricSpec("m"))
    ref = stats.mannwhitneyu(canary, base, alternative="two-sided")
    assert r.statistic == ref.statistic
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def _brute_force_hl(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, float, float]:
    d = np.sort(np.subtract.outer(y, x).ravel())
    mn, m, n = d.size, x.size, y.size
    _, t = np.unique(np.concatenate([x, y]), return_counts=True)
    var = m * n / 12 * ((m + n + 1) - np.sum(t**3 - t) / ((m + n) * (m + n - 1)))
    k = int(np.floor(mn / 2 - stats.norm.ppf(1 - alpha / 2) * np.sqrt(var)))
    return float(np.median(d)), float(d[k - 1]), float(d[mn - k])


@pytest.mark.parametrize("integers", [False, True])
def test_hodges_lehmann_equals_brute_force_on_both_paths(integers: bool) -> None:
    rng = np.random.default_rng(1)
    # 600 x 700 = 420,000 pairs: above the direct threshold, so the selection path runs.
    for m, n in ((30, 41), (600, 700)):
        if integers:
            x, y = rng.poisson(4, m).astype(float), rng.poisson(5, n).astype(float)
        else:
            x, y = rng.gamma(2, 3, m), rng.gamma(2, 3.5, n)
        assert hodges_lehmann(x, y, alpha=0.1) == pytest.approx(_brute_force_hl(x, y, 0.1))
    d = np.sort(np.subtract.outer(y, x).ravel())
    ranks = [1, 2, 17, d.size // 3, d.size - 1, d.size]
    assert pairwise_difference_quantiles(x, y, ranks) == pytest.approx(d[np.array(ranks) - 1])


def test_hodges_lehmann_interval_covers_a_known_shift() -> None:
    rng = np.random.default_rng(2)
    covered, reps = 0, 800
    for _ in range(reps):
        x, y = rng.exponential(10, 60), rng.exponential(10, 70) + 2.0
        _, lo, hi = hodges_lehmann(x, y)
        assert lo is not None and hi is not None
        covered += lo <= 2.0 <= hi
    assert 0.93 <= covered / reps <= 0.97


def test_large_samples_are_fast_and_consistent() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(100, 15, 100_000), rng.normal(101, 15, 100_000)
    r = compare_distributions(x, y, CanaryMetricSpec("latency", direction="increase"))
    assert r.estimate == pytest.approx(1.0, abs=0.3)
    assert r.ci_lower is not None and r.ci_upper is not None
    # Width of the HL interval ~ 2 z sigma sqrt(2/n) / (normal efficiency of HL, 3/pi).
    width = 2 * 1.96 * 15 * np.sqrt(2 / 100_000) / np.sqrt(3 / np.pi)
    assert r.ci_upper - r.ci_lower == pytest.approx(width, rel=0.05)
    assert r.classification == "high" and r.passed is False


def test_a_a_false_alarm_rate_is_about_alpha() -> None:
    rng = np.random.default_rng(4)
    spec = CanaryMetricSpec("m")
    alarms = sum(
        compare_distributions(rng.normal(size=80), rng.normal(size=80), spec).passed is False
        for _ in range(600)
    )
    assert 0.025 <= alarms / 600 <= 0.075


def test_tolerance_tests_agree_with_the_interval_on_continuous_data() -> None:
    rng = np.random.default_rng(10)
    spec = CanaryMetricSpec("m", "either", allowed_increase=0.02, allowed_decrease=0.02)
    agree, reps = 0, 250
    for _ in range(reps):
        base, canary = rng.normal(50, 5, 150), rng.normal(50 + rng.normal(0, 1.5), 5, 150)
        r = compare_distributions(base, canary, spec)
        assert r.ci_lower is not None and r.ci_upper is not None
        assert r.tolerance_upper is not None and r.tolerance_lower is not None
        by_interval = (
            "high"
            if r.ci_lower > r.tolerance_upper
            else "low"
            if r.ci_upper < r.tolerance_lower
            else "pass"
        )
        agree += by_interval == r.classification
        shifted = stats.mannwhitneyu(canary - r.tolerance_upper, base, alternative="greater")
        assert r.p_value_high == pytest.approx(shifted.pvalue, rel=1e-12)
    assert agree / reps >= 0.97  # they differ only by rank rounding at the boundary


def test_discrete_metric_shift_is_caught_where_the_interval_collapses() -> None:
    rng = np.random.default_rng(11)
    base, canary = rng.poisson(3.0, 3_000), rng.poisson(3.5, 3_000)
    r = compare_distributions(base, canary, CanaryMetricSpec("errors", "increase"))
    assert r.ci_lower is not None and r.ci_lower <= 0  # Hodges-Lehmann sees no shift ...
    assert r.classification == "high" and r.passed is False  # ... the rank test does
    same = compare_distributions(
        rng.poisson(3.0, 3_000), rng.poisson(3.0, 3_000), CanaryMetricSpec("errors", "increase")
    )
    assert same.classification == "pass"


def test_tolerance_and_direction_rules() -> None:
    rng = np.random.default_rng(5)
    base, canary = rng.normal(100, 5, 400), rng.normal(105, 5, 400)  # +5%
    strict = compare_distributions(base, canary, CanaryMetricSpec("m", "increase"))
    assert strict.classification == "high" and strict.passed is False
    assert strict.relative_estimate == pytest.approx(0.05, abs=0.01)
    tolerant = compare_distributions(
        base, canary, CanaryMetricSpec("m", "increase", allowed_increase=0.10)
    )
    assert tolerant.classification == "pass" and tolerant.passed is True
    assert tolerant.tolerance_upper == pytest.approx(0.10 * abs(np.median(base)))
    good_way = compare_distributions(base, canary, CanaryMetricSpec("m", "decrease"))
    assert good_way.classification == "high" and good_way.passed is True
    drop = compare_distributions(canary, base, CanaryMetricSpec("m", "decrease"))
    assert drop.classification == "low" and drop.passed is False
    either = compare_distributions(canary, base, CanaryMetricSpec("m", "either"))
    assert either.classification == "low" and either.passed is False
    allowed_drop = compare_distributions(
        canary, base, CanaryMetricSpec("m", "decrease", allowed_decrease=0.1)
    )
    assert allowed_drop.classification == "pass"


def test_scoring_groups_weights_and_thresholds() -> None:
    rng = np.random.default_rng(6)
    same = (rng.normal(10, 1, 300), rng.normal(10, 1, 300))
    worse = (rng.normal(10, 1, 300), rng.normal(11, 1, 300))
    data = {f"ok{i}": same for i in range(3)} | {"bad": worse}
    specs = [CanaryMetricSpec(f"ok{i}", "increase", group="latency") for i in range(3)]
    specs.append(CanaryMetricSpec("bad", "increase", group="errors"))
    verdict = judge(data, specs)
    by_group = {g.group: g for g in verdict.groups}
    assert by_group["latency"].score == 100.0 and by_group["errors"].score == 0.0
    assert verdict.score == pytest.approx(50.0) and verdict.decision == "fail"
    weighted = judge(data, specs, group_weights={"latency": 9.0, "errors": 1.0})
    assert weighted.score == pytest.approx(90.0) and weighted.decision == "marginal"
    lenient = judge(data, specs, group_weights={"latency": 9.0}, pass_threshold=90.0)
    assert lenient.score == pytest.approx(90.0) and lenient.decision == "pass"
    # One metric in four failing, ungrouped: 75 is marginal at Kayenta's thresholds.
    flat = [CanaryMetricSpec(s.name, "increase") for s in specs]
    assert judge(data, flat).score == pytest.approx(75.0)
    assert judge(data, flat).decision == "marginal"
    critical = [*flat[:3], CanaryMetricSpec("bad", "increase", critical=True)]
    verdict = judge(data, critical, pass_threshold=10, marginal_threshold=5)
    assert verdict.decision == "fail" and verdict.failed_critical == ("bad",)


def test_no_data_is_never_a_pass() -> None:
    spec = CanaryMetricSpec("m")
    empty = compare_distributions([], [1.0, 2.0], spec)
    assert empty.classification == "nodata" and empty.passed is None and empty.reason
    tiny = compare_distributions([1.0, 2.0], [3.0, 4.0], spec)
    assert tiny.classification == "nodata" and tiny.ci_lower is None
    assert tiny.estimate == 2.0 and "too few" in (tiny.reason or "")
    zeros = compare_distributions(
        np.zeros(40), np.zeros(60), CanaryMetricSpec("errors", "increase")
    )
    assert zeros.classification == "pass" and zeros.passed is True and zeros.estimate == 0.0
    assert zeros.ci_lower is None and zeros.reason is None and "no difference" in zeros.warnings[0]
    verdict = judge({"m": ([], [])}, [spec])
    assert verdict.decision == "nodata" and verdict.score is None and verdict.warnings
    rng = np.random.default_rng(7)
    mixed = judge(
        {"m": ([], []), "n": (rng.normal(size=50), rng.normal(size=50))},
        [spec, CanaryMetricSpec("n")],
    )
    assert mixed.score == 100.0 and mixed.groups[0].nodata == 1


def test_nan_values_are_dropped_with_a_warning() -> None:
    rng = np.random.default_rng(8)
    base = np.append(rng.normal(size=100), np.nan)
    r = compare_distributions(base, rng.normal(size=100), CanaryMetricSpec("m"))
    assert r.n_baseline == 100 and r.warnings and "dropped 1 baseline" in r.warnings[0]
    zero = compare_distributions(
        np.zeros(50), np.ones(50), CanaryMetricSpec("m", allowed_increase=0.2)
    )
    assert any("median is 0" in w for w in zero.warnings)


def test_judgement_round_trips_through_json() -> None:
    rng = np.random.default_rng(9)
    verdict = judge(
        {"a": (rng.normal(size=60), rng.normal(size=60)), "b": ([], [1.0])},
        [CanaryMetricSpec("a", "increase", critical=True), CanaryMetricSpec("b")],
    )
    plain = json.loads(verdict.to_json())
    assert CanaryJudgement.from_dict(plain) == verdict


def test_bad_inputs_raise_with_a_message() -> None:
    with pytest.raises(StatsInputError, match="`direction` must be 'increase'"):
        CanaryMetricSpec("m", direction="up")  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match="`allowed_increase` must be a non-negative"):
        CanaryMetricSpec("m", allowed_increase=-0.1)
    spec = CanaryMetricSpec("m")
    with pytest.raises(StatsInputError, match="`alpha` must be in"):
        compare_distributions([1.0], [2.0], spec, alpha=0)
    with pytest.raises(StatsInputError, match="must be 1-d"):
        compare_distributions([[1.0]], [2.0], spec)
    with pytest.raises(StatsInputError, match=r"no data for \['m'\]"):
        judge({}, [spec])
    with pytest.raises(StatsInputError, match="metric names must be unique"):
        judge({"m": ([1.0], [1.0])}, [spec, spec])
    with pytest.raises(StatsInputError, match="thresholds must satisfy"):
        judge({"m": ([1.0], [1.0])}, [spec], pass_threshold=50, marginal_threshold=80)
    with pytest.raises(StatsInputError, match="group weights must be finite and >= 0"):
        judge({"m": ([1.0], [1.0])}, [spec], group_weights={"default": -1.0})
    with pytest.raises(StatsInputError, match="no metric uses"):
        judge({"m": ([1.0], [1.0])}, [spec], group_weights={"other": 1.0})
    with pytest.raises(StatsInputError, match="rank 0 is outside"):
        pairwise_difference_quantiles(np.ones(2), np.ones(2), [0])
