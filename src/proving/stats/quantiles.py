"""Quantile metrics (p50, p90, p99 of latency or any value) and their difference between arms.

The standard error of a sample quantile comes from the order statistics around it, with no
density estimate and no bootstrap (the approach GrowthBook documents for its quantile
tests; Price & Bonett 2001, "Estimating the variance of a sample median", J. Stat. Comput.
Simul.; Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics", KDD,
percentile metrics). For ``n`` observations and quantile level ``nu``, the
distribution-free interval for the population quantile is ``[X_(l), X_(u)]`` with
(1-based) ranks

    l = floor(n nu - z sqrt(n nu (1 - nu))),   u = ceil(n nu + z sqrt(n nu (1 - nu)))

and ``z = Phi^-1(1 - rank_alpha / 2)`` (the normal approximation to the binomial count of
observations below the quantile; Conover 1999, *Practical Nonparametric Statistics*,
ch. 3). Since ``X_(l)`` and ``X_(u)`` estimate ``Q(nu -+ z sqrt(nu (1 - nu) / n))``,
their distance over the rank gap estimates the quantile density's reciprocal,
``(X_(u) - X_(l)) / ((u - l) / n) ~ 1 / f(Q(nu))``, and so the asymptotic standard error of
the sample quantile ``sqrt(nu (1 - nu) / n) / f(Q(nu))`` (Bahadur 1966):

    se_iid = (X_(u) - X_(l)) sqrt(n nu (1 - nu)) / (u - l).

This equals GrowthBook's ``(X_(u) - X_(l)) / (2 z)`` when ``u - l = 2 z sqrt(n nu (1 -
nu))``; dividing by the actual rank gap removes the bias of rounding the ranks, which
matters for small ``n`` or extreme ``nu``.

**Clustered events.** When events (page loads) nest in randomization units (users), the
indicator ``1{value <= q}`` is correlated within a user and ``se_iid`` is too small. The
share below the quantile is then a ratio metric over users, ``F(q) = sum_j a_j / sum_j b_j``
with ``a_j`` the user's events at or below the sample quantile and ``b_j`` all the user's
events, whose delta-method variance ``Var_c`` (:func:`proving.stats.ratio.ratio_moments`)
replaces the binomial ``nu (1 - nu) / n``:

    se_clustered^2 = se_iid^2 * Var_c / (nu (1 - nu) / n).

**Sufficient statistics.** Unlike sums, quantiles do not merge by addition. One arm is
summarised by :class:`QuantileStats`: ``nu``, ``n``, the sample quantile and the two order
statistics ``lower = X_(l)`` and ``upper = X_(u)`` (a warehouse evaluates its quantile
function at :func:`quantile_levels`; :meth:`QuantileStats.from_flat` reads a metrics-layer
row), plus, for the clustered variant, the per-user ratio statistics ``(a_j, b_j)`` as an
:class:`~proving.stats.sufficient.ArmStats`. :meth:`QuantileStats.from_values` takes the
sample quantile as the order statistic ``X_(ceil(n nu))`` (numpy's ``inverted_cdf``).

The effect (absolute ``q_t - q_c`` or relative ``q_t / q_c - 1``) goes through
:func:`proving.stats.effects.compare` with a normal reference distribution.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> control = QuantileStats.from_values(rng.lognormal(4, 0.5, 20_000), 0.9)
    >>> treatment = QuantileStats.from_values(rng.lognormal(4, 0.5, 20_000) * 0.95, 0.9)
    >>> r = compare_quantiles(control, treatment, effect="relative")
    >>> round(r.estimate, 3), r.ci_lower < -0.05 < r.ci_upper < 0
    (-0.044, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from proving._types import FloatArray
from proving.errors import StatsInputError
from proving.stats.effects import compare
from proving.stats.ratio import ratio_moments
from proving.stats.results import Alternative, Effect, RelativeMethod, ResultBase, finite_or_none
from proving.stats.sufficient import ArmStats

Variant = Literal["iid", "clustered"]
QuantileMethod = Literal["linear", "inverted_cdf"]

METHOD = "sample quantiles, order-statistic standard errors (Price & Bonett 2001), z test"


def _z(rank_alpha: float) -> float:
    return float(special.ndtri(1.0 - rank_alpha / 2.0))


def rank_bounds(n: int, nu: float, *, rank_alpha: float = 0.05) -> tuple[int, int]:
    """1-based ranks ``(l, u)`` of the order statistics that bracket the ``nu`` quantile.

    They may fall outside ``1..n`` when ``n`` is too small for the level: the quantile's
    standard error then cannot be estimated.

    Example:
        >>> rank_bounds(10_000, 0.99)
        (9880, 9920)
    """
    half = _z(rank_alpha) * math.sqrt(n * nu * (1.0 - nu))
    return math.floor(n * nu - half), math.ceil(n * nu + half)


def quantile_levels(
    n: int, nu: float, *, rank_alpha: float = 0.05, method: QuantileMethod = "linear"
) -> tuple[float, float]:
    """Probabilities at which a quantile function returns exactly ``X_(l)`` and ``X_(u)``.

    For a warehouse: evaluate ``quantile_cont`` (``method="linear"``, numpy's default and
    SQL's ``percentile_cont``) or ``quantile_disc`` (``"inverted_cdf"``) at these levels to
    get :attr:`QuantileStats.lower` and :attr:`QuantileStats.upper`.

    Example:
        >>> quantile_levels(10_001, 0.5)
        (0.4901, 0.5098)
    """
    if n < 2:
        raise StatsInputError(f"quantile_levels: `n` must be at least 2; got {n!r}.")
    lo_rank, hi_rank = rank_bounds(n, nu, rank_alpha=rank_alpha)
    if method == "linear":  # position (n - 1) p + 1 is the rank itself
        return (lo_rank - 1) / (n - 1), (hi_rank - 1) / (n - 1)
    return lo_rank / n, hi_rank / n  # smallest x with F_n(x) >= p has rank ceil(n p)


def _check_level(name: str, value: float, what: str) -> None:
    if not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
        raise StatsInputError(
            f"quantile statistics: `{name}` must be in (0, 1) ({what}); got {value!r}."
        )


@dataclass(frozen=True)
class QuantileStats:
    """One arm's summary for a quantile metric.

    Args:
        nu: the quantile level (0.99 for p99).
        n: number of observations (events).
        quantile: the sample quantile ``X_(ceil(n nu))``.
        lower: the order statistic ``X_(l)`` (see :func:`rank_bounds`).
        upper: the order statistic ``X_(u)``.
        rank_alpha: the level the ranks ``l``, ``u`` were computed at (default 0.05).
        clusters: for events nested in units, per unit ``a`` = events at or below
            ``quantile`` (the numerator) and ``b`` = all events (the denominator), as a
            ratio :class:`~proving.stats.sufficient.ArmStats` over units.
    """

    nu: float
    n: float
    quantile: float
    lower: float
    upper: float
    rank_alpha: float = 0.05
    clusters: ArmStats | None = None

    def __post_init__(self) -> None:
        _check_level("nu", self.nu, "the quantile level, e.g. 0.99 for p99")
        _check_level("rank_alpha", self.rank_alpha, "the level of the bracketing ranks")
        if self.clusters is not None and not (
            isinstance(self.clusters, ArmStats) and self.clusters.is_ratio
        ):
            raise StatsInputError(
                "quantile statistics: `clusters` must be a ratio ArmStats over units (numerator: "
                "events at or below the quantile; denominator: all events); got "
                f"{self.clusters!r}."
            )

    @classmethod
    def from_values(
        cls,
        values: Sequence[float] | FloatArray,
        nu: float,
        *,
        clusters: Sequence[object] | npt.NDArray[np.generic] | None = None,
        rank_alpha: float = 0.05,
    ) -> QuantileStats:
        """Summarise raw values (for tests, simulations and small data).

        Args:
            values: one value per event.
            nu: the quantile level.
            clusters: optional unit id per event (a user id), for the clustered variant.
            rank_alpha: the level of the bracketing ranks.

        Example:
            >>> s = QuantileStats.from_values(range(1, 101), 0.5)
            >>> s.quantile, s.lower, s.upper
            (50.0, 40.0, 60.0)
        """
        _check_level("nu", nu, "the quantile level, e.g. 0.99 for p99")
        _check_level("rank_alpha", rank_alpha, "the level of the bracketing ranks")
        x = np.asarray(values, dtype=float)
        if x.ndim != 1:
            raise StatsInputError(f"quantile statistics: values must be 1-d; got shape {x.shape}.")
        if not np.isfinite(x).all():
            raise StatsInputError(
                f"quantile statistics: {int((~np.isfinite(x)).sum())} value(s) are NaN or "
                "infinite; drop or impute them before summarising."
            )
        n = x.size
        if n == 0:
            return cls(nu, 0, math.nan, math.nan, math.nan, rank_alpha)
        lo_rank, hi_rank = rank_bounds(n, nu, rank_alpha=rank_alpha)
        ranks = np.array([math.ceil(n * nu), lo_rank, hi_rank]) - 1
        inside = (ranks >= 0) & (ranks < n)
        picked = np.full(3, math.nan)
        picked[inside] = np.partition(x, ranks[inside])[ranks[inside]]
        q, lo, hi = (float(v) for v in picked)
        cluster_stats = None
        if clusters is not None:
            ids = np.asarray(clusters)
            if ids.shape != x.shape:
                raise StatsInputError(
                    f"quantile statistics: `clusters` needs one unit id per value; got "
                    f"{ids.shape[0] if ids.ndim else 0} ids for {n} values."
                )
            _, unit = np.unique(ids, return_inverse=True)
            below = np.bincount(unit, weights=(x <= q).astype(np.float64)).astype(np.float64)
            events = np.bincount(unit).astype(np.float64)
            cluster_stats = ArmStats.from_values(below, denominators=events)
        return cls(nu, n, q, lo, hi, rank_alpha, cluster_stats)

    @classmethod
    def from_flat(
        cls,
        row: Mapping[str, Any],
        *,
        lower: float,
        upper: float,
        rank_alpha: float = 0.05,
        where: str = "row",
    ) -> QuantileStats:
        """Build from a metrics-layer quantile row plus the two bracketing values.

        The row (:mod:`proving.metrics.quantiles`) holds ``quantile`` (the level),
        ``estimate``, ``n_events`` and, per unit, the ratio columns of events at or below
        the estimate (``sum``, ``sum_squares``, ``denominator_sum``,
        ``denominator_sum_squares``, ``sum_products``, ``n`` units). ``level: unit`` rows
        are i.i.d. (one value per unit); ``event`` rows get the clustered variance.
        ``lower``/``upper`` come from evaluating the quantile at :func:`quantile_levels`.
        """

        def number(key: str) -> float:
            try:
                return float(row[key])
            except (KeyError, TypeError, ValueError):
                raise StatsInputError(
                    f"{where}: field `{key}` must be a number; got {row.get(key)!r} "
                    "(see docs/stats/quantiles.md)."
                ) from None

        clusters = None
        if str(row.get("level", "event")) == "event":
            clusters = ArmStats(
                n=number("n"),
                sum=number("sum"),
                sum_squares=number("sum_squares"),
                denominator_sum=number("denominator_sum"),
                denominator_sum_squares=number("denominator_sum_squares"),
                sum_products=number("sum_products"),
            )
        n = number("n_events") if "n_events" in row else number("n")
        return cls(number("quantile"), n, number("estimate"), lower, upper, rank_alpha, clusters)

    def std_err(self) -> tuple[float | None, str | None]:
        """Standard error of the sample quantile and, when there is none, the reason."""
        n = self.n
        if not math.isfinite(n) or n < 2:
            return None, f"{n:g} observation(s); a quantile's error needs at least 2"
        lo_rank, hi_rank = rank_bounds(int(n), self.nu, rank_alpha=self.rank_alpha)
        if lo_rank < 1 or hi_rank > n:
            need = math.ceil(
                _z(self.rank_alpha) ** 2 * max(self.nu, 1 - self.nu) / min(self.nu, 1 - self.nu)
            )
            return None, (
                f"{n:g} observations are too few to bracket the {self.nu:g} quantile "
                f"(ranks {lo_rank}..{hi_rank} fall outside 1..{n:g}); collect more than "
                f"about {need}"
            )
        if not all(math.isfinite(v) for v in (self.quantile, self.lower, self.upper)):
            return None, "the quantile statistics contain NaN or infinite values"
        if self.upper < self.lower:
            raise StatsInputError(
                f"quantile statistics: `upper` ({self.upper!r}) is below `lower` "
                f"({self.lower!r}); they are the order statistics X_(l) <= X_(u)."
            )
        se = (
            (self.upper - self.lower)
            * math.sqrt(n * self.nu * (1.0 - self.nu))
            / (hi_rank - lo_rank)
        )
        if self.clusters is None:
            return se, None
        c = self.clusters
        _, var_arr = ratio_moments(
            c.n,
            c.sum,
            c.sum_squares,
            c.denominator_sum or 0.0,
            c.denominator_sum_squares or 0.0,
            c.sum_products or 0.0,
        )
        var_c = float(var_arr)
        if not (c.n >= 2 and math.isfinite(var_c)):
            return None, f"{c.n:g} unit(s); the clustered variance needs at least 2"
        return se * math.sqrt(var_c / (self.nu * (1.0 - self.nu) / n)), None


@dataclass(frozen=True)
class QuantileResult(ResultBase):
    """Difference (or ratio) of a quantile between treatment and control.

    ``estimate`` is ``q_t - q_c`` (``effect="absolute"``) or ``q_t / q_c - 1``
    (``"relative"``); ``control_std_err``/``treatment_std_err`` the arms' quantile
    standard errors; ``variant`` says whether they are clustered.
    """

    metric: str
    nu: float
    effect: Effect
    variant: Variant
    alternative: Alternative
    alpha: float
    n_control: float
    n_treatment: float
    control_quantile: float | None = None
    treatment_quantile: float | None = None
    control_std_err: float | None = None
    treatment_std_err: float | None = None
    estimate: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    p_value: float | None = None
    std_err: float | None = None
    statistic: float | None = None
    method: str = METHOD
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


def compare_quantiles(
    control: QuantileStats,
    treatment: QuantileStats,
    *,
    metric: str = "metric",
    effect: Effect = "absolute",
    relative_method: RelativeMethod = "delta",
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
) -> QuantileResult:
    """Compare one quantile between two arms.

    Args:
        control: the control arm's quantile statistics.
        treatment: the treatment arm's, at the same level ``nu``.
        metric: the metric's name (carried into the result).
        effect: "absolute" (``q_t - q_c``) or "relative" (``q_t / q_c - 1``).
        relative_method: "delta" or "log" interval for the relative effect.
        alternative: "two-sided", "greater" or "less".
        alpha: 1 - confidence level.

    Example:
        >>> c = QuantileStats(nu=0.99, n=50_000, quantile=812.0, lower=790.0, upper=838.0)
        >>> t = QuantileStats(nu=0.99, n=50_000, quantile=760.0, lower=741.0, upper=781.0)
        >>> r = compare_quantiles(c, t, metric="latency_ms")
        >>> r.estimate, round(r.std_err, 2), round(r.p_value, 4)
        (-52.0, 15.8, 0.001)
    """
    if control.nu != treatment.nu:
        raise StatsInputError(
            f"compare_quantiles: the arms summarise different quantiles (control nu="
            f"{control.nu}, treatment nu={treatment.nu}); compare the same level."
        )
    if (control.clusters is None) != (treatment.clusters is None):
        raise StatsInputError(
            "compare_quantiles: one arm has cluster statistics and the other not; give "
            "`clusters` for both arms or for neither."
        )
    variant: Variant = "iid" if control.clusters is None else "clustered"
    make = partial(
        QuantileResult,
        metric=metric,
        nu=control.nu,
        effect=effect,
        variant=variant,
        alternative=alternative,
        alpha=alpha,
        n_control=control.n,
        n_treatment=treatment.n,
    )
    se_c, why_c = control.std_err()
    se_t, why_t = treatment.std_err()
    if se_c is None or se_t is None:
        return make(reason=f"{'control' if se_c is None else 'treatment'}: {why_c or why_t}")
    out = compare(
        control.quantile,
        se_c**2,
        control.n,
        treatment.quantile,
        se_t**2,
        treatment.n,
        effect=effect,
        relative_method=relative_method,
        method="z",
        alternative=alternative,
        alpha=alpha,
    )
    make = partial(
        make,
        control_quantile=control.quantile,
        treatment_quantile=treatment.quantile,
        control_std_err=se_c,
        treatment_std_err=se_t,
    )
    if out.reason[0] is not None:
        return make(reason=str(out.reason[0]))
    warnings = []
    if se_c == 0 or se_t == 0:
        arm = "control" if se_c == 0 else "treatment"
        warnings.append(
            f"the {arm} arm's bracketing order statistics are equal (a point mass at the "
            "quantile); its uncertainty is understated"
        )
    return make(
        estimate=finite_or_none(out.estimate[0]),
        ci_lower=float(out.ci_lower[0]),
        ci_upper=float(out.ci_upper[0]),
        p_value=finite_or_none(out.p_value[0]),
        std_err=finite_or_none(out.std_err[0]),
        statistic=finite_or_none(out.statistic[0]),
        warnings=tuple(warnings),
    )
