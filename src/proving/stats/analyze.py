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

The steps live in their own modules: :mod:`proving.stats.analysis_options` (parameter
checks), :mod:`proving.stats.layout` (grouping, control first, pairing),
:mod:`proving.stats.arm_estimates` (steps 1-2) and :mod:`proving.stats.comparison_columns`
(step 3 and the result columns); this module runs them, the SRM check per (experiment,
segment) and the correction.

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

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from proving._types import IntArray
from proving.errors import StatsInputError
from proving.stats.analysis_options import AnalysisOptions, Correction, check_options
from proving.stats.arm_estimates import estimate_arms
from proving.stats.columns import ArmColumns, first_appearance, read_columns
from proving.stats.comparison_columns import ComparisonColumns, compare_arms, warning_masks
from proving.stats.layout import Layout, group_codes, lay_out, pairs
from proving.stats.multiple import adjust
from proving.stats.result_columns import gc_paused
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

__all__ = ["Correction", "analyze"]


def _srm(
    cols: ArmColumns, lay: Layout, weights: Mapping[str, float] | None, threshold: float
) -> tuple[list[Any], list[tuple[str, str]], list[str], IntArray]:
    """One SRM check per (experiment, segment) on the largest n per variant.

    Also returns, per position, the index of its SRM result (-1 where there is none).
    """
    scope_key = group_codes(cols, ("experiment", "segment"))[lay.order]
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
    check_options(
        alpha, effect, relative_method, method, alternative, correction, families, srm_threshold
    )
    opts = AnalysisOptions(control, float(alpha), effect, relative_method, method, alternative)
    # Tens of thousands of acyclic objects: collections triggered by their count alone took
    # ~20% of a 10,000-comparison analysis.
    with gc_paused():
        return _analyze(table, opts, cuped, correction, families, weights, srm_threshold)


def _analyze(
    table: TableSource | Sequence[ArmRow] | ArmColumns,
    opts: AnalysisOptions,
    cuped: bool,
    correction: Correction,
    families: Mapping[str, Family] | None,
    weights: Mapping[str, float] | None,
    srm_threshold: float,
) -> AnalysisResult:
    cols = table if isinstance(table, ArmColumns) else read_columns(table)
    lay = lay_out(cols, opts.control)
    arms = estimate_arms(cols, lay, cuped)
    c, t = pairs(lay)
    if not t.size:
        return AnalysisResult(warnings=("no variant to compare with the control",))
    adj, raw_variance = compare_arms(arms, lay, c, t, opts)
    srm, scopes, warns, srm_index = _srm(cols, lay, weights, srm_threshold)
    alarm = np.array([r.alarm for r in srm] + [False], dtype=bool)[srm_index[t]]
    columns = ComparisonColumns(
        cols=cols,
        lay=lay,
        arms=arms,
        c=c,
        t=t,
        adj=adj,
        raw_variance=raw_variance,
        opts=opts,
        families=families or {},
        caveats=warning_masks(arms, c, t, opts),
        srm_alarm=alarm,
    )
    result = AnalysisResult.from_columns(
        columns, srm=tuple(srm), srm_scope=tuple(scopes), warnings=tuple(warns)
    )
    if correction != "none":
        adjusted = adjust(result.comparisons, method=correction, alpha=opts.alpha)
        result = replace(result, comparisons=tuple(adjusted))
    return result
