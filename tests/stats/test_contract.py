"""The contract every estimator of proving.stats passes (scikit-learn's check_estimator idea).

ESTIMATORS is a registry: to put a new estimator under the battery, append an
:class:`EstimatorCase` (a unit-data generator plus the analyze() options that select it).
Every case must:

- round-trip its results through JSON;
- give the same answer when the sufficient statistics are merged first (rows per day,
  summed) as when the union of the data is analysed;
- explain degenerate data (empty arm, zero variance, NaN, a single unit, a negative count)
  with estimate/interval/p-value None and a reason, never a number and never an exception;
- reject at about alpha in A/A tests;
- raise StatsInputError with a message for bad parameters.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from proving.errors import StatsInputError
from proving.stats.analyze import analyze
from proving.stats.results import AnalysisResult
from proving.stats.sufficient import ArmStats

Units = dict[str, np.ndarray]  # "y", optional "d", and covariates "x:<name>"; shape (..., n)


@dataclass(frozen=True)
class EstimatorCase:
    """An estimator under test: how to draw unit data, and how analyze() selects it."""

    name: str
    draw: Callable[[np.random.Generator, tuple[int, ...]], Units]
    kind: str
    options: dict[str, Any] = field(default_factory=dict)


def _mean(rng: np.random.Generator, size: tuple[int, ...]) -> Units:
    return {"y": rng.lognormal(1.0, 0.7, size)}


def _proportion(rng: np.random.Generator, size: tuple[int, ...]) -> Units:
    return {"y": (rng.random(size) < 0.2).astype(float)}


def _ratio(rng: np.random.Generator, size: tuple[int, ...]) -> Units:
    d = rng.poisson(3.0, size) + 1.0
    return {"y": rng.binomial(d.astype(int), 0.3).astype(float), "d": d}


def _cuped(rng: np.random.Generator, size: tuple[int, ...]) -> Units:
    pre = rng.gamma(2.0, 2.0, size)
    has = (rng.random(size) < 0.8).astype(float)
    y = 1.0 + 0.8 * pre * has + rng.normal(0.0, 1.0, size)
    return {"y": y, "x:pre": pre * has, "x:has_pre_period": has}


def _cuped_ratio(rng: np.random.Generator, size: tuple[int, ...]) -> Units:
    pre = rng.gamma(2.0, 1.5, size)
    d = rng.poisson(1.0 + pre) + 1.0
    rate = np.minimum(0.1 * (1.0 + pre / 2.0), 0.9)
    return {"y": rng.binomial(d.astype(int), rate).astype(float), "d": d, "x:pre": pre}


ESTIMATORS: list[EstimatorCase] = [
    EstimatorCase("mean", _mean, "mean"),
    EstimatorCase("mean-z-log", _mean, "mean", {"method": "z", "relative_method": "log"}),
    EstimatorCase("proportion", _proportion, "proportion"),
    EstimatorCase("ratio", _ratio, "ratio"),
    EstimatorCase("cuped", _cuped, "mean"),
    EstimatorCase("cuped-ratio", _cuped_ratio, "ratio", {"effect": "absolute"}),
    # Multiple-comparison corrections (proving.stats.multiple) applied inside analyze().
    EstimatorCase("holm", _mean, "mean", {"correction": "holm"}),
    EstimatorCase("bh-cuped", _cuped, "mean", {"correction": "bh"}),
]


def _stats(units: Units) -> ArmStats:
    """Sufficient statistics of one arm from 1-d unit arrays."""
    covs = {k[2:]: v for k, v in units.items() if k.startswith("x:")}
    return ArmStats.from_values(units["y"], denominators=units.get("d"), covariates=covs)


def _row(case: EstimatorCase, variant: str, stats: ArmStats, **keys: Any) -> dict[str, Any]:
    return {"variant": variant, "metric": case.name, "kind": case.kind, **keys, **stats.to_flat()}


def _slice(units: Units, part: slice) -> Units:
    return {k: v[part] for k, v in units.items()}


def _pair(case: EstimatorCase, seed: int, n: int = 400) -> tuple[Units, Units]:
    rng = np.random.default_rng(seed)
    return case.draw(rng, (n,)), case.draw(rng, (n + 37,))


@pytest.fixture(params=ESTIMATORS, ids=lambda c: c.name)
def case(request: pytest.FixtureRequest) -> EstimatorCase:
    return request.param  # type: ignore[no-any-return]


def test_results_round_trip_through_json(case):
    control, treatment = _pair(case, 1)
    rows = [_row(case, "control", _stats(control)), _row(case, "b", _stats(treatment))]
    result = analyze(rows, **case.options)
    c = result.comparisons[0]
    assert c.reason is None and c.estimate is not None
    text = result.to_json()
    assert AnalysisResult.from_dict(json.loads(text)).to_dict() == result.to_dict()
    assert "NaN" not in text and "Infinity" not in text


def test_merge_then_analyze_equals_analyze_of_the_union(case):
    control, treatment = _pair(case, 2)
    whole = analyze(
        [_row(case, "control", _stats(control)), _row(case, "b", _stats(treatment))],
        **case.options,
    ).comparisons[0]
    daily = []
    for arm, units in (("control", control), ("b", treatment)):
        for part in (slice(0, 150), slice(150, 290), slice(290, None)):
            daily.append(_row(case, arm, _stats(_slice(units, part))))
    merged = analyze(daily, **case.options).comparisons[0]
    for name in ("estimate", "ci_lower", "ci_upper", "p_value", "std_err"):
        assert getattr(merged, name) == pytest.approx(getattr(whole, name), rel=1e-9), name
    if whole.variance_reduction is None:
        assert merged.variance_reduction is None
    else:
        assert merged.variance_reduction == pytest.approx(whole.variance_reduction, rel=1e-9)


def _degenerate_rows(case: EstimatorCase, what: str) -> list[dict[str, Any]]:
    control, treatment = _pair(case, 3)
    ctrl = _row(case, "control", _stats(control))
    if what == "empty arm":
        return [ctrl, _row(case, "b", _stats(_slice(treatment, slice(0, 0))))]
    if what == "single unit":
        return [ctrl, _row(case, "b", _stats(_slice(treatment, slice(0, 1))))]
    if what == "NaN":
        return [ctrl, {**_row(case, "b", _stats(treatment)), "sum": float("nan")}]
    if what == "negative n":
        return [ctrl, {**_row(case, "b", _stats(treatment)), "n": -5}]
    # zero variance: every unit has the same value (and denominator) in both arms
    const = [{k: np.full_like(v, 2.0 if k == "d" else 1.0) if k in ("y", "d") else v
              for k, v in arm.items()} for arm in (control, treatment)]  # fmt: skip
    return [_row(case, "control", _stats(const[0])), _row(case, "b", _stats(const[1]))]


@pytest.mark.parametrize("what", ["empty arm", "single unit", "NaN", "negative n", "zero variance"])
def test_degenerate_data_is_explained_not_answered(case, what):
    result = analyze(_degenerate_rows(case, what), **case.options)
    (c,) = result.comparisons
    assert c.reason, f"{case.name} / {what}: no reason"
    for name in ("estimate", "ci_lower", "ci_upper", "p_value", "std_err"):
        assert getattr(c, name) is None, f"{case.name} / {what}: {name} = {getattr(c, name)}"
    json.loads(result.to_json())  # still valid JSON


def test_a_a_tests_reject_at_alpha(case):
    rng = np.random.default_rng(4)
    reps, n, alpha = 600, 300, 0.05
    arms = case.draw(rng, (2 * reps, n))
    rows = []
    for i in range(2 * reps):
        stats = _stats({k: v[i] for k, v in arms.items()})
        rows.append(_row(case, "control" if i % 2 == 0 else "b", stats, experiment=f"aa{i // 2}"))
    result = analyze(rows, alpha=alpha, **case.options)
    p = np.array([c.p_value for c in result.comparisons], dtype=float)
    assert not np.isnan(p).any()
    rate = np.mean(p < alpha)
    # Binomial tolerance: 4 standard errors of a rate of alpha over `reps` experiments.
    assert abs(rate - alpha) < 4 * np.sqrt(alpha * (1 - alpha) / reps), rate


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"alpha": 0.7}, r"`alpha` must be a number in \(0, 0.5\]; got 0.7. Use a value"),
        ({"effect": "ratio"}, r"`effect` must be one of 'absolute', 'relative'; got 'ratio'"),
        ({"alternative": "bigger"}, r"`alternative` must be one of"),
        ({"method": "bootstrap"}, r"`method` must be one of 'welch', 'z'"),
    ],
)
def test_bad_parameters_raise_with_a_message(case, bad, match):
    control, treatment = _pair(case, 5, n=20)
    rows = [_row(case, "control", _stats(control)), _row(case, "b", _stats(treatment))]
    with pytest.raises(StatsInputError, match=match):
        analyze(rows, **{**case.options, **bad})
