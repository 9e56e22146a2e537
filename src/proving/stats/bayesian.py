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

**Priors** (:mod:`proving.stats.priors`). The default is weakly informative on the
*relative* effect: ``N(0, 0.3^2)``, a lift of +-30 % is one prior standard deviation. On
an absolute effect it is scaled by the control mean. A flat prior
(``NormalPrior(std=None)``) reproduces the frequentist z interval exactly; an
empirical-Bayes prior is fitted to past effects by :func:`fit_prior`.

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

import dataclasses
import gc
import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat
from operator import attrgetter
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
from scipy import special

from proving.errors import StatsInputError
from proving.stats.effects import ArrayLike, compare, validate_options
from proving.stats.multiple import benjamini_hochberg
from proving.stats.priors import (
    DEFAULT_PRIOR,
    DEFAULT_RELATIVE_STD,
    FLAT_PRIOR,
    NormalPrior,
    PriorFit,
    fit_prior,
)
from proving.stats.results import (
    AnalysisResult,
    ComparisonResult,
    Effect,
    RelativeMethod,
    ResultBase,
)

# The priors live in proving.stats.priors; they stay importable from here.
__all__ = [
    "DEFAULT_PRIOR",
    "DEFAULT_RELATIVE_STD",
    "FLAT_PRIOR",
    "BayesianArrays",
    "BayesianResult",
    "BayesianResults",
    "NormalPrior",
    "PriorFit",
    "bayes_factor",
    "bayesian_compare",
    "bayesian_family",
    "fit_prior",
    "posterior",
]

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
Correction = Literal["none", "holm", "bh"]

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


_FAMILY_INPUTS = (
    "metric",
    "variant",
    "experiment",
    "segment",
    "effect",
    "estimate",
    "std_err",
    "p_value",
    "control_mean",
    "reason",
)


def _read(results: Sequence[ComparisonResult] | AnalysisResult) -> Mapping[str, Sequence[Any]]:
    """The columns of ``results`` that a family needs (an AnalysisResult without objects)."""
    if isinstance(results, AnalysisResult):
        return results.comparison_columns()
    objects = list(results)
    return {n: list(map(attrgetter(n), objects)) for n in _FAMILY_INPUTS}


def _plain_list(x: FloatArray) -> list[float | None]:
    """Python floats, with NaN and infinities as None (the results' convention)."""
    out = x.astype(object)
    out[~np.isfinite(x)] = None
    values: list[float | None] = out.tolist()
    return values


def _scatter(column: list[Any], idx: list[int], values: Sequence[Any]) -> list[Any]:
    """``column`` (modified) with ``values`` at the positions ``idx``."""
    if len(idx) == len(column):
        return list(values)
    for i, v in zip(idx, values, strict=True):
        column[i] = v
    return column


def _results_from_columns(columns: Mapping[str, Sequence[Any]]) -> list[BayesianResult]:
    """BayesianResults from one column per field, without running ``__init__`` per object.

    Each object gets its ``__dict__`` in one step (built in C by ``map``), with the cyclic
    garbage collector paused (the objects are acyclic); they equal (and are as frozen as)
    ``BayesianResult(**row)``.
    """
    size = len(columns["metric"])
    enabled = gc.isenabled()
    gc.disable()
    try:
        states = map(
            dict,
            map(
                zip, repeat(_RESULT_FIELDS), zip(*(columns[n] for n in _RESULT_FIELDS), strict=True)
            ),
        )
        objects = list(map(object.__new__, repeat(BayesianResult, size)))
        deque(map(object.__setattr__, objects, repeat("__dict__"), states), maxlen=0)
    finally:
        if enabled:
            gc.enable()
    return objects


class BayesianResults(Sequence[BayesianResult]):
    """A family's Bayesian results as columns; the objects are created on first access.

    What :func:`bayesian_family` returns for an :class:`AnalysisResult`: a read-only
    sequence of :class:`BayesianResult` (indexing, iteration, ``len``, ``==`` with a list)
    whose objects are built all at once when first needed; :meth:`columns` gives every
    field as a list without creating them.

    Example:
        >>> r = BayesianResult(metric="ctr", variant="b", chance_to_win=0.9)
        >>> out = BayesianResults({name: [value] for name, value in vars(r).items()})
        >>> out.columns()["chance_to_win"], out[0] == r, out == [r]
        ([0.9], True, True)
    """

    __slots__ = ("_columns", "_objects")

    def __init__(self, columns: Mapping[str, Sequence[Any]]) -> None:
        missing = [n for n in _RESULT_FIELDS if n not in columns]
        if missing:
            raise StatsInputError(f"BayesianResults: the column(s) {missing} are required.")
        self._columns = {n: columns[n] for n in _RESULT_FIELDS}
        self._objects: list[BayesianResult] | None = None

    def columns(self) -> dict[str, list[Any]]:
        """Every :class:`BayesianResult` field as a list, one entry per comparison."""
        return {n: list(v) for n, v in self._columns.items()}

    def to_list(self) -> list[BayesianResult]:
        """The results as a list of objects (built once, then shared)."""
        return list(self._built())

    def _built(self) -> list[BayesianResult]:
        if self._objects is None:
            self._objects = _results_from_columns(self._columns)
        return self._objects

    def __len__(self) -> int:
        return len(self._columns["metric"])

    @overload
    def __getitem__(self, index: int) -> BayesianResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[BayesianResult]: ...

    def __getitem__(self, index: int | slice) -> BayesianResult | list[BayesianResult]:
        return self._built()[index]

    def __iter__(self) -> Iterator[BayesianResult]:
        return iter(self._built())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BayesianResults | list | tuple):
            return self._built() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-equal, like a list

    def __repr__(self) -> str:
        return f"BayesianResults({len(self)} results)"


@overload
def bayesian_family(
    results: AnalysisResult,
    *,
    prior: NormalPrior | Literal["empirical"] = ...,
    correction: Correction = ...,
    alpha: float = ...,
    higher_is_better: bool = ...,
    fit_method: Literal["mle", "moments"] = ...,
) -> BayesianResults: ...


@overload
def bayesian_family(
    results: Sequence[ComparisonResult],
    *,
    prior: NormalPrior | Literal["empirical"] = ...,
    correction: Correction = ...,
    alpha: float = ...,
    higher_is_better: bool = ...,
    fit_method: Literal["mle", "moments"] = ...,
) -> list[BayesianResult]: ...


def bayesian_family(
    results: Sequence[ComparisonResult] | AnalysisResult,
    *,
    prior: NormalPrior | Literal["empirical"] = DEFAULT_PRIOR,
    correction: Correction = "none",
    alpha: float = 0.05,
    higher_is_better: bool = True,
    fit_method: Literal["mle", "moments"] = "mle",
) -> BayesianResults | list[BayesianResult]:
    """Bayesian results for a family of comparisons (one metric family of an analysis).

    Vectorized end to end: the posterior of every comparison is one array computation.
    The fast path is the :class:`AnalysisResult` itself (``analyze(...)``): its columns
    are read without creating a ComparisonResult per comparison, and the answer is a
    :class:`BayesianResults` whose objects are created only when read.

    Args:
        results: frequentist comparisons (``analyze(...)`` or ``analyze(...).comparisons``),
            all with the same ``effect`` scale.
        prior: a :class:`NormalPrior`, or ``"empirical"`` to fit one to this family
            (partial pooling; needs >= 3 comparisons with an estimate).
        correction: ``none``, ``holm`` or ``bh``: credible intervals at the level
            :func:`proving.stats.multiple.adjust` would use for this family.
        alpha: the family's error rate.
        higher_is_better: direction of the metrics.
        fit_method: ``mle`` or ``moments`` for ``prior="empirical"``.

    Returns:
        One :class:`BayesianResult` per input, in order; comparisons without an estimate
        keep ``None`` fields and their ``reason``. A list for a sequence of comparisons;
        :class:`BayesianResults` (columnar, objects built on first access) for an
        :class:`AnalysisResult`.

    Example:
        >>> r = ComparisonResult(metric="ctr", variant="b", effect="absolute", estimate=0.02,
        ...                      std_err=0.005, control_mean=0.1, p_value=6e-5)
        >>> out = bayesian_family([r], prior=FLAT_PRIOR)[0]
        >>> round(out.posterior_mean, 3), out.chance_to_win > 0.99
        (0.02, True)
    """
    if correction not in ("none", "holm", "bh"):
        raise StatsInputError(f"`correction` must be 'none', 'holm' or 'bh'; got {correction!r}.")
    columns = _read(results)
    effects = set(columns["effect"])
    if len(effects) > 1:
        raise StatsInputError(
            f"a family mixes effect scales {sorted(effects)}; analyse it with one `effect`."
        )
    effect: Effect = next(iter(effects), "relative")
    size = len(columns["metric"])
    estimate = np.array(columns["estimate"], dtype=object)
    std_err = np.array(columns["std_err"], dtype=object)
    answered = np.flatnonzero((estimate != None) & (std_err != None))  # noqa: E711
    ok: list[int] = answered.tolist()
    d = estimate[answered].astype(float)
    se = std_err[answered].astype(float)
    notes: tuple[str, ...] = ()
    if prior == "empirical":
        fit = fit_prior(d, se, method=fit_method, scale=effect)
        chosen, notes = fit.prior, fit.warnings
    else:
        chosen = prior
    out: dict[str, list[Any]] = {
        "metric": list(columns["metric"]),
        "variant": list(columns["variant"]),
        "experiment": list(columns["experiment"]),
        "segment": list(columns["segment"]),
        "effect": list(columns["effect"]),
        "alpha": [alpha] * size,
        "prior_source": [chosen.source] * size,
        "correction": [correction] * size,
        "reason": [r or "no estimate" for r in columns["reason"]],
        **{n: [_RESULT_DEFAULTS[n]] * size for n in _FILLED_FIELDS},
    }
    if ok:
        p = np.array([columns["p_value"][i] for i in ok], dtype=float)
        level = float(_levels(p, correction, alpha)[0])  # one level for the whole family
        control_mean = [columns["control_mean"][i] for i in ok]
        mu0, s2 = chosen.on_effect_scale(effect, [c or 0.0 for c in control_mean])
        post = posterior(
            d, se, prior_mean=mu0, prior_variance=s2, alpha=level,
            higher_is_better=higher_is_better,
        )  # fmt: skip
        with np.errstate(invalid="ignore"):
            prior_std = _plain_list(np.sqrt(s2))
        filled: dict[str, Sequence[Any]] = {
            "reason": [None] * len(ok),
            "credible_alpha": [level] * len(ok),
            "prior_mean": np.broadcast_to(mu0, d.shape).tolist(),
            "prior_std": prior_std,
            "estimate": d.tolist(),
            "std_err": se.tolist(),
            "warnings": [notes] * len(ok),
            **{name: getattr(post, name).tolist() for name in _POSTERIOR_FIELDS},
        }
        for name, values in filled.items():
            out[name] = _scatter(out[name], ok, values)
    if isinstance(results, AnalysisResult):
        return BayesianResults(out)
    return _results_from_columns(out)


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


_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(BayesianResult))
_RESULT_DEFAULTS = {
    f.name: f.default
    for f in dataclasses.fields(BayesianResult)
    if f.default is not dataclasses.MISSING
}
# The fields a comparison without an estimate leaves at their defaults.
_FILLED_FIELDS = (
    "credible_alpha",
    "prior_mean",
    "prior_std",
    "estimate",
    "std_err",
    *_POSTERIOR_FIELDS,
    "warnings",
)
