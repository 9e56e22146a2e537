"""PlanOut operators: PlanOut's hash, the distributions they promise, independence."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from proving.assign.planout import (
    bernoulli_trial,
    planout_hash,
    random_float,
    random_integer,
    sample,
    uniform_choice,
    weighted_choice,
)
from proving.errors import AssignmentError

UNITS = [f"user-{i}" for i in range(6000)]
EXP = "button-test"


def _reference_hash(experiment_salt: str, salt: str, unit: str) -> int:
    # PlanOut reference (facebookarchive/planout, python/planout/ops/random.py, getHash):
    # sha1("<experiment_salt>.<salt>.<unit>"), first 15 hex digits.
    return int(hashlib.sha1(f"{experiment_salt}.{salt}.{unit}".encode()).hexdigest()[:15], 16)


def test_hash_is_planouts() -> None:
    for unit in UNITS[:50]:
        assert planout_hash(unit, "color", EXP) == _reference_hash(EXP, "color", unit)
    # A list unit is joined with dots, as in PlanOut.
    assert planout_hash(["u1", 7], "p", EXP) == _reference_hash(EXP, "p", "u1.7")


def test_uniform_choice_is_uniform() -> None:
    choices = ["red", "green", "blue", "black"]
    draws = Counter(
        uniform_choice(choices, unit=u, salt="color", experiment_salt=EXP) for u in UNITS
    )
    assert stats.chisquare([draws[c] for c in choices]).pvalue > 1e-3


def test_weighted_choice_follows_its_weights() -> None:
    weights = [0.6, 0.3, 0.1]
    draws = Counter(
        weighted_choice(["a", "b", "c"], weights, unit=u, salt="w", experiment_salt=EXP)
        for u in UNITS
    )
    observed = [draws[c] for c in "abc"]
    expected = [w * len(UNITS) for w in weights]
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_bernoulli_trial_rate() -> None:
    hits = sum(bernoulli_trial(0.2, unit=u, salt="b", experiment_salt=EXP) for u in UNITS)
    assert stats.binomtest(hits, len(UNITS), 0.2).pvalue > 1e-3
    assert all(bernoulli_trial(0.0, unit=u, salt="b", experiment_salt=EXP) == 0 for u in UNITS[:50])
    assert all(bernoulli_trial(1.0, unit=u, salt="b", experiment_salt=EXP) == 1 for u in UNITS[:50])


def test_random_integer_covers_its_range_uniformly() -> None:
    draws = [random_integer(3, 8, unit=u, salt="k", experiment_salt=EXP) for u in UNITS]
    assert set(draws) == set(range(3, 9))
    assert stats.chisquare(np.bincount(draws)[3:]).pvalue > 1e-3


def test_random_float_range() -> None:
    draws = np.array(
        [random_float(-1.0, 1.0, unit=u, salt="f", experiment_salt=EXP) for u in UNITS]
    )
    assert draws.min() >= -1.0 and draws.max() <= 1.0
    assert stats.kstest((draws + 1) / 2, "uniform").pvalue > 1e-3


def test_sample_draws_distinct_items_with_uniform_positions() -> None:
    items = list(range(8))
    firsts = []
    for u in UNITS:
        s = sample(items, 3, unit=u, salt="s", experiment_salt=EXP)
        assert len(s) == 3 and len(set(s)) == 3 and set(s) <= set(items)
        firsts.append(s[0])
    assert stats.chisquare(np.bincount(firsts, minlength=8)).pvalue > 1e-3
    assert sorted(sample(items, unit="u", salt="s", experiment_salt=EXP)) == items


def test_parameters_with_different_salts_are_independent() -> None:
    a = [uniform_choice([0, 1, 2], unit=u, salt="font", experiment_salt=EXP) for u in UNITS]
    b = [uniform_choice([0, 1], unit=u, salt="color", experiment_salt=EXP) for u in UNITS]
    table = np.zeros((3, 2))
    np.add.at(table, (a, b), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # The same salt in another experiment is independent too; in the same one it is equal.
    c = [uniform_choice([0, 1], unit=u, salt="color", experiment_salt="other") for u in UNITS]
    table2 = np.zeros((2, 2))
    np.add.at(table2, (b, c), 1)
    assert stats.chi2_contingency(table2).pvalue > 1e-3
    again = [uniform_choice([0, 1], unit=u, salt="color", experiment_salt=EXP) for u in UNITS]
    assert again == b


BAD_CALLS: list[tuple[Callable[..., object], tuple[object, ...], str]] = [
    (uniform_choice, ([],), r"`choices` is empty"),
    (weighted_choice, ([1], [0.5, 0.5]), r"one weight per choice"),
    (weighted_choice, ([1, 2], [0, 0]), r"not all\s+zero"),
    (weighted_choice, ([1, 2], [-1, 2]), r"non-negative"),
    (bernoulli_trial, (1.5,), r"`p` must be in \[0, 1\]"),
    (random_integer, (5, 1), r"below min_value"),
    (random_float, (5, 1), r"below min_value"),
    (sample, ([1, 2], 3), r"cannot make 3 draws"),
]


@pytest.mark.parametrize(("operator", "args", "pattern"), BAD_CALLS)
def test_bad_arguments(
    operator: Callable[..., object], args: tuple[object, ...], pattern: str
) -> None:
    with pytest.raises(AssignmentError, match=pattern):
        operator(*args, unit="u", salt="x", experiment_salt=EXP)
