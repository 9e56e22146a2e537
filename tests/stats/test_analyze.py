"""analyze(): every variant against control, checked against SciPy/statsmodels per comparison."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats import proportion as smp

from proving.errors import StatsInputError
from proving.stats.analyze import analyze
from proving.stats.results import AnalysisResult, ComparisonResult
from proving.stats.sufficient import ArmStats


def _row(variant: str, values: np.ndarray, **keys: str) -> dict:
    keys.setdefault("metric", "m")
    return {"variant": variant, **keys, **ArmStats.from_values(values).to_flat()}


@pytest.fixture
def units() -> dict[tuple[str, str, str], np.ndarray]:
    """Unit data per (segment, metric, variant)."""
    rng = np.random.default_rng(31)
    out = {}
    for seg in ("all", "mobile"):
        for metric, loc in (("revenue", 10.0), ("latency", 200.0)):
            for variant, lift in (("control", 0.0), ("b", 0.03), ("c", -0.02)):
                n = int(rng.integers(150, 400))
                out[seg, metric, variant] = rng.gamma(4.0, loc * (1 + lift) / 4.0, n)
    return out


def test_every_variant_metric_and_segment_matches_scipy_welch(units):
    rows = [_row(v, x, metric=m, segment=s, experiment="e1") for (s, m, v), x in units.items()]
    result = analyze(rows, effect="absolute")
    assert len(result.comparisons) == 2 * 2 * 2
    for c in result.comparisons:
        assert c.control == "control" and c.experiment == "e1" and c.method == "welch"
        ctrl, trt = units[c.segment, c.metric, "control"], units[c.segment, c.metric, c.variant]
        ref = stats.ttest_ind(trt, ctrl, equal_var=False)
        ci = ref.confidence_interval(0.95)
        assert_allclose(c.p_value, ref.pvalue, rtol=1e-6)
        assert_allclose([c.ci_lower, c.ci_upper], [ci.low, ci.high], rtol=1e-6)
        assert_allclose(c.df, ref.df, rtol=1e-9)
        assert c.n_control == len(ctrl) and c.n_treatment == len(trt)
        assert_allclose(c.control_mean, ctrl.mean(), rtol=1e-12)


def test_relative_effect_and_order_of_results(units):
    rows = [_row(v, x, metric=m, segment=s) for (s, m, v), x in units.items()]
    result = analyze(rows, alpha=0.1, alternative="greater")
    first = result.comparisons[0]
    assert (first.segment, first.metric, first.variant) == ("all", "revenue", "b")
    ctrl, trt = units["all", "revenue", "control"], units["all", "revenue", "b"]
    assert_allclose(first.estimate, trt.mean() / ctrl.mean() - 1, rtol=1e-12)
    assert first.ci_upper is None and first.alpha == 0.1
    assert first.effect == "relative" and first.relative_method == "delta"


def test_proportions_match_statsmodels_wald():
    rows = [
        {"variant": "control", "metric": "conv", "kind": "proportion", "n": 4000, "sum": 400},
        {"variant": "b", "metric": "conv", "kind": "proportion", "n": 4100, "sum": 461},
    ]
    c = analyze(rows, effect="absolute", method="z").comparisons[0]
    stat, p = smp.test_proportions_2indep(461, 4100, 400, 4000, method="wald")
    lo, hi = smp.confint_proportions_2indep(461, 4100, 400, 4000, method="wald")
    assert_allclose([c.statistic, c.p_value], [stat, p], rtol=1e-9)
    assert_allclose([c.ci_lower, c.ci_upper], [lo, hi], rtol=1e-9)
    assert c.kind == "proportion" and c.warnings == ()


def test_missing_control_in_one_segment_is_explained():
    rows = [
        _row("control", np.arange(10.0)),
        _row("b", np.arange(12.0)),
        _row("b", np.arange(12.0), segment="eu"),
    ]
    result = analyze(rows)
    eu = result.find("m", "b", segment="eu")
    assert eu.estimate is None and eu.reason == "no control arm in this segment"
    assert result.find("m", "b").reason is None


def test_srm_alarm_marks_the_experiment():
    rng = np.random.default_rng(32)
    rows = [_row("control", rng.normal(size=5000)), _row("b", rng.normal(size=5400))]
    result = analyze(rows)
    assert len(result.srm) == 1 and result.srm[0].alarm
    assert result.srm_scope == (("", "all"),)
    assert any("sample ratio mismatch" in w for w in result.warnings)
    assert "sample ratio mismatch; see srm" in result.comparisons[0].warnings
    # With the configured 1:1.08 split there is no mismatch.
    fine = analyze(rows, weights={"control": 1.0, "b": 1.08})
    assert not fine.srm[0].alarm and fine.warnings == ()
    with pytest.raises(StatsInputError, match=r"weights has no entry for variant\(s\) \['b'\]"):
        analyze(rows, weights={"control": 1.0})


def test_families_and_corrections():
    rng = np.random.default_rng(33)
    rows = []
    for metric in ("a", "b", "guard"):
        rows += [
            _row("control", rng.normal(10, 1, size=300), metric=metric),
            _row("t", rng.normal(10.2, 1, size=300), metric=metric),
        ]
    families = {"guard": "guardrail"}
    plain = analyze(rows, families=families)
    assert all(c.adjusted_p_value is None and c.correction is None for c in plain.comparisons)
    holm = analyze(rows, families=families, correction="holm")
    by_metric = {c.metric: c for c in holm.comparisons}
    assert by_metric["guard"].family == "guardrail" and by_metric["a"].family == "primary"
    # The guardrail is alone in its family, so it is not diluted.
    assert by_metric["guard"].adjusted_p_value == pytest.approx(by_metric["guard"].p_value)
    p_ab = sorted([by_metric["a"].p_value, by_metric["b"].p_value])
    assert min(c.adjusted_p_value for c in holm.comparisons if c.metric != "guard") == (
        pytest.approx(min(1.0, 2 * p_ab[0]))
    )
    assert all(c.correction == "holm" for c in holm.comparisons)


def test_result_is_json_and_round_trips():
    rows = [_row("control", np.arange(20.0)), _row("b", np.arange(2.0, 24.0))]
    result = analyze(rows)
    data = json.loads(result.to_json())
    assert data["comparisons"][0]["variant"] == "b"
    assert AnalysisResult.from_dict(data).to_dict() == result.to_dict()


def test_only_a_control_gives_an_explained_empty_result():
    result = analyze([_row("control", np.arange(5.0))])
    assert result.comparisons == () and "no variant" in result.warnings[0]


def test_thousands_of_comparisons_in_one_pass():
    rng = np.random.default_rng(34)
    rows = []
    for metric in range(500):
        for variant in ("control", "b", "c", "d", "e"):
            s = rng.normal(10, 0.1) * 1000
            rows.append(
                {"variant": variant, "metric": f"m{metric}", "n": 1000, "sum": s,
                 "sum_squares": s * s / 1000 + 999 * 4.0}
            )  # fmt: skip
    result = analyze(rows)
    assert len(result.comparisons) == 2000
    assert all(c.reason is None for c in result.comparisons)
    assert len(result.srm) == 1


def test_srm_alarm_marks_only_its_experiment_and_segment():
    rng = np.random.default_rng(35)
    rows = []
    for exp, n_b in (("skewed", 5400), ("fine", 5000)):
        for metric in ("m1", "m2"):
            rows += [
                _row("control", rng.normal(size=5000), metric=metric, experiment=exp),
                _row("b", rng.normal(size=n_b), metric=metric, experiment=exp),
            ]
    result = analyze(rows)
    assert result.srm_scope == (("skewed", "all"), ("fine", "all"))
    assert [r.alarm for r in result.srm] == [True, False]
    assert list(result.srm[0].variants) == ["control", "b"]
    noted = {
        c.experiment for c in result.comparisons if "sample ratio mismatch; see srm" in c.warnings
    }
    assert noted == {"skewed"} and len(result.warnings) == 1


def test_comparisons_are_built_on_demand_and_equal_plain_results(units):
    rows = [_row(v, x, metric=m, segment=s) for (s, m, v), x in units.items()]
    result = analyze(rows, families={"latency": "guardrail"})
    columns = result.comparison_columns()
    assert columns["family"][:2] == ["primary", "primary"] and "guardrail" in columns["family"]
    built = result.comparisons
    names = [f.name for f in dataclasses.fields(ComparisonResult)]
    assert columns == {k: [getattr(c, k) for c in built] for k in names}
    plain = tuple(ComparisonResult(**{k: getattr(c, k) for k in names}) for c in built)
    assert built == plain and pickle.loads(pickle.dumps(result)) == result
