"""Effects between two arms, vectorized across any number of comparisons.

Public API (stable):

- :func:`compare` ``(mean_c, var_c, n_c, mean_t, var_t, n_t, *, effect="relative",
  relative_method="delta", method="welch", alternative="two-sided", alpha=0.05)
  -> EffectArrays``. Inputs are arrays (or scalars) of equal length, one entry per
  comparison: each arm's estimate (``mean_*``), the variance of that estimate (``var_*`` =
  sigma^2 / n for a plain mean) and the number of units (``n_*``, used for the degrees of
  freedom and the degenerate-data checks).
- :class:`EffectArrays`: ``estimate, std_err, df, statistic, p_value, ci_lower, ci_upper``
  (float arrays) and ``reason`` (object array: ``None`` where fine, else why there is no
  answer; those entries are NaN everywhere).
- :func:`mean_moments` ``(n, sum, sum_squares) -> (mean, var_of_mean)`` and
  :func:`proportion_moments`: the per-arm reduction from sufficient statistics.
- :func:`validate_options`: raises :class:`~proving.errors.StatsInputError` for a bad
  ``alpha``/``effect``/``relative_method``/``method``/``alternative``.

Formulas:

- absolute: ``d = m_t - m_c``, ``Var(d) = v_t + v_c``.
- relative, delta method (first-order Taylor expansion of ``m_t / m_c``; Casella & Berger,
  Statistical Inference, 2nd ed., sec. 5.5.4): ``r = m_t / m_c - 1``,
  ``Var(r) = v_t / m_c^2 + m_t^2 v_c / m_c^4``.
- relative, log ratio: ``Var(log(m_t/m_c)) = v_t / m_t^2 + v_c / m_c^2`` (delta method on
  the log scale); the interval is ``exp(log(m_t/m_c) +- q se) - 1`` (asymmetric, never
  below -100%), the test statistic ``log(m_t/m_c) / se``, and ``std_err`` reports
  ``(1 + r) se`` (the same standard error mapped back to the lift scale).
- Welch: Student t with Satterthwaite's degrees of freedom (Satterthwaite 1946; Welch
  1947) computed on the two variance components of the effect that is tested,
  ``df = (a_t + a_c)^2 / (a_t^2 / (n_t - 1) + a_c^2 / (n_c - 1))``; for the absolute
  effect ``a = v`` (the textbook Welch test, identical to
  ``scipy.stats.ttest_ind(equal_var=False)``).
- z: standard normal reference distribution (``df`` is infinite).
- p-values: two-sided ``2 P(T > |t|)``, greater ``P(T > t)``, less ``P(T < t)``; the
  one-sided intervals are ``[d - q_{1-alpha} se, inf)`` and ``(-inf, d + q_{1-alpha} se]``.

Example:
    >>> out = compare(10.0, 0.04, 100, 10.5, 0.05, 100, effect="absolute")
    >>> round(float(out.estimate[0]), 6), out.reason[0] is None
    (0.5, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
import numpy.typing as npt
from scipy import special

from proving._types import ArrayLike, FloatArray, ObjectArray
from proving.errors import StatsInputError
from proving.stats.results import Alternative, Effect, Method, RelativeMethod


@dataclass(frozen=True)
class EffectArrays:
    """Vectorized effect results, one entry per comparison (NaN where ``reason`` is set)."""

    estimate: FloatArray
    std_err: FloatArray
    df: FloatArray
    statistic: FloatArray
    p_value: FloatArray
    ci_lower: FloatArray
    ci_upper: FloatArray
    reason: ObjectArray

    def __len__(self) -> int:
        return int(self.estimate.shape[0])


def validate_options(
    *,
    alpha: float = 0.05,
    effect: str = "relative",
    relative_method: str = "delta",
    method: str = "welch",
    alternative: str = "two-sided",
) -> None:
    """Raise StatsInputError naming the parameter, the rule, the value and the fix."""
    try:
        alpha_ok = 0.0 < float(alpha) <= 0.5
    except (TypeError, ValueError):
        alpha_ok = False
    if not alpha_ok:
        raise StatsInputError(
            f"`alpha` must be a number in (0, 0.5]; got {alpha!r}. Use a value such as 0.05."
        )
    choices: dict[str, tuple[str, Any]] = {
        "effect": (effect, Effect),
        "relative_method": (relative_method, RelativeMethod),
        "method": (method, Method),
        "alternative": (alternative, Alternative),
    }
    for name, (value, literal) in choices.items():
        allowed = get_args(literal)
        if value not in allowed:
            raise StatsInputError(
                f"`{name}` must be one of {', '.join(map(repr, allowed))}; got {value!r}."
            )


def mean_moments(
    n: ArrayLike, sum: ArrayLike, sum_squares: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Mean and variance of the mean from ``n, sum, sum_squares`` (sample variance, n - 1).

    Entries with ``n < 2`` give NaN variance (explained later by :func:`compare`).
    """
    n_ = np.asarray(n, dtype=float)
    s = np.asarray(sum, dtype=float)
    ss = np.asarray(sum_squares, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n_
        # Centered sum of squares; cancellation leaves ~1e-16 * ss of noise where the true
        # value is 0, so treat anything below 1e-12 * ss as exactly 0 (constant data).
        centered = ss - s * mean
        centered = np.where(centered <= 1e-12 * np.abs(ss), 0.0, centered)
        variance = np.where(n_ >= 2, centered / (n_ - 1), np.nan)
        return mean, variance / n_


def proportion_moments(n: ArrayLike, sum: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Proportion ``p = sum / n`` and the variance of ``p``, ``p (1 - p) / n`` (Bernoulli)."""
    n_ = np.asarray(n, dtype=float)
    s = np.asarray(sum, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = s / n_
        return p, np.where(n_ >= 1, p * (1.0 - p) / n_, np.nan)


def _as_array(name: str, value: ArrayLike, size: int | None) -> FloatArray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1:
        raise StatsInputError(f"`{name}` must be a scalar or a 1-d array; got shape {arr.shape}.")
    if size is not None and arr.shape[0] not in (1, size):
        raise StatsInputError(
            f"`{name}` has {arr.shape[0]} entries but other inputs have {size}; "
            "give one entry per comparison."
        )
    return arr


def _reasons(
    m_c: FloatArray,
    v_c: FloatArray,
    n_c: FloatArray,
    m_t: FloatArray,
    v_t: FloatArray,
    n_t: FloatArray,
    *,
    effect: str,
    relative_method: str,
) -> ObjectArray:
    """Why each comparison has no answer (None where it has one); first rule wins."""
    reason = np.full(m_c.shape, None, dtype=object)
    rules: list[tuple[npt.NDArray[np.bool_], str]] = [
        (~(np.isfinite(n_c) & np.isfinite(n_t)), "a unit count is NaN or infinite"),
        ((n_c < 0) | (n_t < 0), "a unit count is negative"),
        ((n_c == 0) | (n_t == 0), "an arm is empty (n = 0)"),
        ((n_c < 2) | (n_t < 2), "an arm has fewer than 2 units; no variance can be estimated"),
        (
            ~(np.isfinite(m_c) & np.isfinite(m_t) & np.isfinite(v_c) & np.isfinite(v_t)),
            "the statistics contain NaN or infinite values",
        ),
        ((v_c < 0) | (v_t < 0), "a variance is negative; the sums are inconsistent"),
        ((v_c + v_t) <= 0, "zero variance in both arms; there is no uncertainty to test"),
    ]
    if effect == "relative":
        rules.append((m_c == 0, "the control mean is 0; a relative effect is undefined"))
        if relative_method == "log":
            rules.append(
                (
                    m_t / np.where(m_c == 0, 1.0, m_c) <= 0,
                    "treatment and control means differ in sign or are 0; "
                    "the log-ratio interval needs a positive ratio (use relative_method='delta')",
                ),
            )
    for mask, text in rules:
        mask = mask & (reason == None)  # noqa: E711 (elementwise comparison on object array)
        if mask.any():
            reason[mask] = text
    return reason


def variance_components(
    mean_c: FloatArray,
    var_c: FloatArray,
    mean_t: FloatArray,
    var_t: FloatArray,
    *,
    effect: Effect = "relative",
    relative_method: RelativeMethod = "delta",
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """``(estimate, centre, a_t, a_c)``: the effect, the value tested (the log ratio for
    ``relative_method="log"``) and the treatment and control parts of its variance, whose
    sum is the variance of ``centre`` (see the module docstring for the formulas)."""
    m_c, v_c, m_t, v_t = mean_c, var_c, mean_t, var_t
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if effect == "absolute":
            estimate = m_t - m_c
            return estimate, estimate, v_t, v_c
        estimate = m_t / m_c - 1.0
        if relative_method == "delta":
            return estimate, estimate, v_t / m_c**2, m_t**2 * v_c / m_c**4
        return estimate, np.log(m_t / m_c), v_t / m_t**2, v_c / m_c**2


def interval_and_p_value(
    centre: FloatArray,
    se: FloatArray,
    df: FloatArray,
    *,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """p-value of ``centre / se`` against 0 and the ``1 - alpha`` interval around ``centre``.

    ``df`` is the t distribution's degrees of freedom per entry; infinite entries use the
    standard normal. Only the tail the alternative needs is evaluated (speed: one special
    function call for p and one for the quantile).
    """
    centre = np.asarray(centre, dtype=float)
    se = np.asarray(se, dtype=float)
    df = np.broadcast_to(np.asarray(df, dtype=float), centre.shape)
    level = 1 - alpha / 2 if alternative == "two-sided" else 1 - alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = centre / se
        tail = (
            -np.abs(stat)
            if alternative == "two-sided"
            else (-stat if alternative == "greater" else stat)
        )
        if np.all(np.isinf(df)):
            lower_tail, q = special.ndtr(tail), special.ndtri(level)
        else:
            finite = np.where(np.isinf(df), 1.0, df)
            lower_tail = np.where(np.isinf(df), special.ndtr(tail), special.stdtr(finite, tail))
            q = np.where(np.isinf(df), special.ndtri(level), special.stdtrit(finite, level))
        inf = np.full(centre.shape, np.inf)
        if alternative == "two-sided":
            return 2.0 * lower_tail, centre - q * se, centre + q * se
        if alternative == "greater":
            return lower_tail, centre - q * se, inf
        return lower_tail, -inf, centre + q * se


def _inputs(*values: ArrayLike) -> tuple[FloatArray, ...]:
    """Coerce the six inputs to float arrays of one length (scalars broadcast)."""
    names = ("mean_c", "var_c", "n_c", "mean_t", "var_t", "n_t")
    size = max(np.atleast_1d(np.asarray(v, dtype=float)).shape[0] for v in values)
    return tuple(
        np.broadcast_to(_as_array(k, v, size), (size,)) for k, v in zip(names, values, strict=True)
    )


def _merge_reasons(found: ObjectArray, given: ObjectArray | None) -> ObjectArray:
    """Reasons known beforehand take precedence over the ones found here."""
    if given is None:
        return found
    given = np.asarray(given, dtype=object)
    if given.shape != found.shape:
        raise StatsInputError(
            f"`reason` has shape {given.shape}; give one entry per comparison {found.shape}."
        )
    return np.where(given != None, given, found)  # noqa: E711


def compare(
    mean_c: ArrayLike,
    var_c: ArrayLike,
    n_c: ArrayLike,
    mean_t: ArrayLike,
    var_t: ArrayLike,
    n_t: ArrayLike,
    *,
    effect: Effect = "relative",
    relative_method: RelativeMethod = "delta",
    method: Method = "welch",
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    reason: ObjectArray | None = None,
) -> EffectArrays:
    """Compare treatment with control for every entry at once.

    Args:
        mean_c: control estimates (means, proportions, ratios, CUPED-adjusted means).
        var_c: variance of each control estimate (sigma^2 / n for a plain mean).
        n_c: control unit counts (degrees of freedom, degenerate-data checks).
        mean_t: treatment estimates.
        var_t: variance of each treatment estimate.
        n_t: treatment unit counts.
        effect: "absolute" (``m_t - m_c``) or "relative" (``m_t / m_c - 1``).
        relative_method: "delta" (symmetric delta-method interval) or "log" (log-ratio).
        method: "welch" (t, Satterthwaite df) or "z" (normal).
        alternative: "two-sided", "greater" (treatment above control) or "less".
        alpha: 1 - confidence level of the interval, and the test level.
        reason: optional reasons known beforehand (e.g. a ratio's zero denominator); entries
            that are not None take precedence and make the entry degenerate.

    Returns:
        EffectArrays; degenerate entries hold NaN and a ``reason``; this never raises for
        degenerate data, only for bad parameters or mismatched shapes.

    Example:
        >>> out = compare([1.0, 1.0], [0.01, 0.0], [50, 50], [1.2, 1.0], [0.01, 0.0], [50, 50])
        >>> [round(float(x), 3) for x in out.estimate[:1]], out.reason[1][:13]
        ([0.2], 'zero variance')
    """
    validate_options(
        alpha=alpha,
        effect=effect,
        relative_method=relative_method,
        method=method,
        alternative=alternative,
    )
    m_c, v_c, n_c_, m_t, v_t, n_t_ = _inputs(mean_c, var_c, n_c, mean_t, var_t, n_t)
    size = m_c.shape[0]
    reason = _merge_reasons(
        _reasons(m_c, v_c, n_c_, m_t, v_t, n_t_, effect=effect, relative_method=relative_method),
        reason,
    )
    bad = reason != None  # noqa: E711
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        estimate, centre, a_t, a_c = variance_components(
            m_c, v_c, m_t, v_t, effect=effect, relative_method=relative_method
        )
        se = np.sqrt(a_t + a_c)
        if method == "z":
            df = np.full(size, np.inf)
        else:
            # Satterthwaite on the components actually summed (Welch 1947, eq. 9).
            df = (a_t + a_c) ** 2 / (a_t**2 / (n_t_ - 1.0) + a_c**2 / (n_c_ - 1.0))
        stat = centre / se
        p, lo, hi = interval_and_p_value(
            centre, se, np.where(bad, 1.0, df), alternative=alternative, alpha=alpha
        )
        if effect == "relative" and relative_method == "log":
            lo, hi = np.expm1(lo), np.expm1(hi)
            se = (1.0 + estimate) * se
    est, se, df, stat, p, lo, hi = (
        np.where(bad, np.nan, np.asarray(x, dtype=float))
        for x in (estimate, se, df, stat, p, lo, hi)
    )
    return EffectArrays(est, se, df, stat, p, lo, hi, reason)
