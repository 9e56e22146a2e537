"""Multiple comparisons: checked against statsmodels' multipletests, the marginal intervals
of effects.compare at the adjusted level, and by simulation (FWER, FCR)."""

from __future__ import annotations

import doctest
import json
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from proving.errors import StatsInputError
from proving.stats import multiple
from proving.stats.effects import compare
from proving.stats.multiple import adjust, benjamini_hochberg, holm
from proving.stats.results import ComparisonResult


def build(
    names: Sequence[tuple[str, str, str]],
    m_c: np.ndarray,
    v_c: np.ndarray,
    m_t: np.ndarray,
    v_t: np.ndarray,
    n: float = 400,
    **options: object,
) -> list[ComparisonResult]:
    """ComparisonResults (metric, variant, family) from a vectorized effects.compare."""
    out = compare(m_c, v_c, n, m_t, v_t, n, **options)  # type: ignore[arg-type]
    results = []
    for i, (metric, variant, family) in enumerate(names):
        results.append(
            ComparisonResult(
                metric=metric,
                variant=variant,
                family=family,  # type: ignore[arg-type]
                effect=options.get("effect", "relative"),  # type: ignore[arg-type]
                relative_method=options.get("relative_method", "delta"),  # type: ignore[arg-type]
                method=options.get("method", "welch"),  # type: ignore[arg-type]
                alternative=options.get("alternative", "two-sided"),  # type: ignore[arg-type]
                alpha=float(options.get("alpha", 0.05)),  # type: ignore[arg-type]
                estimate=float(out.estimate[i]),
                std_err=float(out.std_err[i]),
                df=None if np.isinf(out.df[i]) else float(out.df[i]),
                statistic=float(out.statistic[i]),
                p_value=float(out.p_value[i]),
                ci_lower=float(out.ci_lower[i]) if np.isfinite(out.ci_lower[i]) else None,
                ci_upper=float(out.ci_upper[i]) if np.isfinite(out.ci_upper[i]) else None,
            )
        )
    return results


def experiment(rng: np.random.Generator, k_primary: int, k_secondary: int, variants: int = 2):
    names = [
        (f"{fam}_{j}", f"v{v}", fam)
        for fam, k in (("primary", k_primary), ("secondary", k_secondary), ("guardrail", 2))
        for j in range(k)
        for v in range(variants)
    ]
    size = len(names)
    m_c = 10 + rng.normal(0, 0.1, size)
    m_t = m_c * (1 + rng.normal(0.01, 0.01, size))
    var = np.full(size, 0.0025)
    return names, m_c, var, m_t, var.copy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adjusted_p_values_match_multipletests(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=20), rng.uniform(0, 0.01, 5), [1.0, 0.5, 0.5]])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    np.testing.assert_allclose(
        benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12
    )
    assert holm([0.2]).tolist() == [0.2] and benjamini_hochberg([0.2]).tolist() == [0.2]


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_families_are_corrected_separately(method: str) -> None:
    rng = np.random.default_rng(4)
    names, *arrays = experiment(rng, 1, 5)
    results = adjust(build(names, *arrays), method=method, alpha=0.05)  # type: ignore[arg-type]
    sm_method = "holm" if method == "holm" else "fdr_bh"
    for fam in ("primary", "secondary", "guardrail"):
        members = [r for r in results if r.family == fam]
        ref = multipletests([r.p_value for r in members], alpha=0.05, method=sm_method)[1]
        np.testing.assert_allclose([r.adjusted_p_value for r in members], ref, rtol=1e-12)
        assert all(r.correction == method for r in members)


def test_guardrail_is_not_diluted_by_secondary_metrics() -> None:
    rng = np.random.default_rng(9)
    names, *arrays = experiment(rng, 1, 2)
    few = adjust(build(names, *arrays), method="holm", alpha=0.05)
    extra = [(f"extra_{j}", "v0", "secondary") for j in range(30)]
    more_names = names + extra
    pad = [np.concatenate([a, np.full(30, a[0])]) for a in arrays]
    many = adjust(build(more_names, *pad), method="holm", alpha=0.05)
    for a, b in zip(few, many[: len(few)], strict=True):
        if a.family == "guardrail":
            assert a.adjusted_p_value == b.adjusted_p_value
            assert a.adjusted_ci_lower == b.adjusted_ci_lower
        if a.family == "secondary":
            assert b.adjusted_p_value is not None and a.adjusted_p_value is not None
            assert b.adjusted_p_value >= a.adjusted_p_value


@pytest.mark.parametrize(
    "options",
    [
        {"effect": "relative"},
        {"effect": "absolute", "method": "z"},
        {"effect": "relative", "relative_method": "log"},
        {"effect": "absolute", "alternative": "greater"},
        {"effect": "relative", "relative_method": "log", "alternative": "less"},
    ],
)
def test_holm_intervals_are_bonferroni_intervals(options: dict[str, str]) -> None:
    rng = np.random.default_rng(12)
    names = [(f"m{j}", "b", "primary") for j in range(6)]
    m_c = 5 + rng.normal(0, 0.1, 6)
    m_t = m_c * (1 + rng.normal(0.0, 0.02, 6))
    v_c, v_t = np.full(6, 0.004), np.full(6, 0.005)
    results = adjust(build(names, m_c, v_c, m_t, v_t, **options), method="holm", alpha=0.05)
    ref = compare(m_c, v_c, 400, m_t, v_t, 400, alpha=0.05 / 6, **options)  # type: ignore[arg-type]
    for i, r in enumerate(results):
        lo = ref.ci_lower[i] if np.isfinite(ref.ci_lower[i]) else None
        hi = ref.ci_upper[i] if np.isfinite(ref.ci_upper[i]) else None
        assert r.adjusted_ci_lower == (None if lo is None else pytest.approx(lo, rel=1e-9))
        assert r.adjusted_ci_upper == (None if hi is None else pytest.approx(hi, rel=1e-9))


def test_bh_intervals_are_fcr_adjusted() -> None:
    """Benjamini & Yekutieli (2005): level 1 - R alpha / m for the R selected."""
    rng = np.random.default_rng(21)
    m = 12
    names = [(f"m{j}", "b", "secondary") for j in range(m)]
    m_c = np.full(m, 10.0)
    m_t = 10.0 * (1 + np.r_[np.full(4, 0.04), rng.normal(0, 0.005, m - 4)])
    var = np.full(m, 0.01)
    results = adjust(build(names, m_c, var, m_t, var), method="bh", alpha=0.05)
    selected = sum(bool(r.significant) for r in results)
    assert 4 <= selected < m
    ref = compare(m_c, var, 400, m_t, var, 400, alpha=selected * 0.05 / m)
    for i, r in enumerate(results):
        assert r.adjusted_ci_lower == pytest.approx(ref.ci_lower[i], rel=1e-9)
        assert r.adjusted_ci_upper == pytest.approx(ref.ci_upper[i], rel=1e-9)
        excludes_zero = r.adjusted_ci_lower > 0 or r.adjusted_ci_upper < 0  # type: ignore[operator]
        assert excludes_zero == bool(r.significant)


def null_families(rng: np.random.Generator, reps: int, truth: np.ndarray) -> list[ComparisonResult]:
    """``reps`` experiments (families) of z tests of absolute effects with known truth."""
    m = truth.size
    names = [(f"m{j}", "b", "primary") for j in range(m)] * reps
    m_c = rng.normal(0, 0.1, reps * m)
    m_t = np.tile(truth, reps) + rng.normal(0, 0.1, reps * m)
    var = np.full(reps * m, 0.01)
    results = build(names, m_c, var, m_t, var, effect="absolute", method="z")
    return [replace(r, experiment=f"e{i // m}") for i, r in enumerate(results)]


def test_simulated_fwer_of_holm_and_simultaneous_coverage() -> None:
    """Global null, 8 independent tests per family: Holm's FWER and the Bonferroni
    intervals' miss rate are both 1 - (1 - alpha/8)^8 = 0.0489 at alpha = 0.05."""
    reps, m = 2000, 8
    results = adjust(
        null_families(np.random.default_rng(5), reps, np.zeros(m)), method="holm", alpha=0.05
    )
    p_adj = np.array([r.adjusted_p_value for r in results]).reshape(reps, m)
    lo = np.array([r.adjusted_ci_lower for r in results]).reshape(reps, m)
    hi = np.array([r.adjusted_ci_upper for r in results]).reshape(reps, m)
    expected = 1 - (1 - 0.05 / m) ** m
    tolerance = 4 * np.sqrt(expected * (1 - expected) / reps)
    assert abs(np.mean(np.any(p_adj < 0.05, axis=1)) - expected) < tolerance
    assert abs(np.mean(np.any((lo > 0) | (hi < 0), axis=1)) - expected) < tolerance


def test_simulated_false_coverage_rate_of_bh_intervals() -> None:
    """Benjamini & Yekutieli (2005), Theorem 1: FCR <= alpha for independent tests."""
    reps = 2000
    truth = np.r_[np.full(3, 0.35), np.full(3, 0.2), np.zeros(6)]
    m = truth.size
    results = adjust(null_families(np.random.default_rng(6), reps, truth), method="bh", alpha=0.05)
    selected = np.array([bool(r.significant) for r in results]).reshape(reps, m)
    lo = np.array([r.adjusted_ci_lower for r in results]).reshape(reps, m)
    hi = np.array([r.adjusted_ci_upper for r in results]).reshape(reps, m)
    miss = selected & ((lo > truth) | (hi < truth))
    share = miss.sum(axis=1) / np.maximum(selected.sum(axis=1), 1)
    assert selected.sum(axis=1).mean() > 1.5  # the selection is not empty in practice
    assert share.mean() < 0.05 + 4 * share.std() / np.sqrt(reps)
    # Unadjusted 95% intervals of the selected do not keep the FCR: they miss more often.
    raw_lo = np.array([r.ci_lower for r in results]).reshape(reps, m)
    raw_hi = np.array([r.ci_upper for r in results]).reshape(reps, m)
    raw_miss = selected & ((raw_lo > truth) | (raw_hi < truth))
    raw_share = raw_miss.sum(axis=1) / np.maximum(selected.sum(axis=1), 1)
    assert raw_share.mean() > share.mean()


def test_analyze_corrects_per_family() -> None:
    """Through analyze(): adjusted p-values are multipletests per family, and the Holm
    intervals are analyze()'s own intervals at alpha / m."""
    from proving.stats.analyze import analyze
    from proving.stats.sufficient import ArmStats

    rng = np.random.default_rng(31)
    families = {"conv": "primary", "time": "secondary", "pages": "secondary",
                "depth": "secondary", "errors": "guardrail"}  # fmt: skip
    rows = []
    for metric, family in families.items():
        for variant, lift in (("control", 0.0), ("b", 0.03), ("c", 0.01)):
            y = rng.gamma(2, 5 * (1 + lift), 2000)
            rows.append({"variant": variant, "metric": metric, "family": family,
                         **ArmStats.from_values(y).to_flat()})  # fmt: skip
    raw = analyze(rows, effect="relative").comparisons
    holm_result = analyze(rows, effect="relative", correction="holm").comparisons
    for fam, m in (("primary", 2), ("secondary", 6), ("guardrail", 2)):
        members = [r for r in holm_result if r.family == fam]
        ref = multipletests([r.p_value for r in members], method="holm")[1]
        np.testing.assert_allclose([r.adjusted_p_value for r in members], ref, rtol=1e-12)
        wide = analyze(rows, effect="relative", alpha=0.05 / m).comparisons
        for r in members:
            w = next(x for x in wide if (x.metric, x.variant) == (r.metric, r.variant))
            assert r.adjusted_ci_lower == pytest.approx(w.ci_lower, rel=1e-9)
            assert r.adjusted_ci_upper == pytest.approx(w.ci_upper, rel=1e-9)
    assert [r.p_value for r in raw] == [r.p_value for r in holm_result]


def test_degenerate_results_are_left_out_of_m() -> None:
    rng = np.random.default_rng(2)
    names, *arrays = experiment(rng, 3, 0, variants=1)
    results = build(names, *arrays)
    empty = ComparisonResult(metric="primary_9", variant="v0", reason="an arm is empty (n = 0)")
    adjusted = adjust([*results, empty], method="holm", alpha=0.05)
    assert adjusted[-1].adjusted_p_value is None and adjusted[-1].adjusted_ci_lower is None
    assert adjusted[-1].correction == "holm"
    primaries = [r.p_value for r in results if r.family == "primary"]
    ref = multipletests(primaries, method="holm")[1]
    np.testing.assert_allclose(
        [r.adjusted_p_value for r in adjusted if r.family == "primary"][:3], ref, rtol=1e-12
    )


def test_results_without_a_standard_error_get_p_values_but_no_intervals() -> None:
    """E.g. a result from a method that reports only a p-value: adjusted p, no interval."""
    results = [
        ComparisonResult(metric=f"m{i}", variant="b", estimate=0.1, p_value=p)
        for i, p in enumerate((0.001, 0.02))
    ]
    adjusted = adjust(results, method="holm", alpha=0.05)
    np.testing.assert_allclose(
        [r.adjusted_p_value for r in adjusted], multipletests([0.001, 0.02], method="holm")[1]
    )
    assert all(r.adjusted_ci_lower is None and r.adjusted_ci_upper is None for r in adjusted)
    assert all(not r.warnings for r in adjusted)


def test_none_copies_the_marginal_values() -> None:
    rng = np.random.default_rng(3)
    names, *arrays = experiment(rng, 1, 1, variants=1)
    for r in adjust(build(names, *arrays), method="none", alpha=0.05):
        assert r.adjusted_p_value == r.p_value and r.adjusted_ci_lower == r.ci_lower
        assert r.correction == "none"


def test_holm_warns_when_its_interval_is_wider_than_its_decision() -> None:
    names = [("a", "b", "primary"), ("c", "b", "primary")]
    # p = 0.01 and 0.03: Holm rejects both at 0.05, the Bonferroni level 0.025 misses the second.
    est = np.array([2.5758293, 2.1700904]) * 0.1
    results = adjust(
        build(names, np.zeros(2), np.full(2, 0.005), est, np.full(2, 0.005), effect="absolute",
              method="z"),
        method="holm",
        alpha=0.05,
    )  # fmt: skip
    assert all(r.significant for r in results)
    assert not results[0].warnings
    assert any("contains 0" in w for w in results[1].warnings)


def test_adjusted_results_round_trip_through_json() -> None:
    rng = np.random.default_rng(8)
    names, *arrays = experiment(rng, 1, 1)
    for r in adjust(build(names, *arrays, alternative="greater"), method="bh", alpha=0.05):
        data = json.loads(r.to_json())
        assert data["adjusted_ci_upper"] is None  # one-sided: infinite upper bound
        assert ComparisonResult.from_dict(data) == r


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "bonferroni", "alpha": 0.05}, r"`method` must be one of .*got 'bonferroni'"),
        ({"method": "holm", "alpha": 0.9}, r"`alpha` must be a number in \(0, 0.5\]; got 0.9"),
        ({"method": "holm", "alpha": 0.05, "by": ["team"]}, r"`by` names unknown field"),
        ({"method": "holm", "alpha": 0.1}, r"computed at alpha = 0.05, but adjust\(\) was given"),
    ],
)
def test_bad_parameters_raise(kwargs: dict[str, object], match: str) -> None:
    rng = np.random.default_rng(0)
    names, *arrays = experiment(rng, 1, 0, variants=1)
    with pytest.raises(StatsInputError, match=match):
        adjust(build(names, *arrays), **kwargs)  # type: ignore[arg-type]


def test_docstring_examples() -> None:
    assert doctest.testmod(multiple).failed == 0


def test_huge_delta_method_intervals_do_not_overflow() -> None:
    """Only log-ratio bounds go back through expm1; a delta-method lift interval of +-1000
    (a control mean near 0) must not raise an overflow warning (an error under pytest)."""
    names = [("m0", "b", "primary"), ("m1", "b", "primary")]
    m_c, m_t = np.array([0.01, 10.0]), np.array([12.0, 10.5])
    v_c, v_t = np.array([0.01, 0.04]), np.array([4.0, 0.04])
    results = build(names, m_c, v_c, m_t, v_t, effect="relative")
    assert results[0].ci_upper is not None and results[0].ci_upper > 1000
    adjusted = adjust(results, method="holm", alpha=0.05)
    ref = compare(m_c, v_c, 400, m_t, v_t, 400, effect="relative", alpha=0.025)
    for i, r in enumerate(adjusted):
        assert r.adjusted_ci_lower == pytest.approx(ref.ci_lower[i], rel=1e-9)
        assert r.adjusted_ci_upper == pytest.approx(ref.ci_upper[i], rel=1e-9)
