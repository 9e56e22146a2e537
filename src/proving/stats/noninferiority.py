"""Guardrails: non-inferiority tests, "the candidate is no worse than the margin".

A guardrail metric (latency, error rate, revenue) need not improve; it must not get worse
by more than a margin ``m`` the team accepts. The test flips the burden of proof: the null
hypothesis is that the candidate *is* worse by at least ``m``, and only data showing
otherwise passes it (Schuirmann 1987, J. Pharmacokin. Biopharm. 15; FDA 2016 guidance
"Non-Inferiority Clinical Trials to Establish Effectiveness", sec. IV).

With the effect ``delta`` (``treatment - control``, or the lift ``treatment / control - 1``
for a relative margin), its standard error ``se`` and degrees of freedom from
:func:`proving.stats.effects.compare`:

* higher is better: ``H0: delta <= -m`` against ``H1: delta > -m``;
  ``t = (delta + m) / se``, ``p = P(T >= t)``;
* lower is better: ``H0: delta >= m`` against ``H1: delta < m``;
  ``t = (delta - m) / se``, ``p = P(T <= t)``.

Non-inferiority is shown when ``p < alpha``, equivalently when the one-sided ``1 - alpha``
confidence bound (the ``1 - 2 alpha`` two-sided interval's bound) lies on the good side of
the threshold ``-m`` (or ``+m``). With ``relative_method="log"`` the test runs on the log
ratio against ``log(1 - m)`` (or ``log(1 + m)``). Without CUPED the absolute test equals
Welch's t test of ``y_t + m`` against ``y_c`` (``scipy.stats.ttest_ind(equal_var=False,
alternative="greater")``).

Example:
    >>> import numpy as np
    >>> from proving.stats.sufficient import ArmStats
    >>> rng = np.random.default_rng(1)
    >>> c = ArmStats.from_values(rng.normal(100, 20, 5000))
    >>> t = ArmStats.from_values(rng.normal(100, 20, 5000))
    >>> r = noninferiority_check(c, t, margin=0.02, metric="revenue")
    >>> r.conclusion, r.threshold
    ('non-inferior', -0.02)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np

from proving.errors import StatsInputError
from proving.stats.cuped import cuped_adjust
from proving.stats.effects import compare, interval_and_p_value, validate_options
from proving.stats.ratio import linearize
from proving.stats.results import (
    Alternative,
    ComparisonResult,
    Effect,
    Kind,
    Method,
    RelativeMethod,
    ResultBase,
    finite_or_none,
)
from proving.stats.sufficient import ArmStats, stack

Direction = Literal["higher_is_better", "lower_is_better"]
Conclusion = Literal["non-inferior", "not shown"]


@dataclass(frozen=True)
class NonInferiorityResult(ResultBase):
    """Outcome of a non-inferiority test of one variant against control on one metric.

    ``threshold`` is the boundary on the effect scale (``-margin`` when higher is better,
    ``+margin`` when lower is better); ``bound`` is the one-sided ``1 - alpha`` confidence
    bound that is compared with it (a lower bound when higher is better, an upper bound
    otherwise). ``statistic`` is ``(centre - threshold) / se`` and ``p_value`` the one-sided
    p-value of the non-inferiority null. ``conclusion`` is "non-inferior" when
    ``p_value < alpha``, "not shown" otherwise, and None with a ``reason`` when the data
    cannot answer (an empty arm, zero variance, NaN).
    """

    metric: str
    variant: str
    control: str
    kind: Kind
    direction: Direction
    margin: float
    margin_type: Effect
    threshold: float
    alpha: float
    method: Method
    relative_method: RelativeMethod
    estimate: float | None = None
    std_err: float | None = None
    df: float | None = None
    statistic: float | None = None
    p_value: float | None = None
    bound: float | None = None
    conclusion: Conclusion | None = None
    control_mean: float | None = None
    treatment_mean: float | None = None
    n_control: float | None = None
    n_treatment: float | None = None
    cuped: bool = False
    variance_reduction: float | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def non_inferior(self) -> bool | None:
        """True when non-inferiority is shown; None without an answer."""
        return None if self.conclusion is None else self.conclusion == "non-inferior"


def _validate(margin: float, margin_type: str, direction: str) -> None:
    if direction not in get_args(Direction):
        raise StatsInputError(
            f"`direction` must be 'higher_is_better' or 'lower_is_better'; got {direction!r}."
        )
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin > 0):
        raise StatsInputError(
            f"`margin` must be a positive number (how much worse is acceptable); got "
            f"{margin!r}. Use e.g. 0.01 for a relative margin of 1%."
        )
    if margin_type == "relative" and direction == "higher_is_better" and margin >= 1:
        raise StatsInputError(
            f"a relative `margin` must be below 1 (a 100% drop) when higher is better; got "
            f"{margin!r}. Use e.g. 0.05 for 5%."
        )


def _test(
    estimate: float,
    std_err: float,
    df: float,
    *,
    threshold: float,
    direction: Direction,
    log: bool,
    alpha: float,
) -> tuple[float, float, float]:
    """(statistic, p_value, bound) of the shifted one-sided test."""
    if log:  # the log-ratio scale: centre log(1 + r), se_log = std_err / (1 + r)
        centre, se, shift = math.log1p(estimate), std_err / (1 + estimate), math.log1p(threshold)
    else:
        centre, se, shift = estimate, std_err, threshold
    alternative: Alternative = "greater" if direction == "higher_is_better" else "less"
    p, lo, hi = interval_and_p_value(
        np.array([centre - shift]), np.array([se]), np.array([df]), alternative=alternative,
        alpha=alpha,
    )  # fmt: skip
    bound = (lo if alternative == "greater" else hi)[0] + shift
    return (centre - shift) / se, float(p[0]), float(math.expm1(bound) if log else bound)


def noninferiority_from_comparison(
    result: ComparisonResult,
    *,
    margin: float,
    direction: Direction = "higher_is_better",
) -> NonInferiorityResult:
    """Non-inferiority of an analysed comparison (its effect type is the margin's type).

    The comparison's estimate, standard error and degrees of freedom (CUPED-adjusted when
    the analysis used CUPED) are reused; the margin is on the comparison's effect scale.

    Example:
        >>> r = ComparisonResult(metric="latency_ms", variant="b", effect="absolute",
        ...                      estimate=1.2, std_err=0.8, df=None, method="z")
        >>> ni = noninferiority_from_comparison(r, margin=3.0, direction="lower_is_better")
        >>> ni.conclusion, round(ni.bound, 4), ni.threshold
        ('non-inferior', 2.5159, 3.0)
    """
    _validate(margin, result.effect, direction)
    threshold = -float(margin) if direction == "higher_is_better" else float(margin)
    base = NonInferiorityResult(
        metric=result.metric,
        variant=result.variant,
        control=result.control,
        kind=result.kind,
        direction=direction,
        margin=float(margin),
        margin_type=result.effect,
        threshold=threshold,
        alpha=result.alpha,
        method=result.method,
        relative_method=result.relative_method,
        control_mean=result.control_mean,
        treatment_mean=result.treatment_mean,
        n_control=result.n_control,
        n_treatment=result.n_treatment,
        cuped=result.cuped,
        variance_reduction=result.variance_reduction,
        warnings=result.warnings,
    )
    if result.estimate is None or result.std_err is None or result.reason is not None:
        return replace(base, reason=result.reason or "the comparison has no estimate")
    df = math.inf if result.df is None else result.df
    stat, p, bound = _test(
        result.estimate,
        result.std_err,
        df,
        threshold=threshold,
        direction=direction,
        log=result.effect == "relative" and result.relative_method == "log",
        alpha=result.alpha,
    )
    return replace(
        base,
        estimate=result.estimate,
        std_err=result.std_err,
        df=result.df,
        statistic=stat,
        p_value=p,
        bound=bound,
        conclusion="non-inferior" if p < result.alpha else "not shown",
    )


def noninferiority_check(
    control: ArmStats,
    treatment: ArmStats,
    *,
    margin: float,
    margin_type: Effect = "relative",
    direction: Direction = "higher_is_better",
    kind: Kind | None = None,
    alpha: float = 0.05,
    method: Method = "welch",
    relative_method: RelativeMethod = "delta",
    cuped: bool = True,
    metric: str = "metric",
    variant: str = "treatment",
    control_name: str = "control",
) -> NonInferiorityResult:
    """Test that ``treatment`` is no worse than ``control`` by more than ``margin``.

    Args:
        control: the control arm's sufficient statistics.
        treatment: the treatment arm's, over the same variables.
        margin: the acceptable loss, positive (0.02 = 2% for a relative margin).
        margin_type: "relative" (a share of the control's value) or "absolute".
        direction: "higher_is_better" (revenue, conversion) or "lower_is_better"
            (latency, errors).
        kind: "mean", "proportion" or "ratio" (default: "ratio" with a denominator,
            else "mean"); a proportion uses the Bernoulli variance ``p (1 - p)``.
        alpha: one-sided level of the test.
        method: "welch" or "z".
        relative_method: "delta" or "log" for a relative margin.
        cuped: adjust with the arms' covariates (pooled CUPED) when there are any.
        metric: metric name for the result.
        variant: the treatment's name for the result.
        control_name: the control's name for the result.

    Returns:
        A :class:`NonInferiorityResult`; degenerate data gives ``conclusion=None`` and a
        ``reason``.

    Raises:
        StatsInputError: a bad parameter, or arms over different variables.
    """
    validate_options(
        alpha=alpha, effect=margin_type, relative_method=relative_method, method=method
    )
    _validate(margin, margin_type, direction)
    chosen: Kind = kind or ("ratio" if control.is_ratio else "mean")
    if (chosen == "ratio") != control.is_ratio:
        raise StatsInputError(
            f"`kind` is {chosen!r} but the statistics {'have' if control.is_ratio else 'lack'} "
            "a denominator; use kind='ratio' exactly for ratio statistics."
        )
    n, sums, cross = stack([control, treatment])
    lin = linearize(n, sums, cross, ratio=control.is_ratio, ddof=0 if chosen == "proportion" else 1)
    est, var = lin.estimate, lin.variance
    adjusted, notes = False, ()
    if cuped and control.covariate_names:
        cup = cuped_adjust(lin, np.array([0, 0]), names=control.covariate_names)
        if bool(cup.adjusted[0]) and np.all(np.isfinite(cup.variance)):
            adjusted, notes = True, tuple(cup.warnings[0])
            est, var = cup.estimate, cup.variance
    # Entry 0 is the test (CUPED-adjusted if used), entry 1 the raw comparison.
    out = compare(
        [est[0], lin.estimate[0]], [var[0], lin.variance[0]], n[0],
        [est[1], lin.estimate[1]], [var[1], lin.variance[1]], n[1],
        effect=margin_type, relative_method=relative_method, method=method, alpha=alpha,
    )  # fmt: skip
    reduction = None
    if adjusted and out.reason[0] is None and out.reason[1] is None:
        reduction = 1.0 - float(out.std_err[0] ** 2 / out.std_err[1] ** 2)
    reason = out.reason[0]
    comparison = ComparisonResult(
        metric=metric,
        variant=variant,
        control=control_name,
        kind=chosen,
        effect=margin_type,
        relative_method=relative_method,
        method=method,
        alpha=alpha,
        estimate=None if reason else float(out.estimate[0]),
        std_err=None if reason else float(out.std_err[0]),
        df=None if reason or math.isinf(out.df[0]) else float(out.df[0]),
        control_mean=finite_or_none(est[0]),
        treatment_mean=finite_or_none(est[1]),
        n_control=float(n[0]),
        n_treatment=float(n[1]),
        cuped=adjusted,
        variance_reduction=reduction,
        reason=reason,
        warnings=notes,
    )
    return noninferiority_from_comparison(comparison, margin=margin, direction=direction)


def check_guardrails(
    comparisons: Sequence[ComparisonResult],
    margins: Mapping[str, float],
    *,
    directions: Mapping[str, Direction] | None = None,
) -> list[NonInferiorityResult]:
    """Non-inferiority of every comparison whose metric has a margin (e.g. the guardrails
    of ``analyze(...).comparisons``), in input order.

    No multiplicity correction is applied, on purpose: "ship only if every guardrail is
    shown non-inferior" is an intersection-union test, which is valid at level alpha
    when each guardrail is tested at alpha (Berger 1982, "Multiparameter hypothesis
    testing and acceptance sampling", Technometrics 24). Use :func:`all_non_inferior` for
    that decision.

    Args:
        comparisons: analysed comparisons; those without a margin are skipped.
        margins: metric -> acceptable loss, on each comparison's effect scale.
        directions: metric -> "higher_is_better" (default) or "lower_is_better".

    Example:
        >>> c = ComparisonResult(metric="errors", variant="b", effect="absolute",
        ...                      estimate=0.001, std_err=0.002, method="z")
        >>> [r.conclusion for r in check_guardrails([c], {"errors": 0.01},
        ...                                          directions={"errors": "lower_is_better"})]
        ['non-inferior']
    """
    directions = directions or {}
    return [
        noninferiority_from_comparison(
            c, margin=margins[c.metric], direction=directions.get(c.metric, "higher_is_better")
        )
        for c in comparisons
        if c.metric in margins
    ]


def all_non_inferior(results: Sequence[NonInferiorityResult]) -> bool | None:
    """True when every guardrail is shown non-inferior, False when one is not shown, None
    when none failed but one has no answer yet (degenerate data: "need more data")."""
    if any(r.conclusion == "not shown" for r in results):
        return False
    if any(r.conclusion is None for r in results):
        return None
    return True
