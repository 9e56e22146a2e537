"""Priors: scale conversion with the control mean, and empirical-Bayes fits against
statsmodels' DerSimonian-Laird, a direct likelihood maximisation and a known truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.meta_analysis import combine_effects

from proving.errors import StatsInputError
from proving.stats import bayesian
from proving.stats.priors import FLAT_PRIOR, NormalPrior, PriorFit, fit_prior


def test_fit_prior_moments_equals_statsmodels_dersimonian_laird() -> None:
    rng = np.random.default_rng(3)
    se = rng.uniform(0.01, 0.04, 40)
    d = rng.normal(0.01, 0.02, 40) + rng.normal(0, se)
    fit = fit_prior(d, se, method="moments")
    ref = combine_effects(d, se**2, method_re="chi2")
    assert fit.tau2 == pytest.approx(ref.tau2, rel=1e-10)
    assert fit.mean == pytest.approx(ref.mean_effect_re, rel=1e-10)


def test_fit_prior_mle_maximizes_the_marginal_likelihood() -> None:
    rng = np.random.default_rng(4)
    se = rng.uniform(0.01, 0.04, 60)
    d = rng.normal(-0.005, 0.015, 60) + rng.normal(0, se)
    fit = fit_prior(d, se, method="mle")

    def nll(x: np.ndarray) -> float:
        return float(-stats.norm.logpdf(d, x[0], np.sqrt(x[1] ** 2 + se**2)).sum())

    ref = optimize.minimize(
        nll,
        [0.0, 0.01],
        method="Nelder-Mead",
        options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 20000},
    )
    assert fit.mean == pytest.approx(ref.x[0], abs=1e-6)
    assert math.sqrt(fit.tau2) == pytest.approx(abs(ref.x[1]), rel=1e-4)
    assert fit.log_likelihood == pytest.approx(-ref.fun, rel=1e-9)


def test_fit_prior_recovers_a_known_truth_and_flags_tau_zero() -> None:
    rng = np.random.default_rng(5)
    se = rng.uniform(0.005, 0.02, 2000)
    d = rng.normal(0.01, 0.03, 2000) + rng.normal(0, se)
    for method in ("mle", "moments"):
        fit = fit_prior(d, se, method=method)  # type: ignore[arg-type]
        assert fit.mean == pytest.approx(0.01, abs=0.002)
        assert math.sqrt(fit.tau2) == pytest.approx(0.03, rel=0.05)
        assert fit.prior.source == "empirical"
    same = fit_prior([0.01, 0.0101, 0.0099, 0.01], [0.01] * 4)
    assert same.tau2 == 0.0
    assert any("tau^2 = 0" in w for w in same.warnings)


def test_prior_converts_between_scales_with_the_control_mean() -> None:
    control_mean = np.array([20.0, -4.0])
    mean, var = NormalPrior(mean=0.1, std=0.3).on_effect_scale("absolute", control_mean)
    np.testing.assert_allclose(mean, [2.0, 0.4])  # |control mean| scales the lift
    np.testing.assert_allclose(var, [36.0, 1.44])
    mean, var = NormalPrior(std=2.0, scale="absolute").on_effect_scale("relative", [20.0])
    np.testing.assert_allclose(var, [0.01])
    _, flat = FLAT_PRIOR.on_effect_scale("relative", [20.0])
    assert np.isinf(flat).all()


def test_fit_round_trips_through_json() -> None:
    fit = fit_prior([0.02, -0.01, 0.05, 0.0, 0.03], [0.01] * 5)
    assert PriorFit.from_dict(json.loads(json.dumps(fit.to_dict()))) == fit


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: NormalPrior(std=-1.0), r"prior `std` must be a positive number"),
        (lambda: NormalPrior(scale="log"), r"prior `scale` must be"),  # type: ignore[arg-type]
        (lambda: fit_prior([0.1, 0.2], [0.1, 0.1]), "needs at least 3 past effects"),
        (lambda: fit_prior([0.1] * 3, [0.1] * 3, method="em"), "`method` must be 'mle'"),  # type: ignore[arg-type]
        (lambda: fit_prior([0.1] * 3, [0.1] * 2), "equal length"),
    ],
)
def test_bad_input_raises_with_the_fix(call: object, match: str) -> None:
    with pytest.raises(StatsInputError, match=match):
        call()  # type: ignore[operator]


def test_old_import_path_still_works() -> None:
    assert bayesian.fit_prior is fit_prior and bayesian.NormalPrior is NormalPrior
