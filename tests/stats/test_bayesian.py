"""Bayesian normal-normal model: closed forms, numerical integration, Monte Carlo,
composition with multiple comparisons and with peeking (prior fits: test_priors.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from proving.errors import StatsInputError
from proving.stats.analyze import analyze
from proving.stats.bayesian import (
    FLAT_PRIOR,
    BayesianResult,
    BayesianResults,
    NormalPrior,
    PriorFit,
    bayes_factor,
    bayesian_compare,
    bayesian_family,
    fit_prior,
    posterior,
)
from proving.stats.effects import mean_moments
from proving.stats.monitor import pair_estimates
from proving.stats.multiple import adjust
from proving.stats.results import ComparisonResult
from proving.stats.sequential import mixture_variances
from proving.stats.sufficient import ArmStats


def _family_results(effect: str, seed: int = 6) -> list[ComparisonResult]:
    rng = np.random.default_rng(seed)
    rows = []
    for metric in range(8):
        truth = 0.04 if metric < 2 else 0.0
        for variant, lift in (("control", 0.0), ("b", truth)):
            y = rng.normal(10 * (1 + lift), 3, 2000)
            rows.append(
                {"variant": variant, "metric": f"m{metric}", "n": y.size, "sum": y.sum(),
                 "sum_squares": (y * y).sum()}
            )  # fmt: skip
    return list(analyze(rows, effect=effect, method="z").comparisons)  # type: ignore[arg-type]


@pytest.mark.parametrize("correction", ["holm", "bh", "none"])
def test_flat_prior_family_reproduces_multiple_adjust(correction: str) -> None:
    results = _family_results("absolute")
    adjusted = adjust(results, method=correction, alpha=0.05)  # type: ignore[arg-type]
    bayes = bayesian_family(results, prior=FLAT_PRIOR, correction=correction, alpha=0.05)  # type: ignore[arg-type]
    for a, b in zip(adjusted, bayes, strict=True):
        assert b.ci_lower == pytest.approx(a.adjusted_ci_lower, abs=1e-9)
        assert b.ci_upper == pytest.approx(a.adjusted_ci_upper, abs=1e-9)
        assert b.metric == a.metric and b.correction == correction


def test_empirical_prior_pools_the_family_and_lowers_error() -> None:
    rng = np.random.default_rng(7)
    truth = rng.normal(0.0, 0.01, 200)
    se = np.full(200, 0.02)
    est = truth + rng.normal(0, se)
    results = [
        ComparisonResult(metric=f"m{i}", variant="b", effect="absolute", estimate=float(e),
                         std_err=0.02, p_value=float(2 * stats.norm.sf(abs(e) / 0.02)),
                         control_mean=1.0)
        for i, e in enumerate(est)
    ]  # fmt: skip
    pooled = bayesian_family(results, prior="empirical")
    flat = bayesian_family(results, prior=FLAT_PRIOR)
    mse_pooled = np.mean([(p.posterior_mean - t) ** 2 for p, t in zip(pooled, truth, strict=True)])
    mse_flat = np.mean([(p.posterior_mean - t) ** 2 for p, t in zip(flat, truth, strict=True)])
    print(f"posterior-mean MSE: empirical prior {mse_pooled:.2e}, flat {mse_flat:.2e}")
    assert mse_pooled < 0.5 * mse_flat
    assert all(p.prior_source == "empirical" for p in pooled)


def test_bayes_factor_stopping_controls_error_under_peeking_and_chance_to_win_does_not() -> None:
    rng = np.random.default_rng(8)
    sims, looks, batch = 3000, 30, 300
    s_c = np.cumsum(rng.normal(0, math.sqrt(batch), (sims, looks)), 1)
    s_t = np.cumsum(rng.normal(0, math.sqrt(batch), (sims, looks)), 1)
    q_c = np.cumsum(rng.chisquare(batch - 1, (sims, looks)), 1) + s_c**2 / (
        batch * np.arange(1, looks + 1)
    )
    q_t = np.cumsum(rng.chisquare(batch - 1, (sims, looks)), 1) + s_t**2 / (
        batch * np.arange(1, looks + 1)
    )
    n = np.broadcast_to(batch * np.arange(1, looks + 1.0), (sims, looks)).ravel()
    mc, vc = mean_moments(n, s_c.ravel(), q_c.ravel())
    mt, vt = mean_moments(n, s_t.ravel(), q_t.ravel())
    se = np.sqrt(vc + vt)
    tau2 = mixture_variances(se, 2 * n, alpha=0.05, tuning_n=5000)
    bf = bayes_factor(mt - mc, se, prior_mean=0.0, prior_variance=tau2)
    by_bf = np.any((bf >= 1 / 0.05).reshape(sims, looks), axis=1).mean()
    flat = posterior(mt - mc, se)
    ctw = flat.chance_to_win.reshape(sims, looks)
    by_ctw = np.any((ctw >= 0.975) | (ctw <= 0.025), axis=1).mean()
    print(f"A/A peeking: Bayes-factor rule {by_bf:.4f}, chance-to-win rule {by_ctw:.4f}")
    assert by_bf <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims)
    assert by_ctw > 0.15


def test_degenerate_data_is_explained() -> None:
    out = bayesian_compare([1.0, 0.0], [0.0, 0.01], [50, 50], [1.0, 0.1], [0.0, 0.01], [50, 50])
    assert "zero variance" in out.reason[0]
    assert "control mean is 0" in out.reason[1]
    assert np.all(np.isnan(out.posterior_mean)) and np.all(np.isnan(out.chance_to_win))
    fam = bayesian_family([ComparisonResult(metric="x", variant="b", reason="an arm is empty")])
    assert fam[0].posterior_mean is None and fam[0].reason == "an arm is empty"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: posterior([0.1], [0.1], alpha=2.0), r"`alpha` must be in \(0, 1\)"),
        (
            lambda: bayesian_compare(1, 0.1, 9, 1, 0.1, 9, relative_method="log"),
            "'log' is not supported",
        ),
        (lambda: bayesian_family([], correction="sidak"), "`correction` must be"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_raises_with_the_fix(call: object, match: str) -> None:
    with pytest.raises(StatsInputError, match=match):
        call()  # type: ignore[operator]


GOLDEN = Path(__file__).resolve().parents[1] / "vectors" / "peers" / "golden.json"


@pytest.mark.parametrize("effect", ["relative", "absolute"])
@pytest.mark.parametrize("prior_name", ["flat", "proper"])
def test_matches_gbstats_bayesian_on_golden_vectors(effect: str, prior_name: str) -> None:
    """gbstats 0.8.0's EffectBayesianABTest (flat, and proper N(0, 0.3^2) on the lift) on
    seeded cases recorded by scripts/peer_oracle.py (CUPED cases excluded: a different
    CUPED estimator)."""
    if not GOLDEN.is_file():
        pytest.skip(f"{GOLDEN} is missing; regenerate it with `make golden`")
    prior = FLAT_PRIOR if prior_name == "flat" else NormalPrior(std=0.3)
    checked = 0
    for case in json.loads(GOLDEN.read_text())["cases"]:
        ref = case["gbstats"][f"{effect}/bayesian-{prior_name}"]
        if case["kind"] == "cuped" or ref["error"]:
            continue
        c, t = ArmStats.from_flat(case["control"]), ArmStats.from_flat(case["treatment"])
        kind = "proportion" if case["kind"] == "proportion" else "mean"
        est, var, _, _ = pair_estimates(c, t, kind, use_cuped=False)
        out = bayesian_compare(
            est[0],
            var[0],
            c.n,
            est[1],
            var[1],
            t.n,
            effect=effect,
            prior=prior,  # type: ignore[arg-type]
        )
        pairs = {
            "estimate": out.posterior_mean,
            "ci_lower": out.ci_lower,
            "ci_upper": out.ci_upper,
            "std_err": out.posterior_std,
            "chance_to_win": out.chance_to_win,
            "risk_control": out.expected_loss_control,
            "risk_treatment": out.expected_loss_treatment,
        }
        for name, ours in pairs.items():
            assert ours[0] == pytest.approx(ref[name], rel=1e-9, abs=1e-15), (case["id"], name)
        checked += 1
    assert checked >= 40


def test_results_round_trip_through_json() -> None:
    family = bayesian_family(_family_results("relative"), prior="empirical")
    for r in family:
        assert BayesianResult.from_dict(json.loads(r.to_json())) == r
    fit = fit_prior([0.01, 0.03, -0.02, 0.0], [0.01, 0.01, 0.02, 0.01])
    assert PriorFit.from_dict(json.loads(fit.to_json())) == fit
    arrays = bayesian_compare([1.0, 1.0], [0.01, 0.0], 100, [1.1, 1.0], [0.01, 0.0], 100)
    plain = json.loads(arrays.to_json())
    assert plain["posterior_mean"][1] is None and plain["reason"][0] is None


@pytest.mark.parametrize(
    ("prior", "correction"),
    [(NormalPrior(mean=0.0, std=0.3), "none"), ("empirical", "holm"), (FLAT_PRIOR, "bh")],
)
def test_family_of_an_analysis_is_columnar_and_equals_one_posterior_at_a_time(
    prior: NormalPrior | str, correction: str
) -> None:
    rng = np.random.default_rng(12)
    rows = []
    for metric in range(12):
        for variant, lift in (("control", 0.0), ("b", 0.03 * (metric % 3))):
            n = 0 if (metric, variant) == (5, "b") else 1500
            y = rng.normal(10 * (1 + lift), 3, n)
            rows.append({"variant": variant, "metric": f"m{metric}", "n": n, "sum": y.sum(),
                         "sum_squares": (y * y).sum()})  # fmt: skip
    result = analyze(rows, effect="relative", method="z")
    options = {"prior": prior, "correction": correction, "alpha": 0.1}
    columnar = bayesian_family(result, **options)  # type: ignore[arg-type]
    listed = bayesian_family(result.comparisons, **options)  # type: ignore[arg-type]
    assert isinstance(columnar, BayesianResults) and isinstance(listed, list)
    assert columnar == listed and len(columnar) == len(listed) == 12
    assert columnar[3] == listed[3] and list(columnar) == listed
    columns = columnar.columns()
    assert columns["posterior_mean"] == [r.posterior_mean for r in listed]
    # Independent truth: the posterior of each comparison alone, at the family's level.
    answered = [c for c in result.comparisons if c.estimate is not None]
    assert len(answered) == 11
    m = len(answered)
    level = {"none": 0.1, "holm": 0.1 / m}.get(correction)
    fitted = (
        fit_prior([c.estimate for c in answered], [c.std_err for c in answered]).prior  # type: ignore[misc]
        if prior == "empirical"
        else prior
    )
    assert isinstance(fitted, NormalPrior)
    for c, b in zip(result.comparisons, listed, strict=True):
        if c.estimate is None:
            assert b.reason == c.reason and b.posterior_mean is None and b.credible_alpha == 0.05
            continue
        mu0, s2 = fitted.on_effect_scale("relative", c.control_mean)
        alpha = b.credible_alpha if level is None else level
        one = posterior([c.estimate], [c.std_err], prior_mean=mu0, prior_variance=s2, alpha=alpha)
        assert b.credible_alpha == alpha
        assert b.posterior_mean == pytest.approx(float(one.posterior_mean[0]), rel=1e-13)
        assert b.ci_lower == pytest.approx(float(one.ci_lower[0]), rel=1e-13)
        assert b.chance_to_win == pytest.approx(float(one.chance_to_win[0]), rel=1e-13)
        assert b.bayes_factor == pytest.approx(float(one.bayes_factor[0]), rel=1e-12)
        assert b.prior_source == fitted.source and b.correction == correction


def test_bayesian_results_needs_every_column() -> None:
    with pytest.raises(StatsInputError, match="column"):
        BayesianResults({"metric": ["m"], "variant": ["b"]})
