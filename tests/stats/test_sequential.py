"""Always-valid results over analyses: sequentialize, adjust_sequential, families under peeking."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from proving.errors import StatsInputError
from proving.stats.analyze import analyze
from proving.stats.cuped import cuped_adjust
from proving.stats.effects import mean_moments
from proving.stats.multiple import holm
from proving.stats.ratio import linearize
from proving.stats.results import AnalysisResult, ComparisonResult
from proving.stats.sequential import (
    adjust_sequential,
    always_valid_compare,
    always_valid_interval,
    sequentialize,
)

ALPHA = 0.05


def _binomial_tolerance(rate: float, sims: int) -> float:
    return 3.0 * math.sqrt(rate * (1.0 - rate) / sims)


def _null_family_rows(rng: np.random.Generator, metrics: int, n: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for k in range(metrics):
        for variant in ("control", "b"):
            s = rng.normal(0.0, math.sqrt(n))
            q = rng.chisquare(n - 1) + s * s / n
            rows.append({"variant": variant, "metric": f"m{k}", "n": n, "sum": s, "sum_squares": q})
    return rows


def test_sequentialize_matches_the_vectorized_engine_and_keeps_the_running_minimum() -> None:
    rows = _null_family_rows(np.random.default_rng(30), 3, 2000)
    fixed = analyze(rows, effect="absolute", method="z").comparisons
    seq = sequentialize(fixed)
    for f, s in zip(fixed, seq, strict=True):
        lo, hi, p, _, _ = always_valid_interval(
            [f.estimate],
            [f.std_err],
            [f.n_control + f.n_treatment],  # type: ignore[operator]
        )
        assert s.ci_lower == pytest.approx(lo[0], rel=1e-12)
        assert s.ci_upper == pytest.approx(hi[0], rel=1e-12)
        assert s.p_value == pytest.approx(p[0], rel=1e-12)
        assert any("always-valid" in w for w in s.warnings)
    earlier = [replace(r, p_value=1e-4) for r in seq]
    assert all(r.p_value == 1e-4 for r in sequentialize(fixed, previous=earlier))


def test_adjust_sequential_applies_holm_and_widens_the_sequences() -> None:
    rows = _null_family_rows(np.random.default_rng(31), 4, 3000)
    seq = sequentialize(analyze(rows, effect="absolute", method="z").comparisons)
    adjusted = adjust_sequential(seq, method="holm", alpha=0.05)
    np.testing.assert_allclose(
        [r.adjusted_p_value for r in adjusted], holm([r.p_value for r in seq]), rtol=1e-12
    )
    for r in adjusted:
        lo, hi, _, _, _ = always_valid_interval(
            [r.estimate],
            [r.std_err],
            [r.n_control + r.n_treatment],
            alpha=0.05 / 4,  # type: ignore[operator]
        )
        assert r.adjusted_ci_lower == pytest.approx(lo[0], rel=1e-12)
        assert r.adjusted_ci_upper == pytest.approx(hi[0], rel=1e-12)
        assert r.correction == "holm"
    with pytest.raises(StatsInputError, match="`method` must be one of 'none', 'holm', 'bh'"):
        adjust_sequential(seq, method="sidak", alpha=0.05)  # type: ignore[arg-type]


def test_family_of_monitored_metrics_holm_keeps_fwer_under_peeking() -> None:
    # 10 null metrics watched over 20 looks: each alone stays below alpha, but "any metric
    # ever significant" does not; Holm on the always-valid p-values restores the guarantee.
    rng = np.random.default_rng(32)
    sims, looks, metrics, batch = 1500, 20, 10, 300
    shape = (sims, metrics, looks)
    n = batch * np.arange(1, looks + 1.0)
    arms = []
    for _ in range(2):
        s = np.cumsum(rng.normal(0, math.sqrt(batch), shape), 2)
        q = np.cumsum(rng.chisquare(batch - 1, shape), 2) + s**2 / n
        arms.append(mean_moments(np.broadcast_to(n, shape).ravel(), s.ravel(), q.ravel()))
    (mc, vc), (mt, vt) = arms
    nn = np.broadcast_to(n, shape).ravel()
    seq = always_valid_compare(mc, vc, nn, mt, vt, nn, effect="absolute")
    running = np.minimum.accumulate(seq.p_value.reshape(shape), axis=2)
    raw = np.any(running <= ALPHA, axis=(1, 2)).mean()
    # Holm at each look on the running-minimum p-values of the 10 metrics.
    ordered = np.sort(running, axis=1)
    steps = np.maximum.accumulate(
        np.minimum(1.0, (metrics - np.arange(metrics))[None, :, None] * ordered), axis=1
    )
    holm_any = np.any(steps[:, 0, :] <= ALPHA, axis=1).mean()
    print(f"10 metrics x 20 looks: unadjusted always-valid FWER {raw:.3f}, Holm {holm_any:.3f}")
    assert holm_any <= ALPHA + _binomial_tolerance(ALPHA, sims)
    assert raw > 2 * ALPHA


def test_aa_cuped_adjusted_sequence_is_valid_and_narrower() -> None:
    rng = np.random.default_rng(40)
    sims, looks, batch = 400, 12, 200
    shape = (sims, looks, batch)
    moments = []
    for _ in range(2):  # control, treatment: y = x + noise, x a pre-period covariate
        x = rng.normal(5.0, 2.0, shape)
        y = x + rng.normal(0.0, 1.0, shape)
        per_look = np.stack([y.sum(2), x.sum(2), (y * y).sum(2), (x * x).sum(2), (y * x).sum(2)])
        moments.append(np.cumsum(per_look, axis=2).reshape(5, -1))
    m = sims * looks
    n = np.tile(batch * np.arange(1, looks + 1.0), sims)
    # Arms interleaved: control of comparison i at 2i, treatment at 2i + 1.
    c, t = moments
    sums = np.empty((2 * m, 2))
    cross = np.empty((2 * m, 2, 2))
    for arm, mm in ((0, c), (1, t)):
        sums[arm::2] = np.column_stack([mm[0], mm[1]])
        cross[arm::2, 0, 0], cross[arm::2, 1, 1] = mm[2], mm[3]
        cross[arm::2, 0, 1] = cross[arm::2, 1, 0] = mm[4]
    lin = linearize(np.repeat(n, 2), sums, cross, ratio=False)
    adjusted = cuped_adjust(lin, np.repeat(np.arange(m), 2))
    est, var = adjusted.estimate, adjusted.variance
    seq = always_valid_compare(est[0::2], var[0::2], n, est[1::2], var[1::2], n, effect="absolute")
    raw = always_valid_compare(
        lin.estimate[0::2], lin.variance[0::2], n, lin.estimate[1::2], lin.variance[1::2], n,
        effect="absolute",
    )  # fmt: skip
    fwer = np.any((seq.p_value <= ALPHA).reshape(sims, looks), axis=1).mean()
    ratio = np.median((seq.ci_upper - seq.ci_lower) / (raw.ci_upper - raw.ci_lower))
    print(f"A/A CUPED: always-valid FWER {fwer:.4f}, interval width ratio {ratio:.3f}")
    assert fwer <= ALPHA + _binomial_tolerance(ALPHA, sims)
    # corr(x, y)^2 = 4/5, so CUPED keeps sqrt(1/5) = 0.447 of the width.
    assert ratio == pytest.approx(math.sqrt(0.2), rel=0.03)


def _mixed_rows(rng: np.random.Generator, metrics: int) -> list[dict[str, object]]:
    """Mean rows in two segments, with an empty and a constant arm among them."""
    rows: list[dict[str, object]] = []
    for k in range(metrics):
        for segment in ("all", "mobile"):
            for variant in ("control", "b"):
                n = 0 if (k, segment, variant) == (1, "mobile", "b") else int(rng.integers(80, 900))
                y = rng.normal(10.0 + 0.3 * (variant == "b"), 0.0 if k == 2 else 2.0, n)
                rows.append({"variant": variant, "metric": f"m{k}", "segment": segment,
                             "n": n, "sum": y.sum(), "sum_squares": (y * y).sum()})  # fmt: skip
    return rows


def _one_at_a_time(r: ComparisonResult, alpha: float | None = None) -> tuple[float, float, float]:
    """The always-valid interval of one comparison, from always_valid_interval alone."""
    assert r.estimate is not None and r.std_err is not None
    est, se = r.estimate, r.std_err
    log = r.effect == "relative" and r.relative_method == "log"
    centre, scale = (math.log1p(est), se / (1.0 + est)) if log else (est, se)
    lo, hi, p, _, _ = always_valid_interval(
        [centre], [scale], [(r.n_control or 0.0) + (r.n_treatment or 0.0)],
        alpha=r.alpha if alpha is None else alpha, alternative=r.alternative,
    )  # fmt: skip
    if log:
        lo, hi = np.expm1(lo), np.expm1(hi)
    return float(lo[0]), float(hi[0]), float(p[0])


@pytest.mark.parametrize(
    "options",
    [
        {"effect": "absolute", "method": "z"},
        {"effect": "relative", "relative_method": "log", "method": "z", "alpha": 0.1},
        {"effect": "relative", "method": "welch", "alternative": "greater"},
    ],
)
def test_sequentialize_of_an_analysis_is_columnar_and_equals_one_at_a_time(
    options: dict[str, object],
) -> None:
    result = analyze(_mixed_rows(np.random.default_rng(40), 6), **options)  # type: ignore[arg-type]
    out = sequentialize(result)
    # An AnalysisResult in, an AnalysisResult out (SRM checks and warnings kept), with the
    # same comparisons as the list path and as one always_valid_interval call per result.
    assert out.srm == result.srm and out.warnings == result.warnings
    assert list(out.comparisons) == sequentialize(result.comparisons)
    assert out.comparison_columns()["ci_lower"] == [c.ci_lower for c in out.comparisons]
    degenerate = 0
    for fixed, seq in zip(result.comparisons, out.comparisons, strict=True):
        if fixed.estimate is None or not (fixed.std_err or 0.0) > 0:
            assert seq == fixed  # passes through unchanged
            degenerate += 1
            continue
        lo, hi, p = _one_at_a_time(fixed)
        assert (seq.ci_lower, seq.ci_upper, seq.p_value) == (
            lo if math.isfinite(lo) else None,
            hi if math.isfinite(hi) else None,
            p,
        )
        assert seq.method == "z" and seq.warnings[-1].startswith("always-valid")
    assert degenerate >= 2  # the empty arm and the constant metric


def test_sequentialize_groups_mixed_levels_and_keeps_degenerate_objects() -> None:
    base = ComparisonResult(metric="m", variant="b", effect="absolute", estimate=0.02,
                            std_err=0.01, n_control=3000, n_treatment=3000)  # fmt: skip
    results = [
        base,
        replace(base, metric="a", alpha=0.01),
        replace(base, metric="g", alternative="greater"),
        replace(base, metric="l", alternative="less", alpha=0.2, estimate=-0.05),
        replace(base, metric="r", effect="relative", relative_method="log", estimate=0.3),
        replace(base, metric="none", estimate=None, reason="an arm is empty"),
        replace(base, metric="zero", std_err=0.0),
    ]
    out = sequentialize(results)
    for r, s in zip(results[:5], out[:5], strict=True):
        lo, hi, p = _one_at_a_time(r)
        assert s.ci_lower == (lo if math.isfinite(lo) else None)
        assert s.ci_upper == (hi if math.isfinite(hi) else None)
        assert s.p_value == p
    assert out[5] is results[5] and out[6] is results[6]
    assert out[2].ci_upper is None and out[3].ci_lower is None


def test_sequentialize_running_minimum_matches_by_key_and_accepts_an_analysis() -> None:
    rows = _mixed_rows(np.random.default_rng(41), 4)
    now = analyze(rows, effect="absolute", method="z")
    earlier_rows = [dict(r, n=max(int(r["n"]) // 3, 0)) for r in rows]  # type: ignore[call-overload]
    # (n // 3 of the units with the same sums is not a real look; only the p-values matter.)
    earlier = analyze(earlier_rows, effect="absolute", method="z")
    first = sequentialize(earlier)
    # Lower some earlier p-values, drop one comparison, and give one no p-value.
    previous = [replace(r, p_value=1e-9) if i % 3 == 0 else r
                for i, r in enumerate(first.comparisons) if i != 4]  # fmt: skip
    previous[1] = replace(previous[1], p_value=None)
    before = {(r.experiment, r.segment, r.metric, r.control, r.variant): r.p_value
              for r in previous}  # fmt: skip
    for given in (previous, AnalysisResult(comparisons=tuple(previous))):
        out = sequentialize(now, previous=given)
        for fixed, seq in zip(now.comparisons, out.comparisons, strict=True):
            if seq.p_value is None or fixed.p_value is None:
                continue
            own = _one_at_a_time(fixed)[2]
            last = before.get((fixed.experiment, fixed.segment, fixed.metric, fixed.control,
                               fixed.variant))  # fmt: skip
            assert seq.p_value == (min(own, last) if last is not None else own)
        assert sum(c.p_value == 1e-9 for c in out.comparisons) >= 2  # the minimum was taken


def test_adjust_sequential_of_an_analysis_equals_the_list_path() -> None:
    result = sequentialize(analyze(_mixed_rows(np.random.default_rng(42), 5), effect="absolute"))
    for method in ("holm", "bh", "none"):
        columnar = adjust_sequential(result, method=method)  # type: ignore[arg-type]
        listed = adjust_sequential(list(result.comparisons), method=method)  # type: ignore[arg-type]
        assert isinstance(columnar, AnalysisResult)
        assert list(columnar.comparisons) == listed
    # Holm per (experiment, segment, family) family, by hand: p-values and intervals.
    holm_results = adjust_sequential(result, method="holm").comparisons
    families: dict[tuple[str, str, str], list[ComparisonResult]] = {}
    for r in holm_results:
        if r.p_value is not None:
            families.setdefault((r.experiment, r.segment, r.family), []).append(r)
    assert families
    for members in families.values():
        expected = holm([r.p_value for r in members])  # type: ignore[misc]
        for r, adjusted in zip(members, expected, strict=True):
            assert r.adjusted_p_value == pytest.approx(adjusted, rel=1e-12)
            lo, hi, _ = _one_at_a_time(r, 0.05 / len(members))
            assert (r.adjusted_ci_lower, r.adjusted_ci_upper) == (lo, hi)
