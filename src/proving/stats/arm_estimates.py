"""Per-arm estimates and their variances, raw and CUPED-adjusted, for a whole analysis.

:func:`estimate_arms` works in the analysis order of a :class:`~proving.stats.layout.Layout`
and is batched by the shape of the statistics (kind x covariate names): one
:func:`~proving.stats.ratio.linearize` per shape gives every arm's estimate and variance
(mean: the sample variance of the mean; proportion: the Bernoulli ``p (1 - p) / n``, i.e.
``ddof=0``; ratio: the delta method), and, with covariates and ``use_cuped``, one
:func:`~proving.stats.cuped.cuped_adjust` per shape gives the adjusted ones, with
``theta`` pooled over the arms of each group (Deng et al. 2013). The CUPED outcome per
group (adjusted or not, the covariates kept, its warnings) is recorded on the layout.

Kind-specific problems that :func:`~proving.stats.effects.compare` cannot see are found
here: a ratio's zero denominator sum and a proportion outside [0, 1] become a ``reason``;
a proportion whose ``sum_squares != sum`` (values not all 0/1) is flagged.

Example:
    >>> from proving.stats.columns import read_columns
    >>> from proving.stats.layout import lay_out
    >>> cols = read_columns([
    ...     {"variant": "control", "metric": "ctr", "kind": "proportion", "n": 100, "sum": 10},
    ...     {"variant": "b", "metric": "ctr", "kind": "proportion", "n": 100, "sum": 20},
    ... ])
    >>> arms = estimate_arms(cols, lay_out(cols, "control"), use_cuped=True)
    >>> arms.raw_est.tolist(), arms.raw_var.round(6).tolist()
    ([0.1, 0.2], [0.0009, 0.0016])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from proving._types import BoolArray, FloatArray, IntArray
from proving.stats.columns import ArmColumns
from proving.stats.cuped import cuped_adjust
from proving.stats.layout import Layout
from proving.stats.ratio import LinearizedArms, linearize

__all__ = ["ArmEstimates", "estimate_arms"]


@dataclass
class ArmEstimates:
    """Per-arm arrays in analysis order (positions of :class:`Layout`)."""

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


def estimate_arms(cols: ArmColumns, lay: Layout, use_cuped: bool) -> ArmEstimates:
    """Per-arm estimates, raw and CUPED-adjusted, batched by the shape of the statistics."""
    total = lay.order.size
    reason, not_binary = _arm_checks(cols, lay.order)
    nan = np.full(total, np.nan)
    arms = ArmEstimates(
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
    names: tuple[str, ...], lay: Layout, arms: ArmEstimates, lin: LinearizedArms, pos: IntArray
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
