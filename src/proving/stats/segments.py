"""Segments: per-segment effects, a heterogeneity test, and post-stratified estimates.

**Per-segment effects** (country, platform, new vs returning, day) go through the engine's
own :func:`proving.stats.analyze.analyze` (so CUPED, ratio metrics and proportions work
per segment exactly as overall), and are corrected for multiple comparisons *across the
segments* of one metric and variant (:func:`proving.stats.multiple.adjust`: Holm for the
family-wise error rate, BH for the false discovery rate).

**Heterogeneity** (is the effect the same in every segment?): Cochran's Q on the segment
estimates ``theta_s`` with standard errors ``se_s`` (Cochran 1954, "The combination of
estimates from different experiments", Biometrics; Higgins & Thompson 2002, "Quantifying
heterogeneity in a meta-analysis", Stat. Med.):

    w_s = 1 / se_s^2,   theta_bar = sum w_s theta_s / sum w_s,
    Q = sum w_s (theta_s - theta_bar)^2  ~  chi^2(k - 1) under homogeneity,
    I^2 = max(0, (Q - (k - 1)) / Q),
    tau^2 = max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w))   (DerSimonian & Laird 1986).

Segments are disjoint, so the ``theta_s`` are independent and Q is exactly the Wald test
that all treatment x segment interaction terms are zero (the interaction test of a
regression ``y ~ treatment * segment`` with per-cell variances). Relative effects computed
on the log scale are tested on that scale.

**Post-stratification** (Miratrix, Sekhon & Yu 2013, "Adjusting treatment effect
estimates by post-stratification in randomized experiments", JRSS B; Deng, Xu, Kohavi &
Walker 2013, the CUPED paper, WSDM, which relates it to CUPED): with population stratum
weights ``w_s`` (summing to 1), each arm's estimate is ``mu = sum w_s ybar_s`` with
``Var(mu) = sum w_s^2 Var(ybar_s)``. It removes the between-stratum share of the
variance, ``1 - Var_ps / Var_unadjusted ~ sigma_between^2 / sigma^2``, like CUPED with the
stratum as a categorical covariate. Weights default to the pooled sample shares of both
arms; the variance then omits a term of order ``1/n^2`` (Miratrix et al. 2013),
negligible at experiment sizes.

Example:
    >>> from proving.stats.sufficient import ArmStats
    >>> seg = {"ios": (ArmStats.from_values([1.0, 2, 3, 4]), ArmStats.from_values([2.0, 3, 4, 5])),
    ...        "web": (ArmStats.from_values([5.0, 6, 7, 8]), ArmStats.from_values([6.0, 7, 8, 9]))}
    >>> result = analyze_segments(seg, effect="absolute")
    >>> [round(s.estimate, 3) for s in result.segments], round(result.heterogeneity.q, 6)
    ([1.0, 1.0], 0.0)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial, reduce
from typing import Any, Literal

import numpy as np
from scipy import stats

from proving._types import FloatArray
from proving.errors import StatsInputError
from proving.stats.analyze import analyze
from proving.stats.effects import EffectArrays, compare, validate_options
from proving.stats.multiple import adjust
from proving.stats.ratio import linearize
from proving.stats.results import (
    Alternative,
    ComparisonResult,
    Effect,
    Kind,
    Method,
    RelativeMethod,
    ResultBase,
)
from proving.stats.sufficient import ArmStats, stack
from proving.stats.table import ArmRow

Correction = Literal["none", "holm", "bh"]
Q_METHOD = "Cochran's Q on inverse-variance weighted segment effects (Wald interaction test)"
PS_METHOD = "post-stratified means (population stratum weights), z test"


@dataclass(frozen=True)
class HeterogeneityResult(ResultBase):
    """Cochran's Q test that the effect is the same in every segment.

    ``pooled_estimate``/``pooled_std_err`` are the fixed-effect (inverse-variance) average;
    ``tau_squared`` the DerSimonian-Laird between-segment variance (on the tested scale).
    ``excluded`` names segments without an estimate (degenerate data), left out of Q.
    """

    segments: tuple[str, ...]
    excluded: tuple[str, ...] = ()
    q: float | None = None
    df: int | None = None
    p_value: float | None = None
    i_squared: float | None = None
    tau_squared: float | None = None
    pooled_estimate: float | None = None
    pooled_std_err: float | None = None
    scale: str = "effect"
    method: str = Q_METHOD
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class SegmentAnalysis(ResultBase):
    """Per-segment comparisons (with their correction) and the heterogeneity test."""

    metric: str
    variant: str
    correction: str
    segments: tuple[ComparisonResult, ...]
    heterogeneity: HeterogeneityResult
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class PostStratifiedResult(ResultBase):
    """Effect of treatment estimated by post-stratification.

    ``variance_reduction`` is ``1 - Var(effect_ps) / Var(effect_unadjusted)``, the share of
    the effect's variance the strata removed (negative when stratifying costs precision).
    ``unadjusted_*`` are the plain comparison of the pooled arms, for reference.
    """

    metric: str
    effect: Effect
    alternative: Alternative
    alpha: float
    strata: tuple[str, ...]
    weights: tuple[float, ...]
    n_control: float
    n_treatment: float
    estimate: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    p_value: float | None = None
    std_err: float | None = None
    control_mean: float | None = None
    treatment_mean: float | None = None
    unadjusted_estimate: float | None = None
    unadjusted_std_err: float | None = None
    variance_reduction: float | None = None
    method: str = PS_METHOD
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


def _tested_scale(r: ComparisonResult) -> tuple[float, float, str]:
    """Estimate and standard error on the scale the comparison was tested on."""
    assert r.estimate is not None and r.std_err is not None
    if r.effect == "relative" and r.relative_method == "log":
        return math.log1p(r.estimate), r.std_err / (1.0 + r.estimate), "log ratio"
    return r.estimate, r.std_err, f"{r.effect} effect"


def heterogeneity(comparisons: Sequence[ComparisonResult]) -> HeterogeneityResult:
    """Cochran's Q, I^2 and tau^2 across the segments of one metric and variant.

    Example:
        >>> from proving.stats.results import ComparisonResult
        >>> rs = [ComparisonResult(metric="m", variant="b", segment=s, effect="absolute",
        ...                        estimate=e, std_err=0.1) for s, e in (("a", 0.1), ("b", 0.5))]
        >>> r = heterogeneity(rs)
        >>> round(r.q, 3), r.df, round(r.i_squared, 3)
        (8.0, 1, 0.875)
    """
    keys = {(r.experiment, r.metric, r.variant, r.effect, r.relative_method) for r in comparisons}
    if len(keys) > 1:
        raise StatsInputError(
            "heterogeneity: all comparisons must share experiment, metric, variant and effect "
            f"scale; got {sorted(keys)}. Test one metric and variant at a time."
        )
    used = [r for r in comparisons if r.estimate is not None and r.std_err and r.std_err > 0]
    names = tuple(r.segment for r in used)
    excluded = tuple(r.segment for r in comparisons if r not in used)
    make = partial(HeterogeneityResult, segments=names, excluded=excluded)
    if len(used) < 2:
        return make(reason=f"{len(used)} segment(s) with an estimate; heterogeneity needs 2")
    triples = [_tested_scale(r) for r in used]
    theta = np.array([t[0] for t in triples])
    w = 1.0 / np.array([t[1] for t in triples]) ** 2
    pooled = float(np.sum(w * theta) / w.sum())
    q = float(np.sum(w * (theta - pooled) ** 2))
    df = len(used) - 1
    tau2 = max(0.0, (q - df) / (w.sum() - np.sum(w**2) / w.sum()))
    warnings = [f"segment {s!r} has no estimate and is left out" for s in excluded]
    if len(used) < 5:
        warnings.append(f"only {len(used)} segments; Q has little power to detect heterogeneity")
    return make(
        q=q,
        df=df,
        p_value=float(stats.chi2.sf(q, df)),
        i_squared=max(0.0, (q - df) / q) if q > 0 else 0.0,
        tau_squared=tau2,
        pooled_estimate=pooled,
        pooled_std_err=float(1.0 / math.sqrt(w.sum())),
        scale=triples[0][2],
        warnings=tuple(warnings),
    )


def analyze_segments(
    segments: Mapping[str, tuple[ArmStats, ArmStats]],
    *,
    metric: str = "metric",
    variant: str = "treatment",
    kind: Kind = "mean",
    effect: Effect = "relative",
    relative_method: RelativeMethod = "delta",
    method: Method = "welch",
    alpha: float = 0.05,
    cuped: bool = True,
    correction: Correction = "holm",
    traffic: tuple[float, float] | None = None,
) -> SegmentAnalysis:
    """Effects per segment, corrected across segments, and the heterogeneity test.

    Args:
        segments: per segment name, ``(control, treatment)`` sufficient statistics.
        metric: the metric's name; ``variant`` the treatment's.
        kind: "mean", "proportion" or "ratio" (as in :func:`proving.stats.analyze.analyze`).
        effect: "absolute" or "relative"; ``relative_method`` "delta" or "log".
        method: "welch" or "z".
        alpha: test level and 1 - confidence level.
        cuped: use the statistics' covariates (CUPED) within each segment.
        traffic: configured (control, treatment) traffic weights for the per-segment
            sample-ratio check (default equal); a mismatch adds a warning to the segment.
        correction: "holm", "bh" or "none", across the segments.

    Example:
        >>> from proving.stats.sufficient import ArmStats
        >>> c, t = ArmStats.from_values([1.0, 2.0, 3.0]), ArmStats.from_values([2.0, 3.0, 4.0])
        >>> analyze_segments({"new": (c, t), "returning": (c, t)}).heterogeneity.p_value
        1.0
    """
    if not segments:
        raise StatsInputError(
            "analyze_segments: no segments given; pass {name: (control, treatment)}."
        )
    if traffic is not None and not (
        len(traffic) == 2 and all(math.isfinite(t) and t > 0 for t in traffic)
    ):
        raise StatsInputError(
            f"analyze_segments: `traffic` must be two positive weights (control, treatment), "
            f"such as (0.5, 0.5); got {traffic!r}."
        )
    if variant == "control":
        raise StatsInputError(
            "analyze_segments: `variant` must not be 'control' (that name is the control arm)."
        )
    rows = []
    for name, pair in segments.items():
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise StatsInputError(
                f"analyze_segments: segment {name!r} must map to a (control, treatment) pair of "
                f"ArmStats; got {type(pair).__name__}."
            )
        for arm, s in zip(("control", variant), pair, strict=True):
            rows.append(ArmRow(variant=arm, metric=metric, stats=s, segment=str(name), kind=kind))
    result = analyze(
        rows,
        alpha=alpha,
        effect=effect,
        relative_method=relative_method,
        method=method,
        cuped=cuped,
        weights=None if traffic is None else {"control": traffic[0], variant: traffic[1]},
    )
    comparisons = list(result.comparisons)
    if correction != "none":
        comparisons = adjust(
            comparisons,
            method=correction,
            alpha=alpha,
            by=("experiment", "family", "metric", "variant"),
        )
    return SegmentAnalysis(
        metric=metric,
        variant=variant,
        correction=correction,
        segments=tuple(comparisons),
        heterogeneity=heterogeneity(comparisons),
        warnings=result.warnings,
    )


def _stratum_estimates(
    arms: Sequence[ArmStats], kind: Kind
) -> tuple[FloatArray, FloatArray, FloatArray]:
    lin = linearize(
        *stack(list(arms)), ratio=kind == "ratio", ddof=0 if kind == "proportion" else 1
    )
    return lin.n, lin.estimate, lin.variance


def _weights(strata: list[str], n: FloatArray, given: Mapping[str, float] | None) -> FloatArray:
    if given is None:
        return np.asarray(n / n.sum(), dtype=np.float64)
    missing, extra = sorted(set(strata) - set(given)), sorted(set(given) - set(strata))
    w = np.array([given.get(s, np.nan) for s in strata], dtype=float)
    if missing or extra or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise StatsInputError(
            f"post_stratify: `weights` must give a finite, non-negative weight to every stratum "
            f"{strata}; missing {missing}, unknown {extra}, got {dict(given)}."
        )
    return np.asarray(w / w.sum(), dtype=np.float64)


def post_stratify(
    control: Mapping[str, ArmStats],
    treatment: Mapping[str, ArmStats],
    *,
    weights: Mapping[str, float] | None = None,
    metric: str = "metric",
    kind: Kind = "mean",
    effect: Effect = "absolute",
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
) -> PostStratifiedResult:
    """Post-stratified treatment effect with its variance, next to the unadjusted one.

    Args:
        control: per stratum, the control arm's sufficient statistics.
        treatment: per stratum, the treatment's (same strata).
        weights: population share of each stratum (normalised); default the pooled sample
            shares of both arms.
        metric: the metric's name; ``kind`` "mean", "proportion" or "ratio".
        effect: "absolute" or "relative"; ``alternative`` and ``alpha`` as usual.

    Example:
        >>> from proving.stats.sufficient import ArmStats
        >>> arm = ArmStats.from_values
        >>> c = {"a": arm([1.0, 2.0, 3.0]), "b": arm([9.0, 10.0, 11.0])}
        >>> t = {"a": arm([2.0, 3.0, 4.0]), "b": arm([10.0, 11.0, 12.0])}
        >>> r = post_stratify(c, t)
        >>> r.estimate, round(r.variance_reduction, 3)
        (1.0, 0.95)
    """
    validate_options(alpha=alpha, effect=effect, alternative=alternative)
    strata = list(control)
    if not strata or set(strata) != set(treatment):
        raise StatsInputError(
            f"post_stratify: control and treatment must have the same, non-empty strata; got "
            f"{sorted(control)} and {sorted(treatment)}."
        )
    n_c, m_c, v_c = _stratum_estimates([control[s] for s in strata], kind)
    n_t, m_t, v_t = _stratum_estimates([treatment[s] for s in strata], kind)
    w = _weights(strata, n_c + n_t, weights)
    # A stratum with weight 0 contributes nothing, even when it is empty (NaN estimates).
    m_c, v_c, m_t, v_t = (np.where(w > 0, a, 0.0) for a in (m_c, v_c, m_t, v_t))
    make = partial(
        PostStratifiedResult,
        metric=metric,
        effect=effect,
        alternative=alternative,
        alpha=alpha,
        strata=tuple(strata),
        weights=tuple(w.tolist()),
        n_control=float(n_c.sum()),
        n_treatment=float(n_t.sum()),
    )
    for arm, n in (("control", n_c), ("treatment", n_t)):
        thin = [s for s, k, wi in zip(strata, n, w, strict=True) if k < 2 and wi > 0]
        if thin:
            return make(
                reason=f"stratum {thin[0]!r} has fewer than 2 units in {arm}; merge it with "
                "a neighbouring stratum"
            )
    options = {"effect": effect, "alternative": alternative, "alpha": alpha}
    ps = _z_compare((float(w @ m_c), float(w**2 @ v_c), n_c.sum()),
                    (float(w @ m_t), float(w**2 @ v_t), n_t.sum()), options)  # fmt: skip
    # The plain comparison of the merged arms, to report what stratifying gained.
    merged = [
        _stratum_estimates([reduce(operator.add, a.values())], kind) for a in (control, treatment)
    ]
    (rn_c, rm_c, rv_c), (rn_t, rm_t, rv_t) = ((float(v[0]) for v in est) for est in merged)
    raw = _z_compare((rm_c, rv_c, rn_c), (rm_t, rv_t, rn_t), options)
    if ps.reason[0] is not None:
        return make(reason=str(ps.reason[0]))
    reduction = (
        1.0 - float(ps.std_err[0] ** 2 / raw.std_err[0] ** 2) if raw.reason[0] is None else None
    )
    return make(
        estimate=float(ps.estimate[0]),
        ci_lower=float(ps.ci_lower[0]),
        ci_upper=float(ps.ci_upper[0]),
        p_value=float(ps.p_value[0]),
        std_err=float(ps.std_err[0]),
        control_mean=float(w @ m_c),
        treatment_mean=float(w @ m_t),
        unadjusted_estimate=float(raw.estimate[0]) if raw.reason[0] is None else None,
        unadjusted_std_err=float(raw.std_err[0]) if raw.reason[0] is None else None,
        variance_reduction=reduction,
    )


def _z_compare(
    control: tuple[float, float, float],
    treatment: tuple[float, float, float],
    options: dict[str, Any],
) -> EffectArrays:
    """``compare`` of (estimate, variance, n) pairs with a normal reference distribution."""
    (m_c, v_c, n_c), (m_t, v_t, n_t) = control, treatment
    with np.errstate(all="ignore"):
        return compare(m_c, v_c, n_c, m_t, v_t, n_t, method="z", **options)
