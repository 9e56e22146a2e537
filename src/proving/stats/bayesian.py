"""Bayesian analysis of an effect: normal-normal model, empirical-Bayes priors, families.

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

**Priors.** The default is weakly informative on the *relative* effect: ``N(0, 0.3^2)``, a
lift of +-30 % is one prior standard deviation (GrowthBook's documented proper prior). On
an absolute effect it is scaled by the control mean (``0.3 |control mean|``). A flat prior
(``NormalPrior(std=None)``) reproduces the frequentist z interval exactly. An
**empirical-Bayes** prior is fitted to past experiments' effects and standard errors
(:func:`fit_prior`) under ``d_i ~ N(mu, tau^2 + s_i^2)``: by marginal maximum likelihood
(Efron & Morris 1975; Gelman et al. sec. 5.4) or by the method of moments of DerSimonian &
Laird (1986, Control. Clin. Trials 7:177).

**Multiple comparisons** (:func:`bayesian_family`): two ways that compose with
:mod:`proving.stats.multiple`. (1) Partial pooling: fit the prior to the family itself
(``prior="empirical"``), which shrinks noisy estimates towards the family mean, the
Bayesian answer to multiplicity (Gelman, Hill & Yajima 2012, J. Res. Educ. Eff. 5:189).
(2) Corrected levels: credible intervals at the per-comparison level that ``adjust`` uses
(Holm: Bonferroni ``alpha/m``; BH: ``R alpha/m``), so a flat prior gives exactly the
corrected frequentist intervals.

**Sequential looks.** A posterior is coherent at any look, but "stop when the chance to
win passes 97.5 %" has no frequentist error control under peeking. The Bayes factor of a
``N(0, tau^2)`` prior against no effect is exactly the mSPRT mixture ratio of
:mod:`proving.stats.sequential`, so "stop when the Bayes factor reaches 1/alpha" is a
Bayesian rule with type I error <= alpha at any number of looks (Ville's inequality).

Example:
    >>> out = posterior([0.05], [0.02], prior_mean=0.0, prior_variance=0.3**2)
    >>> round(float(out.chance_to_win[0]), 3)
    0.994
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from proving.errors import StatsInputError
from proving.stats.effects import ArrayLike, compare, validate_options
from proving.stats.multiple import benjamini_hochberg
from proving.stats.results import ComparisonResult, Effect, RelativeMethod, ResultBase

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
Correction = Literal["none", "holm", "bh"]

DEFAULT_RELATIVE_STD = 0.3
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


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
    prior: NormalPrior = NormalPrior(),
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


@dataclass(frozen=True)
class BayesianResult(ResultBase):
    """The Bayesian view of one comparison (see the module docstring for the fields)."""

    metric: str
    variant: str
    experiment: str = ""
    segment: str = "all"
    effect: Effect = "relative"
    alpha: float = 0.05
    credible_alpha: float = 0.05
    prior_mean: float | None = None
    prior_std: float | None = None
    prior_source: str = "default"
    estimate: float | None = None
    std_err: float | None = None
    posterior_mean: float | None = None
    posterior_std: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    chance_to_win: float | None = None
    expected_loss_treatment: float | None = None
    expected_loss_control: float | None = None
    bayes_factor: float | None = None
    correction: str = "none"
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


def _levels(p: FloatArray, correction: Correction, alpha: float) -> FloatArray:
    """Per-comparison error level of the credible interval, as multiple.adjust uses."""
    m = p.size
    if correction == "holm":
        return np.full(m, alpha / m)
    if correction == "bh":
        selected = int(np.sum(benjamini_hochberg(p) < alpha))
        return np.full(m, max(selected, 1) * alpha / m)
    return np.full(m, alpha)


def bayesian_family(
    results: Sequence[ComparisonResult],
    *,
    prior: NormalPrior | Literal["empirical"] = NormalPrior(),
    correction: Correction = "none",
    alpha: float = 0.05,
    higher_is_better: bool = True,
    fit_method: Literal["mle", "moments"] = "mle",
) -> list[BayesianResult]:
    """Bayesian results for a family of comparisons (one metric family of an analysis).

    Args:
        results: frequentist comparisons (``analyze(...).comparisons``), all with the same
            ``effect`` scale.
        prior: a :class:`NormalPrior`, or ``"empirical"`` to fit one to this family
            (partial pooling; needs >= 3 comparisons with an estimate).
        correction: ``none``, ``holm`` or ``bh``: credible intervals at the level
            :func:`proving.stats.multiple.adjust` would use for this family.
        alpha: the family's error rate.
        higher_is_better: direction of the metrics.
        fit_method: ``mle`` or ``moments`` for ``prior="empirical"``.

    Returns:
        One :class:`BayesianResult` per input, in order; comparisons without an estimate
        keep ``None`` fields and their ``reason``.
    """
    if correction not in ("none", "holm", "bh"):
        raise StatsInputError(f"`correction` must be 'none', 'holm' or 'bh'; got {correction!r}.")
    effects = {r.effect for r in results}
    if len(effects) > 1:
        raise StatsInputError(
            f"a family mixes effect scales {sorted(effects)}; analyse it with one `effect`."
        )
    ok = [i for i, r in enumerate(results) if r.estimate is not None and r.std_err is not None]
    d = np.array([results[i].estimate for i in ok], dtype=float)
    se = np.array([results[i].std_err for i in ok], dtype=float)
    notes: tuple[str, ...] = ()
    if prior == "empirical":
        fit = fit_prior(d, se, method=fit_method, scale=next(iter(effects), "relative"))
        chosen, notes = fit.prior, fit.warnings
    else:
        chosen = prior
    p = np.array([results[i].p_value for i in ok], dtype=float)
    levels = _levels(p, correction, alpha)
    out = [_empty(r, alpha, chosen.source, correction) for r in results]
    for j, i in enumerate(ok):
        r = results[i]
        mu0, s2 = chosen.on_effect_scale(r.effect, r.control_mean or 0.0)
        post = posterior(
            d[j : j + 1],
            se[j : j + 1],
            prior_mean=mu0,
            prior_variance=s2,
            alpha=float(levels[j]),
            higher_is_better=higher_is_better,
        )
        values = {name: float(getattr(post, name)[0]) for name in _POSTERIOR_FIELDS}
        prior_var = float(s2[0])
        out[i] = replace(
            out[i],
            reason=None,
            credible_alpha=float(levels[j]),
            prior_mean=float(mu0[0]),
            prior_std=math.sqrt(prior_var) if math.isfinite(prior_var) else None,
            estimate=float(d[j]),
            std_err=float(se[j]),
            posterior_mean=values["posterior_mean"],
            posterior_std=values["posterior_std"],
            ci_lower=values["ci_lower"],
            ci_upper=values["ci_upper"],
            chance_to_win=values["chance_to_win"],
            expected_loss_treatment=values["expected_loss_treatment"],
            expected_loss_control=values["expected_loss_control"],
            bayes_factor=values["bayes_factor"],
            warnings=notes,
        )
    return out


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


def _empty(r: ComparisonResult, alpha: float, source: str, correction: str) -> BayesianResult:
    return BayesianResult(
        metric=r.metric,
        variant=r.variant,
        experiment=r.experiment,
        segment=r.segment,
        effect=r.effect,
        alpha=alpha,
        prior_source=source,
        correction=correction,
        reason=r.reason or "no estimate",
    )
