"""Per-arm estimates: raw against unit-level numpy, CUPED against statsmodels OLS, reasons."""

from __future__ import annotations

import doctest

import numpy as np
import statsmodels.api as sm
from numpy.testing import assert_allclose

from proving.stats import arm_estimates as arm_estimates_module
from proving.stats.arm_estimates import estimate_arms
from proving.stats.columns import read_columns
from proving.stats.layout import lay_out
from proving.stats.sufficient import ArmStats


def _flat(variant: str, metric: str, stats: ArmStats, **keys: str) -> dict:
    return {"variant": variant, "metric": metric, **keys, **stats.to_flat()}


def test_mean_proportion_and_ratio_match_unit_level_formulas():
    rng = np.random.default_rng(21)
    units = {("mean", v): rng.gamma(2.0, 3.0, int(rng.integers(50, 90))) for v in ("control", "b")}
    units |= {("proportion", v): rng.binomial(1, 0.3, 120).astype(float) for v in ("control", "b")}
    denominators = {v: rng.poisson(3, 70) + 1.0 for v in ("control", "b")}
    units |= {("ratio", v): denominators[v] * rng.normal(2, 0.5, 70) for v in ("control", "b")}
    rows = []
    for (kind, v), y in units.items():
        d = denominators[v] if kind == "ratio" else None
        rows.append({**_flat(v, kind, ArmStats.from_values(y, denominators=d)), "kind": kind})
    cols = read_columns(rows)
    lay = lay_out(cols, "control")
    arms = estimate_arms(cols, lay, use_cuped=True)
    for pos, row in enumerate(lay.order.tolist()):
        kind, variant = rows[row]["kind"], rows[row]["variant"]
        y = units[kind, variant]
        if kind == "ratio":
            d = denominators[variant]
            r = y.sum() / d.sum()
            # Delta method (Deng, Knoblich & Lu 2018, eq. 3) from the unit values.
            expected = (r, np.var(y - r * d, ddof=1) / (y.size * d.mean() ** 2))
        else:
            expected = (y.mean(), y.var(ddof=0 if kind == "proportion" else 1) / y.size)
        assert_allclose([arms.raw_est[pos], arms.raw_var[pos]], expected, rtol=1e-9)
        assert arms.adj_est[pos] == arms.raw_est[pos] and arms.adj_var[pos] == arms.raw_var[pos]
    assert not lay.cuped.any() and arms.reason.tolist() == [None] * len(rows)


def test_cuped_difference_equals_ols_and_pools_per_group():
    rng = np.random.default_rng(22)
    rows, data = [], {}
    for metric, slope in (("a", 0.9), ("b", -0.4)):
        for variant, lift in (("control", 0.0), ("t", 0.3)):
            x = rng.normal(5, 1, 300)
            y = slope * x + rng.normal(lift, 1, 300)
            data[metric, variant] = (y, x)
            rows.append(_flat(variant, metric, ArmStats.from_values(y, covariates={"pre": x})))
    cols = read_columns(rows)
    lay = lay_out(cols, "control")
    arms = estimate_arms(cols, lay, use_cuped=True)
    assert lay.cuped.tolist() == [True, True] and lay.covariate_sets == [("pre",)]
    for g, metric in enumerate(("a", "b")):
        (yc, xc), (yt, xt) = data[metric, "control"], data[metric, "t"]
        design = np.column_stack([np.ones(600), np.r_[np.zeros(300), np.ones(300)], np.r_[xc, xt]])
        ols = sm.OLS(np.r_[yc, yt], design).fit()
        c, t = lay.first[g], lay.first[g] + 1
        assert_allclose(arms.adj_est[t] - arms.adj_est[c], ols.params[1], rtol=1e-9)
        assert arms.adj_var[c] < arms.raw_var[c]
    without = estimate_arms(cols, lay_out(cols, "control"), use_cuped=False)
    assert_allclose(without.adj_est, without.raw_est)


def test_kind_specific_reasons_and_the_not_binary_flag():
    rows = [
        {"variant": "control", "metric": "p", "kind": "proportion", "n": 10, "sum": 12},
        {"variant": "b", "metric": "p", "kind": "proportion", "n": 10, "sum": 3},
        {"variant": "control", "metric": "q", "kind": "proportion", "n": 10, "sum": 4,
         "sum_squares": 9},
        {"variant": "b", "metric": "q", "kind": "proportion", "n": 10, "sum": 4},
        {"variant": "control", "metric": "r", "n": 5, "sum": 3.0, "sum_squares": 3.0,
         "denominator_sum": 0.0, "denominator_sum_squares": 0.0, "sum_products": 0.0},
        {"variant": "b", "metric": "r", "n": 5, "sum": 3.0, "sum_squares": 3.0,
         "denominator_sum": 5.0, "denominator_sum_squares": 5.0, "sum_products": 3.0},
    ]  # fmt: skip
    cols = read_columns(rows)
    lay = lay_out(cols, "control")
    arms = estimate_arms(cols, lay, use_cuped=True)
    assert arms.reason.tolist() == [
        "variant 'control': the proportion sum/n = 12.0/10.0 is outside [0, 1]",
        None,
        None,
        None,
        "the denominator sum of variant 'control' is 0; the ratio is undefined",
        None,
    ]
    assert arms.not_binary.tolist() == [False, False, True, False, False, False]


def test_docstring_examples():
    assert doctest.testmod(arm_estimates_module).failed == 0
