"""Targeting and control: kill switch, forced variants, schedule, allowlist, segments.

Before a unit is hashed into a variant, these gates run in this order, and the first that
decides names itself as the assignment's ``reason``:

1. ``kill_switch``: the experiment is disabled (``enabled: false``): everyone gets the
   control, immediately, forced units included.
2. ``forced``: the unit id is in ``forced`` (QA, demos): it gets that variant and is
   *not* in the experiment (its data must not bias the analysis), as in GrowthBook.
3. ``not_started`` / ``stopped``: outside ``schedule`` (start inclusive, stop exclusive).
4. ``no_unit``: the unit id is missing or empty (GrowthBook: no hash attribute).
5. ``allowlist``: the unit id is allowlisted (beta testers): it skips placement,
   targeting and coverage, and is hashed into a variant as usual.
6. ``not_targeted``: the unit's attributes fail the ``targeting`` condition (a segment,
   GrowthBook's Mongo-style condition, evaluated by
   :func:`proving.assign.conditions.eval_condition`).

Only the schedule reads the clock, and only through the ``now`` passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from proving.assign.conditions import eval_condition
from proving.errors import AssignmentError
from proving.spec.experiment import ExperimentSpec

__all__ = [
    "GATE_REASONS",
    "TargetingDecision",
    "check_now",
    "decide_targeting",
    "decide_targeting_batch",
    "schedule_reason",
]


@dataclass(frozen=True)
class TargetingDecision:
    """What the gates decided for one unit.

    Attributes:
        reason: the gate that decided (``kill_switch``, ``forced``, ``not_started``,
            ``stopped``, ``no_unit``, ``not_targeted``, ``allowlist``), or ``None`` when
            the unit goes on to placement and bucketing.
        variant: the variant a gate fixed (control, or the forced variant), else None.
        bypass: the unit is allowlisted: skip placement, targeting and coverage.
        detail: a sentence explaining the decision.
    """

    reason: str | None
    variant: str | None
    bypass: bool
    detail: str

    @property
    def decided(self) -> bool:
        """True when a gate settled the assignment (no hashing needed)."""
        return self.variant is not None


def check_now(spec: ExperimentSpec, now: datetime | None) -> None:
    """Refuse a time-based spec without ``now``, and a ``now`` without a zone.

    Raises:
        AssignmentError: naming the experiment and the fix.
    """
    if now is not None and now.tzinfo is None:
        raise AssignmentError(
            f"experiment '{spec.name}': `now` must carry a time zone; got {now.isoformat()}. "
            "Use e.g. datetime.now(UTC) or 2026-01-31T09:00:00Z."
        )
    if now is None and spec.is_time_based():
        what = "switchback mode" if spec.mode == "switchback" else "a schedule"
        raise AssignmentError(
            f"experiment '{spec.name}' has {what}, so its assignment depends on the time; "
            "`now` is missing. Pass now=datetime.now(UTC) (--now on the command line)."
        )


def schedule_reason(spec: ExperimentSpec, now: datetime | None) -> str | None:
    """``"not_started"``, ``"stopped"`` or None (running, or no schedule)."""
    schedule = spec.schedule
    if schedule is None or now is None:
        return None
    if schedule.start is not None and now < schedule.start:
        return "not_started"
    if schedule.stop is not None and now >= schedule.stop:
        return "stopped"
    return None


def targeting_attributes(
    unit_id: str | None, attributes: Mapping[str, Any] | None, spec: ExperimentSpec
) -> dict[str, Any]:
    """The attributes a condition sees: the given ones plus the unit id under ``spec.unit``."""
    attrs = dict(attributes or {})
    if unit_id is not None:
        attrs.setdefault(spec.unit, unit_id)
    return attrs


def decide_targeting(
    unit_id: str | None,
    attributes: Mapping[str, Any] | None,
    spec: ExperimentSpec,
    now: datetime | None = None,
) -> TargetingDecision:
    """Run the gates for one unit.

    Args:
        unit_id: the unit's id (None or "" when unknown).
        attributes: the unit's attributes, for the targeting condition.
        spec: the experiment.
        now: the current time, required when the spec is time-based.

    Returns:
        The decision.

    Raises:
        AssignmentError: the spec is time-based and ``now`` is missing or has no zone.

    Example:
        >>> from proving.spec import ExperimentSpec
        >>> spec = ExperimentSpec(name="e", variants=[{"name": "a"}, {"name": "b"}],
        ...                       forced={"qa-1": "b"})
        >>> decide_targeting("qa-1", {}, spec).reason
        'forced'
    """
    check_now(spec, now)
    control = spec.control_name
    if not spec.enabled:
        return TargetingDecision(
            "kill_switch", control, False, "the experiment is disabled (kill switch): control"
        )
    if unit_id and unit_id in spec.forced:
        variant = spec.forced[unit_id]
        return TargetingDecision(
            "forced", variant, False, f"unit '{unit_id}' is forced to '{variant}'"
        )
    when = schedule_reason(spec, now)
    if when is not None:
        assert spec.schedule is not None and now is not None
        bound = spec.schedule.start if when == "not_started" else spec.schedule.stop
        assert bound is not None
        verb = "starts" if when == "not_started" else "stopped"
        return TargetingDecision(
            when,
            control,
            False,
            f"the experiment {verb} at {bound.isoformat()}; now is {now.isoformat()}",
        )
    if not unit_id:
        return TargetingDecision(
            "no_unit",
            control,
            False,
            f"no unit id (attribute '{spec.unit}' is missing or empty): control",
        )
    if unit_id in spec.allowlist:
        return TargetingDecision(
            "allowlist", None, True, f"unit '{unit_id}' is allowlisted: skips targeting"
        )
    if spec.targeting is not None:
        attrs = targeting_attributes(unit_id, attributes, spec)
        if not eval_condition(attrs, spec.targeting, spec.saved_groups):
            return TargetingDecision(
                "not_targeted", control, False, "the attributes do not match `targeting`"
            )
    return TargetingDecision(None, None, False, "passes every gate")


GATE_REASONS: Final = (
    "",
    "kill_switch",
    "forced",
    "not_started",
    "stopped",
    "no_unit",
    "allowlist",
    "not_targeted",
)
"""Codes of :func:`decide_targeting_batch`: index 0 means "goes on"."""
_GATE: Final = {name: i for i, name in enumerate(GATE_REASONS)}


def decide_targeting_batch(
    ids: NDArray[np.str_],
    spec: ExperimentSpec,
    attributes: Sequence[Mapping[str, Any]] | None,
    now: datetime | None,
) -> tuple[NDArray[np.int8], NDArray[np.int64]]:
    """Vectorized :func:`decide_targeting` over a column of unit ids.

    Returns:
        ``(codes, forced_index)``: the deciding gate per unit as an index into
        :data:`GATE_REASONS` (0 where the unit goes on), and the forced variant's index
        (-1 where none).

    Raises:
        AssignmentError: the spec has targeting and ``attributes`` is missing, or the
            spec is time-based and ``now`` is missing.
    """
    check_now(spec, now)
    n = ids.shape[0]
    codes = np.zeros(n, dtype=np.int8)
    forced_index = np.full(n, -1, dtype=np.int64)
    if not spec.enabled:
        codes[:] = _GATE["kill_switch"]
        return codes, forced_index
    if spec.forced:
        names = spec.variant_names
        for i in np.flatnonzero(np.isin(ids, list(spec.forced)) & (ids != "")):
            codes[i] = _GATE["forced"]
            forced_index[i] = names.index(spec.forced[str(ids[i])])
    when = schedule_reason(spec, now)
    if when is not None:
        codes[codes == 0] = _GATE[when]
        return codes, forced_index
    codes[(codes == 0) & (ids == "")] = _GATE["no_unit"]
    if spec.allowlist:
        codes[(codes == 0) & np.isin(ids, spec.allowlist)] = _GATE["allowlist"]
    if spec.targeting is not None:
        if attributes is None:
            raise AssignmentError(
                f"experiment '{spec.name}' has targeting, so a batch needs `attributes` "
                "(one mapping per unit). Pass attributes=[...]."
            )
        for row in np.flatnonzero(codes == 0).tolist():
            attrs = targeting_attributes(str(ids[row]), attributes[row], spec)
            if not eval_condition(attrs, spec.targeting, spec.saved_groups):
                codes[row] = _GATE["not_targeted"]
    return codes, forced_index
