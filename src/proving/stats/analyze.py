"""Analyze a table of per-arm sufficient statistics: every variant against control.

:func:`analyze` is the engine's entry point. For every (experiment, metric, segment) it
compares each variant with the control arm, in one vectorized pass over all comparisons:

1. per arm, the estimate and its variance (:mod:`proving.stats.ratio`: mean, proportion
   with the Bernoulli variance ``p (1 - p) / n``, ratio by the delta method);
2. with covariates and ``cuped=True``, the CUPED adjustment with a coefficient pooled over
   the arms of the experiment (:mod:`proving.stats.cuped`), reporting the share of the
   effect's variance it removed;
3. the effect, interval and p-value (:mod:`proving.stats.effects`);
4. the sample-ratio-mismatch check per (experiment, segment) on the unit counts
   (:func:`proving.stats.srm.srm_check`; the count of a variant is the largest ``n`` over
   its metrics, i.e. the units exposed) and, if asked, a multiple-comparison correction
   per metric family (:func:`proving.stats.multiple.adjust`).

Degenerate data (an empty arm, one unit, zero variance, NaN, negative counts) gives a
comparison with ``estimate``, interval and ``p_value`` set to None and a ``reason``; bad
parameters raise :class:`~proving.errors.StatsInputError`.

Example:
    >>> result = analyze([
    ...     {"variant": "control", "metric": "ctr", "kind": "proportion", "n": 1000, "sum": 100},
    ...     {"variant": "b", "metric": "ctr", "kind": "proportion", "n": 1000, "sum": 130},
    ... ], effect="absolute")
    >>> c = result.comparisons[0]
    >>> round(c.estimate, 3), c.p_value < 0.05
    (0.03, True)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, cast, get_args

import numpy as np
import numpy.typing as npt

from proving.errors import StatsInputError
from proving.stats.cuped import cuped_adjust
from proving.stats.effects import EffectArrays, compare, validate_options, variance_components
from proving.stats.multiple import adjust
from proving.stats.ratio import LinearizedArms, linearize
from proving.stats.results import (
    Alternative,
    AnalysisResult,
    ComparisonResult,
    Effect,
    Family,
    Method,
    RelativeMethod,
)
from proving.stats.srm import srm_check
from proving.stats.table import ArmColumns, ArmRow, TableSource, read_columns

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
Correction = Literal["none", "holm", "bh"]

# The delta method for a ratio of means needs the control mean well away from 0 (Fieller's
# problem); below this many standard errors the relative interval is flagged.
_CONTROL_MEAN_SE = 5.0
_NO_CONTROL = "no control arm in this segment"


def _validate(
    alpha: float,
    effect: str,
    relative_method: str,
    method: str,
    alternative: str,
    correction: str,
    families: Mapping[str, str] | None,
    srm_threshold: float,
) -> None:
    validate_options(
        alpha=alpha,
        effect=effect,
        relative_method=relative_method,
        method=method,
        alternative=alternative,
    )
    if correction not in get_args(Correction):
        raise StatsInputError(
            f"`correction` must be one of 'none', 'holm', 'bh'; got {correction!r}."
        )
    if not (isinstance(srm_threshold, (int, float)) and 0 < srm_threshold < 1):
        raise StatsInputError(
            f"`srm_threshold` must be in (0, 1); got {srm_threshold!r}. Use 0.001."
        )
    for metric, fam in (families or {}).items():
        if fam not in get_args(Family):
            raise StatsInputError(
                f"families[{metric!r}] must be one of {', '.join(get_args(Family))}; got {fam!r}."
            )


@dataclass
class _Layout:
    """Arms in analysis order: group by group (experiment, metric, segment), control first.

    ``order[i]`` is the table row of position ``i``; ``group[i]`` its group; a group's arms
    occupy positions ``first[g] .. first[g] + size[g] - 1``.
    """

    order: IntArray
    group: IntArray
    first: IntArray
    size: IntArray
    has_control: BoolArray
    keys: list[tuple[str, str, str]]
    cuped: BoolArray
    covariates: list[tuple[str, ...]]
    warnings: list[tuple[str, ...]]


def _factorize(keys: Sequence[Any]) -> tuple[IntArray, list[Any]]:
    """Integer codes in order of first appearance, and the distinct keys."""
    index: dict[Any, int] = {}
    codes = [index.setdefault(k, len(index)) for k in keys]
    return np.array(codes, dtype=np.intp), list(index)


def _layout(cols: ArmColumns, control: str) -> _Layout:
    """Group the rows, control first, checking that the arms of a group agree."""
    gid, keys = _factorize(list(zip(cols.experiment, cols.metric, cols.segment, strict=True)))
    is_control = np.array([v == control for v in cols.variant], dtype=bool)
    if len(cols) and not is_control.any():
        raise StatsInputError(
            f"no arm is named {control!r} (the control); variants in the table are "
            f"{sorted(set(cols.variant))}. Pass control=<name> (CLI: --control NAME)."
        )
    # Stable sort: groups in order of appearance, the control first inside each group.
    order = np.lexsort((~is_control, gid)).astype(np.intp)
    size = np.bincount(gid, minlength=len(keys)).astype(np.intp)
    first = np.cumsum(size) - size
    group = gid[order]
    shape, shapes = _factorize(list(zip(cols.kind, cols.covariate_names, strict=True)))
    mixed = shape[order] != shape[order[first[group]]]
    if mixed.any():
        g = int(group[np.argmax(mixed)])
        found = sorted({shapes[shape[i]] for i in order[group == g].tolist()})
        exp, metric, seg = keys[g]
        raise StatsInputError(
            f"experiment {exp!r}, metric {metric!r}, segment {seg!r}: arms disagree on "
            f"the kind or the covariates {found}; every arm of a metric needs the same kind "
            "and the same covariates."
        )
    n_groups = len(keys)
    return _Layout(
        order=order,
        group=group,
        first=first,
        size=size,
        has_control=is_control[order[first]] if n_groups else np.zeros(0, dtype=bool),
        keys=keys,
        cuped=np.zeros(n_groups, dtype=bool),
        covariates=[()] * n_groups,
        warnings=[()] * n_groups,
    )


@dataclass
class _Arms:
    """Per-arm arrays in analysis order (positions of :class:`_Layout`)."""

    n: FloatArray
    raw_est: FloatArray
    raw_var: FloatArray
    adj_est: FloatArray
    adj_var: FloatArray
    reason: npt.NDArray[np.object_]
    not_binary: BoolArray


def _arm_checks(cols: ArmColumns, order: IntArray) -> tuple[npt.NDArray[np.object_], BoolArray]:
    """Kind-specific problems compare() cannot see: reasons and the non-0/1 proportion flag."""
    kind = np.array(cols.kind, dtype=object)[order]
    variant = np.array(cols.variant, dtype=object)[order]
    n, s = cols.n[order], cols.sum[order]
    reason = np.full(order.size, None, dtype=object)
    zero_d = (kind == "ratio") & (cols.denominator_sum[order] == 0)
    proportion = kind == "proportion"
    outside = proportion & (n > 0) & ~((s >= 0) & (s <= n))
    for i in np.nonzero(zero_d)[0]:
        reason[i] = f"the denominator sum of variant {variant[i]!r} is 0; the ratio is undefined"
    for i in np.nonzero(outside)[0]:
        reason[i] = (
            f"variant {variant[i]!r}: the proportion sum/n = {s[i]}/{n[i]} is outside [0, 1]"
        )
    return reason, proportion & (cols.sum_squares[order] != s)


def _estimate_arms(cols: ArmColumns, lay: _Layout, use_cuped: bool) -> _Arms:
    """Per-arm estimates, raw and CUPED-adjusted, batched by the shape of the statistics."""
    total = lay.order.size
    reason, not_binary = _arm_checks(cols, lay.order)
    nan = np.full(total, np.nan)
    arms = _Arms(
        n=cols.n[lay.order],
        raw_est=nan.copy(),
        raw_var=nan.copy(),
        adj_est=nan.copy(),
        adj_var=nan.copy(),
        reason=reason,
        not_binary=not_binary,
    )
    heads = lay.order[lay.first]
    shape = [
        (cols.kind[h] == "ratio", 0 if cols.kind[h] == "proportion" else 1,
         cols.covariate_names[h])
        for h in heads.tolist()
    ]  # fmt: skip
    batches: dict[tuple[bool, int, tuple[str, ...]], list[int]] = {}
    for g, key in enumerate(shape):
        batches.setdefault(key, []).append(g)
    for (ratio, ddof, names), groups in batches.items():
        k = len(names)
        in_batch = np.zeros(len(lay.size), dtype=bool)
        in_batch[groups] = True
        pos = np.nonzero(in_batch[lay.group])[0]
        with np.errstate(all="ignore"):
            lin = linearize(*cols.moments(lay.order[pos], ratio=ratio, k=k), ratio=ratio, ddof=ddof)
        arms.raw_est[pos], arms.raw_var[pos] = lin.estimate, lin.variance
        arms.adj_est[pos], arms.adj_var[pos] = lin.estimate, lin.variance
        if use_cuped and k:
            _apply_cuped(names, lay, arms, lin, pos)
    return arms


def _apply_cuped(
    names: tuple[str, ...], lay: _Layout, arms: _Arms, lin: LinearizedArms, pos: IntArray
) -> None:
    """CUPED for the arms at ``pos`` (groups sharing covariates ``names``), in place."""
    groups, local = np.unique(lay.group[pos], return_inverse=True)
    with np.errstate(all="ignore"):
        cup = cuped_adjust(lin, local, names=names)
    lay.cuped[groups] = cup.adjusted
    kept_names: dict[tuple[bool, ...], tuple[str, ...]] = {}
    for j, (g, kept) in enumerate(zip(groups.tolist(), cup.kept.tolist(), strict=True)):
        if cup.warnings[j]:
            lay.warnings[g] = tuple(cup.warnings[j])
        key = tuple(kept)
        if key not in kept_names:
            kept_names[key] = tuple(c for c, k in zip(names, kept, strict=True) if k)
        lay.covariates[g] = kept_names[key]
    use = lay.cuped[lay.group[pos]]
    arms.adj_est[pos[use]] = cup.estimate[use]
    arms.adj_var[pos[use]] = cup.variance[use]


@dataclass(frozen=True)
class _Options:
    control: str
    alpha: float
    effect: Effect
    relative_method: RelativeMethod
    method: Method
    alternative: Alternative


def _pairs(lay: _Layout) -> tuple[IntArray, IntArray]:
    """Positions of (control, treatment) per comparison; control -1 where there is none."""
    pos = np.arange(lay.order.size)
    is_control = lay.has_control[lay.group] & (pos == lay.first[lay.group])
    t = np.nonzero(~is_control)[0]
    c = np.where(lay.has_control[lay.group[t]], lay.first[lay.group[t]], -1)
    return c, t


def _effects(
    arms: _Arms, lay: _Layout, c: IntArray, t: IntArray, opts: _Options
) -> tuple[EffectArrays, FloatArray]:
    """Effects from the adjusted arm estimates, and the unadjusted effect variance."""
    cc = np.maximum(c, 0)
    reason = np.where(arms.reason[cc] != None, arms.reason[cc], arms.reason[t])  # noqa: E711
    reason = np.where(c < 0, _NO_CONTROL, reason).astype(object)
    kwargs: dict[str, Any] = {
        "effect": opts.effect,
        "relative_method": opts.relative_method,
        "method": opts.method,
        "alternative": opts.alternative,
        "alpha": opts.alpha,
        "reason": reason,
    }
    n_c, n_t = arms.n[cc], arms.n[t]
    adj = compare(
        arms.adj_est[cc], arms.adj_var[cc], n_c, arms.adj_est[t], arms.adj_var[t], n_t, **kwargs
    )
    # Only the unadjusted variance is needed from the raw estimates (variance_reduction).
    _, _, a_t, a_c = variance_components(
        arms.raw_est[cc], arms.raw_var[cc], arms.raw_est[t], arms.raw_var[t],
        effect=opts.effect, relative_method=opts.relative_method,
    )  # fmt: skip
    return adj, a_t + a_c


def _warnings(
    arms: _Arms, lay: _Layout, c: IntArray, t: IntArray, opts: _Options
) -> list[tuple[str, ...]]:
    """Caveats per comparison, computed as masks over all comparisons at once."""
    cc = np.maximum(c, 0)
    with np.errstate(invalid="ignore"):
        unreliable = (
            (opts.effect == "relative")
            & (arms.adj_var[cc] > 0)
            & (np.abs(arms.adj_est[cc]) < _CONTROL_MEAN_SE * np.sqrt(arms.adj_var[cc]))
        )
    small_z = (opts.method == "z") & (np.minimum(arms.n[cc], arms.n[t]) < 30)
    texts = (
        f"the control mean is within {_CONTROL_MEAN_SE:g} standard errors of 0, so the "
        "relative interval is unreliable; prefer effect='absolute'",
        "the z test with fewer than 30 units in an arm; prefer method='welch'",
        "kind is 'proportion' but sum_squares != sum, so the values are not all 0/1; use "
        "kind 'mean' for a continuous metric",
    )
    masks = np.stack([unreliable, small_z, arms.not_binary[cc] | arms.not_binary[t]]) & (c >= 0)
    out = [lay.warnings[g] for g in lay.group[t].tolist()]
    for i in np.nonzero(masks.any(axis=0))[0].tolist():
        out[i] = out[i] + tuple(text for text, m in zip(texts, masks[:, i], strict=True) if m)
    return out


_FIELDS = tuple(f.name for f in fields(ComparisonResult))


def _plain(values: FloatArray, keep: BoolArray | None = None) -> list[float | None]:
    """Floats as a list with NaN/inf (and entries outside ``keep``) as None, in bulk."""
    out = values.astype(object)
    bad = ~np.isfinite(values) if keep is None else ~(np.isfinite(values) & keep)
    out[bad] = None
    return cast(list[float | None], out.tolist())


def _build(
    cols: ArmColumns,
    lay: _Layout,
    arms: _Arms,
    pairs: tuple[IntArray, IntArray],
    effects: tuple[EffectArrays, FloatArray],
    opts: _Options,
    families: Mapping[str, Family],
) -> list[ComparisonResult]:
    """One ComparisonResult per comparison, assembled column by column."""
    (c, t), (adj, raw_variance) = pairs, effects
    size = t.size
    cc = np.maximum(c, 0)
    has_c = c >= 0
    g = lay.group[t]
    answered = adj.reason == None  # noqa: E711
    with np.errstate(divide="ignore", invalid="ignore"):
        # On the tested scale (log for relative_method="log", where std_err is rescaled).
        scale = (
            1.0 + adj.estimate
            if opts.relative_method == "log" and opts.effect == "relative"
            else 1.0
        )
        reduction = 1.0 - (adj.std_err / scale) ** 2 / raw_variance
    c_rows, t_rows = lay.order[cc].tolist(), lay.order[t].tolist()
    keys = [lay.keys[j] for j in g.tolist()]
    cuped = lay.cuped[g]
    family = [
        families.get(k[1]) or cols.family[tr] or (cols.family[cr] if h else None) or "primary"
        for k, tr, cr, h in zip(keys, t_rows, c_rows, has_c.tolist(), strict=True)
    ]
    column: dict[str, Any] = {
        "experiment": [k[0] for k in keys],
        "metric": [k[1] for k in keys],
        "segment": [k[2] for k in keys],
        "variant": [cols.variant[r] for r in t_rows],
        "control": [opts.control] * size,
        "kind": [cols.kind[r] for r in t_rows],
        "effect": [opts.effect] * size,
        "relative_method": [opts.relative_method] * size,
        "method": [opts.method] * size,
        "alternative": [opts.alternative] * size,
        "alpha": [opts.alpha] * size,
        "control_mean": _plain(arms.adj_est[cc], has_c),
        "treatment_mean": _plain(arms.adj_est[t]),
        "n_control": _plain(arms.n[cc], has_c),
        "n_treatment": _plain(arms.n[t]),
        "cuped": cuped.tolist(),
        "covariates": [lay.covariates[j] if lay.cuped[j] else () for j in g.tolist()],
        "variance_reduction": _plain(reduction, cuped & answered),
        "family": family,
        "reason": adj.reason.tolist(),
        "warnings": _warnings(arms, lay, c, t, opts),
    }
    for name in ("estimate", "std_err", "df", "statistic", "p_value", "ci_lower", "ci_upper"):
        column[name] = _plain(getattr(adj, name))
    for name in _FIELDS:
        if name not in column:
            column[name] = [getattr(_DEFAULT, name)] * size
    out = []
    new, set_attr, cls = object.__new__, object.__setattr__, ComparisonResult
    for row in zip(*(column[name] for name in _FIELDS), strict=True):
        # Every field is set from the columns, so skipping __init__ (and the frozen
        # dataclass's per-field object.__setattr__) is safe; the result is still frozen.
        obj = new(cls)
        set_attr(obj, "__dict__", dict(zip(_FIELDS, row, strict=True)))
        out.append(obj)
    return out


_DEFAULT = ComparisonResult(metric="", variant="")


def _srm(
    cols: ArmColumns, lay: _Layout, weights: Mapping[str, float] | None, threshold: float
) -> tuple[list[Any], list[tuple[str, str]], list[str]]:
    """One SRM check per (experiment, segment) on the largest n per variant."""
    order = lay.order.tolist()
    combo, combos = _factorize(
        [(cols.experiment[i], cols.segment[i], cols.variant[i]) for i in order]
    )
    # The largest n per variant, ignoring NaN unless every count is NaN (srm_check explains).
    largest = np.full(len(combos), np.nan)
    np.fmax.at(largest, combo, cols.n[lay.order])
    counts: dict[tuple[str, str], dict[str, float]] = {}
    for (exp, seg, variant), n in zip(combos, largest.tolist(), strict=True):
        counts.setdefault((exp, seg), {})[variant] = n
    results, scopes, warns = [], [], []
    for (exp, seg), per in counts.items():
        if len(per) < 2:
            continue
        variants = list(per)
        w = None
        if weights is not None:
            missing = [v for v in variants if v not in weights]
            if missing:
                raise StatsInputError(
                    f"weights has no entry for variant(s) {missing}; give a weight for "
                    f"every variant ({variants})."
                )
            w = [float(weights[v]) for v in variants]
        res = srm_check([per[v] for v in variants], w, threshold=threshold, variants=variants)
        results.append(res)
        scopes.append((exp, seg))
        if res.alarm:
            warns.append(
                f"sample ratio mismatch in experiment {exp!r}, segment {seg!r} "
                f"(p = {res.p_value if res.p_value is not None else 'n/a'}): "
                "the effects of this experiment are suspect until the cause is found"
            )
    return results, scopes, warns


def analyze(
    table: TableSource | Sequence[ArmRow] | ArmColumns,
    *,
    control: str = "control",
    alpha: float = 0.05,
    effect: Effect = "relative",
    relative_method: RelativeMethod = "delta",
    method: Method = "welch",
    alternative: Alternative = "two-sided",
    cuped: bool = True,
    correction: Correction = "none",
    families: Mapping[str, Family] | None = None,
    weights: Mapping[str, float] | None = None,
    srm_threshold: float = 0.001,
) -> AnalysisResult:
    """Compare every variant with control for each (experiment, metric, segment).

    Args:
        table: per-arm sufficient statistics: anything :func:`~proving.stats.table.read_table`
            reads (.csv/.json path, list of rows, DataFrame, pyarrow Table, ArmRows) or
            :class:`~proving.stats.table.ArmColumns`.
        control: name of the control variant.
        alpha: test level and ``1 - confidence`` of the intervals, in (0, 0.5].
        effect: "absolute" (difference) or "relative" (lift, treatment/control - 1).
        relative_method: "delta" or "log" (log-ratio interval) for relative effects.
        method: "welch" (t with Satterthwaite df) or "z".
        alternative: "two-sided", "greater" or "less".
        cuped: adjust with the covariates in the table (CUPED/CUPAC) where there are some.
        correction: "none", "holm" or "bh" across metrics x variants within each family.
        families: metric -> "primary"/"secondary"/"guardrail" (overrides the table).
        weights: variant -> configured traffic weight for the SRM check (default equal).
        srm_threshold: the SRM alarm fires at p below this.

    Returns:
        AnalysisResult with one ComparisonResult per variant x metric x segment.

    Raises:
        StatsInputError: a bad parameter or a malformed table.

    Example:
        >>> from proving.stats import analyze
        >>> result = analyze("docs/examples/stats.csv")  # doctest: +SKIP
        >>> print(result.to_json(indent=2))  # doctest: +SKIP
    """
    _validate(
        alpha, effect, relative_method, method, alternative, correction, families, srm_threshold
    )
    opts = _Options(control, float(alpha), effect, relative_method, method, alternative)
    with _no_gc_pauses():
        return _analyze(table, opts, cuped, correction, families, weights, srm_threshold)


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Suspend the cyclic garbage collector while results are built.

    An analysis allocates tens of thousands of acyclic objects (rows, results, tuples), and
    the allocation count alone triggers collections that scan them all: ~20% of the time
    of a 10,000-comparison analysis. Nothing here creates reference cycles, so pausing is
    safe; the previous state is restored even on error.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _analyze(
    table: TableSource | Sequence[ArmRow] | ArmColumns,
    opts: _Options,
    cuped: bool,
    correction: Correction,
    families: Mapping[str, Family] | None,
    weights: Mapping[str, float] | None,
    srm_threshold: float,
) -> AnalysisResult:
    cols = table if isinstance(table, ArmColumns) else read_columns(table)
    lay = _layout(cols, opts.control)
    arms = _estimate_arms(cols, lay, cuped)
    c, t = _pairs(lay)
    if not t.size:
        return AnalysisResult(warnings=("no variant to compare with the control",))
    effects = _effects(arms, lay, c, t, opts)
    results = _build(cols, lay, arms, (c, t), effects, opts, families or {})
    srm, scopes, warns = _srm(cols, lay, weights, srm_threshold)
    alarmed = {s for s, r in zip(scopes, srm, strict=True) if r.alarm}
    if alarmed:
        results = [
            replace(r, warnings=(*r.warnings, "sample ratio mismatch; see srm"))
            if (r.experiment, r.segment) in alarmed
            else r
            for r in results
        ]
    if correction != "none":
        results = adjust(results, method=correction, alpha=opts.alpha)
    return AnalysisResult(
        comparisons=tuple(results), srm=tuple(srm), srm_scope=tuple(scopes), warnings=tuple(warns)
    )
