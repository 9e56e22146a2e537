"""Assignment: which variant a unit gets, and why (scalar and vectorized).

:func:`assign` is a pure function of (unit id, attributes, spec, now): no I/O, no clock
(``now`` is passed in, and needed only by time-based specs), the same answer in every
process. It runs, in order:

1. the gates of :mod:`proving.assign.targeting` (kill switch, forced variant, schedule,
   missing unit, allowlist, targeting condition);
2. the placement of :mod:`proving.assign.layers` (domain, holdout, layer slice);
3. the mode's bucketing of the unit's hash ``n = hash(seed, unit, hash_version)``
   (GrowthBook's hash, :func:`proving.assign.hashing.hash_value`):

   * ``ab``: GrowthBook bucket ranges ``[cum_i, cum_i + coverage * w_i)``;
   * ``canary``: the canary owns ``[0, coverage * w)`` and the control
     ``[1 - coverage * (1 - w), 1)``. Both ranges are anchored at a fixed end, so raising
     the canary weight ``w`` or the coverage only adds units to the canary;
   * ``shadow``: the control serves; units with ``n < coverage * sample_rate`` are
     mirrored to the candidates (``shadow_variants``);
   * ``interleave``: units with ``n < coverage`` get both rankers interleaved;
   * ``bluegreen``: everyone gets the active variant;
   * ``switchback``: the (cluster, window) is hashed instead of the unit
     (:mod:`proving.assign.switchback`).

:func:`proving.assign.batch.assign_batch` does the same over a column of unit ids with
numpy and equals this scalar path unit by unit.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from proving.assign.buckets import bucket_ranges, choose_variation
from proving.assign.hashing import hash_value
from proving.assign.layers import place
from proving.assign.switchback import (
    SwitchbackWindow,
    cluster_of,
    window_assignment,
)
from proving.assign.targeting import decide_targeting
from proving.errors import AssignmentError
from proving.spec.experiment import ExperimentSpec
from proving.spec.mode import CanarySpec, ShadowSpec, SwitchbackSpec

__all__ = ["REASONS", "Assignment", "assign", "mode_ranges", "unit_text"]

REASONS: Final = (
    "bucket",
    "kill_switch",
    "forced",
    "not_started",
    "stopped",
    "no_unit",
    "allowlist",
    "other_domain",
    "holdout",
    "other_layer_slice",
    "not_targeted",
    "coverage",
    "shadow",
    "interleave",
    "bluegreen",
    "switchback",
    "no_cluster",
)
"""Every reason an assignment can give; a batch stores their indices."""
_CODE: Final = {name: i for i, name in enumerate(REASONS)}


@dataclass(slots=True)
class Assignment:
    """The answer for one unit, with everything needed to explain it.

    Slotted and not frozen: one is built per request, and a frozen dataclass's
    ``__init__`` costs three times as much (it sets each field through
    ``object.__setattr__``). Treat it as read-only; :func:`dataclasses.replace` gives a
    changed copy.

    Attributes:
        experiment: the experiment's name.
        version: the spec version that decided.
        unit_id: the unit (None when missing).
        variant: the variant to serve (the control when the unit is not in the experiment).
        in_experiment: the unit counts in the analysis (log an exposure).
        reason: which rule decided; one of :data:`REASONS`.
        bucket: the unit's hash in [0, 1) that chose the variant (None if none was used).
        layer_bucket: the unit's hash in the experiment's layer, if any.
        value: the variant's value (any JSON).
        model: the variant's model reference, as a dict, if any.
        shadow_variants: variants mirrored off the response path (shadow mode).
        interleave_variants: variants whose results are interleaved (interleave mode).
        window: the switchback window, in switchback mode.
        in_buffer: switchback: ``now`` falls in the carry-over buffer after a switch;
            serve the variant but leave the unit out of the analysis.
        explanation: the steps that led to the answer, in words.
    """

    experiment: str
    version: int
    unit_id: str | None
    variant: str
    in_experiment: bool
    reason: str
    bucket: float | None = None
    layer_bucket: float | None = None
    value: Any = None
    model: Mapping[str, Any] | None = None
    shadow_variants: tuple[str, ...] = ()
    interleave_variants: tuple[str, ...] = ()
    window: SwitchbackWindow | None = None
    in_buffer: bool = False
    explanation: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (snake_case keys)."""
        return {
            "experiment": self.experiment,
            "version": self.version,
            "unit_id": self.unit_id,
            "variant": self.variant,
            "in_experiment": self.in_experiment,
            "reason": self.reason,
            "bucket": self.bucket,
            "layer_bucket": self.layer_bucket,
            "value": self.value,
            "model": None if self.model is None else dict(self.model),
            "shadow_variants": list(self.shadow_variants),
            "interleave_variants": list(self.interleave_variants),
            "window": None if self.window is None else self.window.to_dict(),
            "in_buffer": self.in_buffer,
            "explanation": list(self.explanation),
        }


def mode_ranges(spec: ExperimentSpec, coverage: float | None = None) -> list[tuple[float, float]]:
    """The hash range of each variant for the spec's mode (``ab`` and ``canary``).

    Args:
        spec: the experiment.
        coverage: override the spec's coverage (1.0 for allowlisted units).

    Returns:
        One ``[start, end)`` range per variant, in variant order.
    """
    c = spec.coverage if coverage is None else coverage
    if spec.mode == "canary":
        settings = spec.settings_for_mode()
        assert isinstance(settings, CanarySpec)
        w = settings.current_weight
        ranges = [(0.0, 0.0)] * len(spec.variants)
        ranges[spec.control_index] = (1.0 - c * (1.0 - w), 1.0)
        ranges[1 - spec.control_index] = (0.0, c * w)
        return ranges
    return bucket_ranges(len(spec.variants), c, list(spec.resolved_weights()))


def unit_text(unit_id: object) -> str | None:
    """A unit id as text: strings as they are, integers in decimal, None for missing."""
    if unit_id is None or isinstance(unit_id, str):
        return unit_id
    if isinstance(unit_id, int) and not isinstance(unit_id, bool):
        return str(unit_id)
    raise AssignmentError(
        f"a unit id must be a string or an integer; got {type(unit_id).__name__} "
        f"{unit_id!r}. Convert it, e.g. str(...)."
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """What :func:`assign` needs from a spec, computed once per spec object."""

    name: str
    version: int
    mode: str
    seed: str
    hash_version: int
    names: tuple[str, ...]
    control: str
    payload: Mapping[str, tuple[Any, Mapping[str, Any] | None]]
    ranges: tuple[tuple[float, float], ...]
    full_ranges: tuple[tuple[float, float], ...]
    plain: bool  # no gate can decide, except a missing unit
    placed: bool  # a domain, holdout or layer applies
    rate: float  # shadow: the sample rate (1 for interleave)
    others: tuple[str, ...]


_PLANS: dict[int, tuple[weakref.ref[ExperimentSpec], _Plan]] = {}


def _plan(spec: ExperimentSpec) -> _Plan:
    # Specs are frozen, so what is derived from them is cached, keyed by the object (a
    # weak reference, so a dropped spec also drops its plan).
    hit = _PLANS.get(id(spec))
    if hit is not None and hit[0]() is spec:
        return hit[1]
    settings = spec.settings_for_mode()
    rate = settings.sample_rate if isinstance(settings, ShadowSpec) else 1.0
    control = spec.control_name
    plan = _Plan(
        name=spec.name,
        version=spec.version,
        mode=spec.mode,
        seed=spec.hash_seed,
        hash_version=spec.hash_version,
        names=tuple(spec.variant_names),
        control=control,
        payload=MappingProxyType(
            {
                v.name: (
                    v.value,
                    None if v.model is None else MappingProxyType(v.model.model_dump()),
                )
                for v in spec.variants
            }
        ),
        ranges=tuple(mode_ranges(spec)),
        full_ranges=tuple(mode_ranges(spec, 1.0)),
        plain=spec.enabled
        and not spec.forced
        and not spec.allowlist
        and spec.targeting is None
        and spec.schedule is None
        and spec.mode != "switchback",
        placed=spec.domain is not None or spec.holdout is not None or spec.layer is not None,
        rate=rate,
        others=tuple(v for v in spec.variant_names if v != control),
    )
    _PLANS[id(spec)] = (weakref.ref(spec), plan)
    weakref.finalize(spec, _PLANS.pop, id(spec), None)
    return plan


def _result(
    spec: ExperimentSpec, plan: _Plan, unit_id: str | None, variant: str, in_exp: bool,
    reason: str, steps: list[str], **extra: Any,
) -> Assignment:  # fmt: skip
    value, model = plan.payload[variant]
    return Assignment(
        plan.name, plan.version, unit_id, variant, in_exp, reason,
        value=value, model=model, explanation=tuple(steps), **extra,
    )  # fmt: skip


def assign(
    unit_id: str | int | None,
    attributes: Mapping[str, Any] | None,
    spec: ExperimentSpec,
    *,
    now: datetime | None = None,
    explain: bool = False,
) -> Assignment:
    """Assign one unit to a variant of an experiment.

    Args:
        unit_id: the unit's id; when None it is read from ``attributes[spec.unit]``.
        attributes: the unit's attributes, for targeting (and the switchback cluster).
        spec: the experiment (use :func:`proving.spec.load_spec`).
        now: the current time, with a zone; required when the spec has a schedule or is
            a switchback, ignored otherwise.
        explain: fill ``explanation`` with the steps in words (off on the hot path).

    Returns:
        The :class:`Assignment`, with the reason and the hashes that decided it.

    Raises:
        AssignmentError: a time-based spec without ``now``, or a unit id of a wrong type.

    Example:
        >>> from proving.spec import ExperimentSpec
        >>> spec = ExperimentSpec(name="ranker-v2",
        ...     variants=[{"name": "control"}, {"name": "treatment"}])
        >>> a = assign("user-42", {}, spec)
        >>> a.variant in ("control", "treatment"), a.reason
        (True, 'bucket')
    """
    plan = _plan(spec)
    if unit_id is None and attributes is not None:
        unit_id = attributes.get(spec.unit)
    uid = unit_id if type(unit_id) is str else unit_text(unit_id)
    steps: list[str] = []
    bypass = False
    if plan.plain and uid and (now is None or now.tzinfo is not None):
        if explain:
            steps.append("passes every gate")
    else:
        gate = decide_targeting(uid, attributes, spec, now)
        if explain:
            steps.append(gate.detail)
        if gate.variant is not None:
            return _result(spec, plan, uid, gate.variant, False, str(gate.reason), steps)
        bypass = gate.bypass
    assert uid is not None  # decide_targeting settles missing units
    layer_bucket: float | None = None
    if plan.placed and not bypass:
        placed = place(uid, spec)
        if explain:
            steps.append(placed.detail)
        layer_bucket = placed.layer_bucket
        if not placed.placed:
            return _result(
                spec, plan, uid, plan.control, False, str(placed.reason), steps,
                layer_bucket=layer_bucket,
            )  # fmt: skip
    mode = plan.mode
    if mode == "switchback":
        return _assign_switchback(spec, plan, uid, attributes, now, steps, explain)
    if mode == "bluegreen":
        active = getattr(spec.bluegreen, "active", None) or plan.control
        if explain:
            steps.append(f"blue-green: every unit gets the active variant '{active}'")
        return _result(spec, plan, uid, active, True, "bluegreen", steps, layer_bucket=layer_bucket)
    n = hash_value(plan.seed, uid, plan.hash_version)
    assert n is not None  # the spec allows hash versions 1 and 2 only
    hashed = f"hash({spec.hash_seed!r}, {uid!r}, v{spec.hash_version}) = {n:.4f}" if explain else ""
    if mode == "shadow" or mode == "interleave":
        return _assign_mirrored(spec, plan, uid, n, bypass, layer_bucket, steps, hashed)
    ranges = plan.full_ranges if bypass else plan.ranges
    i = choose_variation(n, ranges)
    if i < 0:
        if explain:
            steps.append(f"{hashed} falls in no variant's range (coverage {spec.coverage:g})")
        return _result(
            spec, plan, uid, plan.control, False, "coverage", steps, bucket=n,
            layer_bucket=layer_bucket,
        )  # fmt: skip
    name = plan.names[i]
    if explain:
        steps.append(f"{hashed} is in [{ranges[i][0]:.4f}, {ranges[i][1]:.4f}): variant '{name}'")
    return _result(
        spec, plan, uid, name, True, "allowlist" if bypass else "bucket", steps, bucket=n,
        layer_bucket=layer_bucket,
    )  # fmt: skip


def _assign_mirrored(
    spec: ExperimentSpec, plan: _Plan, uid: str, n: float, bypass: bool,
    layer_bucket: float | None, steps: list[str], hashed: str,
) -> Assignment:  # fmt: skip
    """Shadow and interleave: the control serves; included units also run the others."""
    control, others = plan.control, plan.others
    cutoff = (1.0 if bypass else spec.coverage) * plan.rate
    extra: dict[str, Any] = {"bucket": n, "layer_bucket": layer_bucket}
    if n >= cutoff:
        if hashed:
            steps.append(f"{hashed} >= {cutoff:g} (coverage x sample rate): not included")
        return _result(spec, plan, uid, control, False, "coverage", steps, **extra)
    if spec.mode == "shadow":
        if hashed:
            steps.append(f"{hashed} < {cutoff:g}: served by '{control}', mirrored to {others}")
        return _result(
            spec, plan, uid, control, True, "shadow", steps, shadow_variants=others, **extra
        )
    if hashed:
        steps.append(f"{hashed} < {cutoff:g}: results of {[control, *others]} interleaved")
    return _result(
        spec, plan, uid, control, True, "interleave", steps,
        interleave_variants=(control, *others), **extra,
    )  # fmt: skip


def _assign_switchback(
    spec: ExperimentSpec,
    plan: _Plan,
    uid: str,
    attributes: Mapping[str, Any] | None,
    now: datetime | None,
    steps: list[str],
    explain: bool,
) -> Assignment:
    settings = spec.settings_for_mode()
    assert isinstance(settings, SwitchbackSpec) and now is not None
    cluster = cluster_of(settings, attributes)
    if cluster is None:
        if explain:
            steps.append(f"attribute '{settings.cluster_attribute}' (the cluster) is missing")
        return _result(spec, plan, uid, plan.control, False, "no_cluster", steps)
    window = window_assignment(spec, cluster, now)
    buffered = window.in_buffer and now < window.buffer_end
    if explain:
        steps.append(
            f"cluster '{cluster}', window {window.index} [{window.start.isoformat()}, "
            f"{window.end.isoformat()}): hash {window.bucket:.4f} -> '{window.variant}'"
            + (
                f"; in the carry-over buffer until {window.buffer_end.isoformat()}"
                if buffered
                else ""
            )
        )
    reason = "switchback" if window.in_experiment else "coverage"
    return _result(
        spec, plan, uid, window.variant, window.in_experiment, reason, steps,
        bucket=window.bucket, window=window, in_buffer=buffered,
    )  # fmt: skip
