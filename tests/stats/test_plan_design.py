"""PlanDesign: options checked and defaulted, and the power function against statsmodels."""

from __future__ import annotations

import doctest

import pytest
from statsmodels.stats import power as smp

from proving.errors import StatsInputError
from proving.stats import plan_design as plan_design_module
from proving.stats import power as power_module
from proving.stats.plan_design import PlanDesign, PlanOptions
from proving.stats.plan_metric import PlanMetric

SM_ALTERNATIVE = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("ratio", [1.0, 2.5])
def test_power_at_matches_normal_and_t_ind_power(alternative: str, ratio: float) -> None:
    metric = PlanMetric.mean_metric(10.0, 4.0)
    delta = -0.6 if alternative == "less" else 0.6
    for distribution, reference in (("z", smp.NormalIndPower()), ("t", smp.TTestIndPower())):
        options: PlanOptions = {"alternative": alternative, "distribution": distribution}  # type: ignore[typeddict-item]
        design = PlanDesign.from_options(metric, options)
        want = reference.power(
            delta / 4.0, 120, 0.05, ratio=ratio, alternative=SM_ALTERNATIVE[alternative]
        )
        assert design.power_at(delta, 120.0, ratio) == pytest.approx(float(want), rel=1e-9)


def test_relative_components_are_the_delta_method() -> None:
    """Var(T/C - 1) ~ (Var T + (1 + L)^2 Var C) / mu_c^2 per unit (Casella & Berger 5.5.4)."""
    metric = PlanMetric.proportion(0.2)
    design = PlanDesign.from_options(metric, {"relative": True, "cuped_correlation": 0.5})
    a_c, a_t = design.components(0.1)
    shrink = 1 - 0.25
    assert a_c == pytest.approx(1.1**2 * 0.2 * 0.8 * shrink / 0.04, rel=1e-12)
    assert a_t == pytest.approx(0.22 * 0.78 * shrink / 0.04, rel=1e-12)


def test_defaults_corrections_and_allocation() -> None:
    metric = PlanMetric.mean_metric(1.0, 1.0)
    plain = PlanDesign.from_options(metric, {})
    assert (plain.alpha, plain.alpha_per_test, plain.comparisons) == (0.05, 0.05, 1)
    assert plain.weights == (0.5, 0.5) and plain.r2 == 0.0 and plain.distribution == "z"
    bonf = PlanDesign.from_options(metric, {"metrics": 3, "variants": 2})
    assert bonf.comparisons == 6 and bonf.alpha_per_test == pytest.approx(0.05 / 6, rel=1e-15)
    sidak = PlanDesign.from_options(metric, {"metrics": 3, "variants": 2, "correction": "sidak"})
    assert sidak.alpha_per_test == pytest.approx(1 - 0.95 ** (1 / 6), rel=1e-12)
    uneven = PlanDesign.from_options(metric, {"weights": [50, 30, 20]})
    assert uneven.weights == pytest.approx((0.5, 0.3, 0.2))
    assert uneven.min_share_ratio == pytest.approx(0.4)
    assert uneven.comparisons == 2
    history = PlanMetric("mean", 1.0, 1.0, r_squared=0.3)
    assert PlanDesign.from_options(history, {}).r2 == 0.3  # the metric's R^2 by default
    assert PlanDesign.from_options(history, {"cuped_correlation": 0.0}).r2 == 0.0


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"alpha": 0.7}, r"`alpha` must be in \(0, 0.5\]; got 0.7\. Use a value such as 0.05"),
        ({"alternative": "bigger"}, r"`alternative` must be one of"),
        ({"metrics": 0}, r"`metrics` must be an int >= 1; got 0"),
        ({"weights": [1]}, r"`weights` must list at least two positive shares"),
        ({"daily_traffic": 0}, r"`daily_traffic` must be a positive number"),
        ({"cuped_correlation": -1.0}, r"`cuped_correlation` must be in \(-1, 1\)"),
        ({"bogus": 1}, r"`options` contain unknown names; got \['bogus'\]"),
    ],
)
def test_bad_options_raise(options: dict[str, object], match: str) -> None:
    with pytest.raises(StatsInputError, match=match):
        PlanDesign.from_options(PlanMetric.mean_metric(1.0, 1.0), options)  # type: ignore[arg-type]


def test_relative_needs_a_nonzero_baseline() -> None:
    with pytest.raises(StatsInputError, match=r"`relative` needs a non-zero baseline mean"):
        PlanDesign.from_options(PlanMetric.mean_metric(0.0, 1.0), {"relative": True})


def test_option_types_still_importable_from_power() -> None:
    assert power_module.PlanOptions is PlanOptions
    assert power_module.Correction is plan_design_module.Correction
    assert power_module.Distribution is plan_design_module.Distribution


def test_docstring_examples() -> None:
    assert doctest.testmod(plan_design_module).failed == 0
