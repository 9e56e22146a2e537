"""Multiple comparisons: Holm and Benjamini-Hochberg within metric families.

An experiment with several metrics and several variants runs ``m`` tests; at level alpha
each, the chance of at least one false positive grows with ``m``. proving corrects within a
*family* of comparisons: by default the comparisons of one experiment and one segment whose
metrics share a family (``primary``, ``secondary``, ``guardrail``). A guardrail is
therefore never diluted by the number of secondary metrics, and the "all" segment is not
diluted by exploratory segment breakdowns.

Adjusted p-values (``p_(1) <= ... <= p_(m)`` sorted, ``m`` = comparisons with a p-value):

* Holm (1979), "A simple sequentially rejective multiple test procedure", Scand. J.
  Statist. 6: ``p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``; controls the
  family-wise error rate.
* Benjamini & Hochberg (1995), "Controlling the false discovery rate", JRSS B 57:
  ``p~_(i) = min_{j >= i} min(1, m p_(j) / j)``; controls the false discovery rate.

A comparison is significant when its adjusted p-value is below alpha.

Adjusted intervals:

* Holm: Bonferroni intervals at level ``1 - alpha / m``. They hold simultaneously with
  probability ``1 - alpha`` (Bonferroni's inequality), so they are valid whatever Holm
  rejects, but they can be wider than Holm's decision: a comparison Holm rejects in a
  later step may have an interval that contains 0. The comparison then carries a warning.
  (Holm's own compatible bounds, Strassburger & Bretz 2008, Stat. Med. 27, collapse to the
  null value for rejected hypotheses, which users read as "no information".)
* BH: the false-coverage-rate (FCR) adjusted intervals of Benjamini & Yekutieli (2005),
  "False discovery rate-adjusted multiple confidence intervals for selected parameters",
  JASA 100, Definition 1: with ``R`` comparisons selected (rejected by BH at ``alpha``),
  each gets the marginal interval at level ``1 - R alpha / m``; the expected share of
  selected intervals that miss their parameter is at most alpha. The comparisons not
  selected get the same level (``1 - max(R, 1) alpha / m``), for display; their intervals
  contain 0 exactly as BH does not reject them.

Intervals are recomputed from each result's ``estimate``, ``std_err`` and ``df`` on the
scale the result was tested on (the log scale for ``relative_method="log"``).

Example:
    >>> from proving.stats.results import ComparisonResult
    >>> rs = [ComparisonResult(metric=m, variant="b", estimate=e, std_err=0.01, df=None,
    ...                        p_value=p, ci_lower=e - 0.0196, ci_upper=e + 0.0196)
    ...       for m, e, p in (("ctr", 0.03, 0.0027), ("time", 0.02, 0.0455))]
    >>> [round(r.adjusted_p_value, 4) for r in adjust(rs, method="holm", alpha=0.05)]
    [0.0054, 0.0455]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal, get_args

import numpy as np
from scipy import special

from proving._types import FloatArray
from proving.errors import StatsInputError
from proving.stats.results import ComparisonResult, finite_or_none

AdjustMethod = Literal["none", "holm", "bh"]
FAMILY_KEYS = ("experiment", "segment", "family")
_KEY_FIELDS = ("experiment", "segment", "family", "metric", "variant", "control")


def holm(p_values: Sequence[float] | FloatArray) -> FloatArray:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order.

    Example:
        >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(stepped)
    return out


def benjamini_hochberg(p_values: Sequence[float] | FloatArray) -> FloatArray:
    """Benjamini-Hochberg step-up adjusted p-values (BH 1995), in the input order.

    Example:
        >>> benjamini_hochberg([0.01, 0.04, 0.03]).round(2).tolist()
        [0.03, 0.04, 0.04]
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, m * p[order] / np.arange(1, m + 1))
    out = np.empty(m)
    out[order] = np.minimum.accumulate(scaled[::-1])[::-1]
    return out


def _intervals(
    results: Sequence[ComparisonResult], levels: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Each result's interval recomputed at its own error level ``levels[i]``."""
    est = np.array([r.estimate for r in results], dtype=float)
    se = np.array([r.std_err for r in results], dtype=float)
    df = np.array([math.inf if r.df is None else r.df for r in results], dtype=float)
    log = np.array([r.effect == "relative" and r.relative_method == "log" for r in results])
    two = np.array([r.alternative == "two-sided" for r in results])
    with np.errstate(divide="ignore", invalid="ignore"):
        # Log-ratio results report std_err on the lift scale: (1 + r) * se_log.
        centre = np.where(log, np.log1p(est), est)
        scale = np.where(log, se / (1.0 + est), se)
        level = np.where(two, 1.0 - levels / 2.0, 1.0 - levels)
        finite_df = np.where(np.isinf(df), 1.0, df)
        q = np.where(np.isinf(df), special.ndtri(level), special.stdtrit(finite_df, level))
        lo = centre - q * scale
        hi = centre + q * scale
    lo = np.where([r.alternative == "less" for r in results], -np.inf, lo)
    hi = np.where([r.alternative == "greater" for r in results], np.inf, hi)
    # Back from the log scale only on log-ratio rows: expm1 of an absolute or delta-method
    # bound (say a lift interval reaching 1000) would overflow for nothing.
    lo[log], hi[log] = np.expm1(lo[log]), np.expm1(hi[log])
    return lo, hi


def _family(
    members: list[ComparisonResult], method: AdjustMethod, alpha: float
) -> list[ComparisonResult]:
    p = np.array([r.p_value for r in members], dtype=float)
    m = p.size
    if method == "holm":
        adjusted = holm(p)
        levels = np.full(m, alpha / m)
    else:
        adjusted = benjamini_hochberg(p)
        selected = int(np.sum(adjusted < alpha))
        levels = np.full(m, max(selected, 1) * alpha / m)
    lo, hi = _intervals(members, levels)
    out = []
    for i, r in enumerate(members):
        notes = r.warnings
        excludes_zero = lo[i] > 0 or hi[i] < 0
        has_interval = not (math.isnan(lo[i]) or math.isnan(hi[i]))
        if method == "holm" and adjusted[i] < alpha and has_interval and not excludes_zero:
            notes = (
                *notes,
                f"Holm rejects at alpha = {alpha:g} but the simultaneous (Bonferroni, "
                f"alpha/{m}) interval contains 0; the interval is the conservative one",
            )
        out.append(
            replace(
                r,
                correction=method,
                adjusted_p_value=float(adjusted[i]),
                adjusted_ci_lower=finite_or_none(lo[i]),
                adjusted_ci_upper=finite_or_none(hi[i]),
                warnings=notes,
            )
        )
    return out


def _validate(
    results: Sequence[ComparisonResult], method: str, alpha: float, by: Sequence[str]
) -> None:
    if method not in get_args(AdjustMethod):
        raise StatsInputError(
            f"`method` must be one of 'none', 'holm', 'bh'; got {method!r}. Use 'holm' to "
            "control the family-wise error rate, 'bh' for the false discovery rate."
        )
    if not (isinstance(alpha, int | float) and 0 < alpha <= 0.5):
        raise StatsInputError(
            f"`alpha` must be a number in (0, 0.5]; got {alpha!r}. Use a value such as 0.05."
        )
    bad = [k for k in by if k not in _KEY_FIELDS]
    if bad:
        raise StatsInputError(
            f"`by` names unknown field(s) {bad}; choose from {list(_KEY_FIELDS)}."
        )
    for r in results:
        if r.p_value is not None and not math.isclose(r.alpha, alpha, rel_tol=1e-12):
            raise StatsInputError(
                f"comparison of variant {r.variant!r} on metric {r.metric!r} was computed at "
                f"alpha = {r.alpha}, but adjust() was given alpha = {alpha}; analyze and "
                "correct at one alpha."
            )


def adjust(
    results: Sequence[ComparisonResult],
    *,
    method: AdjustMethod,
    alpha: float,
    by: Sequence[str] = FAMILY_KEYS,
) -> list[ComparisonResult]:
    """Adjust p-values and intervals for multiple comparisons within each family.

    Args:
        results: comparisons, e.g. ``analyze(...).comparisons``.
        method: "holm" (family-wise error rate), "bh" (false discovery rate) or "none".
        alpha: the family's error rate; must equal the results' own ``alpha``.
        by: the fields whose values define a family (default: experiment, segment and
            metric family). Add nothing to correct more broadly; e.g. ``("family",)``
            corrects across experiments and segments too.

    Returns:
        The results in the input order, each with ``correction``, ``adjusted_p_value`` and
        ``adjusted_ci_lower``/``adjusted_ci_upper`` filled. Comparisons without a p-value
        (degenerate data) do not count towards ``m`` and keep ``None`` adjusted fields.

    Raises:
        StatsInputError: an unknown ``method`` or ``by`` field, ``alpha`` outside (0, 0.5],
            or a result computed at a different alpha.

    Example:
        >>> adjust([], method="bh", alpha=0.05)
        []
    """
    _validate(results, method, alpha, by)
    out: list[ComparisonResult] = list(results)
    families: dict[tuple[str, ...], list[int]] = {}
    for i, r in enumerate(results):
        if r.p_value is not None and math.isfinite(r.p_value):
            key = tuple(str(getattr(r, k)) for k in by)
            families.setdefault(key, []).append(i)
        else:  # no test, so nothing to adjust; still record that a correction was applied
            out[i] = replace(r, correction=method)
    for idx in families.values():
        members = [results[i] for i in idx]
        if method == "none":
            fixed = [
                replace(
                    r,
                    correction="none",
                    adjusted_p_value=r.p_value,
                    adjusted_ci_lower=r.ci_lower,
                    adjusted_ci_upper=r.ci_upper,
                )
                for r in members
            ]
        else:
            fixed = _family(members, method, float(alpha))
        for i, r in zip(idx, fixed, strict=True):
            out[i] = r
    return out
