"""Always-valid math: normal-mixture confidence sequences and mSPRT p-values, vectorized.

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

The results layer (always-valid comparisons over ``analyze(...)``, corrected families) is
:mod:`proving.stats.sequential`.

Example:
    >>> out = always_valid_compare(10.0, 0.004, 1000, 10.6, 0.005, 1000, effect="absolute")
    >>> bool(out.ci_lower[0] > 0), bool(out.p_value[0] < 0.05)
    (True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

from proving._types import ArrayLike, FloatArray, ObjectArray
from proving.errors import StatsInputError
from proving.stats.effects import compare, validate_options
from proving.stats.results import Alternative, Effect, RelativeMethod

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
