"""Segments: Cochran's Q against statsmodels, simulations with known truth, post-stratification."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

import proving.stats.segments as segments_module
from proving.errors import StatsInputError
from proving.stats.results import ComparisonResult
from proving.stats.segments import (
    PostStratifiedResult,
    SegmentAnalysis,
    analyze_segments,
    heterogeneity,
    post_stratify,
)
from proving.stats.sufficient import ArmStats


def test_docstring_examples_run() -> None:
    assert doctest.testmod(segments_module).failed == 0


def _comparisons(estimates: list[float], errors: list[float]) -> list[ComparisonResult]:
    return [
        ComparisonResult(
            metric="m", variant="b", segment=f"s{i}", effect="absolute", estimate=e, std_err=s
        )
        for i, (e, s) in enumerate(zip(estimates, errors, strict=True))
    ]


def test_cochrans_q_matches_direct_computation_and_statsmodels() -> None:
    est = [0.12, 0.30, -0.05, 0.21, 0.18, 0.02]
    se = [0.05, 0.08, 0.06, 0.04, 0.10, 0.07]
    r = heterogeneity(_comparisons(est, se))
    # Direct: a plain loop over the textbook formula.
    w = [1 / s**2 for s in se]
    mean = sum(wi * ei for wi, ei in zip(w, est, strict=True)) / sum(w)
    q = sum(wi * (ei - mean) ** 2 for wi, ei in zip(w, est, strict=True))
    assert r.q == pytest.approx(q, rel=1e-12) and r.df == 5
    assert r.pooled_estimate == pytest.approx(mean, rel=1e-12)
    ref = combine_effects(np.array(est), np.array(se) ** 2, method_re="dl")
    assert r.q == pytest.approx(ref.q, rel=1e-10)
    assert r.i_squared == pytest.approx(ref.i2, rel=1e-10)
    assert r.tau_squared == pytest.approx(ref.tau2, rel=1e-10)
    assert r.pooled_std_err == pytest.approx(ref.sd_eff_w_fe, rel=1e-10)
    assert r.p_value == pytest.approx(1 - stats.chi2.cdf(q, 5), rel=1e-10)


def _draw(
    rng: np.random.Generator, effects: dict[str, float], n: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per segment (control, treatment) values; variances differ across segments and arms."""
    return {
        name: (
            rng.normal(10 + i, 2 + 0.3 * i, n),
            rng.normal(10 + i + effect, 2.5 + 0.3 * i, n),
        )
        for i, (name, effect) in enumerate(effects.items())
    }


def _segments(
    rng: np.random.Generator, effects: dict[str, float], n: int = 400
) -> dict[str, tuple[ArmStats, ArmStats]]:
    return {
        name: (ArmStats.from_values(yc), ArmStats.from_values(yt))
        for name, (yc, yt) in _draw(rng, effects, n).items()
    }


def test_q_equals_the_wald_interaction_test_of_a_regression() -> None:
    rng = np.random.default_rng(1)
    values = _draw(rng, {"de": 0.2, "fr": 0.5, "us": 0.1, "jp": 0.4}, 400)
    segs = {k: (ArmStats.from_values(c), ArmStats.from_values(t)) for k, (c, t) in values.items()}
    frame = pd.concat(
        [
            pd.DataFrame({"y": np.r_[c, t], "t": np.repeat([0.0, 1.0], c.size), "seg": k})
            for k, (c, t) in values.items()
        ],
        ignore_index=True,
    )
    result = analyze_segments(segs, effect="absolute", correction="none")
    fit = smf.ols("y ~ C(seg) * t", data=frame).fit(cov_type="HC2")
    terms = [name for name in fit.params.index if ":t" in name]
    wald = fit.wald_test(", ".join(f"{t} = 0" for t in terms), use_f=False, scalar=True)
    assert result.heterogeneity.q == pytest.approx(float(wald.statistic), rel=1e-8)
    assert result.heterogeneity.p_value == pytest.approx(float(wald.pvalue), rel=1e-6)
    for c in result.segments:  # each segment's effect is the difference of its means
        sub = frame[frame.seg == c.segment]
        diff = sub[sub.t == 1].y.mean() - sub[sub.t == 0].y.mean()
        assert c.estimate == pytest.approx(diff, rel=1e-10)


def test_heterogeneous_effect_is_detected_and_homogeneous_rejects_at_alpha() -> None:
    rng = np.random.default_rng(2)
    homogeneous = {s: 0.3 for s in ("new", "returning", "ios", "android", "web")}
    heterogeneous = {"new": 0.0, "returning": 0.6, "ios": 0.3, "android": 0.3, "web": 0.9}
    null_p, alt_p = [], []
    for _ in range(300):
        segs = _segments(rng, homogeneous, n=800)
        null_p.append(analyze_segments(segs, effect="absolute").heterogeneity.p_value)
        segs = _segments(rng, heterogeneous, n=800)
        alt_p.append(analyze_segments(segs, effect="absolute").heterogeneity.p_value)
    assert 0.025 <= np.mean(np.array(null_p) < 0.05) <= 0.08
    assert np.mean(np.array(alt_p) < 0.05) > 0.9


def test_correction_across_segments_controls_the_family_wise_error_rate() -> None:
    rng = np.random.default_rng(3)
    null = {f"country_{i}": 0.0 for i in range(8)}
    any_raw = any_holm = 0
    reps = 300
    for _ in range(reps):
        holm = analyze_segments(_segments(rng, null, n=100), effect="absolute")
        any_raw += any((c.p_value or 1) < 0.05 for c in holm.segments)
        any_holm += any(c.significant for c in holm.segments)
        assert all(c.correction == "holm" for c in holm.segments)
    assert any_raw / reps > 0.25  # 8 uncorrected tests: about 1 - 0.95^8 = 34%
    assert any_holm / reps <= 0.075


def test_bh_correction_is_applied_across_segments() -> None:
    rng = np.random.default_rng(8)
    effects = {"a": 0.0, "b": 0.4, "c": 0.8, "d": 0.1}
    r = analyze_segments(_segments(rng, effects, n=300), effect="absolute", correction="bh")
    p = np.array([c.p_value for c in r.segments], dtype=float)
    assert [c.adjusted_p_value for c in r.segments] == pytest.approx(
        stats.false_discovery_control(p, method="bh").tolist()
    )


def test_per_segment_sample_ratio_check_uses_the_configured_traffic() -> None:
    rng = np.random.default_rng(9)
    segs = {
        "ios": (
            ArmStats.from_values(rng.normal(size=900)),
            ArmStats.from_values(rng.normal(size=100)),
        ),
        "web": (
            ArmStats.from_values(rng.normal(size=900)),
            ArmStats.from_values(rng.normal(size=100)),
        ),
    }
    equal = analyze_segments(segs, effect="absolute")
    assert all(any("sample ratio" in w for w in c.warnings) for c in equal.segments)
    configured = analyze_segments(segs, effect="absolute", traffic=(0.9, 0.1))
    assert not any(any("sample ratio" in w for w in c.warnings) for c in configured.segments)


def test_relative_log_effects_are_tested_on_the_log_scale() -> None:
    rng = np.random.default_rng(4)
    segs = _segments(rng, {"a": 0.5, "b": 0.5, "c": 1.5})
    r = analyze_segments(segs, effect="relative", relative_method="log", correction="none")
    h = r.heterogeneity
    assert h.scale == "log ratio"
    theta = np.array([math.log1p(c.estimate or 0) for c in r.segments])
    se = np.array([(c.std_err or 0) / (1 + (c.estimate or 0)) for c in r.segments])
    w = 1 / se**2
    q = float(np.sum(w * (theta - np.sum(w * theta) / w.sum()) ** 2))
    assert h.q == pytest.approx(q, rel=1e-10)


def _stratified(
    rng: np.random.Generator, n: int, shares: np.ndarray, means: np.ndarray, effect: float
) -> tuple[dict[str, ArmStats], dict[str, ArmStats]]:
    out = []
    for shift in (0.0, effect):
        s = rng.choice(len(shares), size=n, p=shares)
        y = rng.normal(means[s] + shift, 1.0)
        out.append({f"s{k}": ArmStats.from_values(y[s == k]) for k in range(len(shares))})
    return out[0], out[1]


def test_post_stratification_variance_reduction_matches_theory() -> None:
    rng = np.random.default_rng(5)
    shares, means = np.array([0.5, 0.3, 0.2]), np.array([0.0, 2.0, 5.0])
    between = float(shares @ (means - shares @ means) ** 2)
    theory = between / (between + 1.0)  # share of the variance between strata
    ps, raw, errors, reductions = [], [], [], []
    for _ in range(800):
        c, t = _stratified(rng, 1_000, shares, means, effect=0.25)
        r = post_stratify(c, t, weights={"s0": 0.5, "s1": 0.3, "s2": 0.2})
        ps.append(r.estimate)
        raw.append(r.unadjusted_estimate)
        errors.append(r.std_err)
        reductions.append(r.variance_reduction)
    empirical = 1 - np.var(ps) / np.var(raw)
    assert empirical == pytest.approx(theory, abs=0.04)
    assert float(np.mean(reductions)) == pytest.approx(theory, abs=0.02)
    assert float(np.mean(ps)) == pytest.approx(0.25, abs=0.005)  # unbiased
    assert float(np.sqrt(np.mean(np.square(errors)))) == pytest.approx(np.std(ps), rel=0.06)


def test_post_stratification_relative_effect_and_sample_weights() -> None:
    rng = np.random.default_rng(6)
    c, t = _stratified(rng, 4_000, np.array([0.6, 0.4]), np.array([10.0, 20.0]), effect=1.4)
    r = post_stratify(c, t, effect="relative")
    n = {s: c[s].n + t[s].n for s in c}
    w = np.array([n["s0"], n["s1"]]) / sum(n.values())
    assert r.weights == pytest.approx(tuple(w))
    mc = w @ [c["s0"].sum / c["s0"].n, c["s1"].sum / c["s1"].n]
    mt = w @ [t["s0"].sum / t["s0"].n, t["s1"].sum / t["s1"].n]
    assert r.estimate == pytest.approx(mt / mc - 1, rel=1e-12)
    assert r.ci_lower is not None and r.ci_upper is not None
    assert r.ci_lower < 1.4 / 14 < r.ci_upper
    prop = post_stratify(
        {"a": ArmStats.from_values([0, 1, 1, 0]), "b": ArmStats.from_values([1, 1, 1, 0])},
        {"a": ArmStats.from_values([1, 1, 1, 0]), "b": ArmStats.from_values([1, 1, 1, 1])},
        kind="proportion",
    )
    # Bernoulli variance p (1 - p) / n per stratum, weights 1/2 each.
    var = 0.25 * (0.25 / 4 + 0.1875 / 4) + 0.25 * (0.1875 / 4 + 0.0)
    assert prop.std_err == pytest.approx(math.sqrt(var))


def test_degenerate_segments_and_strata() -> None:
    ok = ArmStats.from_values([1.0, 2.0, 3.0, 4.0])
    empty = ArmStats(n=0, sum=0.0, sum_squares=0.0)
    r = analyze_segments({"a": (ok, ok), "b": (ok, empty)}, effect="absolute")
    assert r.heterogeneity.q is None and r.heterogeneity.excluded == ("b",)
    assert r.heterogeneity.reason is not None and "needs 2" in r.heterogeneity.reason
    assert r.segments[1].reason is not None
    thin = post_stratify({"a": ok, "b": ArmStats.from_values([1.0])}, {"a": ok, "b": ok})
    assert thin.estimate is None and "stratum 'b'" in (thin.reason or "")
    skipped = post_stratify(
        {"a": ok, "b": empty}, {"a": ok, "b": empty}, weights={"a": 1.0, "b": 0.0}
    )
    assert skipped.estimate == 0.0 and skipped.reason is None
    flat = ArmStats.from_values([2.0, 2.0])
    zero = post_stratify({"a": flat}, {"a": flat})
    assert zero.estimate is None and "zero variance" in (zero.reason or "")


def test_results_round_trip_through_json() -> None:
    rng = np.random.default_rng(7)
    segs = _segments(rng, {"a": 0.1, "b": 0.2, "c": 0.3}, n=50)
    r = analyze_segments(segs)
    assert SegmentAnalysis.from_dict(json.loads(r.to_json())) == r
    c, t = _stratified(rng, 300, np.array([0.5, 0.5]), np.array([0.0, 1.0]), 0.1)
    p = post_stratify(c, t)
    assert PostStratifiedResult.from_dict(json.loads(p.to_json())) == p


def test_bad_inputs_raise_with_a_message() -> None:
    ok = ArmStats.from_values([1.0, 2.0, 3.0])
    with pytest.raises(StatsInputError, match="no segments given"):
        analyze_segments({})
    with pytest.raises(StatsInputError, match="must map to a \\(control, treatment\\) pair"):
        analyze_segments({"a": ok})  # type: ignore[dict-item]
    with pytest.raises(StatsInputError, match="`traffic` must be two positive weights"):
        analyze_segments({"a": (ok, ok)}, traffic=(-1.0, 1.0))
    with pytest.raises(StatsInputError, match="`variant` must not be 'control'"):
        analyze_segments({"a": (ok, ok)}, variant="control")
    mixed = [*_comparisons([0.1], [0.1]), ComparisonResult(metric="other", variant="b")]
    with pytest.raises(StatsInputError, match="must share experiment, metric"):
        heterogeneity(mixed)
    with pytest.raises(StatsInputError, match="the same, non-empty strata"):
        post_stratify({"a": ok}, {"b": ok})
    with pytest.raises(StatsInputError, match="`weights` must give a finite"):
        post_stratify({"a": ok}, {"a": ok}, weights={"a": -1.0})
    with pytest.raises(StatsInputError, match="missing \\['b'\\]"):
        post_stratify({"a": ok, "b": ok}, {"a": ok, "b": ok}, weights={"a": 1.0})
    with pytest.raises(StatsInputError, match="`alpha` must be"):
        post_stratify({"a": ok}, {"a": ok}, alpha=2.0)
