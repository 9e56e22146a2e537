"""The planner's model of one metric: its baseline mean and its variance per unit.

:class:`PlanMetric` holds what :mod:`proving.stats.power` needs to know about a metric
before a test: the control's expected value ``mu`` and the variance per unit ``sigma^2``
of the quantity the test compares, plus the share ``r_squared`` of that variance that
pre-period covariates explain (the CUPED reduction to expect).

``sigma^2`` is the variance per unit:

* a mean metric: given (the treatment is assumed to keep the control's variance);
* a proportion: ``p (1 - p)``, the treatment's at its own rate ``p + delta``;
* a ratio metric ``R = E[y] / E[d]``: the variance of its linearisation
  ``(y - R d) / E[d]`` (delta method; Deng, Knoblich & Lu 2018, "Applying the Delta
  Method in Metric Analytics", KDD, eq. 3):

      sigma^2 = (Var y - 2 R Cov(y, d) + R^2 Var d) / E[d]^2.

From historical sufficient statistics (:meth:`PlanMetric.from_arm`), the covariance matrix
``S`` of (metric, [denominator,] covariates) gives ``sigma^2 = g' S g`` for the gradient
``g`` of the (linearised) metric, and ``r_squared = c' S_xx^+ c / g' S g`` with
``c = (S g)_x``: the population R^2 of the metric on its covariates, which is the share of
variance CUPED removes (Deng, Xu, Kohavi & Walker 2013, "Improving the Sensitivity of
Online Controlled Experiments by Utilizing Pre-Experiment Data", WSDM, sec. 3.2).

Example:
    >>> ctr = PlanMetric.ratio(2.0, 4.0, 1.5, 2.0, correlation=0.5, name="ctr")
    >>> ctr.kind, ctr.mean, ctr.variance
    ('ratio', 0.5, 0.109375)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from proving.errors import StatsInputError
from proving.stats.results import Kind, ResultBase
from proving.stats.sufficient import ArmStats


def _check(ok: bool, field: str, rule: str, value: object, fix: str) -> None:
    """Raise :class:`StatsInputError` naming the field, the rule, the value and the fix."""
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

    def treatment_variance(self, delta: float, *, relative: bool) -> float:
        """Variance per unit in a treatment arm whose effect is ``delta``.

        A proportion's variance follows its rate, ``p_t (1 - p_t)`` at
        ``p_t = p + delta`` (or ``p (1 + delta)`` for a lift); other metrics keep the
        control's variance.
        """
        if self.kind != "proportion":
            return self.variance
        p_t = self.mean + (delta * self.mean if relative else delta)
        return p_t * (1.0 - p_t)

    def effect_bounds(self, *, relative: bool) -> tuple[float, float]:
        """Open interval of planned effects that give a valid treatment arm.

        A proportion must stay in (0, 1); a lift of a positive mean must stay above -100%.
        """
        if self.kind == "proportion":
            lo, hi = -self.mean, 1.0 - self.mean
            return (lo / self.mean, hi / self.mean) if relative else (lo, hi)
        return (-1.0, math.inf) if relative and self.mean > 0 else (-math.inf, math.inf)


__all__ = ["PlanMetric"]
