"""The sequential canary judge: closed form, validity under repeated looks, power."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
from scipy import integrate, stats

import proving.stats.canary_sequential as sequential_module
from proving.errors import StatsInputError
from proving.stats.canary import CanaryMetricSpec
from proving.stats.canary_sequential import (
    SequentialCanaryResult,
    SequentialCanaryTest,
    log_mixture_martingale,
)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(sequential_module).failed == 0


@pytest.mark.parametrize(("s", "f", "a"), [(0, 0, 10.0), (12, 3, 1.0), (40, 25, 10.0), (5, 30, 4)])
def test_closed_form_equals_numerical_integral(s: int, f: int, a: float) -> None:
    prior = stats.beta(a, a)

    def integrand(p: float) -> float:
        return float((2 * p) ** s * (2 * (1 - p)) ** f * prior.pdf(p))

    value, _ = integrate.quad(integrand, 0.5, 1.0, epsabs=1e-13, epsrel=1e-11)
    expected = value / prior.sf(0.5)
    assert float(np.exp(log_mixture_martingale(s, f, a))) == pytest.approx(expected, rel=1e-8)


def _peek(
    spec: CanaryMetricSpec,
    draw: object,
    *,
    reps: int,
    looks: int,
    per_look: int,
    seed: int,
) -> tuple[float, list[int]]:
    rng = np.random.default_rng(seed)
    alarms, stops = 0, []
    for _ in range(reps):
        test = SequentialCanaryTest(spec)
        for _ in range(looks):
            base, canary = draw(rng, per_look)  # type: ignore[operator]
            result = test.update(base, canary)
            if result.passed is False:
                alarms += 1
                stops.append(result.look)
                break
    return alarms / reps, stops


def test_repeated_looks_keep_false_alarms_below_alpha_where_peeking_does_not() -> None:
    reps, looks, per_look = 600, 20, 30

    def same(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.lognormal(3, 1, k), rng.lognormal(3, 1, k)

    rate, _ = _peek(
        CanaryMetricSpec("latency", "either"),
        same,
        reps=reps,
        looks=looks,
        per_look=per_look,
        seed=1,
    )
    # The fixed-sample Mann-Whitney test at every one of the same looks, on the same design.
    rng = np.random.default_rng(1)
    base = rng.lognormal(3, 1, (reps, looks * per_look))
    canary = rng.lognormal(3, 1, (reps, looks * per_look))
    peeked = np.zeros(reps, dtype=bool)
    for look in range(1, looks + 1):
        k = look * per_look
        p = stats.mannwhitneyu(canary[:, :k], base[:, :k], axis=1).pvalue
        peeked |= p < 0.05
    naive = float(peeked.mean())
    print(
        f"false alarms over {looks} looks: sequential {rate:.3f}, peeked Mann-Whitney {naive:.3f}"
    )
    assert rate <= 0.05
    assert naive > 0.12  # peeking at 20 looks more than doubles the nominal 5%


def test_discrete_metric_with_ties_stays_valid() -> None:
    def same(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.poisson(1.0, k), rng.poisson(1.0, k)

    rate, _ = _peek(
        CanaryMetricSpec("errors", "increase"), same, reps=600, looks=20, per_look=30, seed=2
    )
    assert rate <= 0.05


def test_tolerance_holds_the_line_at_the_allowed_shift() -> None:
    # The canary is exactly 10% slower and 10% is allowed: no alarm beyond alpha.
    def shifted(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.normal(100, 10, k), rng.normal(110, 10, k)

    spec = CanaryMetricSpec("latency", "increase", allowed_increase=0.10)
    rng = np.random.default_rng(3)
    alarms = 0
    for _ in range(500):
        test = SequentialCanaryTest(spec, reference=100.0)
        for _ in range(15):
            result = test.update(*shifted(rng, 30))
        alarms += result.passed is False
    assert alarms / 500 <= 0.05
    # Without the tolerance the same canary is caught almost always.
    rate, stops = _peek(
        CanaryMetricSpec("latency", "increase"), shifted, reps=200, looks=15, per_look=30, seed=4
    )
    assert rate > 0.95 and np.median(stops) <= 2


def test_regression_is_caught_and_improvement_passes() -> None:
    def slower(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.gamma(2, 50, k), rng.gamma(2, 50, k) * 1.2

    rate, _ = _peek(
        CanaryMetricSpec("latency", "increase"), slower, reps=200, looks=20, per_look=50, seed=5
    )
    assert rate > 0.9
    test = SequentialCanaryTest(CanaryMetricSpec("latency", "increase"))
    rng = np.random.default_rng(6)
    for _ in range(20):
        base, canary = slower(rng, 50)
        result = test.update(canary, base)  # the canary is the faster one
    assert result.classification == "low" and result.passed is True
    assert result.estimate is not None and result.estimate < 0.5


def test_state_unpaired_values_wait_and_classification_is_sticky() -> None:
    test = SequentialCanaryTest(CanaryMetricSpec("m", "increase"), prior_strength=1.0)
    first = test.update([1.0, 2.0, 3.0], [5.0])
    assert first.n_pairs == 1 and first.n_higher == 1
    second = test.update([], [6.0, 7.0])  # pairs with the two buffered baseline values
    assert second.n_pairs == 3 and second.n_higher == 3
    for _ in range(10):
        flagged = test.update(np.zeros(20), np.ones(20))
    assert flagged.classification == "high" and flagged.stopped_at_look is not None
    stop = flagged.stopped_at_look
    calm = test.update(np.ones(200), np.zeros(200))
    assert calm.classification == "high" and calm.stopped_at_look == stop
    assert calm.p_value_high == flagged.p_value_high  # running minimum kept


def test_a_harmless_alarm_never_hides_a_later_regression() -> None:
    test = SequentialCanaryTest(CanaryMetricSpec("latency", "increase"), prior_strength=1.0)
    for _ in range(5):
        faster = test.update(np.ones(20), np.zeros(20))  # the canary is faster: harmless
    assert faster.classification == "low" and faster.passed is True
    assert faster.stopped_at_look is None
    for _ in range(30):
        slower = test.update(np.zeros(20), np.ones(20))  # then it regresses
    assert slower.classification == "high" and slower.passed is False
    assert slower.stopped_at_look is not None and slower.stopped_at_look > 5


def test_no_data_and_nan_values() -> None:
    test = SequentialCanaryTest(CanaryMetricSpec("m"))
    empty = test.update([], [])
    assert empty.classification == "nodata" and empty.passed is None and empty.reason
    ties = test.update([0.0, 0.0], [0.0, 0.0])  # zero errors on both sides
    assert ties.classification == "pass" and ties.passed is True and ties.n_pairs == 2
    assert ties.estimate is None and ties.warnings
    nan = test.update([1.0, np.nan], [2.0, 3.0])
    assert nan.warnings and nan.n_pairs == 3


def test_result_round_trips_through_json() -> None:
    test = SequentialCanaryTest(CanaryMetricSpec("m", "increase"))
    result = test.update([1.0, 2.0, 3.0], [2.0, 3.0, 1.0])
    assert SequentialCanaryResult.from_dict(json.loads(result.to_json())) == result


def test_bad_inputs_raise_with_a_message() -> None:
    spec = CanaryMetricSpec("m", allowed_increase=0.1)
    with pytest.raises(StatsInputError, match="need a fixed `reference`"):
        SequentialCanaryTest(spec)
    with pytest.raises(StatsInputError, match="`alpha` must be in"):
        SequentialCanaryTest(CanaryMetricSpec("m"), alpha=1.0)
    with pytest.raises(StatsInputError, match="`prior_strength` must be a positive"):
        SequentialCanaryTest(CanaryMetricSpec("m"), prior_strength=0)
    with pytest.raises(StatsInputError, match="values must be 1-d"):
        SequentialCanaryTest(CanaryMetricSpec("m")).update([[1.0]], [1.0])
