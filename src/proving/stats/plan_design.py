"""The design of a planned test, and its power function.

The planned test is the one :func:`proving.stats.effects.compare` runs: a two-sample test
of ``treatment - control`` (absolute) or ``treatment / control - 1`` (relative, delta
method), with the standard error estimated from each arm separately (unpooled). For a
control arm of ``n_c`` units and a treatment arm of ``n_t = r n_c`` units,

    se^2 = a_c / n_c + a_t / n_t,         ncp = delta / se,

where ``a`` are the unit-level variance components of the tested quantity:

* absolute effect: ``a_c = sigma_c^2``, ``a_t = sigma_t^2``;
* relative effect ``L`` (delta method, Casella & Berger 2002, sec. 5.5.4):
  ``a_t = sigma_t^2 / mu_c^2`` and ``a_c = (1 + L)^2 sigma_c^2 / mu_c^2``.

``sigma^2`` is the variance per unit of the metric, as :class:`PlanMetric` models it (see
:mod:`proving.stats.plan_metric`): given for a mean, ``p (1 - p)`` for a proportion (the
treatment's at its own rate), the delta-method variance of the linearisation for a ratio.

CUPED with a covariate correlated ``rho`` with the metric multiplies every variance by
``1 - rho^2`` (Deng, Xu, Kohavi & Walker 2013, "Improving the Sensitivity of Online
Controlled Experiments by Utilizing Pre-Experiment Data", WSDM, sec. 3.2).

Power (normal reference, two-sided; one-sided keeps the matching tail only):

    power = Phi(ncp - z_{1 - alpha/2}) + Phi(-ncp - z_{1 - alpha/2}),

the formula of statsmodels' ``NormalIndPower``; with ``distribution="t"`` the noncentral
t with ``n_c + n_t - 2`` degrees of freedom replaces the normal (``TTestIndPower``; Cohen
1988, ch. 2).

Several comparisons: with ``metrics`` metrics and ``variants`` treatments each compared with
control there are ``m = metrics * variants`` tests in the family. The planned per-test level
is Bonferroni's ``alpha / m`` (valid for Holm too, whose first step is Bonferroni's and whose
later steps are less strict, so the promised power is a lower bound) or Sidak's
``1 - (1 - alpha)^(1/m)`` (exact for independent tests). Plan one family at a time:
guardrails are tested in their own family (see :mod:`proving.stats.multiple`).

Unequal allocation: ``weights`` are the traffic shares, control first. The required total is
driven by the treatment with the smallest share.

Example:
    >>> design = PlanDesign.from_options(PlanMetric.mean_metric(10.0, 4.0), {"metrics": 2})
    >>> design.alpha_per_test, round(design.power_at(0.5, 1000.0, 1.0), 4)
    (0.025, 0.7101)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict, get_args

from scipy import stats as sps

from proving.stats.plan_metric import PlanMetric, _check, _finite
from proving.stats.results import Alternative

Correction = Literal["none", "bonferroni", "sidak"]
Distribution = Literal["z", "t"]

_ALPHA = "Use a value such as 0.05."


class PlanOptions(TypedDict, total=False):
    """Options shared by :func:`sample_size`, :func:`minimum_detectable_effect` and
    :func:`achieved_power` (all keyword arguments, all optional).

    Attributes:
        relative: plan a relative effect (a lift; tested by the delta method). Default False.
        alpha: family-wise significance level, one-sided level for one-sided tests (0.05).
        alternative: "two-sided" (default), "greater" or "less".
        weights: traffic shares, control first (default: equal over ``variants + 1``).
        variants: treatments besides control, when ``weights`` is not given (1).
        metrics: metrics tested in the same family, for the correction (1).
        correction: "bonferroni" (default; also valid for Holm), "sidak" or "none".
        cuped_correlation: correlation of the metric with its pre-period covariate; the
            variance shrinks by ``1 - rho^2``. Default: the metric's ``r_squared``.
        distribution: "z" (normal, default) or "t" (noncentral t, for small samples).
        daily_traffic: new units entering the experiment per day, for ``days``.
    """

    relative: bool
    alpha: float
    alternative: Alternative
    weights: Sequence[float] | None
    variants: int
    metrics: int
    correction: Correction
    cuped_correlation: float | None
    distribution: Distribution
    daily_traffic: float | None


@dataclass(frozen=True)
class PlanDesign:
    """A validated plan, short of its unknown: the metric, the test and the allocation.

    Build it with :meth:`from_options`. ``alpha_per_test`` is the level after the
    correction for ``comparisons`` tests; ``weights`` are the normalized traffic shares,
    control first; ``r2`` is the share of variance CUPED removes.
    """

    metric: PlanMetric
    relative: bool
    alpha: float
    alpha_per_test: float
    comparisons: int
    correction: Correction
    alternative: Alternative
    distribution: Distribution
    weights: tuple[float, ...]
    r2: float
    daily_traffic: float | None

    @property
    def min_share_ratio(self) -> float:
        """n_t / n_c of the treatment with the smallest share (it needs the most units)."""
        return min(self.weights[1:]) / self.weights[0]

    def components(self, delta: float) -> tuple[float, float]:
        """(a_c, a_t): unit-level variance components of the tested effect ``delta``."""
        m = self.metric
        shrink = 1.0 - self.r2
        v_c = m.variance * shrink
        v_t = m.treatment_variance(delta, relative=self.relative) * shrink
        if not self.relative:
            return v_c, v_t
        return (1.0 + delta) ** 2 * v_c / m.mean**2, v_t / m.mean**2

    def power_at(self, delta: float, n_c: float, ratio: float) -> float:
        """Power to detect ``delta`` with ``n_c`` control, ``ratio * n_c`` treatment units."""
        a_c, a_t = self.components(delta)
        n_t = ratio * n_c
        ncp = delta / math.sqrt(a_c / n_c + a_t / n_t)
        two = self.alternative == "two-sided"
        level = self.alpha_per_test / 2 if two else self.alpha_per_test
        if self.distribution == "t":
            df = n_c + n_t - 2.0
            crit = float(sps.t.isf(level, df))
            upper = float(sps.nct.sf(crit, df, ncp))
            lower = float(sps.nct.cdf(-crit, df, ncp))
        else:
            crit = float(sps.norm.isf(level))
            upper, lower = float(sps.norm.sf(crit - ncp)), float(sps.norm.cdf(-crit - ncp))
        if two:
            return upper + lower
        return upper if self.alternative == "greater" else lower

    @classmethod
    def from_options(cls, metric: PlanMetric, options: PlanOptions) -> PlanDesign:
        """Check ``options`` (see :class:`PlanOptions`) and apply their defaults.

        Raises:
            StatsInputError: an option is unknown or out of range (the message names it).
        """
        unknown = sorted(set(options) - set(PlanOptions.__annotations__))
        _check(not unknown, "options", "contain unknown names", unknown, "Check the spelling.")
        alpha = options.get("alpha", 0.05)
        _check(_finite(alpha) and 0 < alpha <= 0.5, "alpha", "must be in (0, 0.5]", alpha, _ALPHA)
        alternative = _choice(options, "alternative", get_args(Alternative), "two-sided")
        correction = _choice(options, "correction", get_args(Correction), "bonferroni")
        distribution = _choice(options, "distribution", get_args(Distribution), "z")
        metrics = options.get("metrics", 1)
        _check(
            isinstance(metrics, int) and metrics >= 1, "metrics", "must be an int >= 1", metrics, ""
        )
        daily = options.get("daily_traffic")
        _check(
            daily is None or (_finite(daily) and daily > 0),
            "daily_traffic",
            "must be a positive number of new units per day",
            daily,
            "Give the units entering the experiment per day, e.g. 20000.",
        )
        relative = bool(options.get("relative", False))
        _check(
            not relative or metric.mean != 0,
            "relative",
            "needs a non-zero baseline mean",
            metric.mean,
            "Plan an absolute effect instead.",
        )
        w = _weights(options)
        m = metrics * (len(w) - 1)
        per_test = {
            "none": alpha,
            "bonferroni": alpha / m,
            "sidak": -math.expm1(math.log1p(-alpha) / m),  # 1 - (1 - alpha)^(1/m), accurately
        }[correction]
        return cls(
            metric=metric,
            relative=relative,
            alpha=float(alpha),
            alpha_per_test=per_test,
            comparisons=m,
            correction=correction,  # type: ignore[arg-type]
            alternative=alternative,  # type: ignore[arg-type]
            distribution=distribution,  # type: ignore[arg-type]
            weights=w,
            r2=_r_squared(metric, options.get("cuped_correlation")),
            daily_traffic=None if daily is None else float(daily),
        )


def _choice(options: PlanOptions, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = options.get(name, default)
    _check(value in allowed, name, f"must be one of {list(allowed)}", value, "")
    return str(value)


def _weights(options: PlanOptions) -> tuple[float, ...]:
    weights = options.get("weights")
    if weights is None:
        variants = options.get("variants", 1)
        _check(
            isinstance(variants, int) and variants >= 1,
            "variants",
            "must be an integer >= 1 (treatments besides control)",
            variants,
            "",
        )
        return (1.0 / (variants + 1),) * (variants + 1)
    w = tuple(float(x) for x in weights)
    _check(
        len(w) >= 2 and all(math.isfinite(x) and x > 0 for x in w),
        "weights",
        "must list at least two positive shares, control first",
        list(w),
        "Use e.g. [50, 50] or [0.5, 0.25, 0.25].",
    )
    return tuple(x / sum(w) for x in w)


def _r_squared(metric: PlanMetric, rho: float | None) -> float:
    if rho is None:
        return metric.r_squared
    _check(
        _finite(rho) and -1 < rho < 1,
        "cuped_correlation",
        "must be in (-1, 1)",
        rho,
        "Give the correlation of the metric with its pre-period value (0 without CUPED).",
    )
    return float(rho) ** 2


__all__ = ["Correction", "Distribution", "PlanDesign", "PlanOptions"]
