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

Nothing runs per row or per comparison in Python: the arms are grouped by the integer
codes of their keys (:meth:`~proving.stats.columns.ArmColumns.codes`), and the result is
columnar (:meth:`AnalysisResult.from_columns`): ``result.comparison_columns()`` gives every
field as a list, ``result.comparisons`` creates the ComparisonResult objects on first read.

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
from dataclasses import dataclass, replace
from typing import Any, Literal, cast, get_args

import numpy as np
import numpy.typing as npt

from proving.errors import StatsInputError
from proving.stats.columns import ArmColumns, first_appearance, read_columns
from proving.stats.cuped import cuped_adjust
from proving.stats.effects import EffectArrays, compare, validate_options, variance_components
from proving.stats.multiple import adjust
from proving.stats.ratio import LinearizedArms, linearize
from proving.stats.results import (
    Alternative,
    AnalysisResult,
    Effect,
    Family,
    Method,
    RelativeMethod,
)
from proving.stats.srm import srm_check
from proving.stats.table import ArmRow, TableSource

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
    occupy positions ``first[g] .. first[g] + size[g] - 1``; ``head[g]`` is the group's
    first table row (its keys). ``shape[r]`` codes a row's (kind, covariate names).
    """

    order: IntArray
    group: IntArray
    first: IntArray
    size: IntArray
    head: IntArray
    has_control: BoolArray
    shape: IntArray
    cuped: BoolArray
    covariates: IntArray  # per group: index into covariate_sets, -1 without CUPED
    covariate_sets: list[tuple[str, ...]]
    warnings: dict[int, tuple[str, ...]]


def _group_codes(cols: ArmColumns, names: Sequence[str]) -> IntArray:
    """One int64 key per row combining the codes of the text columns ``names``."""
    key = np.zeros(len(cols), dtype=np.int64)
    for name in names:
        codes, values = cols.codes(name)
        key = key * max(len(values), 1) + codes
    return key


def _layout(cols: ArmColumns, control: str) -> _Layout:
    """Group the rows, control first, checking that the arms of a group agree."""
    gid, head = first_appearance(_group_codes(cols, ("experiment", "metric", "segment")))
    variant_codes, variants = cols.codes("variant")
    is_control = (
        variant_codes == variants.index(control)
        if control in variants
        else np.zeros(len(cols), dtype=bool)
    )
    if len(cols) and not is_control.any():
        raise StatsInputError(
            f"no arm is named {control!r} (the control); variants in the table are "
            f"{sorted(set(variants))}. Pass control=<name> (CLI: --control NAME)."
        )
    # Stable sort: groups in order of appearance, the control first inside each group.
    order = np.lexsort((~is_control, gid)).astype(np.intp)
    size = np.bincount(gid, minlength=head.size).astype(np.intp)
    first = np.cumsum(size) - size
    group = gid[order]
    shape = _group_codes(cols, ("kind", "covariate_names")).astype(np.intp)
    mixed = shape[order] != shape[order[first[group]]]
    if mixed.any():
        g = int(group[np.argmax(mixed)])
        rows = order[group == g].tolist()
        found = sorted({(cols.text("kind", i), cols.text("covariate_names", i)) for i in rows})
        exp, metric, seg = (cols.text(k, int(head[g])) for k in ("experiment", "metric", "segment"))
        raise StatsInputError(
            f"experiment {exp!r}, metric {metric!r}, segment {seg!r}: arms disagree on the kind "
            f"or the covariates {found}; every arm of a metric needs the same kind and the same "
            "covariates."
        )
    n_groups = head.size
    return _Layout(
        order=order,
        group=group,
        first=first,
        size=size,
        head=head,
        has_control=is_control[order[first]] if n_groups else np.zeros(0, dtype=bool),
        shape=shape,
        cuped=np.zeros(n_groups, dtype=bool),
        covariates=np.full(n_groups, -1, dtype=np.intp),
        covariate_sets=[],
        warnings={},
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


def _kind_mask(cols: ArmColumns, kind: str) -> BoolArray:
    codes, values = cols.codes("kind")
    return np.array([v == kind for v in values], dtype=bool)[codes]


def _arm_checks(cols: ArmColumns, order: IntArray) -> tuple[npt.NDArray[np.object_], BoolArray]:
    """Kind-specific problems compare() cannot see: reasons and the non-0/1 proportion flag."""
    n, s = cols.n[order], cols.sum[order]
    reason = np.full(order.size, None, dtype=object)
    zero_d = _kind_mask(cols, "ratio")[order] & (cols.denominator_sum[order] == 0)
    proportion = _kind_mask(cols, "proportion")[order]
    with np.errstate(invalid="ignore"):
        outside = proportion & (n > 0) & ~((s >= 0) & (s <= n))
    for i in np.nonzero(zero_d)[0].tolist():
        variant = cols.text("variant", order[i])
        reason[i] = f"the denominator sum of variant {variant!r} is 0; the ratio is undefined"
    for i in np.nonzero(outside)[0].tolist():
        reason[i] = (
            f"variant {cols.text('variant', order[i])!r}: the proportion sum/n = {s[i]}/{n[i]} is "
            "outside [0, 1]"
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
    group_shape = lay.shape[lay.head]
    for code in np.unique(group_shape).tolist():
        h = int(lay.head[np.argmax(group_shape == code)])
        kind, names = cols.text("kind", h), cols.text("covariate_names", h)
        ratio, ddof, k = kind == "ratio", 0 if kind == "proportion" else 1, len(names)
        pos = np.nonzero(group_shape[lay.group] == code)[0]
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
    # The kept covariates per group as one bit pattern, then one names tuple per pattern.
    bits = np.asarray(cup.kept, dtype=np.int64) @ (1 << np.arange(len(names), dtype=np.int64))
    patterns, which = np.unique(bits, return_inverse=True)
    offset = len(lay.covariate_sets)
    for p in patterns.tolist():
        lay.covariate_sets.append(tuple(c for j, c in enumerate(names) if p >> j & 1))
    lay.covariates[groups] = offset + which.reshape(-1)
    for j, w in enumerate(cup.warnings):
        if w:
            lay.warnings[int(groups[j])] = tuple(w)
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


def _warning_masks(arms: _Arms, c: IntArray, t: IntArray, opts: _Options) -> BoolArray:
    """Which of :data:`_CAVEATS` apply to each comparison, as masks ``(3, comparisons)``."""
    cc = np.maximum(c, 0)
    with np.errstate(invalid="ignore"):
        unreliable = (
            (opts.effect == "relative")
            & (arms.adj_var[cc] > 0)
            & (np.abs(arms.adj_est[cc]) < _CONTROL_MEAN_SE * np.sqrt(arms.adj_var[cc]))
        )
    small_z = (opts.method == "z") & (np.minimum(arms.n[cc], arms.n[t]) < 30)
    not_binary = arms.not_binary[cc] | arms.not_binary[t]
    return np.stack([unreliable, small_z, not_binary]) & (c >= 0)


_CAVEATS = (
    f"the control mean is within {_CONTROL_MEAN_SE:g} standard errors of 0, so the "
    "relative interval is unreliable; prefer effect='absolute'",
    "the z test with fewer than 30 units in an arm; prefer method='welch'",
    "kind is 'proportion' but sum_squares != sum, so the values are not all 0/1; use "
    "kind 'mean' for a continuous metric",
)
_SRM_NOTE = "sample ratio mismatch; see srm"


def _plain(values: FloatArray, keep: BoolArray | None = None) -> list[float | None]:
    """Floats as a list with NaN/inf (and entries outside ``keep``) as None, in bulk."""
    out = values.astype(object)
    bad = ~np.isfinite(values) if keep is None else ~(np.isfinite(values) & keep)
    out[bad] = None
    return cast(list[float | None], out.tolist())


@dataclass
class _ResultColumns:
    """Everything an analysis computed, as arrays; called, the ComparisonResult columns.

    :func:`analyze` returns ``AnalysisResult.from_columns(_ResultColumns(...))``: turning
    arrays into per-comparison Python values (and objects) is done when asked for.
    """

    cols: ArmColumns
    lay: _Layout
    arms: _Arms
    c: IntArray
    t: IntArray
    adj: EffectArrays
    raw_variance: FloatArray
    opts: _Options
    families: Mapping[str, Family]
    caveats: BoolArray  # (3, comparisons), see _CAVEATS
    srm_alarm: BoolArray  # per comparison

    def __call__(self) -> dict[str, list[Any]]:
        cols, lay, arms, opts, adj = self.cols, self.lay, self.arms, self.opts, self.adj
        c, t = self.c, self.t
        size = t.size
        cc = np.maximum(c, 0)
        has_c = c >= 0
        g = lay.group[t]
        answered = adj.reason == None  # noqa: E711
        with np.errstate(divide="ignore", invalid="ignore"):
            # On the tested scale (log for relative_method="log", where std_err is rescaled).
            log = opts.relative_method == "log" and opts.effect == "relative"
            scale = 1.0 + adj.estimate if log else 1.0
            reduction = 1.0 - (adj.std_err / scale) ** 2 / self.raw_variance
        heads, t_rows = lay.head[g], lay.order[t]
        cuped = lay.cuped[g]
        sets = np.empty(len(lay.covariate_sets) + 1, dtype=object)
        sets[-1] = ()
        for i, names in enumerate(lay.covariate_sets):
            sets[i] = names
        covariates = sets[np.where(cuped, lay.covariates[g], -1)]
        column: dict[str, Any] = {
            "experiment": _take(cols.experiment, heads),
            "metric": _take(cols.metric, heads),
            "segment": _take(cols.segment, heads),
            "variant": _take(cols.variant, t_rows),
            "control": [opts.control] * size,
            "kind": _take(cols.kind, t_rows),
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
            "covariates": covariates.tolist(),
            "variance_reduction": _plain(reduction, cuped & answered),
            "family": self._family(heads, t_rows, lay.order[cc], has_c),
            "reason": adj.reason.tolist(),
            "warnings": self._warnings(g),
        }
        for name in ("estimate", "std_err", "df", "statistic", "p_value", "ci_lower", "ci_upper"):
            column[name] = _plain(getattr(adj, name))
        return column

    def _family(
        self, heads: IntArray, t_rows: IntArray, c_rows: IntArray, has_c: BoolArray
    ) -> list[Any]:
        """``families`` (by metric) over the treatment row's family over the control's."""
        fam = np.array(self.cols.family, dtype=object)
        out = np.where(fam[t_rows] != None, fam[t_rows], fam[c_rows])  # noqa: E711
        out[~has_c] = fam[t_rows][~has_c]
        out[out == None] = "primary"  # noqa: E711
        if self.families:
            metric = np.array(self.cols.metric, dtype=object)[heads]
            for name, family in self.families.items():
                out[metric == name] = family
        return cast(list[Any], out.tolist())

    def _warnings(self, g: IntArray) -> list[tuple[str, ...]]:
        """Caveats per comparison: CUPED's (per group), the masks', the SRM note."""
        out: list[tuple[str, ...]] = [()] * g.size
        if self.lay.warnings:
            out = [self.lay.warnings.get(j, ()) for j in g.tolist()]
        notes = np.concatenate([self.caveats, self.srm_alarm[None, :]])
        texts = (*_CAVEATS, _SRM_NOTE)
        for i in np.nonzero(notes.any(axis=0))[0].tolist():
            out[i] = out[i] + tuple(text for text, m in zip(texts, notes[:, i], strict=True) if m)
        return out


def _take(values: list[Any], rows: IntArray) -> list[Any]:
    """``[values[r] for r in rows]`` by numpy indexing."""
    table = np.empty(len(values), dtype=object)
    table[:] = values
    return cast(list[Any], table[rows].tolist())


def _srm(
    cols: ArmColumns, lay: _Layout, weights: Mapping[str, float] | None, threshold: float
) -> tuple[list[Any], list[tuple[str, str]], list[str], IntArray]:
    """One SRM check per (experiment, segment) on the largest n per variant.

    Also returns, per position, the index of its SRM result (-1 where there is none).
    """
    scope_key = _group_codes(cols, ("experiment", "segment"))[lay.order]
    variant_codes, variants_all = cols.codes("variant")
    key = scope_key * max(len(variants_all), 1) + variant_codes[lay.order]
    combo, first = first_appearance(key)  # (experiment, segment, variant) by first position
    # The largest n per variant, ignoring NaN unless every count is NaN (srm_check explains).
    largest = np.full(first.size, np.nan)
    np.fmax.at(largest, combo, cols.n[lay.order])
    scope, scope_first = first_appearance(scope_key[first])
    results: list[Any] = []
    scopes: list[tuple[str, str]] = []
    warns: list[str] = []
    index = np.full(scope_first.size, -1, dtype=np.intp)
    for s in range(scope_first.size):
        members = np.nonzero(scope == s)[0]
        if members.size < 2:
            continue
        row = int(lay.order[first[members[0]]])
        exp, seg = cols.text("experiment", row), cols.text("segment", row)
        variants = [cols.text("variant", int(lay.order[first[j]])) for j in members.tolist()]
        w = None
        if weights is not None:
            missing = [v for v in variants if v not in weights]
            if missing:
                raise StatsInputError(
                    f"weights has no entry for variant(s) {missing}; give a weight for "
                    f"every variant ({variants})."
                )
            w = [float(weights[v]) for v in variants]
        res = srm_check(largest[members].tolist(), w, threshold=threshold, variants=variants)
        index[s] = len(results)
        results.append(res)
        scopes.append((exp, seg))
        if res.alarm:
            warns.append(
                f"sample ratio mismatch in experiment {exp!r}, segment {seg!r} "
                f"(p = {res.p_value if res.p_value is None else f'{res.p_value:.3g}'}): "
                "the effects of this experiment are suspect until the cause is found"
            )
    return results, scopes, warns, index[scope[combo]]


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
    adj, raw_variance = _effects(arms, lay, c, t, opts)
    srm, scopes, warns, srm_index = _srm(cols, lay, weights, srm_threshold)
    alarm = np.array([r.alarm for r in srm] + [False], dtype=bool)[srm_index[t]]
    columns = _ResultColumns(
        cols=cols,
        lay=lay,
        arms=arms,
        c=c,
        t=t,
        adj=adj,
        raw_variance=raw_variance,
        opts=opts,
        families=families or {},
        caveats=_warning_masks(arms, c, t, opts),
        srm_alarm=alarm,
    )
    result = AnalysisResult.from_columns(
        columns, srm=tuple(srm), srm_scope=tuple(scopes), warnings=tuple(warns)
    )
    if correction != "none":
        adjusted = adjust(result.comparisons, method=correction, alpha=opts.alpha)
        result = replace(result, comparisons=tuple(adjusted))
    return result
