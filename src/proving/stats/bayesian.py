"""Bayesian results for families of comparisons: :func:`bayesian_family`, priors, pooling.

Each comparison's effect estimate ``d`` (any metric kind, from
:func:`proving.stats.analyze`) with standard error ``se`` gets the normal-normal posterior
of :mod:`proving.stats.normal_posterior` (Gelman et al., *Bayesian Data Analysis*, 3rd ed.,
sec. 2.5): posterior mean, credible interval, chance to win, expected loss of each choice
and the Bayes factor. Those names (:func:`posterior`, :func:`bayesian_compare`,
:func:`bayes_factor`, :class:`BayesianArrays`) stay importable from here.

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
:mod:`proving.stats.always_valid`, so "stop when the Bayes factor reaches 1/alpha" is a
Bayesian rule with type I error <= alpha at any number of looks (Ville's inequality).

Example:
    >>> r = ComparisonResult(metric="ctr", variant="b", effect="absolute", estimate=0.02,
    ...                      std_err=0.005, control_mean=0.1, p_value=6e-5)
    >>> out = bayesian_family([r], prior=FLAT_PRIOR)[0]
    >>> round(out.posterior_mean, 3), out.chance_to_win > 0.99
    (0.02, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Literal, overload

import numpy as np

from proving._types import FloatArray, ObjectArray
from proving.errors import StatsInputError
from proving.stats.multiple import benjamini_hochberg
from proving.stats.normal_posterior import (
    _POSTERIOR_FIELDS,
    BayesianArrays,
    bayes_factor,
    bayesian_compare,
    posterior,
)
from proving.stats.priors import (
    DEFAULT_PRIOR,
    DEFAULT_RELATIVE_STD,
    FLAT_PRIOR,
    NormalPrior,
    PriorFit,
    fit_prior,
)
from proving.stats.result_columns import (
    gc_paused,
    objects_from_states,
    plain_list,
    read_columns,
    scatter,
)
from proving.stats.results import AnalysisResult, ComparisonResult, Effect, ResultBase

# The priors live in proving.stats.priors and the posterior math in
# proving.stats.normal_posterior; they stay importable from here.
__all__ = [
    "DEFAULT_PRIOR",
    "DEFAULT_RELATIVE_STD",
    "FLAT_PRIOR",
    "BayesianArrays",
    "BayesianResult",
    "BayesianResults",
    "FloatArray",
    "NormalPrior",
    "ObjectArray",
    "PriorFit",
    "bayes_factor",
    "bayesian_compare",
    "bayesian_family",
    "fit_prior",
    "posterior",
]

Correction = Literal["none", "holm", "bh"]


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
    return read_columns(results, _FAMILY_INPUTS)[0]


def _results_from_columns(columns: Mapping[str, Sequence[Any]]) -> list[BayesianResult]:
    """BayesianResults from one column per field, without running ``__init__`` per object.

    Each object gets its ``__dict__`` in one step (built in C by ``map``), with the cyclic
    garbage collector paused (the objects are acyclic); they equal (and are as frozen as)
    ``BayesianResult(**row)``.
    """
    size = len(columns["metric"])
    with gc_paused():
        rows = zip(*(columns[n] for n in _RESULT_FIELDS), strict=True)
        states = map(dict, map(zip, repeat(_RESULT_FIELDS), rows))
        return objects_from_states(repeat(BayesianResult, size), states)


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
            prior_std = plain_list(np.sqrt(s2))
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
            out[name] = scatter(out[name], ok, values)
    if isinstance(results, AnalysisResult):
        return BayesianResults(out)
    return _results_from_columns(out)


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
