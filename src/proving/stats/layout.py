"""The arms of an analysis laid out group by group, control first, and paired for comparison.

:func:`lay_out` groups the rows of an :class:`~proving.stats.columns.ArmColumns` by
(experiment, metric, segment) from the integer codes of the keys (no Python loop per row),
puts each group's control arm first (a stable ``np.lexsort``, so groups keep their order of
first appearance) and checks that the arms of a group agree on the kind and covariates.
:func:`pairs` then gives, per comparison, the positions of the control and the treatment
arm (control ``-1`` where a segment has none, which the analysis explains).

The CUPED fields of :class:`Layout` (``cuped``, ``covariates``, ``covariate_sets``,
``warnings``) start empty and are filled per group by
:func:`proving.stats.arm_estimates.estimate_arms`.

Example:
    >>> from proving.stats.columns import read_columns
    >>> cols = read_columns([
    ...     {"variant": "b", "metric": "m", "n": 10, "sum": 5.0, "sum_squares": 9.0},
    ...     {"variant": "control", "metric": "m", "n": 10, "sum": 4.0, "sum_squares": 8.0},
    ... ])
    >>> lay = lay_out(cols, "control")
    >>> lay.order.tolist(), [p.tolist() for p in pairs(lay)]
    ([1, 0], [[0], [1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from proving._types import BoolArray, IntArray
from proving.errors import StatsInputError
from proving.stats.columns import ArmColumns, first_appearance

__all__ = ["Layout", "group_codes", "lay_out", "pairs"]


@dataclass
class Layout:
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


def group_codes(cols: ArmColumns, names: Sequence[str]) -> IntArray:
    """One int64 key per row combining the codes of the text columns ``names``."""
    key = np.zeros(len(cols), dtype=np.int64)
    for name in names:
        codes, values = cols.codes(name)
        key = key * max(len(values), 1) + codes
    return key


def lay_out(cols: ArmColumns, control: str) -> Layout:
    """Group the rows, control first, checking that the arms of a group agree."""
    gid, head = first_appearance(group_codes(cols, ("experiment", "metric", "segment")))
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
    shape = group_codes(cols, ("kind", "covariate_names")).astype(np.intp)
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
    return Layout(
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


def pairs(lay: Layout) -> tuple[IntArray, IntArray]:
    """Positions of (control, treatment) per comparison; control -1 where there is none."""
    pos = np.arange(lay.order.size)
    is_control = lay.has_control[lay.group] & (pos == lay.first[lay.group])
    t = np.nonzero(~is_control)[0]
    c = np.where(lay.has_control[lay.group[t]], lay.first[lay.group[t]], -1)
    return c, t
