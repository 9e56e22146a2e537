"""Normal-normal posterior of effects, vectorized: credible interval, chance to win, risk.

The effect estimate ``d`` (absolute difference or relative lift, from
:func:`proving.stats.effects.compare`, any metric kind) is treated as ``d ~ N(theta, se^2)``
with a prior ``theta ~ N(mu0, s0^2)``. The posterior is normal (conjugacy; Gelman et al.,
*Bayesian Data Analysis*, 3rd ed., sec. 2.5):

    precision = 1/se^2 + 1/s0^2,   mean = (d/se^2 + mu0/s0^2) / precision.

Reported per comparison:

* the posterior mean and the equal-tailed ``1 - alpha`` credible interval;
* the chance to beat control ``P(theta > 0)`` (``P(theta < 0)`` when lower is better);
* the expected loss (risk) of each choice, in the effect's units: shipping the treatment
  loses ``E[max(0, -theta)]``, keeping control loses ``E[max(0, theta)]`` (signs swap when
  lower is better). For ``X ~ N(m, s^2)``: ``E[max(0, X)] = m Phi(m/s) + s phi(m/s)``.
* the Bayes factor of the prior against ``theta = 0``:
  ``N(d; mu0, se^2 + s0^2) / N(d; 0, se^2)``.

Priors are :mod:`proving.stats.priors`; families of results (``bayesian_family``,
multiple comparisons, sequential looks) are :mod:`proving.stats.bayesian`.

Example:
    >>> out = posterior([0.05], [0.02], prior_mean=0.0, prior_variance=0.3**2)
    >>> round(float(out.chance_to_win[0]), 3)
    0.994
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import special

from proving._types import ArrayLike, FloatArray, ObjectArray
from proving.errors import StatsInputError
from proving.stats.effects import compare, validate_options
from proving.stats.priors import DEFAULT_PRIOR, NormalPrior
from proving.stats.results import Effect, RelativeMethod, ResultBase

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class BayesianArrays(ResultBase):
    """Posterior summaries, one entry per comparison (NaN where ``reason`` is set)."""

    estimate: FloatArray
    std_err: FloatArray
    posterior_mean: FloatArray
    posterior_std: FloatArray
    ci_lower: FloatArray
    ci_upper: FloatArray
    chance_to_win: FloatArray
    expected_loss_treatment: FloatArray
    expected_loss_control: FloatArray
    bayes_factor: FloatArray
    prior_mean: FloatArray
    prior_variance: FloatArray
    reason: ObjectArray

    def __len__(self) -> int:
        return int(self.estimate.shape[0])


def _positive_part_mean(m: FloatArray, s: FloatArray) -> FloatArray:
    """E[max(0, X)] for X ~ N(m, s^2): m Phi(m/s) + s phi(m/s)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = m / s
        return np.asarray(m * special.ndtr(z) + s * _INV_SQRT_2PI * np.exp(-0.5 * z * z))


def bayes_factor(
    estimate: ArrayLike, std_err: ArrayLike, *, prior_mean: ArrayLike, prior_variance: ArrayLike
) -> FloatArray:
    """Bayes factor of ``theta ~ N(prior_mean, prior_variance)`` against ``theta = 0``."""
    d = np.asarray(estimate, dtype=float)
    v = np.asarray(std_err, dtype=float) ** 2
    mu0 = np.asarray(prior_mean, dtype=float)
    s2 = np.asarray(prior_variance, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_bf = 0.5 * np.log(v / (v + s2)) - 0.5 * (d - mu0) ** 2 / (v + s2) + 0.5 * d * d / v
        return np.asarray(np.where(np.isinf(s2), 0.0, np.exp(log_bf)))


def posterior(
    estimate: ArrayLike,
    std_err: ArrayLike,
    *,
    prior_mean: ArrayLike = 0.0,
    prior_variance: ArrayLike = math.inf,
    alpha: float = 0.05,
    higher_is_better: bool = True,
) -> BayesianArrays:
    """Normal-normal posterior of effects given estimates and standard errors (vectorized).

    Args:
        estimate: effect estimates ``d``.
        std_err: their standard errors.
        prior_mean: prior mean per entry (or one for all).
        prior_variance: prior variance per entry; ``inf`` is the flat prior.
        alpha: ``1 - alpha`` is the credible level (equal tails).
        higher_is_better: direction of the metric for the chance to win and the losses.

    Returns:
        :class:`BayesianArrays` (``reason`` is None throughout; see :func:`bayesian_compare`
        for degenerate data).
    """
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise StatsInputError(f"`alpha` must be in (0, 1); got {alpha!r}. Use e.g. 0.05.")
    d = np.atleast_1d(np.asarray(estimate, dtype=float))
    se = np.atleast_1d(np.asarray(std_err, dtype=float))
    mu0 = np.broadcast_to(np.asarray(prior_mean, dtype=float), d.shape)
    s2 = np.broadcast_to(np.asarray(prior_variance, dtype=float), d.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        prior_precision = np.where(np.isinf(s2), 0.0, 1.0 / s2)
        precision = 1.0 / se**2 + prior_precision
        mean = (d / se**2 + np.where(np.isinf(s2), 0.0, mu0 * prior_precision)) / precision
        sd = np.sqrt(1.0 / precision)
    q = float(special.ndtri(1.0 - alpha / 2.0))
    sign = 1.0 if higher_is_better else -1.0
    good = sign * mean  # the effect measured so that positive is good
    return BayesianArrays(
        estimate=d,
        std_err=se,
        posterior_mean=mean,
        posterior_std=sd,
        ci_lower=mean - q * sd,
        ci_upper=mean + q * sd,
        chance_to_win=np.asarray(special.ndtr(good / sd)),
        expected_loss_treatment=_positive_part_mean(-good, sd),
        expected_loss_control=_positive_part_mean(good, sd),
        bayes_factor=bayes_factor(d, se, prior_mean=mu0, prior_variance=s2),
        prior_mean=np.asarray(mu0, dtype=float),
        prior_variance=np.asarray(s2, dtype=float),
        reason=np.full(d.shape, None, dtype=object),
    )


def bayesian_compare(
    mean_c: ArrayLike,
    var_c: ArrayLike,
    n_c: ArrayLike,
    mean_t: ArrayLike,
    var_t: ArrayLike,
    n_t: ArrayLike,
    *,
    effect: Effect = "relative",
    relative_method: RelativeMethod = "delta",
    prior: NormalPrior = DEFAULT_PRIOR,
    alpha: float = 0.05,
    higher_is_better: bool = True,
) -> BayesianArrays:
    """Bayesian comparison of treatment with control for every entry at once.

    Takes the per-arm inputs of :func:`proving.stats.effects.compare` (estimate, variance
    of the estimate and units per arm: means, proportions, ratios, CUPED-adjusted means),
    forms the effect and its standard error there (delta method for relative effects), and
    applies the normal-normal model with ``prior``.

    Example:
        >>> out = bayesian_compare(0.10, 1e-5, 9000, 0.106, 1e-5, 9000)
        >>> round(float(out.posterior_mean[0]), 3), bool(out.chance_to_win[0] > 0.9)
        (0.059, True)
    """
    validate_options(alpha=alpha, effect=effect, relative_method=relative_method)
    if relative_method == "log" and effect == "relative":
        raise StatsInputError(
            "`relative_method` 'log' is not supported by the Bayesian model (the prior is "
            "on the lift); use relative_method='delta'."
        )
    base = compare(mean_c, var_c, n_c, mean_t, var_t, n_t, effect=effect, method="z", alpha=alpha)
    m_c = np.broadcast_to(np.asarray(mean_c, dtype=float), base.estimate.shape)
    mu0, s2 = prior.on_effect_scale(effect, m_c)
    reason = base.reason.copy()
    unscaled = ~np.isfinite(s2) & (prior.std is not None) & (reason == None)  # noqa: E711
    reason[unscaled] = "the control mean is 0, so the relative prior cannot be scaled"
    out = posterior(
        base.estimate,
        base.std_err,
        prior_mean=np.where(np.isfinite(mu0), mu0, 0.0),
        prior_variance=s2,
        alpha=alpha,
        higher_is_better=higher_is_better,
    )
    bad = reason != None  # noqa: E711
    fields = {name: np.where(bad, np.nan, getattr(out, name)) for name in _POSTERIOR_FIELDS}
    return replace(out, reason=reason, **fields)


_POSTERIOR_FIELDS = (
    "posterior_mean",
    "posterior_std",
    "ci_lower",
    "ci_upper",
    "chance_to_win",
    "expected_loss_treatment",
    "expected_loss_control",
    "bayes_factor",
)
