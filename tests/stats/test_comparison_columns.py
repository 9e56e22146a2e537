"""Comparison columns: caveats, families, None for missing values, columns equal objects."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from proving.stats.analyze import analyze
from proving.stats.comparison_columns import CAVEATS, CONTROL_MEAN_SE, SRM_NOTE
from proving.stats.sufficient import ArmStats


def _row(variant: str, values: np.ndarray, **keys: str) -> dict:
    keys.setdefault("metric", "m")
    return {"variant": variant, **keys, **ArmStats.from_values(values).to_flat()}


def test_unreliable_relative_and_small_z_warnings():
    rows = [_row("control", np.array([-1.0, 1.2, 0.1, -0.5])), _row("b", np.array([1.0, 2.0, 0.5]))]
    c = analyze(rows, method="z").comparisons[0]
    assert any("within 5 standard errors of 0" in w for w in c.warnings)
    assert any("fewer than 30 units" in w for w in c.warnings)


def test_each_caveat_applies_exactly_where_its_condition_holds():
    rng = np.random.default_rng(11)
    far = [_row("control", rng.normal(10, 1, 50)), _row("b", rng.normal(10, 1, 50))]
    assert analyze(far).comparisons[0].warnings == ()
    # Control mean 0.3 SE from 0 in the relative scale only; absolute effects are fine.
    x = rng.normal(0, 1, 40)
    near = [_row("control", x - x.mean() + 0.3 * x.std(ddof=1) / np.sqrt(40)), far[1]]
    assert analyze(near).comparisons[0].warnings == (CAVEATS[0],)
    assert analyze(near, effect="absolute").comparisons[0].warnings == ()
    assert f"{CONTROL_MEAN_SE:g} standard errors" in CAVEATS[0]
    # A "proportion" whose values are not 0/1.
    bad = [{**r, "kind": "proportion"} for r in _rows_with_values(rng, 2.0)]
    assert analyze(bad, effect="absolute").comparisons[0].warnings == (CAVEATS[2],)
    ok = [{**r, "kind": "proportion"} for r in _rows_with_values(rng, 1.0)]
    assert analyze(ok, effect="absolute").comparisons[0].warnings == ()


def _rows_with_values(rng: np.random.Generator, high: float) -> list[dict]:
    return [_row(v, rng.choice([0.0, high], size=200)) for v in ("control", "b")]


def test_srm_note_follows_the_caveats():
    rows = [_row("control", np.arange(5000.0) % 7), _row("b", np.arange(5600.0) % 7)]
    c = analyze(rows, method="z").comparisons[0]
    assert c.warnings == (SRM_NOTE,)


def test_family_precedence_families_then_treatment_then_control_then_primary():
    rows = [
        {**_row("control", np.arange(9.0), metric="a"), "family": "secondary"},
        _row("b", np.arange(10.0), metric="a"),
        {**_row("control", np.arange(9.0), metric="g"), "family": "secondary"},
        {**_row("b", np.arange(10.0), metric="g"), "family": "guardrail"},
        _row("control", np.arange(9.0), metric="p"),
        _row("b", np.arange(10.0), metric="p"),
    ]
    fam = {c.metric: c.family for c in analyze(rows).comparisons}
    assert fam == {"a": "secondary", "g": "guardrail", "p": "primary"}
    fam = {c.metric: c.family for c in analyze(rows, families={"g": "primary"}).comparisons}
    assert fam == {"a": "secondary", "g": "primary", "p": "primary"}


def test_missing_values_are_none_and_columns_equal_the_objects():
    rng = np.random.default_rng(12)
    y_c, y_b = rng.normal(5, 2, 80), rng.normal(5.5, 2, 90)
    rows = [
        _row("control", y_c),
        _row("b", y_b),
        _row("b", np.full(5, 1.0), segment="eu"),  # no control in this segment
    ]
    result = analyze(rows, effect="absolute")
    columns = result.comparison_columns()
    welch = stats.ttest_ind(y_b, y_c, equal_var=False)
    assert_allclose([columns["statistic"][0], columns["p_value"][0]], [welch.statistic,
                    welch.pvalue], rtol=1e-9)  # fmt: skip
    assert_allclose(columns["control_mean"][0], y_c.mean(), rtol=1e-12)
    for name in ("estimate", "std_err", "p_value", "ci_lower", "control_mean", "n_control",
                 "variance_reduction"):  # fmt: skip
        assert columns[name][1] is None, name
    assert columns["n_treatment"][1] == 5.0 and columns["covariates"] == [(), ()]
    objects = result.comparisons
    for name, values in columns.items():
        assert [getattr(c, name) for c in objects] == values, name


@pytest.mark.parametrize("relative_method", ["delta", "log"])
def test_variance_reduction_is_on_the_tested_scale(relative_method):
    rng = np.random.default_rng(13)
    rows = []
    for variant, lift in (("control", 0.0), ("b", 0.5)):
        x = rng.normal(10, 2, 400)
        y = x + rng.normal(lift, 1, 400)
        stats_ = ArmStats.from_values(y, covariates={"pre": x})
        rows.append({"variant": variant, "metric": "m", **stats_.to_flat()})
    adjusted = analyze(rows, relative_method=relative_method).comparisons[0]
    raw = analyze(rows, relative_method=relative_method, cuped=False).comparisons[0]
    scale = 1.0 + adjusted.estimate if relative_method == "log" else 1.0
    raw_scale = 1.0 + raw.estimate if relative_method == "log" else 1.0
    expected = 1 - (adjusted.std_err / scale) ** 2 / (raw.std_err / raw_scale) ** 2
    assert adjusted.cuped and adjusted.covariates == ("pre",)
    assert adjusted.variance_reduction == pytest.approx(expected, rel=1e-9)
    assert 0.7 < adjusted.variance_reduction < 0.9  # rho^2 = 4 / 5
