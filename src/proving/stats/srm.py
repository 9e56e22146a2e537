"""Sample-ratio mismatch (SRM): did each variant receive the share of units it was configured for?

A mismatch means the assignment or the logging is broken (a redirect that loses users, a
bot filter applied to one arm, a crash in one model's path), and every effect estimate from
the experiment is suspect. The check is Pearson's chi-square goodness-of-fit test of the
observed unit counts against the configured weights:

    expected_i = N * w_i / sum(w),     X^2 = sum_i (observed_i - expected_i)^2 / expected_i,

with ``k - 1`` degrees of freedom for ``k`` variants (Pearson 1900; the SRM framing is from
Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments",
KDD). The alarm fires at ``p < threshold``; the default 0.001 is the industry convention
(Microsoft ExP, GrowthBook, Statsig), strict because the check runs on every experiment and
at every look.

Example:
    >>> result = srm_check([5_000, 5_400])
    >>> result.alarm, f"{result.p_value:.2g}"
    (True, '8.8e-05')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from proving.errors import StatsInputError
from proving.stats.results import ResultBase

METHOD = "Pearson chi-square goodness of fit against the configured weights"

# Cochran's rule: the chi-square approximation is poor when an expected count is below 5.
_MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class SRMResult(ResultBase):
    """Outcome of a sample-ratio-mismatch check.

    Attributes:
        statistic: Pearson's X^2, or None when the test cannot be run.
        df: degrees of freedom (variants with positive weight, minus one).
        p_value: upper-tail chi-square probability of ``statistic``.
        observed: unit counts per variant, as given.
        expected: counts the weights predict for the observed total.
        weights: configured weights normalised to sum to one.
        variants: variant names (``variant_0``, ``variant_1``, ... when not given).
        threshold: the alarm fires when ``p_value < threshold``.
        alarm: True when the allocation is inconsistent with the weights.
        deviations: per variant, ``observed / expected - 1`` (0.02 means 2% more units
            than configured); None where the expected count is zero.
        method: the test used.
        reason: why there is no p-value, when there is none.
        warnings: caveats that do not prevent the test.
    """

    statistic: float | None
    df: int | None
    p_value: float | None
    observed: tuple[float, ...]
    expected: tuple[float, ...] | None
    weights: tuple[float, ...] | None
    variants: tuple[str, ...]
    threshold: float
    alarm: bool
    deviations: tuple[float | None, ...] | None = None
    method: str = METHOD
    reason: str | None = None
    warnings: tuple[str, ...] = ()


def _validate(
    observed: Sequence[float],
    weights: Sequence[float] | None,
    threshold: float,
    variants: Sequence[str] | None,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[str, ...]]:
    obs = tuple(float(o) for o in observed)
    k = len(obs)
    if k == 0:
        raise StatsInputError(
            "srm_check: `observed` is empty; give one unit count per variant, e.g. [5000, 5021]."
        )
    if not (isinstance(threshold, int | float) and 0.0 < threshold < 1.0):
        raise StatsInputError(
            f"srm_check: `threshold` must be in (0, 1); got {threshold!r}. "
            "Use a small value such as 0.001."
        )
    w = tuple(float(x) for x in weights) if weights is not None else (1.0,) * k
    if len(w) != k:
        raise StatsInputError(
            f"srm_check: `weights` has {len(w)} entries but `observed` has {k}; "
            "give one weight per variant, in the same order."
        )
    names = tuple(str(v) for v in variants) if variants is not None else ()
    if variants is None:
        names = tuple(f"variant_{i}" for i in range(k))
    if len(names) != k:
        raise StatsInputError(
            f"srm_check: `variants` has {len(names)} names but `observed` has {k} counts; "
            "give one name per variant, in the same order."
        )
    return obs, w, names


def _null(
    obs: tuple[float, ...],
    weights: tuple[float, ...] | None,
    names: tuple[str, ...],
    threshold: float,
    reason: str,
    *,
    alarm: bool = False,
) -> SRMResult:
    return SRMResult(
        statistic=None,
        df=None,
        p_value=None,
        observed=obs,
        expected=None,
        weights=weights,
        variants=names,
        threshold=threshold,
        alarm=alarm,
        reason=reason,
    )


def _degenerate_reason(obs: tuple[float, ...], w: tuple[float, ...]) -> str | None:
    """Why the counts or weights admit no test, or None when they do."""
    if not all(math.isfinite(o) for o in obs):
        return f"observed counts {list(obs)} contain NaN or infinity; no test is possible."
    if any(o < 0 for o in obs):
        return f"observed counts {list(obs)} contain a negative count; no test is possible."
    if not all(math.isfinite(x) and x >= 0 for x in w) or sum(w) <= 0:
        return (
            f"weights {list(w)} are not valid: they must be finite, non-negative and not "
            "all zero; fix the experiment's configured weights."
        )
    if sum(obs) == 0:
        return "no units observed in any variant yet; the check needs exposures."
    return None


def _prepare(
    obs: tuple[float, ...], w: tuple[float, ...], names: tuple[str, ...], threshold: float
) -> SRMResult | tuple[tuple[float, ...], list[int]]:
    """An explained null result, or the normalised weights and the testable variants."""
    bad = _degenerate_reason(obs, w)
    if bad is not None:
        return _null(obs, None, names, threshold, bad)
    w_norm = tuple(x / sum(w) for x in w)
    leaked = [n for n, o, x in zip(names, obs, w, strict=True) if x == 0 and o > 0]
    if leaked:
        return _null(
            obs,
            w_norm,
            names,
            threshold,
            f"variant(s) {leaked} have weight 0 but received units; assignment is sending "
            "traffic where the configuration sends none.",
            alarm=True,
        )
    active = [i for i, x in enumerate(w) if x > 0]
    if len(active) < 2:
        return _null(
            obs,
            w_norm,
            names,
            threshold,
            "fewer than two variants have a positive weight; there is no ratio to check.",
        )
    return w_norm, active


def _answer(
    obs: tuple[float, ...],
    w_norm: tuple[float, ...],
    names: tuple[str, ...],
    threshold: float,
    *,
    statistic: float,
    df: int | None,
    p: float,
    method: str,
    warnings: list[str],
) -> SRMResult:
    expected = tuple(float(sum(obs) * x) for x in w_norm)
    deviations = tuple(
        (obs[i] / expected[i] - 1.0) if expected[i] > 0 else None for i in range(len(obs))
    )
    if any(not float(x).is_integer() for x in obs):
        warnings.append("observed counts are not whole numbers; they should be unit counts.")
    return SRMResult(
        statistic=statistic,
        df=df,
        p_value=p,
        observed=obs,
        expected=expected,
        weights=w_norm,
        variants=names,
        threshold=threshold,
        alarm=p < threshold,
        deviations=deviations,
        method=method,
        warnings=tuple(warnings),
    )


def srm_check(
    observed: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    threshold: float = 0.001,
    variants: Sequence[str] | None = None,
) -> SRMResult:
    """Test observed unit counts per variant against the configured weights.

    Args:
        observed: units assigned (exposed) per variant.
        weights: configured traffic weights in the same order; any positive scale
            (``[50, 50]``, ``[0.5, 0.5]``). Default: equal weights.
        threshold: alarm when the p-value is below this (default 0.001).
        variants: variant names for the result, in the same order.

    Returns:
        An :class:`SRMResult`. Degenerate data (no units, NaN or negative counts, invalid
        weights, a single variant) gives ``p_value=None`` with a ``reason``. A variant with
        weight zero that nevertheless received units is a certain mismatch: ``alarm=True``
        with a reason and no statistic.

    Raises:
        StatsInputError: ``observed`` is empty, the lengths differ, or ``threshold`` is
            outside (0, 1).

    Example:
        >>> srm_check([1000, 2010], [1, 2]).alarm
        False
    """
    obs, w, names = _validate(observed, weights, threshold, variants)
    prepared = _prepare(obs, w, names, threshold)
    if isinstance(prepared, SRMResult):
        return prepared
    w_norm, active = prepared
    o = np.array([obs[i] for i in active])
    expected_active = o.sum() * np.array([w_norm[i] for i in active])
    # scipy's chisquare is the reference implementation; ddof=0 gives k - 1 df.
    statistic, p_value = stats.chisquare(o, expected_active)
    warnings: list[str] = []
    if float(expected_active.min()) < _MIN_EXPECTED:
        warnings.append(
            f"an expected count is below {_MIN_EXPECTED:g} "
            f"({float(expected_active.min()):.3g}); the chi-square approximation is rough "
            "this early, so treat the p-value as indicative."
        )
    return _answer(
        obs,
        w_norm,
        names,
        threshold,
        statistic=float(statistic),
        df=len(active) - 1,
        p=float(p_value),
        method=METHOD,
        warnings=warnings,
    )


def srm_sequential(
    observed: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    threshold: float = 0.001,
    variants: Sequence[str] | None = None,
    concentration: float = 100.0,
    previous_p_value: float | None = None,
) -> SRMResult:
    """Anytime-valid SRM check: look at the counts as often as you like.

    The chi-square test is valid at one pre-planned look; checked after every batch of
    traffic its false-alarm rate grows with the number of looks. This test stays at
    ``threshold`` however often it is run on the cumulative counts (Lindon & Malek 2022,
    "Anytime-Valid Inference for Multinomial Count Data", NeurIPS, sec. 3): the
    Dirichlet-multinomial Bayes factor against the configured allocation ``theta``,

        BF = [Gamma(A) / Gamma(A + N)] prod_i [Gamma(a_i + x_i) / Gamma(a_i)]
             / prod_i theta_i^x_i,      a = concentration * theta,  A = sum(a),

    is a nonnegative martingale with mean 1 under the null, so by Ville's inequality
    ``p = min(1, 1 / BF)`` (and its running minimum over looks) is a valid p-value at any
    stopping time. ``statistic`` is ``log BF``. The validity holds for any
    ``concentration``; it sets how far from ``theta`` the prior looks (100: deviations of
    about ``1/sqrt(100)`` in share are expected under the alternative, a few percent).

    Args:
        observed: cumulative units per variant at this look.
        weights: configured traffic weights (default equal).
        threshold: alarm when the p-value is below this.
        variants: variant names for the result.
        concentration: total weight of the Dirichlet prior, > 0.
        previous_p_value: the p-value of the previous look, to carry the running minimum.

    Example:
        >>> srm_sequential([5_000, 5_600]).alarm, srm_sequential([5_000, 5_100]).alarm
        (True, False)
    """
    obs, w, names = _validate(observed, weights, threshold, variants)
    if not (isinstance(concentration, int | float) and 0 < concentration < math.inf):
        raise StatsInputError(
            f"srm_sequential: `concentration` must be a positive number; got "
            f"{concentration!r}. Use the default 100."
        )
    if previous_p_value is not None and not 0 <= previous_p_value <= 1:
        raise StatsInputError(
            f"srm_sequential: `previous_p_value` must be in [0, 1]; got {previous_p_value!r}."
        )
    prepared = _prepare(obs, w, names, threshold)
    if isinstance(prepared, SRMResult):
        return prepared
    w_norm, active = prepared
    x = np.array([obs[i] for i in active])
    theta = np.array([w_norm[i] for i in active])
    a = concentration * theta
    log_bf = float(
        special.gammaln(a.sum())
        - special.gammaln(a.sum() + x.sum())
        + np.sum(special.gammaln(a + x) - special.gammaln(a))
        - np.sum(x * np.log(theta))
    )
    p = math.exp(-log_bf) if log_bf > 0 else 1.0  # min(1, 1 / BF), without overflow
    if previous_p_value is not None:
        p = min(p, float(previous_p_value))
    method = f"sequential Dirichlet-multinomial Bayes factor (concentration {concentration:g})"
    return _answer(
        obs, w_norm, names, threshold, statistic=log_bf, df=None, p=p, method=method, warnings=[]
    )
