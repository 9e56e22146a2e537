"""Sample-ratio mismatch: checked against scipy.stats.chisquare and by simulation."""

from __future__ import annotations

import doctest
import itertools
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from proving.errors import StatsInputError
from proving.stats import srm
from proving.stats.srm import SRMResult, srm_check, srm_sequential


@pytest.mark.parametrize(
    ("observed", "weights"),
    [
        ([5000, 5000], None),
        ([5000, 5400], None),
        ([1000, 2010], [1, 2]),
        ([3310, 3302, 3388], [0.34, 0.33, 0.33]),
        ([812, 7950, 1230], [10, 80, 10]),
        ([12, 30], [50, 50]),
    ],
)
def test_matches_scipy_chisquare(observed: list[int], weights: list[float] | None) -> None:
    result = srm_check(observed, weights)
    w = np.ones(len(observed)) if weights is None else np.asarray(weights, dtype=float)
    f_exp = np.sum(observed) * w / w.sum()
    ref = stats.chisquare(observed, f_exp)
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert result.df == len(observed) - 1
    np.testing.assert_allclose(result.expected, f_exp, rtol=1e-12)
    assert result.alarm == (ref.pvalue < 0.001)
    assert sum(result.weights or ()) == pytest.approx(1.0)


def test_alarm_threshold_is_configurable() -> None:
    result = srm_check([5000, 5300])  # p = 0.0031
    assert not result.alarm
    assert srm_check([5000, 5300], threshold=0.01).alarm


def test_deviations_and_names() -> None:
    result = srm_check([900, 1100], variants=["control", "candidate"])
    assert result.variants == ("control", "candidate")
    assert result.deviations == pytest.approx((-0.1, 0.1))
    assert result.alarm


def test_a_a_false_alarm_rate_is_the_threshold() -> None:
    """Correct allocation: alarms at p < 0.05 occur 5% of the time (binomial tolerance)."""
    rng = np.random.default_rng(20261123)
    reps = 2000
    w = np.array([0.2, 0.3, 0.5])
    counts = rng.multinomial(20_000, w, size=reps)
    alarms = sum(srm_check(c, w, threshold=0.05).alarm for c in counts)
    se = math.sqrt(0.05 * 0.95 / reps)
    assert abs(alarms / reps - 0.05) < 4 * se


def test_detects_a_real_mismatch() -> None:
    """A 2% loss of treatment units at 400k units is caught almost always."""
    rng = np.random.default_rng(3)
    counts = rng.multinomial(400_000, [0.5 / 0.99, 0.49 / 0.99], size=200)
    assert np.mean([srm_check(c).alarm for c in counts]) > 0.95


def test_zero_weight_variant_with_units_is_an_alarm() -> None:
    result = srm_check([100, 100, 5], [50, 50, 0], variants=["a", "b", "off"])
    assert result.alarm
    assert result.p_value is None and result.statistic is None
    assert "off" in (result.reason or "")


def test_zero_weight_variant_without_units_is_left_out() -> None:
    result = srm_check([1000, 1040, 0], [50, 50, 0])
    ref = stats.chisquare([1000, 1040])
    assert result.df == 1
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert result.deviations is not None and result.deviations[2] is None


@pytest.mark.parametrize(
    ("observed", "weights", "reason"),
    [
        ([0, 0], None, "no units"),
        ([float("nan"), 10], None, "NaN"),
        ([-1, 10], None, "negative"),
        ([10, 10], [-1, 2], "weights"),
        ([10, 10], [0, 0], "weights"),
        ([10, 10], [float("inf"), 1], "weights"),
        ([10], None, "fewer than two"),
    ],
)
def test_degenerate_inputs_are_explained(
    observed: list[float], weights: list[float] | None, reason: str
) -> None:
    result = srm_check(observed, weights)
    assert result.p_value is None and result.statistic is None
    assert not result.alarm
    assert reason in (result.reason or "")


def test_small_counts_warn() -> None:
    result = srm_check([3, 4])
    assert result.p_value is not None
    assert any("below 5" in w for w in result.warnings)


def test_json_round_trip() -> None:
    result = srm_check([5000, 5400], variants=["a", "b"])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["p_value"] == pytest.approx(result.p_value)
    assert data["variants"] == ["a", "b"]
    assert data["alarm"] is True
    assert SRMResult.from_dict(data) == result
    null = json.loads(srm_check([0, 0]).to_json())
    assert null["p_value"] is None and null["reason"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"observed": []}, "`observed` is empty"),
        ({"observed": [1, 2], "weights": [1]}, "`weights` has 1 entries"),
        ({"observed": [1, 2], "threshold": 0.0}, r"`threshold` must be in \(0, 1\); got 0.0"),
        ({"observed": [1, 2], "threshold": 1.5}, "got 1.5"),
        ({"observed": [1, 2], "variants": ["a"]}, "`variants` has 1 names"),
    ],
)
def test_bad_parameters_raise(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(StatsInputError, match=match):
        srm_check(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("observed", "weights", "concentration"),
    [([5000, 5600], None, 100.0), ([120, 95, 301], [1, 1, 2], 10.0), ([40, 7], [80, 20], 1.0)],
)
def test_sequential_bayes_factor_matches_scipy(
    observed: list[int], weights: list[float] | None, concentration: float
) -> None:
    """BF = Dirichlet-multinomial pmf / multinomial pmf (the multinomial coefficient
    cancels); both from scipy.stats."""
    w = np.ones(len(observed)) if weights is None else np.asarray(weights, dtype=float)
    theta = w / w.sum()
    n = int(np.sum(observed))
    log_bf = stats.dirichlet_multinomial.logpmf(
        observed, concentration * theta, n
    ) - stats.multinomial.logpmf(observed, n, theta)
    result = srm_sequential(observed, weights, concentration=concentration)
    assert result.statistic == pytest.approx(log_bf, rel=1e-9)
    assert result.p_value == pytest.approx(min(1.0, math.exp(-log_bf)), rel=1e-9)
    assert result.df is None and "sequential" in result.method


def test_sequential_check_stays_valid_under_continuous_monitoring() -> None:
    """300 A/A experiments checked after each of 30 batches: the sequential test alarms
    (ever) at most at the threshold; the chi-square test checked the same way far more."""
    rng = np.random.default_rng(77)
    reps, looks, batch, level = 300, 30, 200, 0.05
    counts = np.cumsum(rng.multinomial(batch, [0.5, 0.5], size=(reps, looks)), axis=1)
    sequential_alarms = 0
    for r in range(reps):
        p = None
        for look in range(looks):
            res = srm_sequential(counts[r, look], threshold=level, previous_p_value=p)
            p = res.p_value
        sequential_alarms += bool(p is not None and p < level)
    # The fixed-horizon chi-square, peeked at every look (computed directly with scipy).
    expected = counts.sum(axis=2, keepdims=True) / 2
    chi2 = ((counts - expected) ** 2 / expected).sum(axis=2)
    peeking_alarms = np.any(stats.chi2.sf(chi2, 1) < level, axis=1).mean()
    assert sequential_alarms / reps <= level + 4 * math.sqrt(level * (1 - level) / reps)
    assert peeking_alarms > 2 * level


def test_sequential_check_detects_a_mismatch_and_keeps_the_running_minimum() -> None:
    rng = np.random.default_rng(78)
    counts = np.cumsum(rng.multinomial(2_000, [0.52, 0.48], size=40), axis=0)
    p = None
    history = []
    for c in counts:
        p = srm_sequential(c, previous_p_value=p).p_value
        history.append(p)
    assert history[-1] is not None and history[-1] < 0.001
    assert all(b <= a for a, b in itertools.pairwise(history))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"concentration": 0.0}, r"`concentration` must be a positive number; got 0.0"),
        ({"previous_p_value": 1.5}, r"`previous_p_value` must be in \[0, 1\]; got 1.5"),
        ({"threshold": 2.0}, r"`threshold` must be in \(0, 1\)"),
    ],
)
def test_sequential_bad_parameters_raise(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(StatsInputError, match=match):
        srm_sequential([10, 12], **kwargs)  # type: ignore[arg-type]


def test_sequential_degenerate_inputs_are_explained() -> None:
    assert "no units" in (srm_sequential([0, 0]).reason or "")
    assert srm_sequential([5, 3, 1], [1, 1, 0]).alarm


PEERS_PYTHON = Path(__file__).resolve().parents[2] / ".venv-peers" / "bin" / "python"
GBSTATS_SRM = """
import json
from gbstats.utils import check_srm
cases = [([5000, 5400], [0.5, 0.5]), ([3310, 3302, 3388], [0.34, 0.33, 0.33]),
         ([1000, 1040, 0], [50, 50, 0]), ([0, 0], [1, 1])]
print(json.dumps([float(check_srm(u, w)) for u, w in cases]))
"""


def test_agrees_with_gbstats_check_srm_and_pins_the_differences() -> None:
    """gbstats 0.8.0 utils.check_srm, run in the peers venv (numpy<2)."""
    if not PEERS_PYTHON.exists():
        pytest.skip(f"the peers venv is absent ({PEERS_PYTHON}); create it with `make peers`")
    done = subprocess.run(
        [str(PEERS_PYTHON), "-c", GBSTATS_SRM], capture_output=True, text=True, timeout=300,
        check=True,
    )  # fmt: skip
    p_equal, p_three, p_zero_weight, p_empty = json.loads(done.stdout.strip().splitlines()[-1])
    assert srm_check([5000, 5400]).p_value == pytest.approx(p_equal, rel=1e-9)
    assert srm_check([3310, 3302, 3388], [0.34, 0.33, 0.33]).p_value == pytest.approx(
        p_three, rel=1e-9
    )
    # A weight-0 arm: gbstats skips it in the statistic but still counts it in the degrees
    # of freedom (2 instead of 1), so its p-value is larger; proving drops it from both.
    ours = srm_check([1000, 1040, 0], [50, 50, 0])
    assert ours.df == 1 and ours.p_value is not None
    statistic = 2 * 20**2 / 1020
    assert p_zero_weight == pytest.approx(stats.chi2.sf(statistic, 2), rel=1e-9)
    assert ours.p_value == pytest.approx(stats.chi2.sf(statistic, 1), rel=1e-9)
    # No units: gbstats answers p = 1, a number that looks real; proving explains instead.
    assert p_empty == 1.0
    assert srm_check([0, 0]).p_value is None


def test_docstring_examples() -> None:
    assert doctest.testmod(srm).failed == 0
