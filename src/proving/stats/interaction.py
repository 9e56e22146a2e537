"""Interaction checks between two concurrent experiments that share traffic.

Two experiments A (variants a0, a1, ...) and B (b0, b1, ...) running on the same units
can disturb each other in two ways, and this module checks both:

1. **Assignment dependence.** With independent hashing, a unit's variant in A says nothing
   about its variant in B. Pearson's chi-square test of independence on the cross-tab of
   unit counts (:func:`scipy.stats.chi2_contingency`; Pearson 1900, Agresti 2013,
   *Categorical Data Analysis*, sec. 3.2) detects shared salts, correlated bucketing or a
   filter that depends on the other experiment. Like the sample-ratio check, the alarm is
   strict (``p < 0.001`` by default) because it runs on every pair at every look.
   Cramér's V, ``sqrt(X^2 / (N (min(r, c) - 1)))``, sizes the dependence.

2. **Metric interaction.** On a 2x2 (one treatment of each against its control) the
   interaction contrast is the difference of A's effect with and without B:

       I = (m_11 - m_01) - (m_10 - m_00),      m_ab = mean of the cell (A = a, B = b),

   with ``Var(I) = sum of the four cells' variances of the mean``. ``variance="unequal"``
   uses each cell's own variance and Satterthwaite's degrees of freedom (Satterthwaite
   1946); ``variance="pooled"`` pools the four cells, ``s_p^2 = sum (n_i - 1) s_i^2 /
   (N - 4)``, ``Var(I) = s_p^2 sum 1/n_i`` with ``N - 4`` degrees of freedom: exactly the
   t test of the ``a:b`` coefficient of the OLS regression ``y ~ a * b``. With
   ``effect="relative"`` the contrast is on the log scale, ``log(m_11 m_00 / (m_01
   m_10))`` with ``Var = sum v_i / m_i^2`` (delta method), reported as the ratio of B's
   effect on A's lift minus one: ``(m_11 / m_01) / (m_10 / m_00) - 1``.

   For more than two variants on either side, :func:`interaction_test` is the joint Wald
   test that every ``(r - 1)(c - 1)`` interaction contrast
   ``m_ij - m_i0 - m_0j + m_00`` is zero, ``W = (C m)' (C V C')^-1 (C m) ~ chi^2((r - 1)
   (c - 1))`` with ``V`` the diagonal of the cells' variances of the mean (the Wald test of
   the interaction terms of ``y ~ C(a) * C(b)`` with HC2 errors).

Example:
    >>> assignment_independence([[2500, 2480], [2510, 2490]]).alarm
    False
    >>> from proving.stats.sufficient import ArmStats
    >>> cells = [ArmStats.from_values(v) for v in ([1, 2, 3], [2, 3, 4], [1, 2, 3], [5, 6, 7])]
    >>> interaction_contrast(*cells, effect="absolute").estimate
    3.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from proving._types import FloatArray
from proving.errors import StatsInputError
from proving.stats.effects import interval_and_p_value, mean_moments, validate_options
from proving.stats.results import Alternative, Effect, ResultBase
from proving.stats.sufficient import ArmStats

Variance = Literal["unequal", "pooled"]

INDEPENDENCE_METHOD = "Pearson chi-square test of independence on the assignment cross-tab"
CONTRAST_METHOD = "2x2 interaction contrast (m11 - m01) - (m10 - m00)"
WALD_METHOD = "Wald chi-square test of all interaction contrasts (per-cell variances)"
CELL_ORDER = ("a0_b0", "a1_b0", "a0_b1", "a1_b1")
_MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class AssignmentIndependenceResult(ResultBase):
    """Are the assignments of two experiments independent?

    Attributes:
        observed: the cross-tab of unit counts (rows: experiment A's variants, columns:
            experiment B's), with empty rows and columns dropped.
        expected: the counts independence predicts (row total x column total / N).
        statistic: Pearson's X^2; ``df`` its degrees of freedom ``(r - 1)(c - 1)``.
        p_value: upper-tail chi-square probability of ``statistic``.
        cramers_v: Cramér's V in [0, 1]; 0 is independence.
        alarm: True when ``p_value < threshold``.
    """

    observed: tuple[tuple[float, ...], ...]
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    threshold: float
    expected: tuple[tuple[float, ...], ...] = ()
    statistic: float | None = None
    df: int | None = None
    p_value: float | None = None
    cramers_v: float | None = None
    alarm: bool | None = None
    method: str = INDEPENDENCE_METHOD
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class InteractionResult(ResultBase):
    """The 2x2 interaction contrast of a metric between two experiments.

    ``cell_means`` and ``n`` follow :data:`CELL_ORDER`: (a0, b0), (a1, b0), (a0, b1),
    (a1, b1). ``effect_without_b`` is A's effect among B's controls, ``m_10 - m_00``
    (``m_10 / m_00 - 1`` when relative), ``effect_with_b`` the same among B's treated.
    """

    metric: str
    effect: Effect
    variance: Variance
    alternative: Alternative
    alpha: float
    n: tuple[float, ...]
    cell_means: tuple[float | None, ...] = ()
    effect_without_b: float | None = None
    effect_with_b: float | None = None
    estimate: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    p_value: float | None = None
    std_err: float | None = None
    statistic: float | None = None
    df: float | None = None
    method: str = CONTRAST_METHOD
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


def crosstab(
    variants_a: Sequence[object] | npt.NDArray[np.generic],
    variants_b: Sequence[object] | npt.NDArray[np.generic],
) -> tuple[npt.NDArray[np.int64], tuple[str, ...], tuple[str, ...]]:
    """Cross-tabulate two assignment columns (one entry per unit) into counts.

    Returns ``(table, rows, columns)``: counts with experiment A's variants as rows and
    B's as columns, both sorted.

    Example:
        >>> table, rows, cols = crosstab(["a", "a", "b"], ["x", "y", "y"])
        >>> table.tolist(), rows, cols
        ([[1, 1], [0, 1]], ('a', 'b'), ('x', 'y'))
    """
    a = np.asarray(variants_a).astype(str)
    b = np.asarray(variants_b).astype(str)
    if a.ndim != 1 or a.shape != b.shape:
        raise StatsInputError(
            f"crosstab: the two assignment columns must be 1-d with one entry per unit; got "
            f"shapes {a.shape} and {b.shape}."
        )
    rows, ia = np.unique(a, return_inverse=True)
    cols, ib = np.unique(b, return_inverse=True)
    table = np.zeros((rows.size, cols.size), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    return table, tuple(rows.tolist()), tuple(cols.tolist())


def _labels(given: Sequence[str] | None, size: int, prefix: str) -> tuple[str, ...]:
    if given is None:
        return tuple(f"{prefix}{i}" for i in range(size))
    if len(given) != size:
        raise StatsInputError(
            f"assignment_independence: {len(given)} labels given for {size} "
            f"{'rows' if prefix == 'a' else 'columns'}; give one label each."
        )
    return tuple(str(g) for g in given)


def assignment_independence(
    table: Sequence[Sequence[float]] | npt.NDArray[np.generic],
    *,
    rows: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    threshold: float = 0.001,
    correction: bool = False,
) -> AssignmentIndependenceResult:
    """Chi-square test that two experiments' assignments are independent.

    Args:
        table: unit counts, experiment A's variants as rows and B's as columns (see
            :func:`crosstab`).
        rows: names of A's variants (``a0, a1, ...`` when not given).
        columns: names of B's variants (``b0, b1, ...``).
        threshold: the alarm fires at ``p_value < threshold``.
        correction: apply Yates' continuity correction (2x2 only), as scipy can.

    Example:
        >>> r = assignment_independence([[900, 100], [100, 900]])
        >>> r.alarm, round(r.cramers_v, 2)
        (True, 0.8)
    """
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2:
        raise StatsInputError(
            f"assignment_independence: `table` must be a 2-d table of counts; got shape "
            f"{counts.shape}."
        )
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise StatsInputError(
            "assignment_independence: `table` must hold finite, non-negative unit counts; got "
            f"{counts.tolist()}."
        )
    if not 0.0 < threshold < 1.0:
        raise StatsInputError(
            f"assignment_independence: `threshold` must be in (0, 1); got {threshold!r}. "
            "Use e.g. 0.001."
        )
    row_names = _labels(rows, counts.shape[0], "a")
    col_names = _labels(columns, counts.shape[1], "b")
    keep_r, keep_c = counts.sum(axis=1) > 0, counts.sum(axis=0) > 0
    observed = counts[keep_r][:, keep_c]
    make = partial(
        AssignmentIndependenceResult,
        observed=tuple(tuple(r) for r in observed.tolist()),
        rows=tuple(n for n, k in zip(row_names, keep_r, strict=True) if k),
        columns=tuple(n for n, k in zip(col_names, keep_c, strict=True) if k),
        threshold=threshold,
    )
    if observed.shape[0] < 2 or observed.shape[1] < 2:
        return make(
            reason=f"the cross-tab has {observed.shape[0]} non-empty row(s) and "
            f"{observed.shape[1]} non-empty column(s); independence needs at least 2 of each"
        )
    res = stats.chi2_contingency(observed, correction=correction)
    expected = np.asarray(res.expected_freq)
    warnings = []
    if (expected < _MIN_EXPECTED).any():
        warnings.append(
            f"{int((expected < _MIN_EXPECTED).sum())} expected count(s) below "
            f"{_MIN_EXPECTED:g}; the chi-square approximation is rough"
        )
    statistic, p_value = float(res.statistic), float(res.pvalue)
    v = math.sqrt(statistic / (observed.sum() * (min(observed.shape) - 1)))
    return make(
        expected=tuple(tuple(r) for r in expected.tolist()),
        statistic=statistic,
        df=int(res.dof),
        p_value=p_value,
        cramers_v=v,
        alarm=p_value < threshold,
        warnings=tuple(warnings),
    )


def _cell_moments(
    cells: Sequence[ArmStats], names: Sequence[str] = CELL_ORDER
) -> tuple[FloatArray, FloatArray, FloatArray]:
    for name, cell in zip(names, cells, strict=True):
        if not isinstance(cell, ArmStats):
            raise StatsInputError(
                f"interaction: cell {name} must be an ArmStats; got "
                f"{type(cell).__name__}. Build it with ArmStats.from_values or from_flat."
            )
        if cell.is_ratio:
            raise StatsInputError(
                f"interaction: cell {name} holds a ratio metric; interaction tests take "
                "mean or proportion metrics. Analyse a ratio's numerator per unit instead."
            )
    n = np.array([c.n for c in cells], dtype=float)
    mean, var_of_mean = mean_moments(n, [c.sum for c in cells], [c.sum_squares for c in cells])
    return n, mean, var_of_mean


def _degenerate(n: FloatArray, mean: FloatArray, v: FloatArray, effect: str) -> str | None:
    if (n < 2).any() or not np.isfinite(n).all():
        return "every cell needs at least 2 units; counts are " + str(n.tolist())
    if not (np.isfinite(mean).all() and np.isfinite(v).all()):
        return "the statistics contain NaN or infinite values"
    if v.sum() <= 0:
        return "zero variance in every cell; there is no uncertainty to test"
    if effect == "relative" and (mean <= 0).any():
        return "a cell mean is 0 or negative; the relative (log-scale) contrast needs means > 0"
    return None


def interaction_contrast(
    a0_b0: ArmStats,
    a1_b0: ArmStats,
    a0_b1: ArmStats,
    a1_b1: ArmStats,
    *,
    metric: str = "metric",
    effect: Effect = "absolute",
    variance: Variance = "unequal",
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
) -> InteractionResult:
    """Test whether experiment B changes experiment A's effect on a metric.

    Args:
        a0_b0: the metric's statistics among units in A's control and B's control.
        a1_b0: A's treatment, B's control.
        a0_b1: A's control, B's treatment.
        a1_b1: both treatments.
        metric: the metric's name (carried into the result).
        effect: "absolute" (difference of differences) or "relative" (ratio of ratios).
        variance: "unequal" (per-cell variances, Satterthwaite df) or "pooled" (OLS).
        alternative: "two-sided", "greater" (B raises A's effect) or "less".
        alpha: 1 - confidence level.

    Example:
        >>> from proving.stats.sufficient import ArmStats
        >>> c = ArmStats(n=100, sum=1000.0, sum_squares=10_400.0)
        >>> t = ArmStats(n=100, sum=1100.0, sum_squares=12_500.0)
        >>> r = interaction_contrast(c, t, c, t)
        >>> r.estimate, r.effect_with_b
        (0.0, 1.0)
    """
    validate_options(alpha=alpha, effect=effect, alternative=alternative)
    if variance not in ("unequal", "pooled"):
        raise StatsInputError(
            f"interaction_contrast: `variance` must be 'unequal' or 'pooled'; got {variance!r}."
        )
    n, mean, v = _cell_moments((a0_b0, a1_b0, a0_b1, a1_b1))
    make = partial(
        InteractionResult,
        metric=metric,
        effect=effect,
        variance=variance,
        alternative=alternative,
        alpha=alpha,
        n=tuple(n.tolist()),
    )
    reason = _degenerate(n, mean, v, effect)
    if reason is not None:
        return make(reason=reason)
    m00, m10, m01, m11 = mean
    weights = np.ones(4)
    if effect == "absolute":
        without_b, with_b = m10 - m00, m11 - m01
        centre = with_b - without_b
    else:
        without_b, with_b = m10 / m00 - 1.0, m11 / m01 - 1.0
        centre = math.log(m11 * m00 / (m01 * m10))
        weights = 1.0 / mean**2  # delta method on log m
    if variance == "pooled":
        pooled = float(np.sum(v * n * (n - 1)) / (n.sum() - 4))
        comps = weights * pooled / n
        df = n.sum() - 4
    else:
        comps = weights * v
        df = comps.sum() ** 2 / np.sum(comps**2 / (n - 1))
    se = math.sqrt(comps.sum())
    p, lo, hi = interval_and_p_value(
        np.array([centre]), np.array([se]), np.array([df]), alternative=alternative, alpha=alpha
    )
    estimate, ci_lower, ci_upper = centre, float(lo[0]), float(hi[0])
    if effect == "relative":
        estimate = math.expm1(centre)
        ci_lower, ci_upper = math.expm1(ci_lower), math.expm1(ci_upper)
        se = (1.0 + estimate) * se  # the log-scale error mapped to the reported scale
    return make(
        cell_means=tuple(mean.tolist()),
        effect_without_b=float(without_b),
        effect_with_b=float(with_b),
        estimate=float(estimate),
        ci_lower=ci_lower,
        ci_upper=ci_upper,
        p_value=float(p[0]),
        std_err=se,
        statistic=centre / math.sqrt(comps.sum()),
        df=float(df),
    )


@dataclass(frozen=True)
class InteractionTestResult(ResultBase):
    """Joint test of no interaction between two experiments with any number of variants.

    ``contrasts`` are ``m_ij - m_i0 - m_0j + m_00`` for ``i = 1..r-1`` (rows, experiment
    A's variants after the first) and ``j = 1..c-1`` (columns), row by row.
    """

    metric: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    statistic: float | None = None
    df: int | None = None
    p_value: float | None = None
    contrasts: tuple[float, ...] = ()
    method: str = WALD_METHOD
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


def _grid(
    cells: Mapping[tuple[str, str], ArmStats],
) -> tuple[tuple[str, ...], tuple[str, ...], list[ArmStats]]:
    rows = tuple(dict.fromkeys(str(a) for a, _ in cells))
    cols = tuple(dict.fromkeys(str(b) for _, b in cells))
    lookup = {(str(a), str(b)): v for (a, b), v in cells.items()}
    missing = [(a, b) for a in rows for b in cols if (a, b) not in lookup]
    if missing or len(rows) < 2 or len(cols) < 2:
        raise StatsInputError(
            f"interaction_test: `cells` must cover every (A variant, B variant) pair of at least "
            f"2 x 2 variants; got rows {list(rows)}, columns {list(cols)}, missing {missing}."
        )
    return rows, cols, [lookup[(a, b)] for a in rows for b in cols]


def interaction_test(
    cells: Mapping[tuple[str, str], ArmStats], *, metric: str = "metric"
) -> InteractionTestResult:
    """Wald test that experiment B leaves every effect of experiment A unchanged.

    Args:
        cells: per ``(variant_of_a, variant_of_b)``, the metric's statistics in that cell.
            The first variant seen on each side is the reference for the contrasts.
        metric: the metric's name (carried into the result).

    Example:
        >>> from proving.stats.sufficient import ArmStats
        >>> cell = ArmStats.from_values
        >>> cells = {(a, b): cell([1.0, 2.0, 4.0]) for a in ("c", "t") for b in ("x", "y", "z")}
        >>> r = interaction_test(cells)
        >>> r.df, r.statistic, r.p_value
        (2, 0.0, 1.0)
    """
    rows, cols, flat = _grid(cells)
    n, mean, v = _cell_moments(flat, names=[f"{a}_{b}" for a in rows for b in cols])
    make = partial(InteractionTestResult, metric=metric, rows=rows, columns=cols)
    reason = _degenerate(n, mean, v, "absolute")
    if reason is not None:
        return make(reason=reason)
    r, c = len(rows), len(cols)
    contrast = np.zeros(((r - 1) * (c - 1), r * c))
    for k, (i, j) in enumerate((i, j) for i in range(1, r) for j in range(1, c)):
        contrast[k, [i * c + j, i * c, j, 0]] = (1.0, -1.0, -1.0, 1.0)
    d = contrast @ mean
    cov = (contrast * v) @ contrast.T
    try:
        statistic = float(d @ np.linalg.solve(cov, d))
    except np.linalg.LinAlgError:
        return make(reason="the contrasts' covariance is singular (cells with zero variance)")
    df = (r - 1) * (c - 1)
    return make(
        statistic=statistic,
        df=df,
        p_value=float(stats.chi2.sf(statistic, df)),
        contrasts=tuple(d.tolist()),
    )
