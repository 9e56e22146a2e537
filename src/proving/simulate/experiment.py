"""A synthetic online experiment with known truth, for the demo, benchmarks and calibration.

Every simulated user has a latent propensity ``u`` (log-normal). The pre-period and the
experiment period draw their behaviour from the same ``u``, so pre-period values are
correlated with outcomes, as in real traffic, and CUPED has something to remove. Users new
in the experiment period have no pre-period data (``has_pre = 0``, pre values 0).

Metrics (per user):

- ``revenue`` (mean): ``u * g * (1 + lift)`` with ``g`` a Gamma noise of mean 1.
- ``conversion`` (proportion): Bernoulli with a probability that rises with ``u``.
- ``clicks_per_session`` (ratio): sessions ~ 1 + Poisson(3 u), clicks ~ Binomial(sessions,
  ctr * (1 + lift)).

The true relative lift of each metric is the multiplier applied in treatment, so the
truth of each comparison is known exactly.

Example:
    >>> world = simulate_experiment(n_units=1_000, seed=1)
    >>> sorted(world.truth)
    ['clicks_per_session', 'conversion', 'revenue']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from proving.errors import StatsInputError
from proving.stats.sufficient import ArmStats

DEFAULT_LIFTS: Mapping[str, float] = {
    "revenue": 0.02,
    "conversion": 0.0,
    "clicks_per_session": 0.03,
}
METRIC_KINDS: Mapping[str, str] = {
    "revenue": "mean",
    "conversion": "proportion",
    "clicks_per_session": "ratio",
}


@dataclass(frozen=True)
class SimulatedExperiment:
    """Unit-level data of one simulated experiment and the truth it was built from.

    Attributes:
        variants: variant names, control first.
        weights: the configured traffic weights.
        truth: true relative lift of each metric in every treatment variant.
        columns: unit-level arrays (``variant`` holds indices into ``variants``).
    """

    variants: tuple[str, ...]
    weights: tuple[float, ...]
    truth: Mapping[str, float]
    columns: Mapping[str, npt.NDArray[Any]] = field(repr=False)

    @property
    def n_units(self) -> int:
        """Number of simulated users."""
        return int(self.columns["variant"].size)

    @property
    def days(self) -> int:
        """Number of days over which users arrive."""
        return int(self.columns["day"].max()) + 1 if self.n_units else 0

    def arm_stats(
        self,
        metric: str,
        *,
        covariates: bool = True,
        units: npt.NDArray[np.bool_] | None = None,
    ) -> dict[str, ArmStats]:
        """Reduce one metric to per-variant sufficient statistics.

        With ``covariates`` the pre-period value and a has-pre-period indicator are
        attached (for ratio metrics the pre-period numerator and denominator). ``units``
        restricts the reduction to a subset (e.g. the users who arrived on one day).
        """
        if metric not in METRIC_KINDS:
            raise StatsInputError(
                f"unknown simulated metric {metric!r}; choose one of {sorted(METRIC_KINDS)}."
            )
        c = self.columns
        if metric == "revenue":
            y, d, pre = c["revenue"], None, {"pre_revenue": c["pre_revenue"]}
        elif metric == "conversion":
            y, d, pre = c["converted"], None, {"pre_converted": c["pre_converted"]}
        else:
            y, d = c["clicks"], c["sessions"]
            pre = {"pre_clicks": c["pre_clicks"], "pre_sessions": c["pre_sessions"]}
        cov = {**pre, "has_pre": c["has_pre"]} if covariates else None
        out = {}
        for index, name in enumerate(self.variants):
            mask = c["variant"] == index
            if units is not None:
                mask &= units
            out[name] = ArmStats.from_values(
                y[mask],
                denominators=None if d is None else d[mask],
                covariates=None if cov is None else {k: v[mask] for k, v in cov.items()},
            )
        return out

    def stats_rows(self, *, covariates: bool = True) -> list[dict[str, Any]]:
        """All metrics as rows of the flat sufficient-statistics table that
        :func:`proving.stats.analyze` and ``proving analyze`` read."""
        rows = []
        for metric, kind in METRIC_KINDS.items():
            for variant, arm in self.arm_stats(metric, covariates=covariates).items():
                rows.append(
                    {
                        "experiment": "simulated",
                        "variant": variant,
                        "metric": metric,
                        "kind": kind,
                        **arm.to_flat(),
                    }
                )
        return rows


def simulate_experiment(
    n_units: int = 200_000,
    *,
    variants: Sequence[str] = ("control", "treatment"),
    weights: Sequence[float] | None = None,
    lifts: Mapping[str, float] | None = None,
    share_new_users: float = 0.2,
    days: int = 14,
    seed: int = 0,
) -> SimulatedExperiment:
    """Simulate an experiment with known relative lifts.

    Args:
        n_units: number of users.
        variants: variant names; the first is control, every other gets ``lifts``.
        weights: traffic weights (default equal).
        lifts: true relative lift per metric (default :data:`DEFAULT_LIFTS`).
        share_new_users: share of users without pre-period data.
        days: users arrive uniformly over this many days (column ``day``).
        seed: random seed; the same seed gives the same world.
    """
    if n_units < 0:
        raise StatsInputError(f"n_units must be >= 0; got {n_units}.")
    if days < 1:
        raise StatsInputError(f"days must be >= 1; got {days}.")
    if len(variants) < 2:
        raise StatsInputError(f"give a control and at least one treatment; got {variants!r}.")
    w = np.full(len(variants), 1 / len(variants)) if weights is None else np.asarray(weights)
    if w.shape != (len(variants),) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise StatsInputError(
            f"weights must be {len(variants)} non-negative numbers summing to 1; got {weights!r}."
        )
    truth = dict(DEFAULT_LIFTS if lifts is None else lifts)
    unknown = set(truth) - set(METRIC_KINDS)
    if unknown:
        raise StatsInputError(
            f"lifts name unknown metrics {sorted(unknown)}; use {sorted(METRIC_KINDS)}."
        )
    rng = np.random.default_rng(seed)
    arm = rng.choice(len(variants), size=n_units, p=w)
    treated = arm > 0

    def lifted(metric: str) -> npt.NDArray[np.float64]:
        return np.where(treated, 1.0 + truth.get(metric, 0.0), 1.0)

    u = rng.lognormal(mean=0.0, sigma=0.6, size=n_units)
    has_pre = (rng.random(n_units) >= share_new_users).astype(float)
    # Gamma noise with mean 1 and shape 8: revenue's correlation with its pre-period is
    # Var(u) / Var(u g) = 0.62 / 0.88, about 0.7, a typical week-over-week spend figure.
    pre_revenue = has_pre * u * rng.gamma(8.0, 1 / 8, n_units)
    revenue = u * rng.gamma(8.0, 1 / 8, n_units) * lifted("revenue")
    p_convert = np.clip(0.08 * u, 0.0, 0.9)
    pre_converted = has_pre * (rng.random(n_units) < p_convert)
    converted = (rng.random(n_units) < p_convert * lifted("conversion")).astype(float)
    ctr = np.clip(0.1 * np.sqrt(u), 0.0, 0.6)
    pre_sessions = has_pre * (1 + rng.poisson(3 * u))
    pre_clicks = rng.binomial(pre_sessions.astype(np.int64), ctr).astype(float)
    sessions = (1 + rng.poisson(3 * u)).astype(float)
    clicks = rng.binomial(sessions.astype(np.int64), ctr * lifted("clicks_per_session"))
    columns = {
        "variant": arm,
        "day": rng.integers(0, days, n_units),
        "has_pre": has_pre,
        "pre_revenue": pre_revenue,
        "revenue": revenue,
        "pre_converted": pre_converted.astype(float),
        "converted": converted,
        "pre_sessions": pre_sessions.astype(float),
        "pre_clicks": pre_clicks,
        "sessions": sessions,
        "clicks": clicks.astype(float),
    }
    return SimulatedExperiment(
        variants=tuple(variants),
        weights=tuple(float(x) for x in w),
        truth=truth,
        columns=columns,
    )
