"""proving against gbstats 0.8.0 and spotify-confidence 4.1.0 on the same inputs.

The peers pin numpy<2 and pandas<2, so they cannot run in proving's environment; their
outputs are golden values in tests/vectors/peers/golden.json, written by
scripts/peer_oracle.py in the peers venv (`make golden`; provenance inside the file). Where
the conventions match, the numbers must agree; where they differ, each test pins the
difference and says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from proving.stats import analyze
from proving.stats.results import ComparisonResult

GOLDEN = Path(__file__).resolve().parents[1] / "vectors" / "peers" / "golden.json"
CASES: list[dict[str, Any]] = json.loads(GOLDEN.read_text())["cases"]
PLAIN = ("mean", "proportion", "ratio")


def _rows(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        kind = "mean" if case["kind"] == "cuped" else case["kind"]
        for variant in ("control", "treatment"):
            rows.append({"metric": case["id"], "variant": variant, "kind": kind, **case[variant]})
    return rows


def _ours(**options: Any) -> dict[str, ComparisonResult]:
    return {c.metric: c for c in analyze(_rows(CASES), **options).comparisons}


def _cases(*kinds: str) -> list[dict[str, Any]]:
    return [c for c in CASES if c["kind"] in kinds]


def test_golden_file_covers_every_kind() -> None:
    assert {c["kind"] for c in CASES} == {"mean", "proportion", "ratio", "cuped"}
    assert len(CASES) >= 80


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_absolute_effects_equal_gbstats(alternative: str) -> None:
    ours = _ours(effect="absolute", alternative=alternative)
    for case in _cases(*PLAIN):
        theirs = case["gbstats"][f"absolute/{alternative}"]
        mine = ours[case["id"]]
        for field in ("estimate", "ci_lower", "ci_upper", "p_value"):
            if theirs[field] is None:  # gbstats' infinite one-sided bound
                assert getattr(mine, field) in (None, np.inf), field
                continue
            assert getattr(mine, field) == pytest.approx(theirs[field], rel=1e-9), (
                case["id"],
                field,
            )


def test_relative_lift_equals_gbstats_except_for_degrees_of_freedom() -> None:
    # Same estimate and standard error (delta method). gbstats computes Welch's degrees of
    # freedom from the absolute variance components (s^2/n); proving from the components of
    # the relative effect's own variance, the effect it tests. Rebuilding gbstats' interval
    # from proving's standard error and gbstats' df reproduces it exactly, which pins the df
    # as the only difference; it moves the interval by well under 1% of its width here.
    ours = _ours(effect="relative")
    for case in _cases(*PLAIN):
        theirs = case["gbstats"]["relative/two-sided"]
        mine = ours[case["id"]]
        assert mine.estimate == pytest.approx(theirs["estimate"], rel=1e-9)
        assert mine.std_err == pytest.approx(theirs["std_err"], rel=1e-9)
        c, t = case["control"], case["treatment"]
        if case["kind"] == "proportion":
            v_c = (c["sum"] / c["n"]) * (1 - c["sum"] / c["n"]) / c["n"]
            v_t = (t["sum"] / t["n"]) * (1 - t["sum"] / t["n"]) / t["n"]
        elif case["kind"] == "mean":
            v_c = (c["sum_squares"] - c["sum"] ** 2 / c["n"]) / (c["n"] - 1) / c["n"]
            v_t = (t["sum_squares"] - t["sum"] ** 2 / t["n"]) / (t["n"] - 1) / t["n"]
        else:
            continue  # gbstats' ratio df uses the ratio variance, checked below via width
        df_abs = (v_c + v_t) ** 2 / (v_c**2 / (c["n"] - 1) + v_t**2 / (t["n"] - 1))
        half = sps.t.ppf(0.975, df_abs) * mine.std_err
        assert mine.estimate - half == pytest.approx(theirs["ci_lower"], rel=1e-9)
        assert mine.estimate + half == pytest.approx(theirs["ci_upper"], rel=1e-9)
    for case in _cases(*PLAIN):
        theirs = case["gbstats"]["relative/two-sided"]
        mine = ours[case["id"]]
        width = theirs["ci_upper"] - theirs["ci_lower"]
        assert abs(mine.ci_lower - theirs["ci_lower"]) < 0.01 * width
        assert abs(mine.ci_upper - theirs["ci_upper"]) < 0.01 * width


def test_gbstats_one_sided_less_interval_is_wrong_and_ours_is_not() -> None:
    # gbstats 0.8.0's OneSidedTreatmentLesserTTest returns (-inf, estimate - width]: an upper
    # bound below its own estimate. The correct bound is estimate + width (it must contain
    # the estimate and match the p-value's duality).
    ours = _ours(effect="absolute", alternative="less")
    for case in _cases(*PLAIN):
        theirs = case["gbstats"]["absolute/less"]
        mine = ours[case["id"]]
        width = mine.estimate - theirs["ci_upper"]
        assert theirs["ci_upper"] < theirs["estimate"]
        assert mine.ci_upper == pytest.approx(mine.estimate + width, rel=1e-9)
        assert mine.p_value == pytest.approx(theirs["p_value"], rel=1e-9)


def test_cuped_differs_from_gbstats_only_by_its_conventions() -> None:
    # gbstats' CUPED takes theta from the pooled *total* covariance (treatment differences
    # included) and, for the lift, divides by the unadjusted control mean. proving pools the
    # within-arm covariances (the OLS/ANCOVA slope, as statsmodels gives it) and takes the
    # lift of the adjusted means. Both are consistent; on these cases the absolute effects
    # differ by a small fraction of a standard error.
    ours = _ours(effect="absolute", cuped=True)
    for case in _cases("cuped"):
        theirs = case["gbstats"]["absolute/two-sided"]
        mine = ours[case["id"]]
        assert mine.cuped and mine.variance_reduction is not None
        assert abs(mine.estimate - theirs["estimate"]) < 0.1 * theirs["std_err"]
        assert mine.std_err == pytest.approx(theirs["std_err"], rel=0.02)


def test_absolute_welch_equals_spotify_for_means() -> None:
    ours = _ours(effect="absolute")
    for case in _cases("mean"):
        theirs = case["spotify"]["absolute/welch"]
        mine = ours[case["id"]]
        for field in ("estimate", "ci_lower", "ci_upper", "p_value"):
            assert getattr(mine, field) == pytest.approx(theirs[field], rel=1e-9)


def test_spotify_relative_interval_treats_the_control_mean_as_known() -> None:
    # spotify-confidence's relative interval is its absolute interval divided by the control
    # mean: Var = (v_t + v_c) / m_c^2. The delta method (proving) scales the control's term by
    # the squared ratio: Var = (v_t + (m_t / m_c)^2 v_c) / m_c^2. So proving's interval is
    # wider exactly when the treatment mean is above the control mean, narrower below.
    ours = _ours(effect="relative", method="z")
    for case in _cases("mean"):
        theirs = case["spotify"]["relative/z"]
        absolute = case["spotify"]["absolute/z"]
        c, t = case["control"], case["treatment"]
        m_c, m_t = c["sum"] / c["n"], t["sum"] / t["n"]
        assert theirs["ci_lower"] == pytest.approx(absolute["ci_lower"] / m_c, rel=1e-9)
        v_c = (c["sum_squares"] - c["sum"] ** 2 / c["n"]) / (c["n"] - 1) / c["n"]
        v_t = (t["sum_squares"] - t["sum"] ** 2 / t["n"]) / (t["n"] - 1) / t["n"]
        theirs_se = (theirs["ci_upper"] - theirs["ci_lower"]) / (2 * sps.norm.ppf(0.975))
        assert theirs_se**2 == pytest.approx((v_t + v_c) / m_c**2, rel=1e-6)
        mine = ours[case["id"]]
        assert mine.std_err**2 == pytest.approx((v_t + (m_t / m_c) ** 2 * v_c) / m_c**2, rel=1e-9)
        assert (mine.std_err > theirs_se) == (m_t > m_c)
