"""Power and planning: sample size, minimum detectable effect (MDE), power and duration.

A plan has three parts: the metric's baseline and variance per unit
(:class:`~proving.stats.plan_metric.PlanMetric`); the design of the test, that is the level
and its correction for several comparisons, the allocation, CUPED and the normal or t
reference (:class:`~proving.stats.plan_design.PlanDesign`, home of the power function and
its formulas); and the unknown, solved for here. :func:`sample_size` and
:func:`minimum_detectable_effect` invert the power function by Brent's method;
:func:`achieved_power` evaluates it.

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
from typing import Literal, Unpack

from scipy import optimize

from proving.stats.plan_design import Correction, Distribution, PlanDesign, PlanOptions
from proving.stats.plan_metric import PlanMetric, _check, _finite
from proving.stats.results import Alternative, Kind, ResultBase

SolveFor = Literal["sample_size", "mde", "power"]


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


def _check_power(power: float, d: PlanDesign) -> None:
    _check(
        _finite(power) and d.alpha_per_test < power < 1,
        "power",
        f"must be in ({d.alpha_per_test:.3g}, 1) (above the per-test alpha, below 1)",
        power,
        "Use a value such as 0.8.",
    )


def _check_effect(d: PlanDesign, effect: float) -> None:
    scale = "relative effect (lift)" if d.relative else "absolute effect"
    _check(_finite(effect) and effect != 0, "effect", "must be a non-zero number", effect, "")
    lo, hi = d.metric.effect_bounds(relative=d.relative)
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


def _units(
    d: PlanDesign, n_total: float | None, days: float | None
) -> tuple[float, tuple[int, ...]]:
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


def _method(d: PlanDesign) -> str:
    test = "noncentral t (df = n_c + n_t - 2)" if d.distribution == "t" else "normal"
    scale = "relative effect by the delta method" if d.relative else "absolute effect"
    corr = {"none": "no correction", "bonferroni": "Bonferroni alpha/m", "sidak": "Sidak"}
    return (
        f"two-sample test of the {scale}, unpooled variances, {test} power; "
        f"{corr[d.correction]} over m = {d.comparisons} comparison(s)"
    )


def _warnings(d: PlanDesign, n_per_arm: tuple[int, ...]) -> list[str]:
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
    d: PlanDesign,
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
    d = PlanDesign.from_options(metric, options)
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
    d = PlanDesign.from_options(metric, options)
    _check_power(power, d)
    n_c, per_arm = _units(d, n_total, days)
    r = d.min_share_ratio
    sign = -1.0 if d.alternative == "less" else 1.0
    bound = d.metric.effect_bounds(relative=d.relative)[1 if sign > 0 else 0]

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
    d = PlanDesign.from_options(metric, options)
    _check_effect(d, effect)
    n_c, per_arm = _units(d, n_total, days)
    value = d.power_at(effect, n_c, d.min_share_ratio)
    return _result(d, "power", power=value, effect=effect, n_control=n_c, n_per_arm=per_arm)


__all__ = [
    "Correction",
    "Distribution",
    "PlanMetric",  # re-exported: it lived here before proving.stats.plan_metric
    "PlanOptions",  # re-exported from proving.stats.plan_design, like Correction, Distribution
    "PowerResult",
    "SolveFor",
    "achieved_power",
    "minimum_detectable_effect",
    "sample_size",
]
