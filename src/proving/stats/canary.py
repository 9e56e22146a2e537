"""Canary judge: is the canary's distribution of a metric worse than the baseline's?

Kayenta-style (Netflix/Google, "Automated canary analysis", the NetflixACAJudge): each
metric is compared between a baseline and a canary population with a rank test, classified
``pass``, ``high`` or ``low``, and the classifications are scored.

Per metric, with baseline values ``x_1..x_m`` and canary values ``y_1..y_n``:

- **Mann-Whitney U** (Mann & Whitney 1947): ``U`` counts pairs with ``y_j > x_i`` (ties
  count 1/2); statistic and two-sided p-value are :func:`scipy.stats.mannwhitneyu`'s.
- **Hodges-Lehmann shift** (Hodges & Lehmann 1963): the median of the ``m n`` pairwise
  differences ``D = y_j - x_i``; its ``1 - alpha`` interval inverts the Mann-Whitney test,
  ``[D_(k), D_(mn + 1 - k)]`` with ``k = floor(mn / 2 - z_{1 - alpha/2} sd(U))`` and
  ``sd(U)`` tie-corrected (Lehmann 1975, *Nonparametrics*, ch. 2; Hollander & Wolfe
  1999, sec. 4.3). Order statistics of ``D`` are found without forming all pairs when
  ``m n`` is large (counting pairs below a threshold with ``searchsorted``, then selecting
  among the few candidates left), so a judge on 10^5 points per side is fast.
- **Tolerance.** ``allowed_increase`` and ``allowed_decrease`` are relative to the
  baseline median, ``tau_hi = allowed_increase * |median(x)|`` and ``tau_lo`` alike. The
  metric is ``high`` when the one-sided Mann-Whitney test of ``y - tau_hi`` against ``x``
  (alternative "greater") rejects at ``alpha / 2``, ``low`` when that of ``y + tau_lo``
  (alternative "less") does, else ``pass``. For continuous data this is the same decision
  as "the Hodges-Lehmann interval lies beyond the tolerance" (the interval inverts the
  test); for discrete metrics with ties (error counts), where the interval collapses onto
  one value, the test still sees a shift.
- **Direction.** ``"increase"`` means an increase is bad (latency, errors), ``"decrease"``
  that a decrease is bad (conversions), ``"either"`` both. A metric *fails* when its
  classification is in a bad direction; ``low`` on an increase-is-bad metric passes.
- **Score** (Kayenta's scorer): within each group, ``100 * passed / judged`` (metrics with
  no data are left out and reported); the canary score is the weighted mean of the group
  scores. ``score >= pass_threshold`` (95) passes, ``score < marginal_threshold`` (75)
  fails, in between is ``marginal``. A failed *critical* metric fails the canary whatever
  the score. No judged metric at all is ``nodata``, never ``pass``.

The sequential alternative, valid under any number of looks, is in
:mod:`proving.stats.canary_sequential`.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> base, canary = rng.normal(100, 10, 500), rng.normal(115, 10, 500)
    >>> r = compare_distributions(base, canary, CanaryMetricSpec("latency", direction="increase"))
    >>> r.classification, r.passed
    ('high', False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np
from scipy import special, stats

from proving._types import FloatArray
from proving.errors import StatsInputError
from proving.stats.results import ResultBase

Direction = Literal["increase", "decrease", "either"]
Classification = Literal["pass", "high", "low", "nodata"]
Decision = Literal["pass", "marginal", "fail", "nodata"]

METHOD = "Mann-Whitney U with Hodges-Lehmann shift and its rank-inversion interval"
# Below this many pairwise differences, form them all (fast and exact); above, select.
_DIRECT_PAIRS = 250_000


@dataclass(frozen=True)
class CanaryMetricSpec:
    """How one metric is judged.

    Args:
        name: the metric's name.
        direction: which change is bad: "increase", "decrease" or "either".
        allowed_increase: tolerated increase, relative to the baseline median (0.1: +10%).
        allowed_decrease: tolerated decrease, relative to the baseline median.
        critical: a failure of this metric fails the whole canary.
        group: the scoring group (Kayenta's metric groups).
    """

    name: str
    direction: Direction = "either"
    allowed_increase: float = 0.0
    allowed_decrease: float = 0.0
    critical: bool = False
    group: str = "default"

    def __post_init__(self) -> None:
        where = f"canary metric {self.name!r}"
        if self.direction not in ("increase", "decrease", "either"):
            raise StatsInputError(
                f"{where}: `direction` must be 'increase', 'decrease' or 'either' (the bad "
                f"direction); got {self.direction!r}."
            )
        for name in ("allowed_increase", "allowed_decrease"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise StatsInputError(
                    f"{where}: `{name}` must be a non-negative relative tolerance such as 0.1 "
                    f"(10%); got {value!r}."
                )


@dataclass(frozen=True)
class CanaryMetricResult(ResultBase):
    """The judgement of one metric.

    ``estimate`` is the Hodges-Lehmann shift (canary minus baseline) with its interval
    ``ci_lower``/``ci_upper``; ``relative_estimate`` the shift over ``|baseline_median|``.
    ``statistic`` is the canary's Mann-Whitney U and ``p_value`` its two-sided p-value;
    ``p_value_high``/``p_value_low`` are the one-sided tests of a shift beyond the
    tolerance that decide ``high``/``low`` (each at ``alpha / 2``).
    ``tolerance_lower``/``tolerance_upper`` are the allowed shifts in the metric's units.
    ``passed`` is None when there is no data.
    """

    metric: str
    direction: Direction
    critical: bool
    group: str
    alpha: float
    classification: Classification
    passed: bool | None
    n_baseline: int
    n_canary: int
    baseline_median: float | None = None
    canary_median: float | None = None
    estimate: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    relative_estimate: float | None = None
    statistic: float | None = None
    p_value: float | None = None
    p_value_high: float | None = None
    p_value_low: float | None = None
    tolerance_lower: float | None = None
    tolerance_upper: float | None = None
    method: str = METHOD
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class CanaryGroupScore(ResultBase):
    """Score of one metric group: ``100 * passed / judged``."""

    group: str
    weight: float
    passed: int
    judged: int
    nodata: int
    score: float | None


@dataclass(frozen=True)
class CanaryJudgement(ResultBase):
    """The canary verdict: per-metric results, group scores, overall score and decision."""

    decision: Decision
    score: float | None
    pass_threshold: float
    marginal_threshold: float
    metrics: tuple[CanaryMetricResult, ...]
    groups: tuple[CanaryGroupScore, ...]
    failed_critical: tuple[str, ...] = ()
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


def _clean(name: str, values: Sequence[float] | FloatArray) -> tuple[FloatArray, int]:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise StatsInputError(f"canary {name} values must be 1-d; got shape {arr.shape}.")
    keep = np.isfinite(arr)
    return arr[keep], int((~keep).sum())


def _count_at_most(x: FloatArray, y: FloatArray, d: float) -> int:
    """Number of pairs with ``y_j - x_i <= d``; ``x`` sorted ascending."""
    return int(x.size * y.size - np.searchsorted(x, y - d, side="left").sum())


def pairwise_difference_quantiles(
    baseline: FloatArray, canary: FloatArray, ranks: Sequence[int]
) -> list[float]:
    """The ``ranks``-th smallest (1-based) of the ``m n`` differences ``canary_j - baseline_i``.

    Forms all pairs when there are few (exact); otherwise bisects on the value with a pair
    count (``O((m + n) log m)`` per step) until at most ``m + n`` candidates remain, then
    selects among them (exact), or until the bracket is below ``1e-12`` of the data's scale
    (ties), where it returns one of the tied differences.
    """
    x = np.sort(np.asarray(baseline, dtype=float))
    y = np.sort(np.asarray(canary, dtype=float))
    total = x.size * y.size
    for k in ranks:
        if not 1 <= k <= total:
            raise StatsInputError(f"rank {k} is outside 1..{total} pairwise differences.")
    if total <= _DIRECT_PAIRS:
        flat = np.subtract.outer(y, x).ravel()
        idx = np.asarray(ranks, dtype=np.int64) - 1
        return [float(v) for v in np.partition(flat, idx)[idx]]
    return [_select_difference(x, y, k) for k in ranks]


def _select_difference(x: FloatArray, y: FloatArray, k: int) -> float:
    scale = float(np.abs(x).max() + np.abs(y).max())
    # Widen the bracket so rounding in y_j - d cannot exclude an extreme pair:
    # count(lo) = 0 and count(hi) = m n.
    lo, hi = float(y[0] - x[-1]) - 1.0 - 1e-9 * scale, float(y[-1] - x[0]) + 1.0 + 1e-9 * scale
    c_lo, c_hi = 0, x.size * y.size
    # Bisect until few candidates remain, or until the bracket is narrower than rounding
    # noise (heavy ties: every candidate is then the same value).
    while c_hi - c_lo > x.size + y.size and hi - lo > 1e-12 * scale:
        mid = lo + (hi - lo) / 2.0
        c_mid = _count_at_most(x, y, mid)
        if c_mid >= k:
            hi, c_hi = mid, c_mid
        else:
            lo, c_lo = mid, c_mid
    # Candidates: pairs with lo < y_j - x_i <= hi, i.e. y_j - hi <= x_i < y_j - lo.
    start = np.searchsorted(x, y - hi, side="left")
    stop = np.searchsorted(x, y - lo, side="left")
    lengths = stop - start
    if c_hi - c_lo > x.size + y.size:  # tied block: return one of its actual differences
        j = int(np.argmax(lengths > 0))
        return float(y[j] - x[start[j]])
    owners = np.repeat(np.arange(y.size), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    candidates = y[owners] - x[start[owners] + offsets]
    return float(np.partition(candidates, k - c_lo - 1)[k - c_lo - 1])


def _u_std(x: FloatArray, y: FloatArray) -> float:
    """Standard deviation of U under H0, corrected for ties (Lehmann 1975, ch. 1)."""
    m, n = x.size, y.size
    total = m + n
    _, t = np.unique(np.concatenate([x, y]), return_counts=True)
    ties = float(np.sum(t.astype(float) ** 3 - t))
    return math.sqrt(m * n / 12.0 * ((total + 1) - ties / (total * (total - 1))))


def hodges_lehmann(
    baseline: FloatArray, canary: FloatArray, *, alpha: float = 0.05
) -> tuple[float, float | None, float | None]:
    """Hodges-Lehmann shift ``median(canary_j - baseline_i)`` and its ``1 - alpha`` interval.

    The interval is None when the samples are too small for that confidence level.
    """
    m, n = baseline.size, canary.size
    total = m * n
    mid = [(total + 1) // 2, total // 2 + 1]
    sd = _u_std(baseline, canary)
    k = math.floor(total / 2.0 - special.ndtri(1 - alpha / 2) * sd) if sd > 0 else 0
    ranks = mid + ([k, total + 1 - k] if k >= 1 else [])
    values = pairwise_difference_quantiles(baseline, canary, ranks)
    estimate = (values[0] + values[1]) / 2.0
    if k < 1:
        return estimate, None, None
    return estimate, values[2], values[3]


def _tolerance_tests(
    x: FloatArray, y: FloatArray, tol_lo: float, tol_hi: float
) -> tuple[float, float]:
    """One-sided Mann-Whitney p-values of "canary above baseline + tol_hi" and "canary below
    baseline - tol_lo" (the canary shifted by the tolerance, then tested)."""
    high = stats.mannwhitneyu(y - tol_hi, x, alternative="greater").pvalue
    low = stats.mannwhitneyu(y + tol_lo, x, alternative="less").pvalue
    return float(high), float(low)


def _classify(
    p_high: float, p_low: float, alpha: float, direction: Direction
) -> tuple[Classification, bool]:
    """Classification and whether it passes (a change in the harmless direction passes)."""
    if p_high < alpha / 2:
        return "high", direction == "decrease"
    if p_low < alpha / 2:
        return "low", direction == "increase"
    return "pass", True


def compare_distributions(
    baseline: Sequence[float] | FloatArray,
    canary: Sequence[float] | FloatArray,
    spec: CanaryMetricSpec,
    *,
    alpha: float = 0.05,
) -> CanaryMetricResult:
    """Judge one metric: Mann-Whitney test, Hodges-Lehmann shift, classification.

    Args:
        baseline: the baseline's values of the metric (NaN values are dropped and counted).
        canary: the canary's values.
        spec: direction, tolerances, criticality and group of the metric.
        alpha: 1 - confidence level of the shift interval.

    Example:
        >>> spec = CanaryMetricSpec("errors", direction="increase", allowed_increase=0.5)
        >>> r = compare_distributions([10, 11, 9, 10, 12, 10], [11, 12, 10, 11, 13, 12], spec)
        >>> r.classification, r.estimate
        ('pass', 1.0)
    """
    if not 0.0 < alpha < 1.0:
        raise StatsInputError(f"canary judge: `alpha` must be in (0, 1); got {alpha!r}.")
    x, dropped_x = _clean("baseline", baseline)
    y, dropped_y = _clean("canary", canary)
    warnings = []
    if dropped_x or dropped_y:
        warnings.append(f"dropped {dropped_x} baseline and {dropped_y} canary NaN/inf values")
    make = partial(
        CanaryMetricResult,
        metric=spec.name,
        direction=spec.direction,
        critical=spec.critical,
        group=spec.group,
        alpha=alpha,
        n_baseline=int(x.size),
        n_canary=int(y.size),
    )
    if x.size == 0 or y.size == 0:
        side = "baseline" if x.size == 0 else "canary"
        return make(
            classification="nodata",
            passed=None,
            reason=f"no {side} values to compare",
            warnings=tuple(warnings),
        )
    base_median, canary_median = float(np.median(x)), float(np.median(y))
    tol_hi = spec.allowed_increase * abs(base_median)
    tol_lo = spec.allowed_decrease * abs(base_median)
    if base_median == 0 and (spec.allowed_increase or spec.allowed_decrease):
        warnings.append("the baseline median is 0, so the relative tolerances allow no change")
    mw = stats.mannwhitneyu(y, x, alternative="two-sided")
    # Every value equal in both arms (e.g. zero errors everywhere) is no difference at
    # all, which a canary judge must call a pass, not "no data".
    identical = bool(np.ptp(np.concatenate([x, y])) == 0)
    estimate, lo, hi = (0.0, None, None) if identical else hodges_lehmann(x, y, alpha=alpha)
    make = partial(
        make,
        baseline_median=base_median,
        canary_median=canary_median,
        estimate=estimate,
        relative_estimate=estimate / abs(base_median) if base_median else None,
        statistic=float(mw.statistic),
        p_value=float(mw.pvalue),
        tolerance_lower=-tol_lo,
        tolerance_upper=tol_hi,
    )
    if identical:
        warnings.append(f"every value in both arms equals {x[0]:g}; there is no difference")
        return make(classification="pass", passed=True, warnings=tuple(warnings))
    if lo is None or hi is None:
        return make(
            classification="nodata",
            passed=None,
            reason=f"{x.size} baseline and {y.size} canary values are too few for a "
            f"{1 - alpha:.0%} interval of the shift",
            warnings=tuple(warnings),
        )
    p_high, p_low = _tolerance_tests(x, y, tol_lo, tol_hi)
    classification, passed = _classify(p_high, p_low, alpha, spec.direction)
    return make(
        classification=classification,
        passed=passed,
        p_value_high=p_high,
        p_value_low=p_low,
        ci_lower=lo,
        ci_upper=hi,
        warnings=tuple(warnings),
    )


def _check_thresholds(pass_threshold: float, marginal_threshold: float) -> None:
    if not 0.0 <= marginal_threshold <= pass_threshold <= 100.0:
        raise StatsInputError(
            "canary judge: thresholds must satisfy 0 <= marginal_threshold <= pass_threshold "
            f"<= 100; got marginal_threshold={marginal_threshold!r}, "
            f"pass_threshold={pass_threshold!r}. Kayenta's defaults are 75 and 95."
        )


def score_metrics(
    results: Sequence[CanaryMetricResult],
    *,
    group_weights: Mapping[str, float] | None = None,
    pass_threshold: float = 95.0,
    marginal_threshold: float = 75.0,
) -> CanaryJudgement:
    """Score per-metric results into a verdict (Kayenta's group-weighted scorer)."""
    _check_thresholds(pass_threshold, marginal_threshold)
    names = list(dict.fromkeys(r.group for r in results))
    weights = dict(group_weights or {})
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise StatsInputError(
            f"canary judge: group_weights names group(s) {unknown} that no metric uses; "
            f"the groups are {names}."
        )
    if any(not (math.isfinite(w) and w >= 0) for w in weights.values()):
        raise StatsInputError(
            f"canary judge: group weights must be finite and >= 0; got {weights}."
        )
    groups = []
    for g in names:
        members = [r for r in results if r.group == g]
        judged = [r for r in members if r.passed is not None]
        passed = sum(1 for r in judged if r.passed)
        score = 100.0 * passed / len(judged) if judged else None
        groups.append(
            CanaryGroupScore(
                g, weights.get(g, 1.0), passed, len(judged), len(members) - len(judged), score
            )
        )
    scored = [gs for gs in groups if gs.score is not None and gs.weight > 0]
    failed_critical = tuple(r.metric for r in results if r.critical and r.passed is False)
    warnings = [f"metric {r.metric!r} has no data: {r.reason}" for r in results if r.passed is None]
    make = partial(
        CanaryJudgement,
        pass_threshold=pass_threshold,
        marginal_threshold=marginal_threshold,
        metrics=tuple(results),
        groups=tuple(groups),
        failed_critical=failed_critical,
        warnings=tuple(warnings),
    )
    if not scored:
        return make(decision="nodata", score=None, reason="no metric could be judged")
    total = sum(gs.weight for gs in scored)
    score = sum(gs.weight * (gs.score or 0.0) for gs in scored) / total
    if failed_critical:
        return make(
            decision="fail",
            score=score,
            reason=f"critical metric(s) failed: {', '.join(failed_critical)}",
        )
    if score >= pass_threshold:
        decision: Decision = "pass"
    elif score < marginal_threshold:
        decision = "fail"
    else:
        decision = "marginal"
    return make(decision=decision, score=score)


def judge(
    data: Mapping[str, tuple[Sequence[float] | FloatArray, Sequence[float] | FloatArray]],
    specs: Sequence[CanaryMetricSpec],
    *,
    alpha: float = 0.05,
    group_weights: Mapping[str, float] | None = None,
    pass_threshold: float = 95.0,
    marginal_threshold: float = 75.0,
) -> CanaryJudgement:
    """Judge a canary against its baseline on every metric and score the result.

    Args:
        data: per metric name, ``(baseline_values, canary_values)``.
        specs: how each metric is judged; every spec needs data and vice versa.
        alpha: 1 - confidence level of each metric's shift interval.
        group_weights: weight per metric group (default 1 each).
        pass_threshold: the score at or above which the canary passes.
        marginal_threshold: the score below which it fails.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> data = {"latency": (rng.gamma(2, 50, 400), rng.gamma(2, 50, 400)),
        ...         "errors": (rng.poisson(3, 400), rng.poisson(6, 400))}
        >>> specs = [CanaryMetricSpec("latency", "increase", allowed_increase=0.1),
        ...          CanaryMetricSpec("errors", "increase", critical=True)]
        >>> verdict = judge(data, specs)
        >>> verdict.decision, verdict.failed_critical
        ('fail', ('errors',))
    """
    _check_thresholds(pass_threshold, marginal_threshold)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise StatsInputError(f"canary judge: metric names must be unique; got {names}.")
    missing, extra = sorted(set(names) - set(data)), sorted(set(data) - set(names))
    if missing or extra:
        raise StatsInputError(
            f"canary judge: every metric needs a spec and data; no data for {missing}, no "
            f"spec for {extra}. Give one (baseline, canary) pair per spec."
        )
    results = [compare_distributions(*data[s.name], s, alpha=alpha) for s in specs]
    return score_metrics(
        results,
        group_weights=group_weights,
        pass_threshold=pass_threshold,
        marginal_threshold=marginal_threshold,
    )
