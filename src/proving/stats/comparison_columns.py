"""Compare the paired arms and assemble the comparisons as columns.

:func:`compare_arms` runs one :func:`~proving.stats.effects.compare` over every
(control, treatment) pair of a :class:`~proving.stats.layout.Layout` from the adjusted arm
estimates (:mod:`proving.stats.arm_estimates`), with the unadjusted effect variance beside
it for ``variance_reduction``. :func:`warning_masks` finds the caveats that apply to each
comparison (:data:`CAVEATS`): a relative effect whose control mean is within
:data:`CONTROL_MEAN_SE` standard errors of 0 (the delta method for a ratio of means is
unreliable there: Fieller's problem), a z test with fewer than 30 units in an arm, a
``proportion`` whose values are not all 0/1.

:class:`ComparisonColumns` holds all the arrays; called, it returns the
:class:`~proving.stats.results.ComparisonResult` fields as lists (NaN and inf as None), which
:meth:`AnalysisResult.from_columns <proving.stats.results.AnalysisResult.from_columns>` does
only when asked, so nothing runs per comparison in Python until then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from proving._types import BoolArray, FloatArray, IntArray
from proving.stats.analysis_options import AnalysisOptions
from proving.stats.arm_estimates import ArmEstimates
from proving.stats.columns import ArmColumns
from proving.stats.effects import EffectArrays, compare, variance_components
from proving.stats.layout import Layout
from proving.stats.results import Family

__all__ = [
    "CAVEATS",
    "CONTROL_MEAN_SE",
    "NO_CONTROL",
    "SRM_NOTE",
    "ComparisonColumns",
    "compare_arms",
    "warning_masks",
]


# The delta method for a ratio of means needs the control mean well away from 0 (Fieller's
# problem); below this many standard errors the relative interval is flagged.
CONTROL_MEAN_SE = 5.0
NO_CONTROL = "no control arm in this segment"


def compare_arms(
    arms: ArmEstimates, lay: Layout, c: IntArray, t: IntArray, opts: AnalysisOptions
) -> tuple[EffectArrays, FloatArray]:
    """Effects from the adjusted arm estimates, and the unadjusted effect variance."""
    cc = np.maximum(c, 0)
    reason = np.where(arms.reason[cc] != None, arms.reason[cc], arms.reason[t])  # noqa: E711
    reason = np.where(c < 0, NO_CONTROL, reason).astype(object)
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


def warning_masks(arms: ArmEstimates, c: IntArray, t: IntArray, opts: AnalysisOptions) -> BoolArray:
    """Which of :data:`CAVEATS` apply to each comparison, as masks ``(3, comparisons)``."""
    cc = np.maximum(c, 0)
    with np.errstate(invalid="ignore"):
        unreliable = (
            (opts.effect == "relative")
            & (arms.adj_var[cc] > 0)
            & (np.abs(arms.adj_est[cc]) < CONTROL_MEAN_SE * np.sqrt(arms.adj_var[cc]))
        )
    small_z = (opts.method == "z") & (np.minimum(arms.n[cc], arms.n[t]) < 30)
    not_binary = arms.not_binary[cc] | arms.not_binary[t]
    return np.stack([unreliable, small_z, not_binary]) & (c >= 0)


CAVEATS = (
    f"the control mean is within {CONTROL_MEAN_SE:g} standard errors of 0, so the "
    "relative interval is unreliable; prefer effect='absolute'",
    "the z test with fewer than 30 units in an arm; prefer method='welch'",
    "kind is 'proportion' but sum_squares != sum, so the values are not all 0/1; use "
    "kind 'mean' for a continuous metric",
)
SRM_NOTE = "sample ratio mismatch; see srm"


def _plain(values: FloatArray, keep: BoolArray | None = None) -> list[float | None]:
    """Floats as a list with NaN/inf (and entries outside ``keep``) as None, in bulk."""
    out = values.astype(object)
    bad = ~np.isfinite(values) if keep is None else ~(np.isfinite(values) & keep)
    out[bad] = None
    return cast(list[float | None], out.tolist())


@dataclass
class ComparisonColumns:
    """Everything an analysis computed, as arrays; called, the ComparisonResult columns.

    :func:`~proving.stats.analyze.analyze` returns
    ``AnalysisResult.from_columns(ComparisonColumns(...))``: turning
    arrays into per-comparison Python values (and objects) is done when asked for.
    """

    cols: ArmColumns
    lay: Layout
    arms: ArmEstimates
    c: IntArray
    t: IntArray
    adj: EffectArrays
    raw_variance: FloatArray
    opts: AnalysisOptions
    families: Mapping[str, Family]
    caveats: BoolArray  # (3, comparisons), see CAVEATS
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
        texts = (*CAVEATS, SRM_NOTE)
        for i in np.nonzero(notes.any(axis=0))[0].tolist():
            out[i] = out[i] + tuple(text for text, m in zip(texts, notes[:, i], strict=True) if m)
        return out


def _take(values: list[Any], rows: IntArray) -> list[Any]:
    """``[values[r] for r in rows]`` by numpy indexing."""
    table = np.empty(len(values), dtype=object)
    table[:] = values
    return cast(list[Any], table[rows].tolist())
