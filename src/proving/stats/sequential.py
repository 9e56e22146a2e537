"""Always-valid results: :func:`sequentialize` and :func:`adjust_sequential` over analyses.

The math (normal-mixture confidence sequences, mSPRT p-values, N* tuning; Howard et al.
2021, Waudby-Smith et al. 2023, Johari et al. 2022) lives in
:mod:`proving.stats.always_valid`; its public names stay importable from here.

**Families.** :func:`sequentialize` turns ``analyze(...).comparisons`` into always-valid
results (running-minimum p-values across looks); :func:`adjust_sequential` applies Holm or
Benjamini-Hochberg to them, with confidence sequences at the corrected level. Both take
the :class:`AnalysisResult` itself (columnar fast path) or a sequence of comparisons.

Example:
    >>> r = ComparisonResult(metric="ctr", variant="b", effect="absolute", estimate=0.02,
    ...                      std_err=0.005, n_control=4000, n_treatment=4000)
    >>> s = sequentialize([r])[0]
    >>> s.p_value < 0.05, s.warnings[-1].startswith("always-valid")
    (True, True)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from proving._types import FloatArray, IntArray, ObjectArray
from proving.errors import StatsInputError
from proving.stats.always_valid import (
    DEFAULT_TUNING_N,
    SequentialArrays,
    SequentialMethod,
    always_valid_compare,
    always_valid_interval,
    confidence_sequence_halfwidth,
    log_mixture_ratio,
    mixture_variances,
    tuning_rho_squared,
)

# Private names group_sequential and spending import from here.
from proving.stats.always_valid import _check_alpha as _check_alpha
from proving.stats.always_valid import _check_alternative as _check_alternative
from proving.stats.multiple import FAMILY_KEYS, benjamini_hochberg, holm
from proving.stats.result_columns import (
    Columns,
    Comparisons,
    gc_paused,
    objects_from_states,
    plain_list,
    read_columns,
    scatter,
)
from proving.stats.results import AnalysisResult, ComparisonResult

# The math lives in proving.stats.always_valid; it stays importable from here.
__all__ = [
    "DEFAULT_TUNING_N",
    "Columns",
    "Comparisons",
    "FloatArray",
    "IntArray",
    "ObjectArray",
    "SequentialArrays",
    "SequentialMethod",
    "adjust_sequential",
    "always_valid_compare",
    "always_valid_interval",
    "confidence_sequence_halfwidth",
    "log_mixture_ratio",
    "mixture_variances",
    "sequentialize",
    "tuning_rho_squared",
]


_ALWAYS_VALID_NOTE = (
    "always-valid: the interval is a normal-mixture confidence sequence and the p-value "
    "the running minimum of the mSPRT p-value, valid under continuous monitoring"
)


_KEY_FIELDS = ("experiment", "segment", "metric", "control", "variant")
_INPUT_FIELDS = (
    *_KEY_FIELDS,
    "effect",
    "relative_method",
    "alternative",
    "alpha",
    "estimate",
    "std_err",
    "n_control",
    "n_treatment",
    "p_value",
    "warnings",
)


def _read(
    results: Comparisons, names: Sequence[str] = _INPUT_FIELDS
) -> tuple[Columns, list[ComparisonResult] | None]:
    """The columns ``names`` of ``results`` (all of an AnalysisResult's), and the objects."""
    return read_columns(results, names)


def _floats(column: Sequence[Any], none: float = math.nan) -> FloatArray:
    """A float array of a column of plain values (None -> ``none``; NaN stays NaN)."""
    return np.array([none if x is None else x for x in column], dtype=float)


def _rebuild(
    results: Comparisons,
    columns: Columns,
    objects: list[ComparisonResult] | None,
    idx: IntArray,
    updates: Mapping[str, Sequence[Any]],
) -> AnalysisResult | list[ComparisonResult]:
    """The results with the fields ``updates`` (one value per entry of ``idx``) replaced.

    An :class:`AnalysisResult` comes back as one, columnar (its comparisons are created
    on first access; its SRM checks and warnings are kept). Objects come back as a list:
    like ``dataclasses.replace`` per result, without running ``__init__``, each new
    object gets a copy of the old one's ``__dict__`` updated in C (the objects are
    frozen, acyclic and equal to those ``replace`` builds). Rows outside ``idx`` are the
    given objects themselves.
    """
    take: list[int] = idx.tolist()
    if objects is None:
        assert isinstance(results, AnalysisResult)
        full = dict(columns)
        for name, values in updates.items():
            full[name] = scatter(columns[name], take, values)
        return AnalysisResult.from_columns(
            lambda: full, srm=results.srm, srm_scope=results.srm_scope, warnings=results.warnings
        )
    out = list(objects)
    chosen = [objects[i] for i in take]
    names = list(updates)
    with gc_paused():
        states = list(map(dict, map(vars, chosen)))
        rows = zip(*(updates[n] for n in names), strict=True)
        deque(map(dict.update, states, map(zip, repeat(names), rows)), maxlen=0)
        built: list[ComparisonResult] = objects_from_states(map(type, chosen), states)
    for i, obj in zip(take, built, strict=True):
        out[i] = obj
    return out


def _with_note(warnings: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Each warnings tuple plus the always-valid note.

    Most results share a few distinct tuples (usually ``()``), so each distinct one is
    extended once and shared (tuples are immutable): 10,000 new tuples would cost more
    than the interval arithmetic.
    """
    try:
        extended = {w: (*w, _ALWAYS_VALID_NOTE) for w in set(warnings)}
    except TypeError:  # unhashable (a list): extend one at a time
        return [(*w, _ALWAYS_VALID_NOTE) for w in warnings]
    return [extended[w] for w in warnings]


def _bounds(
    columns: Columns,
    idx: IntArray,
    tuning_n: float,
    mixture_variance: float | None,
    level: float | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Always-valid ``(lower, upper, p)`` of the rows ``idx``, at their ``alpha`` or ``level``.

    One :func:`always_valid_interval` call per distinct (alpha, alternative); relative
    effects with ``relative_method="log"`` run on ``log(1 + lift)`` and map back.
    """
    take = idx.tolist()
    full = len(take) == len(columns["metric"])

    def pick(name: str) -> list[Any]:
        column = columns[name]
        return list(column) if full else [column[i] for i in take]

    estimate = _floats(pick("estimate"))
    std_err = _floats(pick("std_err"))
    n = _floats(pick("n_control"), 0.0) + _floats(pick("n_treatment"), 0.0)
    log = np.array(
        [
            e == "relative" and m == "log"
            for e, m in zip(pick("effect"), pick("relative_method"), strict=True)
        ],
        dtype=bool,
    )
    centre, se = estimate, std_err
    if log.any():  # math.log1p, not np.log1p: the same bits as one comparison at a time
        centre = estimate.copy()
        centre[log] = [math.log1p(x) for x in estimate[log].tolist()]
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.where(log, std_err / (1.0 + estimate), std_err)
    alphas = pick("alpha") if level is None else [level] * len(take)
    alternatives = pick("alternative")
    lower, upper, p = (np.full(len(take), math.nan) for _ in range(3))
    groups = set(zip(alphas, alternatives, strict=True))
    for alpha, alternative in groups:
        if len(groups) == 1:
            rows: npt.NDArray[np.bool_] | slice = slice(None)
        else:
            rows = np.array(
                [
                    a == alpha and k == alternative
                    for a, k in zip(alphas, alternatives, strict=True)
                ],
                dtype=bool,
            )
        lo, hi, pv, _, _ = always_valid_interval(
            centre[rows], se[rows], n[rows], alpha=alpha, alternative=alternative,
            tuning_n=tuning_n, mixture_variance=mixture_variance,
        )  # fmt: skip
        lower[rows], upper[rows], p[rows] = lo, hi, pv
    with np.errstate(over="ignore"):
        lower = np.where(log, np.expm1(lower), lower)
        upper = np.where(log, np.expm1(upper), upper)
    return lower, upper, p


@overload
def sequentialize(
    results: AnalysisResult,
    *,
    tuning_n: float = ...,
    mixture_variance: float | None = ...,
    previous: Comparisons | None = ...,
) -> AnalysisResult: ...


@overload
def sequentialize(
    results: Sequence[ComparisonResult],
    *,
    tuning_n: float = ...,
    mixture_variance: float | None = ...,
    previous: Comparisons | None = ...,
) -> list[ComparisonResult]: ...


def sequentialize(
    results: Comparisons,
    *,
    tuning_n: float = DEFAULT_TUNING_N,
    mixture_variance: float | None = None,
    previous: Comparisons | None = None,
) -> AnalysisResult | list[ComparisonResult]:
    """Turn fixed-sample comparisons (``analyze(...)``) into always-valid ones.

    Each result keeps its estimate and standard error (mean, proportion, ratio, CUPED
    alike); its interval becomes the confidence sequence and its p-value the mSPRT p-value,
    kept as the running minimum over ``previous`` (the same comparisons at the last look,
    matched by experiment, segment, metric, control and variant). Degenerate results pass
    through unchanged.

    Vectorized end to end, in one pass over arrays. Given the :class:`AnalysisResult`
    itself (``analyze(...)``, the fast path: about 1 us per comparison on top of
    ``analyze``), it reads the columns and returns an AnalysisResult whose comparisons
    are created only when read (``comparison_columns()`` skips them), with its SRM checks
    and warnings. Given a sequence of :class:`ComparisonResult` it returns a list.

    Example:
        >>> r = ComparisonResult(metric="ctr", variant="b", effect="absolute", estimate=0.02,
        ...                      std_err=0.005, n_control=4000, n_treatment=4000)
        >>> s = sequentialize([r])[0]
        >>> s.ci_lower < 0.02 - 1.96 * 0.005, s.p_value < 0.05
        (True, True)
    """
    columns, objects = _read(results)
    std_err = _floats(columns["std_err"])
    with np.errstate(invalid="ignore"):
        answered = std_err > 0  # NaN and None (as NaN) fail, as `not (se > 0)` does
    answered &= np.array([e is not None for e in columns["estimate"]], dtype=bool)
    idx = np.flatnonzero(answered)
    lower, upper, p = _bounds(columns, idx, tuning_n, mixture_variance)
    if previous is not None:
        before_columns, _ = _read(previous, (*_KEY_FIELDS, "p_value"))
        keys = zip(*(before_columns[k] for k in _KEY_FIELDS), strict=True)
        before = dict(zip(keys, before_columns["p_value"], strict=True))
        now = zip(*([columns[k][i] for i in idx.tolist()] for k in _KEY_FIELDS), strict=True)
        last = _floats([before.get(k) for k in now])
        # The running minimum; NaN on either side keeps this look's value, as min() does.
        with np.errstate(invalid="ignore"):
            p = np.where(last < p, last, p)
    warnings = [columns["warnings"][i] for i in idx.tolist()]
    size = len(idx)
    updates = {
        "ci_lower": plain_list(lower),
        "ci_upper": plain_list(upper),
        "p_value": p.tolist(),
        "method": ["z"] * size,
        "df": [None] * size,
        "warnings": _with_note(warnings),
    }
    return _rebuild(results, columns, objects, idx, updates)


@overload
def adjust_sequential(
    results: AnalysisResult,
    *,
    method: Literal["none", "holm", "bh"],
    alpha: float = ...,
    by: Sequence[str] = ...,
    tuning_n: float = ...,
    mixture_variance: float | None = ...,
) -> AnalysisResult: ...


@overload
def adjust_sequential(
    results: Sequence[ComparisonResult],
    *,
    method: Literal["none", "holm", "bh"],
    alpha: float = ...,
    by: Sequence[str] = ...,
    tuning_n: float = ...,
    mixture_variance: float | None = ...,
) -> list[ComparisonResult]: ...


def adjust_sequential(
    results: Comparisons,
    *,
    method: Literal["none", "holm", "bh"],
    alpha: float = 0.05,
    by: Sequence[str] = FAMILY_KEYS,
    tuning_n: float = DEFAULT_TUNING_N,
    mixture_variance: float | None = None,
) -> AnalysisResult | list[ComparisonResult]:
    """Multiple-comparison correction of always-valid results (from :func:`sequentialize`).

    Adjusted p-values are Holm's or Benjamini-Hochberg's (:mod:`proving.stats.multiple`)
    applied to the always-valid p-values: an always-valid p-value read at any stopping time
    is a valid p-value, so Holm controls the family-wise error at whatever look the family
    is stopped (any dependence), and BH the false discovery rate (independent or positively
    dependent comparisons; Johari et al. 2022, sec. 5). Adjusted intervals are confidence
    sequences at the per-comparison level the correction implies: ``alpha/m`` for Holm
    (simultaneous over comparisons and looks by the union bound), ``R alpha/m`` for BH
    (false coverage rate, Benjamini & Yekutieli 2005).

    Returns:
        The results in order with ``correction``, ``adjusted_p_value`` and
        ``adjusted_ci_lower``/``adjusted_ci_upper`` filled: an :class:`AnalysisResult`
        (columnar) for one, a list for a sequence of comparisons.
    """
    if method not in ("none", "holm", "bh"):
        raise StatsInputError(
            f"`method` must be one of 'none', 'holm', 'bh'; got {method!r}. Use 'holm' for "
            "the family-wise error rate, 'bh' for the false discovery rate."
        )
    _check_alpha(alpha)
    kept = ("adjusted_p_value", "adjusted_ci_lower", "adjusted_ci_upper")
    columns, objects = _read(results, (*_INPUT_FIELDS, *kept, *by))
    size = len(columns["metric"])
    # Rows outside every family keep their adjusted fields, as replace() did.
    adjusted_p, adjusted_lower, adjusted_upper = (list(columns[k]) for k in kept)
    families: dict[tuple[str, ...], list[int]] = {}
    rows = zip(columns["p_value"], columns["estimate"], columns["std_err"], strict=True)
    labels = zip(*(columns[k] for k in by), strict=True)
    for i, ((p_value, estimate, std_err), label) in enumerate(zip(rows, labels, strict=True)):
        if p_value is not None and estimate is not None and std_err is not None:
            families.setdefault(tuple(map(str, label)), []).append(i)
    for members in families.values():
        idx = np.asarray(members, dtype=np.intp)
        p = np.array([columns["p_value"][i] for i in members], dtype=float)
        m = p.size
        if method == "holm":
            adjusted, level = holm(p), alpha / m
        elif method == "bh":
            adjusted = benjamini_hochberg(p)
            level = max(int(np.sum(adjusted <= alpha)), 1) * alpha / m
        else:
            adjusted, level = p, alpha
        lower, upper, _ = _bounds(columns, idx, tuning_n, mixture_variance, level)
        for j, (a, lo, hi) in enumerate(
            zip(adjusted.tolist(), plain_list(lower), plain_list(upper), strict=True)
        ):
            adjusted_p[members[j]], adjusted_lower[members[j]] = a, lo
            adjusted_upper[members[j]] = hi
    updates = {
        "correction": [method] * size,
        "adjusted_p_value": adjusted_p,
        "adjusted_ci_lower": adjusted_lower,
        "adjusted_ci_upper": adjusted_upper,
    }
    return _rebuild(results, columns, objects, np.arange(size), updates)
