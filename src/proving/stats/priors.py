"""Priors for the normal-normal model: :class:`NormalPrior` and empirical-Bayes fits.

A :class:`NormalPrior` is ``theta ~ N(mean, std^2)`` on the relative (lift) or absolute
scale; :meth:`NormalPrior.on_effect_scale` converts it to the analysed effect's scale
with the control mean. The default, ``N(0, 0.3^2)`` on the lift, is GrowthBook's
documented proper prior; ``FLAT_PRIOR`` (``std=None``) is improper and reproduces the
frequentist interval.

:func:`fit_prior` fits ``N(mu, tau^2)`` to past experiments' effects under
``d_i ~ N(mu, tau^2 + s_i^2)``: by marginal maximum likelihood with mu profiled out
(Efron & Morris 1975, JASA 70:311; Gelman et al., *Bayesian Data Analysis*, 3rd ed.,
sec. 5.4) or by the method of moments of DerSimonian & Laird (1986, Control. Clin.
Trials 7:177). :mod:`proving.stats.bayesian` computes posteriors with these priors.

Example:
    >>> fit = fit_prior([0.02, -0.01, 0.05, 0.0, 0.03], [0.01] * 5, method="moments")
    >>> fit.prior.source, round(fit.prior.mean, 3)
    ('empirical', 0.018)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import optimize

from proving._types import ArrayLike, FloatArray
from proving.errors import StatsInputError
from proving.stats.results import Effect, ResultBase

__all__ = [
    "DEFAULT_PRIOR",
    "DEFAULT_RELATIVE_STD",
    "FLAT_PRIOR",
    "NormalPrior",
    "PriorFit",
    "fit_prior",
]


DEFAULT_RELATIVE_STD = 0.3


@dataclass(frozen=True)
class NormalPrior(ResultBase):
    """A normal prior on the effect.

    Attributes:
        mean: prior mean of the effect.
        std: prior standard deviation; ``None`` is the flat (improper) prior.
        scale: ``relative`` (on the lift) or ``absolute`` (in metric units). A prior on the
            other scale than the analysed effect is converted with the control mean.
        source: ``default``, ``user`` or ``empirical`` (fitted by :func:`fit_prior`).
    """

    mean: float = 0.0
    std: float | None = DEFAULT_RELATIVE_STD
    scale: Literal["relative", "absolute"] = "relative"
    source: str = "default"

    def __post_init__(self) -> None:
        if not math.isfinite(self.mean):
            raise StatsInputError(f"prior `mean` must be a finite number; got {self.mean!r}.")
        if self.std is not None and not (math.isfinite(self.std) and self.std > 0):
            raise StatsInputError(
                f"prior `std` must be a positive number (or None for a flat prior); got "
                f"{self.std!r}. The default is {DEFAULT_RELATIVE_STD} on the relative effect."
            )
        if self.scale not in ("relative", "absolute"):
            raise StatsInputError(
                f"prior `scale` must be 'relative' or 'absolute'; got {self.scale!r}."
            )

    def on_effect_scale(
        self, effect: Effect, control_mean: ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """Prior mean and variance on the analysed effect's scale (inf variance = flat)."""
        m_c = np.abs(np.atleast_1d(np.asarray(control_mean, dtype=float)))
        var = math.inf if self.std is None else self.std**2
        factor = np.ones_like(m_c)
        if self.scale == "relative" and effect == "absolute":
            factor = m_c
        elif self.scale == "absolute" and effect == "relative":
            with np.errstate(divide="ignore"):
                factor = 1.0 / m_c
        return self.mean * factor, var * factor**2


FLAT_PRIOR = NormalPrior(std=None, source="flat")
# The default of the Bayesian functions: N(0, 0.3^2) on the lift.
DEFAULT_PRIOR = NormalPrior()


@dataclass(frozen=True)
class PriorFit(ResultBase):
    """An empirical-Bayes prior fitted to past effects.

    Attributes:
        prior: the fitted :class:`NormalPrior` (``source="empirical"``).
        mean: fitted mean mu of the effects.
        tau2: fitted between-experiment variance tau^2 (0: the effects look identical;
            the prior is then a point at ``mean``, represented by a tiny std).
        method: ``mle`` or ``moments``.
        n: number of past effects used.
        log_likelihood: marginal log-likelihood at the fit.
        warnings: notes on the fit.
    """

    prior: NormalPrior
    mean: float
    tau2: float
    method: str
    n: int
    log_likelihood: float
    warnings: tuple[str, ...] = field(default=())


def _marginal_loglik(mu: float, tau2: float, d: FloatArray, v: FloatArray) -> float:
    total = tau2 + v
    return float(-0.5 * np.sum(np.log(2 * math.pi * total) + (d - mu) ** 2 / total))


def _profile_mean(tau2: float, d: FloatArray, v: FloatArray) -> float:
    w = 1.0 / (tau2 + v)
    return float(np.sum(w * d) / np.sum(w))


def _tau2_moments(d: FloatArray, v: FloatArray) -> float:
    """DerSimonian & Laird (1986): tau^2 = max(0, (Q - (k - 1)) / (S1 - S2 / S1))."""
    w = 1.0 / v
    mean_fe = float(np.sum(w * d) / np.sum(w))
    q = float(np.sum(w * (d - mean_fe) ** 2))
    denom = float(np.sum(w) - np.sum(w * w) / np.sum(w))
    return max(0.0, (q - (d.size - 1)) / denom)


def _tau2_mle(d: FloatArray, v: FloatArray) -> float:
    """Marginal maximum likelihood of tau^2 with mu profiled out (bounded Brent on tau)."""
    spread = float(np.var(d)) + float(np.max(v))
    res = optimize.minimize_scalar(
        lambda tau: -_marginal_loglik(_profile_mean(tau * tau, d, v), tau * tau, d, v),
        bounds=(0.0, 10.0 * math.sqrt(spread)),
        method="bounded",
        options={"xatol": 1e-10 * math.sqrt(spread)},
    )
    # Brent never evaluates the bound itself; tau = 0 is a legitimate maximum.
    at_zero = -_marginal_loglik(_profile_mean(0.0, d, v), 0.0, d, v)
    return 0.0 if at_zero <= float(res.fun) else float(res.x) ** 2


def fit_prior(
    estimates: Sequence[float] | FloatArray,
    std_errs: Sequence[float] | FloatArray,
    *,
    method: Literal["mle", "moments"] = "mle",
    scale: Literal["relative", "absolute"] = "relative",
) -> PriorFit:
    """Fit ``N(mu, tau^2)`` to past effects ``d_i ~ N(mu, tau^2 + se_i^2)``.

    Args:
        estimates: past experiments' effect estimates (same scale as the new analysis).
        std_errs: their standard errors.
        method: ``mle`` (marginal maximum likelihood, mu profiled out) or ``moments``
            (DerSimonian & Laird 1986).
        scale: the scale of the estimates (``relative`` lifts or ``absolute``).

    Returns:
        :class:`PriorFit`.

    Example:
        >>> fit = fit_prior([0.02, -0.01, 0.05, 0.0, 0.03], [0.01] * 5, method="moments")
        >>> round(fit.mean, 3), fit.tau2 > 0
        (0.018, True)
    """
    d = np.asarray(estimates, dtype=float)
    se = np.asarray(std_errs, dtype=float)
    if d.ndim != 1 or d.shape != se.shape:
        raise StatsInputError(
            f"`estimates` and `std_errs` must be 1-d and of equal length; got shapes "
            f"{d.shape} and {se.shape}."
        )
    keep = np.isfinite(d) & np.isfinite(se) & (se > 0)
    if int(keep.sum()) < 3:
        raise StatsInputError(
            f"an empirical-Bayes prior needs at least 3 past effects with a finite estimate "
            f"and a positive std_err; got {int(keep.sum())}. Give more past experiments or "
            "set the prior by hand (NormalPrior(mean=..., std=...))."
        )
    if method not in ("mle", "moments"):
        raise StatsInputError(f"`method` must be 'mle' or 'moments'; got {method!r}.")
    d, v = d[keep], se[keep] ** 2
    notes: tuple[str, ...] = ()
    if int((~keep).sum()):
        notes += (f"{int((~keep).sum())} past effect(s) without a finite estimate dropped",)
    tau2 = _tau2_moments(d, v) if method == "moments" else _tau2_mle(d, v)
    mu = _profile_mean(tau2, d, v)
    if tau2 == 0.0:
        notes += (
            "the past effects vary no more than their standard errors explain (tau^2 = 0); "
            "the prior is nearly a point mass and will dominate; consider a wider prior",
        )
    std = math.sqrt(tau2) if tau2 > 0 else 1e-9 * math.sqrt(float(np.max(v)))
    return PriorFit(
        prior=NormalPrior(mean=mu, std=std, scale=scale, source="empirical"),
        mean=mu,
        tau2=tau2,
        method=method,
        n=int(d.size),
        log_likelihood=_marginal_loglik(mu, tau2, d, v),
        warnings=notes,
    )
