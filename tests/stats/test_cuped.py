"""CUPED against statsmodels OLS, for ratio metrics, missing pre-period data and singular X."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from statsmodels.regression.linear_model import OLS

from proving.stats.analyze import analyze
from proving.stats.cuped import cuped_adjust
from proving.stats.effects import compare
from proving.stats.ratio import linearize
from proving.stats.sufficient import ArmStats


def _rows(arms: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]], **kw: object) -> list[dict]:
    out = []
    for variant, (y, covs) in arms.items():
        flat = ArmStats.from_values(y, covariates=covs).to_flat()
        out.append({"variant": variant, "metric": "revenue", **kw, **flat})
    return out


def _world(rng: np.random.Generator, n: int, lift: float, scale: float) -> tuple:
    x1 = rng.gamma(2.0, 3.0, n)
    x2 = rng.normal(size=n)
    y = 2.0 + 0.9 * x1 - 1.5 * x2 + rng.normal(0.0, scale, n) + lift
    return y, {"pre": x1, "score": x2}


def test_point_estimate_equals_the_ols_treatment_coefficient():
    rng = np.random.default_rng(21)
    arms = {
        "control": _world(rng, 900, 0.0, 2.0),
        "b": _world(rng, 1000, 0.4, 3.0),
        "c": _world(rng, 800, -0.2, 2.5),
    }
    result = analyze(_rows(arms), effect="absolute", method="z")
    y = np.concatenate([a[0] for a in arms.values()])
    x = np.vstack([np.column_stack([a[1]["pre"], a[1]["score"]]) for a in arms.values()])
    sizes = [len(a[0]) for a in arms.values()]
    dummies = np.zeros((len(y), 2))
    dummies[sizes[0] : sizes[0] + sizes[1], 0] = 1
    dummies[sizes[0] + sizes[1] :, 1] = 1
    fit = OLS(y, np.column_stack([np.ones(len(y)), dummies, x])).fit(cov_type="HC1")
    for j, variant in enumerate(("b", "c")):
        c = result.find("revenue", variant)
        assert c.cuped and c.covariates == ("pre", "score")
        assert_allclose(c.estimate, fit.params[1 + j], rtol=1e-9)
        # HC1 also carries the estimation error of beta and a pooled-residual df correction
        # (n / (n - p)); CUPED treats beta as known. Both estimate the same asymptotic
        # variance (Lin 2013), so they agree to O(1/n): here within 2%.
        assert_allclose(c.std_err, fit.bse[1 + j], rtol=0.02)


def test_reported_variance_reduction_is_the_share_of_effect_variance_removed():
    rng = np.random.default_rng(22)
    arms = {"control": _world(rng, 2000, 0.0, 2.0), "b": _world(rng, 2000, 0.3, 2.0)}
    adjusted = analyze(_rows(arms), effect="absolute").comparisons[0]
    plain = analyze(_rows(arms), effect="absolute", cuped=False).comparisons[0]
    assert plain.variance_reduction is None and not plain.cuped
    assert_allclose(adjusted.variance_reduction, 1 - adjusted.std_err**2 / plain.std_err**2)
    assert adjusted.variance_reduction > 0.5


def test_ratio_cuped_regresses_the_linearized_ratio():
    rng = np.random.default_rng(23)
    units = {}
    for variant, rate in (("control", 0.30), ("b", 0.32)):
        pre = rng.gamma(2.0, 2.0, 1500)
        sessions = rng.poisson(1 + pre) + 1.0
        # Users who clicked more before click more now: the click rate rises with `pre`.
        user_rate = np.minimum(rate * (0.3 + pre / 3.0), 0.95)
        clicks = rng.binomial(sessions.astype(int), user_rate).astype(float)
        units[variant] = (clicks, sessions, pre)
    rows = [
        {
            "variant": v,
            "metric": "ctr",
            **ArmStats.from_values(y, denominators=d, covariates={"pre": x}).to_flat(),
        }
        for v, (y, d, x) in units.items()
    ]
    c = analyze(rows, effect="absolute", method="z").comparisons[0]
    z, x, treat, raw = [], [], [], []
    for i, (y, d, pre) in enumerate(units.values()):
        r = y.sum() / d.sum()
        z.append((y - r * d) / d.mean())
        x.append(pre)
        treat.append(np.full(len(y), float(i)))
        raw.append(r)
    fit = OLS(
        np.concatenate(z),
        np.column_stack([np.ones(3000), np.concatenate(treat), np.concatenate(x)]),
    ).fit()
    # The linearized values have mean 0 in each arm, so OLS on z gives exactly the CUPED
    # shift -(xbar_t - xbar_c) beta; the effect is the raw difference plus that shift.
    assert_allclose(c.estimate, raw[1] - raw[0] + fit.params[1], rtol=1e-9)
    beta = fit.params[2]
    var = sum(np.var(zi - beta * xi, ddof=1) / len(zi) for zi, xi in zip(z, x, strict=True))
    assert_allclose(c.std_err, np.sqrt(var), rtol=1e-9)
    assert c.variance_reduction is not None and c.variance_reduction > 0.1


def _moments(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacked sufficient statistics of unit data shaped (arms, units, variables)."""
    return (
        np.full(v.shape[0], float(v.shape[1])),
        v.sum(axis=1),
        np.einsum("aui,auj->aij", v, v),
    )


def _effects(v: np.ndarray, reps: int) -> tuple[np.ndarray, np.ndarray]:
    """CUPED absolute effects for arms laid out as (control, treatment) per replication."""
    lin = linearize(*_moments(v), ratio=False)
    group = np.repeat(np.arange(reps), 2)
    if v.shape[2] > 1:
        adjusted = cuped_adjust(lin, group)
        est, var = adjusted.estimate, adjusted.variance
    else:
        est, var = lin.estimate, lin.variance
    out = compare(est[0::2], var[0::2], 1000, est[1::2], var[1::2], 1000, effect="absolute")
    return out.estimate, out.std_err


def test_missing_pre_period_indicator_is_unbiased_and_beats_dropping_units():
    rng = np.random.default_rng(24)
    reps, n, effect = 400, 1000, 1.0
    has_pre = rng.random((2 * reps, n)) < 0.7
    pre = rng.gamma(2.0, 5.0, (2 * reps, n))
    treated = np.tile([0.0, 1.0], reps)[:, None]
    # Returning users follow their history; new users have a different baseline.
    y = np.where(has_pre, 3.0 + 0.8 * pre, 15.0) + rng.normal(0, 3.0, (2 * reps, n))
    y = y + effect * treated
    x0 = np.where(has_pre, pre, 0.0)
    indicator, _ = _effects(np.stack([y, x0, has_pre.astype(float)], axis=2), reps)
    zero_only, _ = _effects(np.stack([y, x0], axis=2), reps)
    # Dropping the units without history: analyse only the returning users.
    dropped = []
    for a in range(0, 2 * reps, 2):
        c, t = has_pre[a], has_pre[a + 1]
        arms = [
            ArmStats.from_values(y[a][c], covariates={"pre": pre[a][c]}),
            ArmStats.from_values(y[a + 1][t], covariates={"pre": pre[a + 1][t]}),
        ]
        lin = linearize(
            np.array([arms[0].n, arms[1].n]),
            np.stack([arms[0].moments()[1], arms[1].moments()[1]]),
            np.stack([arms[0].moments()[2], arms[1].moments()[2]]),
            ratio=False,
        )
        adj = cuped_adjust(lin, np.array([0, 0]))
        dropped.append(adj.estimate[1] - adj.estimate[0])
    dropped_arr = np.array(dropped)
    sd = indicator.std()
    assert abs(indicator.mean() - effect) < 4 * sd / np.sqrt(reps)  # unbiased
    assert indicator.var() < 0.85 * dropped_arr.var()  # keeps the new users' data
    assert indicator.var() < 0.5 * zero_only.var()  # one slope for two populations is poor


def test_missing_pre_period_pattern_through_analyze_reports_both_covariates():
    rng = np.random.default_rng(25)
    arms = {}
    for variant, lift in (("control", 0.0), ("b", 1.0)):
        has = rng.random(3000) < 0.7
        pre = np.where(has, rng.gamma(2.0, 5.0, 3000), 0.0)
        y = np.where(has, 3 + 0.8 * pre, 15.0) + rng.normal(0, 3, 3000) + lift
        arms[variant] = (y, {"pre": pre, "has_pre_period": has.astype(float)})
    c = analyze(_rows(arms), effect="absolute").comparisons[0]
    assert c.covariates == ("pre", "has_pre_period")
    assert c.variance_reduction is not None and c.variance_reduction > 0.6
    assert c.ci_lower is not None and c.ci_upper is not None
    assert c.ci_lower < 1.0 < c.ci_upper


def test_duplicate_covariate_is_dropped_with_a_warning():
    rng = np.random.default_rng(26)
    arms = {"control": _world(rng, 700, 0.0, 2.0), "b": _world(rng, 700, 0.3, 2.0)}
    single = analyze(_rows(arms), effect="absolute").comparisons[0]
    doubled = {v: (y, {**covs, "pre_copy": 2.0 * covs["pre"]}) for v, (y, covs) in arms.items()}
    c = analyze(_rows(doubled), effect="absolute").comparisons[0]
    assert c.covariates == ("pre", "score")
    assert any("'pre_copy' is collinear" in w for w in c.warnings)
    assert_allclose(c.estimate, single.estimate, rtol=1e-9)
    assert_allclose(c.std_err, single.std_err, rtol=1e-9)


def test_constant_covariate_is_ignored_with_a_warning():
    rng = np.random.default_rng(27)
    arms = {
        v: (rng.normal(size=500) + lift, {"flag": np.ones(500)})
        for v, lift in (("control", 0.0), ("b", 0.2))
    }
    c = analyze(_rows(arms), effect="absolute").comparisons[0]
    plain = analyze(_rows(arms), effect="absolute", cuped=False).comparisons[0]
    assert not c.cuped and c.variance_reduction is None and c.covariates == ()
    assert any("'flag' has no variance" in w for w in c.warnings)
    assert c.p_value == pytest.approx(plain.p_value, rel=1e-12)


def test_a_degenerate_arm_does_not_spoil_the_pooled_coefficient():
    rng = np.random.default_rng(28)
    arms = {"control": _world(rng, 600, 0.0, 2.0), "b": _world(rng, 600, 0.3, 2.0)}
    two = analyze(_rows(arms), effect="absolute")
    rows = _rows(arms)
    broken = dict(rows[1], variant="c", covariate_1_sum=float("nan"))
    three = analyze([*rows, broken], effect="absolute")
    assert three.find("revenue", "c").reason is not None
    assert_allclose(three.find("revenue", "b").estimate, two.comparisons[0].estimate, rtol=1e-12)


def test_cupac_any_prediction_column_is_a_covariate():
    # A model's prediction made before exposure (CUPAC): here a noisy linear score.
    rng = np.random.default_rng(29)
    arms = {}
    for variant, lift in (("control", 0.0), ("b", 0.5)):
        features = rng.normal(size=(2000, 3))
        y = features @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=2000) + lift
        prediction = features @ np.array([0.9, -1.8, 0.6])
        arms[variant] = (y, {"model_prediction": prediction})
    c = analyze(_rows(arms), effect="absolute").comparisons[0]
    assert c.covariates == ("model_prediction",)
    assert c.variance_reduction is not None and c.variance_reduction > 0.7


def test_metrics_with_different_covariates_keep_their_own_names():
    rng = np.random.default_rng(30)
    rows = []
    for metric, name in (("revenue", "pre_revenue"), ("orders", "pre_orders")):
        for variant in ("control", "b"):
            x = rng.normal(size=400)
            covs = {name: x, "constant": np.ones(400)}
            y = 10.0 + x + rng.normal(size=400)
            flat = ArmStats.from_values(y, covariates=covs).to_flat()
            rows.append({"variant": variant, "metric": metric, **flat})
    result = analyze(rows)
    for metric, name in (("revenue", "pre_revenue"), ("orders", "pre_orders")):
        c = result.find(metric, "b")
        assert c.covariates == (name,)
        assert c.warnings == ("covariate 'constant' has no variance; CUPED ignores it",)


def test_proportion_cuped_point_estimate_equals_ols():
    # A proportion uses the Bernoulli variance (ddof 0), but beta and hence the point
    # estimate do not depend on the divisor: still the OLS treatment coefficient.
    rng = np.random.default_rng(31)
    rows, ys, xs, treat = [], [], [], []
    for i, variant in enumerate(("control", "b")):
        x = rng.normal(size=3000)
        y = (rng.random(3000) < 1 / (1 + np.exp(-(x - 1.5 + 0.2 * i)))).astype(float)
        flat = ArmStats.from_values(y, covariates={"score": x}).to_flat()
        rows.append({"variant": variant, "metric": "conv", "kind": "proportion", **flat})
        ys.append(y)
        xs.append(x)
        treat.append(np.full(3000, float(i)))
    c = analyze(rows, effect="absolute").comparisons[0]
    fit = OLS(np.concatenate(ys), np.column_stack(
        [np.ones(6000), np.concatenate(treat), np.concatenate(xs)])).fit()  # fmt: skip
    assert c.kind == "proportion" and c.cuped
    assert_allclose(c.estimate, fit.params[1], rtol=1e-9)
