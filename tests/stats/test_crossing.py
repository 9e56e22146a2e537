"""Crossing probabilities by recursive integration against the normal tail and scipy's
multivariate normal (Z_j, Z_k correlated sqrt(t_j / t_k) under Brownian motion)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from proving.errors import StatsInputError
from proving.stats import group_sequential
from proving.stats.crossing import exit_probabilities


def test_exit_probabilities_single_look_is_the_normal_tail() -> None:
    p_up, p_lo = exit_probabilities([1.96], [-1.96], [1.0], drift=0.7)
    assert p_up[0] == pytest.approx(stats.norm.sf(1.96 - 0.7), rel=1e-12)
    assert p_lo[0] == pytest.approx(stats.norm.cdf(-1.96 - 0.7), rel=1e-12)


def test_two_looks_equal_the_bivariate_normal() -> None:
    t = np.array([0.4, 1.0])
    upper, lower, drift = np.array([2.5, 2.0]), np.array([-2.5, -2.0]), 1.3
    p_up, p_lo = exit_probabilities(upper, lower, t, drift=drift)
    mean = drift * np.sqrt(t)
    r = np.sqrt(t[0] / t[1])
    mvn = stats.multivariate_normal(mean=mean, cov=[[1.0, r], [r, 1.0]])
    # P(never crossing) = P(|Z1| < 2.5, |Z2| < 2.0), by inclusion-exclusion on the box.
    stay = (
        mvn.cdf([upper[0], upper[1]]) - mvn.cdf([lower[0], upper[1]])
        - mvn.cdf([upper[0], lower[1]]) + mvn.cdf([lower[0], lower[1]])
    )  # fmt: skip
    assert p_up.sum() + p_lo.sum() == pytest.approx(1.0 - stay, abs=2e-6)
    first = stats.norm.sf(upper[0] - mean[0]) + stats.norm.cdf(lower[0] - mean[0])
    assert p_up[0] + p_lo[0] == pytest.approx(first, rel=1e-10)


def test_mismatched_boundaries_raise() -> None:
    with pytest.raises(StatsInputError, match="one boundary per look"):
        exit_probabilities([2.0], [-2.0, -2.0], [0.5, 1.0])
    with pytest.raises(StatsInputError, match="strictly increasing"):
        exit_probabilities([2.0, 2.0], [-2.0, -2.0], [0.5, 0.5])


def test_old_import_path_still_works() -> None:
    assert group_sequential.exit_probabilities is exit_probabilities
