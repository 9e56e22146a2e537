"""Power and planning: sample size, minimum detectable effect (MDE), power and duration.

The planned test is the one :func:`proving.stats.effects.compare` runs: a two-sample test
of ``treatment - control`` (absolute) or ``treatment / control - 1`` (relative, delta
method), with the standard error estimated from each arm separately (unpooled). For a
control arm of ``n_c`` units and a treatment arm of ``n_t = r n_c`` units,

    se^2 = a_c / n_c + a_t / n_t,         ncp = delta / se,

where ``a`` are the unit-level variance components of the tested quantity:

* absolute effect: ``a_c = sigma_c^2``, ``a_t = sigma_t^2``;
* relative effect ``L`` (delta method, Casella & Berger 2002, sec. 5.5.4):
  ``a_t = sigma_t^2 / mu_c^2`` and ``a_c = (1 + L)^2 sigma_c^2 / mu_c^2``.

``sigma^2`` is the variance per unit: given for a mean metric (the treatment is assumed to
have the control's variance), ``p (1 - p)`` for a proportion (the treatment's at
``p + delta``), and for a ratio metric ``R = E[y] / E[d]`` the variance of its
linearisation ``(y - R d) / E[d]`` (delta method; Deng, Knoblich & Lu 2018, "Applying
the Delta Method in Metric Analytics", KDD, eq. 3):

    sigma^2 = (Var y - 2 R Cov(y, d) + R^2 Var d) / E[d]^2.

CUPED with a covariate correlated ``rho`` with the metric multiplies every variance by
``1 - rho^2`` (Deng, Xu, Kohavi & Walker 2013, "Improving the Sensitivity of Online
Controlled Experiments by Utilizing Pre-Experiment Data", WSDM, sec. 3.2).

Power (normal reference, two-sided; one-sided keeps the matching tail only):

    power = Phi(ncp - z_{1 - alpha/2}) + Phi(-ncp - z_{1 - alpha/2}),

the formula of statsmodels' ``NormalIndPower``; with ``distribution="t"`` the noncentral
t with ``n_c + n_t - 2`` degrees of freedom replaces the normal (``TTestIndPower``; Cohen
1988, ch. 2). Sample size and MDE invert the power function by Brent's method.

Several comparisons: with ``metrics`` metrics and ``variants`` treatments each compared with
control there are ``m = metrics * variants`` tests in the family. The planned per-test level
is Bonferroni's ``alpha / m`` (valid for Holm too, whose first step is Bonferroni's and whose
later steps are less strict, so the promised power is a lower bound) or Sidak's
``1 - (1 - alpha)^(1/m)`` (exact for independent tests). Plan one family at a time:
guardrails are tested in their own family (see :mod:`proving.stats.multiple`).

Unequal allocation: ``weights`` are the traffic shares, control first. The required total is
driven by the treatment with the smallest share.

Duration: ``days = ceil(n_total / daily_traffic)``, where ``daily_traffic`` is the number of
new units entering the experiment per day (all arms). Returning users are not new units, so
use the daily count of first exposures, not daily active users.

Example:
    >>> metric = PlanMetric.proportion(0.10, name="conversion")
    >>> plan = sample_size(metric, 0.05, relative=True, daily_traffic=5_000)
    >>> plan.n_per_arm, plan.days
    ((60656, 60656), 25)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict, Unpack, get_args

import numpy as np
from scipy import optimize
from scipy import stats as sps

from proving.errors import StatsInputError
from proving.stats.results import Alternative, Kind, ResultBase
from proving.stats.sufficient import ArmStats

Correction = Literal["none", "bonferroni", "sidak"]
Distribution = Literal["z", "t"]
SolveFor = Literal["sample_size", "mde", "power"]


def _check(ok: bool, field: str, rule: str, value: object, fix: str) -> None:
    if not ok:
        raise StatsInputError(f"`{field}` {rule}; got {value!r}. {fix}")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@dataclass(frozen=True)
class PlanMetric(ResultBase):
    """A metric's baseline, as the planner needs it.

    Build it with :meth:`mean_metric`, :meth:`proportion`, :meth:`ratio`, or from
    historical sufficient statistics with :meth:`from_arm`.

    Attributes:
        kind: "mean", "proportion" or "ratio".
        mean: the control's expected value (mean, proportion or ratio).
        variance: the variance per unit (for a ratio, of its delta-method linearisation).
        r_squared: share of the variance the pre-period covariates explain (CUPED), used
            when the planner is given no ``cuped_correlation``.
        name: the metric's name, for reports.
    """

    kind: Kind
    mean: float
    variance: float
    r_squared: float = 0.0
    name: str = "metric"

    @classmethod
    def mean_metric(cls, mean: float, std: float, *, name: str = "metric") -> PlanMetric:
        """A continuous metric with baseline ``mean`` and standard deviation ``std`` per unit."""
        _check(_finite(mean), "mean", "must be a finite number", mean, "Give the baseline mean.")
        _check(
            _finite(std) and std > 0,
            "std",
            "must be a positive number",
            std,
            "Give the standard deviation per unit from historical data.",
        )
        return cls("mean", float(mean), float(std) ** 2, name=name)

    @classmethod
    def proportion(cls, p: float, *, name: str = "metric") -> PlanMetric:
        """A binary metric with baseline rate ``p``."""
        _check(
            _finite(p) and 0 < p < 1,
            "baseline proportion",
            "must be in (0, 1)",
            p,
            "Give the control's conversion rate, e.g. 0.1.",
        )
        return cls("proportion", float(p), float(p) * (1 - float(p)), name=name)

    @classmethod
    def ratio(
        cls,
        numerator_mean: float,
        denominator_mean: float,
        numerator_std: float,
        denominator_std: float,
        correlation: float = 0.0,
        *,
        name: str = "metric",
    ) -> PlanMetric:
        """A ratio metric ``E[y] / E[d]`` from per-unit moments (delta method)."""
        for field_name, value in (
            ("numerator_std", numerator_std),
            ("denominator_std", denominator_std),
        ):
            _check(_finite(value) and value >= 0, field_name, "must be >= 0", value, "Give a std.")
        _check(_finite(numerator_mean), "numerator_mean", "must be finite", numerator_mean, "")
        _check(
            _finite(denominator_mean) and denominator_mean != 0,
            "denominator_mean",
            "must be a finite non-zero number",
            denominator_mean,
            "Give the mean denominator per unit (e.g. sessions per user).",
        )
        _check(
            _finite(correlation) and -1 <= correlation <= 1,
            "correlation",
            "must be in [-1, 1]",
            correlation,
            "Give the correlation of numerator and denominator per unit.",
        )
        cov = correlation * numerator_std * denominator_std
        ratio = numerator_mean / denominator_mean
        variance = (
            numerator_std**2 - 2 * ratio * cov + ratio**2 * denominator_std**2
        ) / denominator_mean**2
        return cls._checked("ratio", ratio, variance, 0.0, name)

    @classmethod
    def _checked(cls, kind: Kind, mean: float, variance: float, r2: float, name: str) -> PlanMetric:
        _check(
            math.isfinite(variance) and variance > 0,
            "variance",
            f"of metric '{name}' must be positive",
            variance,
            "The inputs give no variation to detect an effect against; check them.",
        )
        return cls(kind, float(mean), float(variance), float(min(max(r2, 0.0), 1.0)), name)

    @classmethod
    def from_arm(
        cls, arm: ArmStats, *, kind: Kind | None = None, name: str = "metric"
    ) -> PlanMetric:
        """Baseline from historical sufficient statistics (e.g. last month's control arm).

        ``kind`` defaults to "ratio" for statistics with a denominator, else "mean". The
        covariates in ``arm`` give ``r_squared``: the share of the (linearised) metric's
        variance they explain, i.e. the CUPED reduction to expect.

        Example:
            >>> arm = ArmStats.from_values([1.0, 3.0, 2.0, 6.0], covariates={"pre": [1, 2, 2, 5]})
            >>> m = PlanMetric.from_arm(arm)
            >>> round(m.variance, 4), round(m.r_squared, 4)
            (4.6667, 0.9603)
        """
        n, sums, cross = arm.moments()
        _check(
            math.isfinite(n) and n >= 2,
            "n",
            f"of the historical statistics for '{name}' must be at least 2",
            n,
            "Give statistics of at least two units.",
        )
        means = sums / n
        cov = (cross - n * np.outer(means, means)) / (n - 1)
        _check(bool(np.all(np.isfinite(cov))), "statistics", "must be finite", name, "")
        chosen: Kind = kind or ("ratio" if arm.is_ratio else "mean")
        o = 2 if arm.is_ratio else 1
        g = np.zeros(len(sums))
        if chosen == "ratio":
            _check(arm.is_ratio, "kind", "'ratio' needs denominator statistics", kind, "")
            _check(means[1] != 0, "denominator_sum", "must not be 0", arm.denominator_sum, "")
            mean = means[0] / means[1]
            g[0], g[1] = 1 / means[1], -mean / means[1]  # linearisation (y - R d) / E[d]
        else:
            mean = means[0]
            g[0] = 1.0
        variance = float(g @ cov @ g)
        if chosen == "proportion":
            variance = mean * (1 - mean)
        r2 = 0.0
        if len(sums) > o and variance > 0:
            c = (cov @ g)[o:]
            r2 = float(c @ np.linalg.pinv(cov[o:, o:]) @ c) / float(g @ cov @ g)
        return cls._checked(chosen, float(mean), variance, r2, name)


@dataclass(frozen=True)
class PowerResult(ResultBase):
    """A plan: what was solved for, the answer, and every input that produced it.

    ``effect`` is on the scale of ``effect_type`` (a difference, or a lift such as 0.05 for
    +5%); ``absolute_effect`` and ``relative_effect`` give both. ``n_per_arm`` follows the
    order of ``weights`` (control first), rounded up; ``n_control_exact`` is the unrounded
    control size that exactly meets ``power``. ``alpha_per_test`` is the level after the
    correction for ``comparisons`` tests. A plan with no answer has ``reason`` set.
    """

    solve_for: SolveFor
    metric: str
    kind: Kind
    effect_type: Literal["absolute", "relative"]
    baseline_mean: float
    unit_variance: float
    variance_reduction: float
    alpha: float
    alpha_per_test: float
    comparisons: int
    correction: Correction
    alternative: Alternative
    distribution: Distribution
    weights: tuple[float, ...]
    power: float | None = None
    effect: float | None = None
    absolute_effect: float | None = None
    relative_effect: float | None = None
    n_per_arm: tuple[int, ...] | None = None
    n_total: int | None = None
    n_control_exact: float | None = None
    daily_traffic: float | None = None
    days: int | None = None
    method: str = ""
    reason: str | None = None
    warnings: tuple[str, ...] = ()


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
class _Design:
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
        v_c = v_t = m.variance * shrink
        if m.kind == "proportion":
            p_t = m.mean + (delta * m.mean if self.relative else delta)
            v_t = p_t * (1.0 - p_t) * shrink
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


def _design(metric: PlanMetric, options: PlanOptions) -> _Design:
    unknown = sorted(set(options) - set(PlanOptions.__annotations__))
    _check(not unknown, "options", "contain unknown names", unknown, "Check the spelling.")
    alpha = options.get("alpha", 0.05)
    _check(_finite(alpha) and 0 < alpha <= 0.5, "alpha", "must be in (0, 0.5]", alpha, _ALPHA)
    alternative = _choice(options, "alternative", get_args(Alternative), "two-sided")
    correction = _choice(options, "correction", get_args(Correction), "bonferroni")
    distribution = _choice(options, "distribution", get_args(Distribution), "z")
    metrics = options.get("metrics", 1)
    _check(isinstance(metrics, int) and metrics >= 1, "metrics", "must be an int >= 1", metrics, "")
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
    return _Design(
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


_ALPHA = "Use a value such as 0.05."


def _check_power(power: float, d: _Design) -> None:
    _check(
        _finite(power) and d.alpha_per_test < power < 1,
        "power",
        f"must be in ({d.alpha_per_test:.3g}, 1) (above the per-test alpha, below 1)",
        power,
        "Use a value such as 0.8.",
    )


def _effect_bounds(d: _Design) -> tuple[float, float]:
    """Open interval of planned effects that give a valid treatment arm."""
    m = d.metric
    if m.kind == "proportion":
        lo, hi = -m.mean, 1.0 - m.mean
        return (lo / m.mean, hi / m.mean) if d.relative else (lo, hi)
    return (-1.0, math.inf) if d.relative and m.mean > 0 else (-math.inf, math.inf)


def _check_effect(d: _Design, effect: float) -> None:
    scale = "relative effect (lift)" if d.relative else "absolute effect"
    _check(_finite(effect) and effect != 0, "effect", "must be a non-zero number", effect, "")
    lo, hi = _effect_bounds(d)
    _check(
        lo < effect < hi,
        "effect",
        f"as a {scale} must be in ({lo:.6g}, {hi:.6g}) for a baseline of {d.metric.mean:.6g}",
        effect,
        "A proportion must stay between 0 and 1.",
    )
    if d.alternative != "two-sided":
        sign_ok = effect > 0 if d.alternative == "greater" else effect < 0
        rule = "> 0" if d.alternative == "greater" else "< 0"
        _check(sign_ok, "effect", f"must be {rule} for alternative '{d.alternative}'", effect, "")


def _units(d: _Design, n_total: float | None, days: float | None) -> tuple[float, tuple[int, ...]]:
    """Control units (exact) and units per arm, from ``n_total`` or ``days``."""
    if n_total is None:
        _check(
            days is not None and d.daily_traffic is not None,
            "n_total",
            "is needed (or both `days` and `daily_traffic`)",
            n_total,
            "Give the planned sample size, or the duration and the daily traffic.",
        )
        _check(_finite(days) and days > 0, "days", "must be a positive number", days, "")  # type: ignore[operator]
        n_total = float(days) * float(d.daily_traffic)  # type: ignore[arg-type]
    _check(_finite(n_total) and n_total > 0, "n_total", "must be a positive number", n_total, "")
    return n_total * d.weights[0], tuple(math.floor(n_total * w) for w in d.weights)


def _root(f: Callable[[float], float], lo: float, hi: float) -> float:
    return float(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-14, maxiter=500))


def _method(d: _Design) -> str:
    test = "noncentral t (df = n_c + n_t - 2)" if d.distribution == "t" else "normal"
    scale = "relative effect by the delta method" if d.relative else "absolute effect"
    corr = {"none": "no correction", "bonferroni": "Bonferroni alpha/m", "sidak": "Sidak"}
    return (
        f"two-sample test of the {scale}, unpooled variances, {test} power; "
        f"{corr[d.correction]} over m = {d.comparisons} comparison(s)"
    )


def _warnings(d: _Design, n_per_arm: tuple[int, ...]) -> list[str]:
    out = []
    smallest = min(n_per_arm)
    if d.distribution == "z" and smallest < 30:
        out.append(
            f"an arm has {smallest} units (< 30): the normal approximation is rough; "
            "use distribution='t' for a mean metric."
        )
    m = d.metric
    if m.kind == "proportion" and smallest * min(m.mean, 1 - m.mean) < 10:
        out.append(
            "fewer than 10 expected successes or failures in an arm: the normal "
            "approximation to the proportion is rough."
        )
    return out


def _result(
    d: _Design,
    solve_for: SolveFor,
    *,
    power: float | None,
    effect: float | None,
    n_control: float | None,
    n_per_arm: tuple[int, ...] | None,
    reason: str | None = None,
    warnings: Sequence[str] = (),
) -> PowerResult:
    m = d.metric
    n_total = sum(n_per_arm) if n_per_arm is not None else None
    notes = list(warnings) + (_warnings(d, n_per_arm) if n_per_arm and not reason else [])
    days = None
    if d.daily_traffic is not None and n_total is not None:
        days = math.ceil(n_total / d.daily_traffic * (1 - 1e-12))
    absolute = relative = None
    if effect is not None:
        absolute = effect * m.mean if d.relative else effect
        relative = effect if d.relative else (effect / m.mean if m.mean != 0 else None)
    return PowerResult(
        solve_for=solve_for,
        metric=m.name,
        kind=m.kind,
        effect_type="relative" if d.relative else "absolute",
        baseline_mean=m.mean,
        unit_variance=m.variance,
        variance_reduction=d.r2,
        alpha=d.alpha,
        alpha_per_test=d.alpha_per_test,
        comparisons=d.comparisons,
        correction=d.correction,
        alternative=d.alternative,
        distribution=d.distribution,
        weights=d.weights,
        power=power,
        effect=effect,
        absolute_effect=absolute,
        relative_effect=relative,
        n_per_arm=n_per_arm,
        n_total=n_total,
        n_control_exact=n_control,
        daily_traffic=d.daily_traffic,
        days=days,
        method=_method(d),
        reason=reason,
        warnings=tuple(notes),
    )


def sample_size(
    metric: PlanMetric, effect: float, *, power: float = 0.8, **options: Unpack[PlanOptions]
) -> PowerResult:
    """Units per arm (and days, given ``daily_traffic``) to detect ``effect`` with ``power``.

    Args:
        metric: the baseline (see :class:`PlanMetric`).
        effect: the effect to detect: a difference, or a lift (0.02 = +2%) if ``relative``.
        power: probability of a significant result when ``effect`` is true.
        **options: see :class:`PlanOptions` (relative, alpha, alternative, weights,
            variants, metrics, correction, cuped_correlation, distribution, daily_traffic).

    Returns:
        A :class:`PowerResult` with ``n_per_arm``, ``n_total``, ``n_control_exact`` and
        ``days``; ``reason`` is set if no finite sample size reaches ``power``.

    Raises:
        StatsInputError: a parameter is out of range (the message names it).

    Example:
        >>> plan = sample_size(PlanMetric.mean_metric(10.0, 4.0), 0.5, power=0.9)
        >>> plan.n_per_arm, round(plan.n_control_exact, 2)
        ((1345, 1345), 1344.95)
    """
    d = _design(metric, options)
    _check_power(power, d)
    _check_effect(d, effect)
    r = d.min_share_ratio
    lo = 2.0 / min(1.0, r)  # at least two units in every arm

    def gap(n_c: float) -> float:
        return d.power_at(effect, n_c, r) - power

    if gap(lo) >= 0:
        n_c, notes = lo, ["the effect is so large that two units per arm already reach it."]
    else:
        hi, notes = lo * 2, []
        while gap(hi) < 0:
            if hi > 1e15:
                why = "no sample size up to 1e15 units per arm reaches the power."
                args = {"power": power, "effect": effect, "n_control": None, "n_per_arm": None}
                return _result(d, "sample_size", **args, reason=why)  # type: ignore[arg-type]
            hi *= 2
        n_c = _root(gap, hi / 2, hi)
    per_arm = tuple(math.ceil(n_c * w / d.weights[0] * (1 - 1e-12)) for w in d.weights)
    return _result(
        d,
        "sample_size",
        power=power,
        effect=effect,
        n_control=n_c,
        n_per_arm=per_arm,
        warnings=notes,
    )


def minimum_detectable_effect(
    metric: PlanMetric,
    *,
    n_total: float | None = None,
    days: float | None = None,
    power: float = 0.8,
    **options: Unpack[PlanOptions],
) -> PowerResult:
    """Smallest effect detected with ``power`` given ``n_total`` units (or ``days`` of traffic).

    The MDE is reported in the direction of the alternative (an increase for "two-sided"
    and "greater", a decrease for "less"); for a proportion the two directions differ
    slightly because the treatment's variance depends on its rate. ``options`` are as in
    :func:`sample_size`.

    Returns:
        A :class:`PowerResult` with ``effect`` (on the planned scale), ``absolute_effect``
        and ``relative_effect``; ``reason`` is set when no effect reaches the power (a
        relative effect has a ceiling: the lift's standard error grows with the lift).

    Example:
        >>> mde = minimum_detectable_effect(PlanMetric.proportion(0.1), n_total=20_000,
        ...                                 relative=True)
        >>> round(mde.effect, 4)
        0.1299
    """
    d = _design(metric, options)
    _check_power(power, d)
    n_c, per_arm = _units(d, n_total, days)
    r = d.min_share_ratio
    sign = -1.0 if d.alternative == "less" else 1.0
    bound = _effect_bounds(d)[1 if sign > 0 else 0]

    def gap(size: float) -> float:
        return d.power_at(sign * size, n_c, r) - power

    a_c, a_t = d.components(0.0)
    step = 3.0 * math.sqrt(a_c / n_c + a_t / (r * n_c))
    limit = abs(bound) * (1 - 1e-9) if math.isfinite(bound) else 1e12 * step
    hi = min(step, limit)
    while gap(hi) < 0:
        if hi >= limit:
            why = "no effect size reaches the power with this many units; add units."
            args = {"power": power, "effect": None, "n_control": n_c, "n_per_arm": per_arm}
            return _result(d, "mde", **args, reason=why)  # type: ignore[arg-type]
        hi = min(hi * 2, limit)
    size = _root(gap, 1e-15 * step, hi)
    return _result(d, "mde", power=power, effect=sign * size, n_control=n_c, n_per_arm=per_arm)


def achieved_power(
    metric: PlanMetric,
    effect: float,
    *,
    n_total: float | None = None,
    days: float | None = None,
    **options: Unpack[PlanOptions],
) -> PowerResult:
    """Power to detect ``effect`` with ``n_total`` units (or ``days`` of traffic).

    With unequal treatment shares the power reported is that of the smallest treatment
    arm (the weakest comparison). ``options`` are as in :func:`sample_size`.

    Example:
        >>> achieved = achieved_power(PlanMetric.mean_metric(10.0, 4.0), 0.5, n_total=2_000)
        >>> round(achieved.power, 4)
        0.7982
    """
    d = _design(metric, options)
    _check_effect(d, effect)
    n_c, per_arm = _units(d, n_total, days)
    value = d.power_at(effect, n_c, d.min_share_ratio)
    return _result(d, "power", power=value, effect=effect, n_control=n_c, n_per_arm=per_arm)
