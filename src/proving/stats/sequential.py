"""Always-valid inference: confidence sequences and mSPRT p-values, vectorized.

A fixed-sample interval covers the truth with probability 1 - alpha at *one* pre-planned
look; peeked at after every batch it fails far more often. The methods here hold at every
look at once: P(there is a look whose interval misses the effect) <= alpha, so an
experiment may be watched continuously and stopped whenever the interval excludes 0.

Every metric kind (mean, proportion, ratio by the delta method, CUPED-adjusted) reduces to
an effect estimate ``d`` with standard error ``se`` over ``N`` units (both arms); the
methods below need only those, so they serve every kind through
:func:`proving.stats.effects.compare`.

**Normal mixture** (Robbins 1970; Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49:1055, eq. (14);
asymptotic version: Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas 2023, "Time-uniform
central limit theory and asymptotic confidence sequences", eq. (9)). Mixing the likelihood
ratio of a shift ``theta`` over ``theta ~ N(0, tau^2)`` gives the mixture likelihood ratio
(the mSPRT statistic of Johari, Koomen, Pekelis & Walsh 2017/2022, "Always valid
inference", Oper. Res. 70:1806, sec. 3):

    Lambda = sqrt(se^2 / (se^2 + tau^2)) exp(w^2 / 2),
    w = (d - theta_0) tau / (se sqrt(se^2 + tau^2)).

Lambda is a nonnegative (super)martingale under the null, so by Ville's inequality
P(sup Lambda >= 1/alpha) <= alpha: ``p = min(1, 1/Lambda)`` is an always-valid p-value
(kept as a running minimum across looks by the caller) and the confidence sequence is the
set of theta_0 with Lambda < 1/alpha:

    d +- se sqrt((se^2 + tau^2) / tau^2 * 2 log(sqrt((se^2 + tau^2) / se^2) / alpha)).

**One-sided** (``greater``/``less``): mixing over a half-normal ``theta`` (the one-sided
normal mixture of Howard et al. 2021; derived by completing the square) gives

    Lambda_1 = 2 sqrt(se^2 / (se^2 + tau^2)) exp(w^2 / 2) Phi(w),

solved numerically (vectorized Newton, monotone from the right) for the one-sided bound.

**Tuning.** The mixing scale is set from a sample size ``N*`` (``tuning_n``) where the
sequence should be tightest (Waudby-Smith et al. 2023, eq. (161)): with the per-unit
variance ``sigma^2 = N se^2``,

    tau^2 = sigma^2 rho^2,   rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / N*.

This is GrowthBook's and Eppo's parametrization (their "sequential tuning parameter",
default 5000 units). A fixed ``mixture_variance`` (tau^2 on the effect scale, the mSPRT's
prior variance of effects) can be given instead.

**Families.** :func:`sequentialize` turns ``analyze(...).comparisons`` into always-valid
results (running-minimum p-values across looks); :func:`adjust_sequential` applies Holm or
Benjamini-Hochberg to them, with confidence sequences at the corrected level.

Example:
    >>> out = always_valid_compare(10.0, 0.004, 1000, 10.6, 0.005, 1000, effect="absolute")
    >>> bool(out.ci_lower[0] > 0), bool(out.p_value[0] < 0.05)
    (True, True)
"""

from __future__ import annotations

import gc
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
from scipy import special

from proving.errors import StatsInputError
from proving.stats.effects import ArrayLike, compare, validate_options
from proving.stats.multiple import FAMILY_KEYS, benjamini_hochberg, holm
from proving.stats.results import (
    Alternative,
    AnalysisResult,
    ComparisonResult,
    Effect,
    RelativeMethod,
)

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.intp]
SequentialMethod = Literal["confidence_sequence", "msprt"]

DEFAULT_TUNING_N = 5000.0
_NEWTON_STEPS = 40


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise StatsInputError(
            f"`alpha` must be a number in (0, 1); got {alpha!r}. Use a value such as 0.05."
        )


def _check_alternative(alternative: str) -> None:
    if alternative not in ("two-sided", "greater", "less"):
        raise StatsInputError(
            f"`alternative` must be 'two-sided', 'greater' or 'less'; got {alternative!r}."
        )


def tuning_rho_squared(alpha: float, tuning_n: float = DEFAULT_TUNING_N) -> float:
    """rho^2 that makes the normal-mixture sequence tightest at ``tuning_n`` units.

    Waudby-Smith et al. (2023), eq. (161): ``(-2 log a + log(1 - 2 log a)) / N*``.

    Example:
        >>> round(tuning_rho_squared(0.05, 5000), 8)
        0.00158723
    """
    _check_alpha(alpha)
    if not (isinstance(tuning_n, int | float) and math.isfinite(tuning_n) and tuning_n > 0):
        raise StatsInputError(
            f"`tuning_n` (N*, the total sample size where the confidence sequence is "
            f"tightest) must be a positive number; got {tuning_n!r}. Use the expected "
            "sample size of the experiment, e.g. 5000."
        )
    la = -2.0 * math.log(alpha)
    return (la + math.log(la + 1.0)) / float(tuning_n)


def mixture_variances(
    std_err: ArrayLike,
    n: ArrayLike,
    *,
    alpha: float = 0.05,
    tuning_n: float = DEFAULT_TUNING_N,
) -> FloatArray:
    """tau^2 on the effect scale from N*: ``N se^2 rho^2`` (per-unit variance times rho^2)."""
    se = np.asarray(std_err, dtype=float)
    return np.asarray(np.asarray(n, dtype=float) * se * se * tuning_rho_squared(alpha, tuning_n))


def log_mixture_ratio(
    estimate: ArrayLike,
    std_err: ArrayLike,
    tau2: ArrayLike,
    *,
    null: float = 0.0,
    alternative: Alternative = "two-sided",
) -> FloatArray:
    """log Lambda, the log of the normal-mixture likelihood ratio (an e-value)."""
    d = np.asarray(estimate, dtype=float) - null
    v = np.asarray(std_err, dtype=float) ** 2
    t2 = np.asarray(tau2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = d * np.sqrt(t2) / np.sqrt(v * (v + t2))
        log_lr = 0.5 * np.log(v / (v + t2)) + 0.5 * w * w
        if alternative == "greater":
            log_lr = log_lr + math.log(2.0) + special.log_ndtr(w)
        elif alternative == "less":
            log_lr = log_lr + math.log(2.0) + special.log_ndtr(-w)
    return np.asarray(log_lr, dtype=float)


def _one_sided_root(log_r: FloatArray, alpha: float) -> FloatArray:
    """w solving log 2 + log_r / 2 + w^2 / 2 + log Phi(w) = log(1 / alpha).

    The left side is increasing and convex in w for w >= 0 (its slope w + phi/Phi is
    positive and increasing), so Newton's method started right of the root decreases
    monotonically to it. At ``w0 = sqrt(2 log(1/alpha) - log_r)`` the left side is at
    least log(1/alpha), so w0 is right of the root.
    """
    target = -math.log(alpha)
    w = np.sqrt(np.maximum(2.0 * target - log_r, 0.0)) + 1e-9
    for _ in range(_NEWTON_STEPS):
        log_phi = special.log_ndtr(w)
        f = math.log(2.0) + 0.5 * log_r + 0.5 * w * w + log_phi - target
        slope = w + np.exp(-0.5 * w * w - 0.5 * math.log(2 * math.pi) - log_phi)
        step = f / slope
        w = w - step
        if np.all(np.abs(step) < 1e-12):
            break
    return np.asarray(w, dtype=float)


def confidence_sequence_halfwidth(
    std_err: ArrayLike,
    tau2: ArrayLike,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> FloatArray:
    """Distance from the estimate to the always-valid bound (each bound, one-sided: the one).

    Two-sided: ``se sqrt((se^2 + tau^2) / tau^2 * 2 log(sqrt((se^2 + tau^2)/se^2) / alpha))``.
    """
    _check_alpha(alpha)
    _check_alternative(alternative)
    v = np.asarray(std_err, dtype=float) ** 2
    t2 = np.asarray(tau2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.sqrt(v * (v + t2) / t2)  # converts w back to the effect scale
        log_r = np.log(v / (v + t2))
        if alternative == "two-sided":
            w = np.sqrt(2.0 * (-math.log(alpha)) - log_r)
        else:
            w = _one_sided_root(np.where(np.isfinite(log_r), log_r, 0.0), alpha)
        return np.asarray(np.where(np.isfinite(log_r), w * scale, np.nan), dtype=float)


@dataclass(frozen=True)
class SequentialArrays:
    """Always-valid results, one entry per comparison (NaN where ``reason`` is set).

    ``p_value`` is the mSPRT p-value of this look alone, ``min(1, 1/Lambda)``; keep the
    running minimum across looks (:class:`proving.stats.monitor.SequentialMonitor` does).
    ``e_value`` is Lambda itself (the Bayes factor of a N(0, tau^2) effect against none).
    """

    estimate: FloatArray
    std_err: FloatArray
    ci_lower: FloatArray
    ci_upper: FloatArray
    p_value: FloatArray
    e_value: FloatArray
    mixture_variance: FloatArray
    n: FloatArray
    reason: ObjectArray

    def __len__(self) -> int:
        return int(self.estimate.shape[0])


def always_valid_interval(
    estimate: ArrayLike,
    std_err: ArrayLike,
    n: ArrayLike,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    tuning_n: float = DEFAULT_TUNING_N,
    mixture_variance: float | None = None,
    null: float = 0.0,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Always-valid interval and p-value from effect estimates and standard errors.

    Args:
        estimate: effect estimates ``d``.
        std_err: their standard errors.
        n: units behind each estimate (both arms), used by the N* tuning.
        alpha: the error allowed over all looks together.
        alternative: ``two-sided``, ``greater`` or ``less``.
        tuning_n: N*, the total sample size where the sequence is tightest.
        mixture_variance: fixed tau^2 on the effect scale instead of the N* tuning.
        null: the effect under the null hypothesis of the p-value.

    Returns:
        ``(ci_lower, ci_upper, p_value, e_value, tau2)`` arrays.
    """
    _check_alpha(alpha)
    _check_alternative(alternative)
    d = np.atleast_1d(np.asarray(estimate, dtype=float))
    se = np.atleast_1d(np.asarray(std_err, dtype=float))
    if mixture_variance is None:
        tau2 = mixture_variances(se, n, alpha=alpha, tuning_n=tuning_n)
    else:
        if not (math.isfinite(mixture_variance) and mixture_variance > 0):
            raise StatsInputError(
                f"`mixture_variance` (tau^2, the variance of plausible effects) must be a "
                f"positive number; got {mixture_variance!r}. Omit it to tune by `tuning_n`."
            )
        tau2 = np.full(d.shape, float(mixture_variance))
    half = confidence_sequence_halfwidth(se, tau2, alpha=alpha, alternative=alternative)
    lower = d - half if alternative != "less" else np.full(d.shape, -np.inf)
    upper = d + half if alternative != "greater" else np.full(d.shape, np.inf)
    log_lr = log_mixture_ratio(d, se, tau2, null=null, alternative=alternative)
    with np.errstate(over="ignore"):
        p = np.minimum(1.0, np.exp(-log_lr))
        e = np.exp(log_lr)
    return lower, upper, np.asarray(p), np.asarray(e), np.asarray(tau2, dtype=float)


def always_valid_compare(
    mean_c: ArrayLike,
    var_c: ArrayLike,
    n_c: ArrayLike,
    mean_t: ArrayLike,
    var_t: ArrayLike,
    n_t: ArrayLike,
    *,
    effect: Effect = "relative",
    relative_method: RelativeMethod = "delta",
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    tuning_n: float = DEFAULT_TUNING_N,
    mixture_variance: float | None = None,
) -> SequentialArrays:
    """Always-valid comparison of treatment with control for every entry at once.

    Takes the same per-arm inputs as :func:`proving.stats.effects.compare` (each arm's
    estimate, the variance of that estimate and its unit count: means, proportions, ratio
    metrics, CUPED-adjusted means alike) and returns the confidence sequence and mSPRT
    p-value of this look.

    Args:
        mean_c: control estimates.
        var_c: variance of each control estimate.
        n_c: control unit counts.
        mean_t: treatment estimates.
        var_t: variance of each treatment estimate.
        n_t: treatment unit counts.
        effect: ``absolute`` or ``relative`` (lift, delta method or log ratio).
        relative_method: ``delta`` (symmetric) or ``log`` (sequence on log(m_t/m_c)).
        alternative: ``two-sided``, ``greater`` or ``less``.
        alpha: error over all looks together.
        tuning_n: N*, total units (both arms) where the sequence is tightest.
        mixture_variance: fixed tau^2 on the (log-)effect scale instead of N* tuning.

    Returns:
        :class:`SequentialArrays`; degenerate entries hold NaN and a ``reason``.

    Example:
        >>> out = always_valid_compare([0.10], [1e-4], [900], [0.13], [1.2e-4], [900],
        ...                            effect="absolute")
        >>> round(float(out.estimate[0]), 2), bool(out.ci_lower[0] < 0.03 < out.ci_upper[0])
        (0.03, True)
    """
    validate_options(alpha=alpha, effect=effect, relative_method=relative_method)
    _check_alternative(alternative)
    base = compare(
        mean_c,
        var_c,
        n_c,
        mean_t,
        var_t,
        n_t,
        effect=effect,
        relative_method=relative_method,
        method="z",
        alternative=alternative,
        alpha=alpha,
    )
    n_total = np.broadcast_to(
        np.asarray(n_c, dtype=float) + np.asarray(n_t, dtype=float), base.estimate.shape
    )
    log_scale = effect == "relative" and relative_method == "log"
    centre = np.log1p(base.estimate) if log_scale else base.estimate
    se = base.std_err / (1.0 + base.estimate) if log_scale else base.std_err
    lower, upper, p, e, tau2 = always_valid_interval(
        centre,
        se,
        n_total,
        alpha=alpha,
        alternative=alternative,
        tuning_n=tuning_n,
        mixture_variance=mixture_variance,
    )
    if log_scale:
        lower, upper = np.expm1(lower), np.expm1(upper)
    bad = base.reason != None  # noqa: E711 (elementwise on an object array)
    lower, upper, p, e, tau2 = (np.where(bad, np.nan, x) for x in (lower, upper, p, e, tau2))
    return SequentialArrays(
        estimate=base.estimate,
        std_err=base.std_err,
        ci_lower=lower,
        ci_upper=upper,
        p_value=p,
        e_value=e,
        mixture_variance=tau2,
        n=np.asarray(n_total, dtype=float),
        reason=base.reason,
    )


_ALWAYS_VALID_NOTE = (
    "always-valid: the interval is a normal-mixture confidence sequence and the p-value "
    "the running minimum of the mSPRT p-value, valid under continuous monitoring"
)


_KEY_FIELDS = ("experiment", "segment", "metric", "control", "variant")
_INPUT_FIELDS = (
    *_KEY_FIELDS,
    "effect",
    "relative_method",
    "alternative",
    "alpha",
    "estimate",
    "std_err",
    "n_control",
    "n_treatment",
    "p_value",
    "warnings",
)
Columns = Mapping[str, Sequence[Any]]
Comparisons = Sequence[ComparisonResult] | AnalysisResult


def _read(
    results: Comparisons, names: Sequence[str] = _INPUT_FIELDS
) -> tuple[Columns, list[ComparisonResult] | None]:
    """The columns ``names`` of ``results``, and the objects when given objects.

    An :class:`AnalysisResult` from :func:`proving.stats.analyze` is read as columns
    without creating one object per comparison.
    """
    if isinstance(results, AnalysisResult):
        return results.comparison_columns(), None
    objects = list(results)
    return {n: list(map(attrgetter(n), objects)) for n in names}, objects


def _floats(column: Sequence[Any], none: float = math.nan) -> FloatArray:
    """A float array of a column of plain values (None -> ``none``; NaN stays NaN)."""
    return np.array([none if x is None else x for x in column], dtype=float)


def _plain_list(x: FloatArray) -> list[float | None]:
    """Python floats, with NaN and infinities as None (the results' convention)."""
    out = x.astype(object)
    out[~np.isfinite(x)] = None
    values: list[float | None] = out.tolist()
    return values


def _scatter(column: Sequence[Any], idx: IntArray, values: Sequence[Any]) -> list[Any]:
    """``column`` with ``values`` written at the (increasing) positions ``idx``."""
    if len(idx) == len(column):
        return list(values)
    out = list(column)
    for i, v in zip(idx.tolist(), values, strict=True):
        out[i] = v
    return out


def _rebuild(
    results: Comparisons,
    columns: Columns,
    objects: list[ComparisonResult] | None,
    idx: IntArray,
    updates: Mapping[str, Sequence[Any]],
) -> AnalysisResult | list[ComparisonResult]:
    """The results with the fields ``updates`` (one value per entry of ``idx``) replaced.

    An :class:`AnalysisResult` comes back as one, columnar (its comparisons are created
    on first access; its SRM checks and warnings are kept). Objects come back as a list:
    like ``dataclasses.replace`` per result, without running ``__init__``, each new
    object gets a copy of the old one's ``__dict__`` updated in C (the objects are
    frozen, acyclic and equal to those ``replace`` builds). Rows outside ``idx`` are the
    given objects themselves.
    """
    if objects is None:
        assert isinstance(results, AnalysisResult)
        full = dict(columns)
        for name, values in updates.items():
            full[name] = _scatter(columns[name], idx, values)
        return AnalysisResult.from_columns(
            lambda: full, srm=results.srm, srm_scope=results.srm_scope, warnings=results.warnings
        )
    out = list(objects)
    chosen = [objects[i] for i in idx.tolist()]
    names = list(updates)
    enabled = gc.isenabled()
    gc.disable()
    try:
        states = list(map(dict, map(vars, chosen)))
        rows = zip(*(updates[n] for n in names), strict=True)
        deque(map(dict.update, states, map(zip, repeat(names), rows)), maxlen=0)
        built: list[ComparisonResult] = list(map(object.__new__, map(type, chosen)))
        deque(map(object.__setattr__, built, repeat("__dict__"), states), maxlen=0)
    finally:
        if enabled:
            gc.enable()
    for i, obj in zip(idx.tolist(), built, strict=True):
        out[i] = obj
    return out


def _with_note(warnings: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Each warnings tuple plus the always-valid note.

    Most results share a few distinct tuples (usually ``()``), so each distinct one is
    extended once and shared (tuples are immutable): 10,000 new tuples would cost more
    than the interval arithmetic.
    """
    try:
        extended = {w: (*w, _ALWAYS_VALID_NOTE) for w in set(warnings)}
    except TypeError:  # unhashable (a list): extend one at a time
        return [(*w, _ALWAYS_VALID_NOTE) for w in warnings]
    return [extended[w] for w in warnings]


def _bounds(
    columns: Columns,
    idx: IntArray,
    tuning_n: float,
    mixture_variance: float | None,
    level: float | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Always-valid ``(lower, upper, p)`` of the rows ``idx``, at their ``alpha`` or ``level``.

    One :func:`always_valid_interval` call per distinct (alpha, alternative); relative
    effects with ``relative_method="log"`` run on ``log(1 + lift)`` and map back.
    """
    take = idx.tolist()
    full = len(take) == len(columns["metric"])

    def pick(name: str) -> list[Any]:
        column = columns[name]
        return list(column) if full else [column[i] for i in take]

    estimate = _floats(pick("estimate"))
    std_err = _floats(pick("std_err"))
    n = _floats(pick("n_control"), 0.0) + _floats(pick("n_treatment"), 0.0)
    log = np.array(
        [
            e == "relative" and m == "log"
            for e, m in zip(pick("effect"), pick("relative_method"), strict=True)
        ],
        dtype=bool,
    )
    centre, se = estimate, std_err
    if log.any():  # math.log1p, not np.log1p: the same bits as one comparison at a time
        centre = estimate.copy()
        centre[log] = [math.log1p(x) for x in estimate[log].tolist()]
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.where(log, std_err / (1.0 + estimate), std_err)
    alphas = pick("alpha") if level is None else [level] * len(take)
    alternatives = pick("alternative")
    lower, upper, p = (np.full(len(take), math.nan) for _ in range(3))
    groups = set(zip(alphas, alternatives, strict=True))
    for alpha, alternative in groups:
        if len(groups) == 1:
            rows: npt.NDArray[np.bool_] | slice = slice(None)
        else:
            rows = np.array(
                [
                    a == alpha and k == alternative
                    for a, k in zip(alphas, alternatives, strict=True)
                ],
                dtype=bool,
            )
        lo, hi, pv, _, _ = always_valid_interval(
            centre[rows], se[rows], n[rows], alpha=alpha, alternative=alternative,
            tuning_n=tuning_n, mixture_variance=mixture_variance,
        )  # fmt: skip
        lower[rows], upper[rows], p[rows] = lo, hi, pv
    with np.errstate(over="ignore"):
        lower = np.where(log, np.expm1(lower), lower)
        upper = np.where(log, np.expm1(upper), upper)
    return lower, upper, p


@overload
def sequentialize(
    results: AnalysisResult,
    *,
    tuning_n: float = ...,
    mixture_variance: float | None = ...,
    previous: Comparisons | None = ...,
) -> AnalysisResult: ...


@overload
def sequentialize(
    results: Sequence[ComparisonResult],
    *,
    tuning_n: float = ...,
    mixture_variance: float | None = ...,
    previous: Comparisons | None = ...,
) -> list[ComparisonResult]: ...


def sequentialize(
    results: Comparisons,
    *,
    tuning_n: float = DEFAULT_TUNING_N,
    mixture_variance: float | None = None,
    previous: Comparisons | None = None,
) -> AnalysisResult | list[ComparisonResult]:
    """Turn fixed-sample comparisons (``analyze(...)``) into always-valid ones.

    Each result keeps its estimate and standard error (mean, proportion, ratio, CUPED
    alike); its interval becomes the confidence sequence and its p-value the mSPRT p-value,
    kept as the running minimum over ``previous`` (the same comparisons at the last look,
    matched by experiment, segment, metric, control and variant). Degenerate results pass
    through unchanged.

    Vectorized end to end, in one pass over arrays. Given the :class:`AnalysisResult`
    itself (``analyze(...)``, the fast path: about 1 us per comparison on top of
    ``analyze``), it reads the columns and returns an AnalysisResult whose comparisons
    are created only when read (``comparison_columns()`` skips them), with its SRM checks
    and warnings. Given a sequence of :class:`ComparisonResult` it returns a list.

    Example:
        >>> r = ComparisonResult(metric="ctr", variant="b", effect="absolute", estimate=0.02,
        ...                      std_err=0.005, n_control=4000, n_treatment=4000)
        >>> s = sequentialize([r])[0]
        >>> s.ci_lower < 0.02 - 1.96 * 0.005, s.p_value < 0.05
        (True, True)
    """
    columns, objects = _read(results)
    std_err = _floats(columns["std_err"])
    with np.errstate(invalid="ignore"):
        answered = std_err > 0  # NaN and None (as NaN) fail, as `not (se > 0)` does
    answered &= np.array([e is not None for e in columns["estimate"]], dtype=bool)
    idx = np.flatnonzero(answered)
    lower, upper, p = _bounds(columns, idx, tuning_n, mixture_variance)
    if previous is not None:
        before_columns, _ = _read(previous, (*_KEY_FIELDS, "p_value"))
        keys = zip(*(before_columns[k] for k in _KEY_FIELDS), strict=True)
        before = dict(zip(keys, before_columns["p_value"], strict=True))
        now = zip(*([columns[k][i] for i in idx.tolist()] for k in _KEY_FIELDS), strict=True)
        last = _floats([before.get(k) for k in now])
        # The running minimum; NaN on either side keeps this look's value, as min() does.
        with np.errstate(invalid="ignore"):
            p = np.where(last < p, last, p)
    warnings = [columns["warnings"][i] for i in idx.tolist()]
    size = len(idx)
    updates = {
        "ci_lower": _plain_list(lower),
        "ci_upper": _plain_list(upper),
        "p_value": p.tolist(),
        "method": ["z"] * size,
        "df": [None] * size,
        "warnings": _with_note(warnings),
    }
    return _rebuild(results, columns, objects, idx, updates)


@overload
def adjust_sequential(
    results: AnalysisResult,
    *,
    method: Literal["none", "holm", "bh"],
    alpha: float = ...,
    by: Sequence[str] = ...,
    tuning_n: float = ...,
    mixture_variance: float | None = ...,
) -> AnalysisResult: ...


@overload
def adjust_sequential(
    results: Sequence[ComparisonResult],
    *,
    method: Literal["none", "holm", "bh"],
    alpha: float = ...,
    by: Sequence[str] = ...,
    tuning_n: float = ...,
    mixture_variance: float | None = ...,
) -> list[ComparisonResult]: ...


def adjust_sequential(
    results: Comparisons,
    *,
    method: Literal["none", "holm", "bh"],
    alpha: float = 0.05,
    by: Sequence[str] = FAMILY_KEYS,
    tuning_n: float = DEFAULT_TUNING_N,
    mixture_variance: float | None = None,
) -> AnalysisResult | list[ComparisonResult]:
    """Multiple-comparison correction of always-valid results (from :func:`sequentialize`).

    Adjusted p-values are Holm's or Benjamini-Hochberg's (:mod:`proving.stats.multiple`)
    applied to the always-valid p-values: an always-valid p-value read at any stopping time
    is a valid p-value, so Holm controls the family-wise error at whatever look the family
    is stopped (any dependence), and BH the false discovery rate (independent or positively
    dependent comparisons; Johari et al. 2022, sec. 5). Adjusted intervals are confidence
    sequences at the per-comparison level the correction implies: ``alpha/m`` for Holm
    (simultaneous over comparisons and looks by the union bound), ``R alpha/m`` for BH
    (false coverage rate, Benjamini & Yekutieli 2005).

    Returns:
        The results in order with ``correction``, ``adjusted_p_value`` and
        ``adjusted_ci_lower``/``adjusted_ci_upper`` filled: an :class:`AnalysisResult`
        (columnar) for one, a list for a sequence of comparisons.
    """
    if method not in ("none", "holm", "bh"):
        raise StatsInputError(
            f"`method` must be one of 'none', 'holm', 'bh'; got {method!r}. Use 'holm' for "
            "the family-wise error rate, 'bh' for the false discovery rate."
        )
    _check_alpha(alpha)
    kept = ("adjusted_p_value", "adjusted_ci_lower", "adjusted_ci_upper")
    columns, objects = _read(results, (*_INPUT_FIELDS, *kept, *by))
    size = len(columns["metric"])
    # Rows outside every family keep their adjusted fields, as replace() did.
    adjusted_p, adjusted_lower, adjusted_upper = (list(columns[k]) for k in kept)
    families: dict[tuple[str, ...], list[int]] = {}
    rows = zip(columns["p_value"], columns["estimate"], columns["std_err"], strict=True)
    labels = zip(*(columns[k] for k in by), strict=True)
    for i, ((p_value, estimate, std_err), label) in enumerate(zip(rows, labels, strict=True)):
        if p_value is not None and estimate is not None and std_err is not None:
            families.setdefault(tuple(map(str, label)), []).append(i)
    for members in families.values():
        idx = np.asarray(members, dtype=np.intp)
        p = np.array([columns["p_value"][i] for i in members], dtype=float)
        m = p.size
        if method == "holm":
            adjusted, level = holm(p), alpha / m
        elif method == "bh":
            adjusted = benjamini_hochberg(p)
            level = max(int(np.sum(adjusted <= alpha)), 1) * alpha / m
        else:
            adjusted, level = p, alpha
        lower, upper, _ = _bounds(columns, idx, tuning_n, mixture_variance, level)
        for j, (a, lo, hi) in enumerate(
            zip(adjusted.tolist(), _plain_list(lower), _plain_list(upper), strict=True)
        ):
            adjusted_p[members[j]], adjusted_lower[members[j]] = a, lo
            adjusted_upper[members[j]] = hi
    updates = {
        "correction": [method] * size,
        "adjusted_p_value": adjusted_p,
        "adjusted_ci_lower": adjusted_lower,
        "adjusted_ci_upper": adjusted_upper,
    }
    return _rebuild(results, columns, objects, np.arange(size), updates)
