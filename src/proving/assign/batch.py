"""Vectorized assignment: a whole column of unit ids at once, identical to :func:`assign`.

:func:`assign_batch` runs the same steps as :func:`proving.assign.assignment.assign`
with numpy: the gates (:func:`proving.assign.targeting.decide_targeting_batch`), the
placement (:func:`proving.assign.layers.place_batch`) and the mode's bucketing over
:func:`proving.assign.hashing.hash_batch` and
:func:`proving.assign.buckets.choose_variation_batch`. The test suite checks it equals
the scalar path unit by unit, in every mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from proving.assign.assignment import _CODE, REASONS, mode_ranges, unit_text
from proving.assign.buckets import choose_variation_batch
from proving.assign.hashing import hash_batch
from proving.assign.layers import PLACEMENT_REASONS, place_batch
from proving.assign.switchback import assign_windows_batch, cluster_of
from proving.assign.targeting import GATE_REASONS, check_now, decide_targeting_batch
from proving.errors import AssignmentError
from proving.spec.experiment import ExperimentSpec
from proving.spec.mode import ShadowSpec, SwitchbackSpec

__all__ = ["AssignmentBatch", "assign_batch"]

# Gate codes -> reason codes (-1: the unit goes on to placement and bucketing).
_FROM_GATE = np.array([-1 if not r else _CODE[r] for r in GATE_REASONS], dtype=np.int8)
# Placement codes -> reason codes (-1: placed).
_FROM_PLACE = np.array([-1 if r is None else _CODE[r] for r in PLACEMENT_REASONS], dtype=np.int8)


@dataclass(frozen=True)
class AssignmentBatch:
    """Assignments of a column of units, as numpy arrays (one entry per unit).

    Attributes:
        experiment: the experiment's name.
        variant_names: the experiment's variants; ``variant_index`` points into it.
        unit_ids: the unit ids, as a numpy string array.
        variant_index: index of the served variant.
        in_experiment: the unit counts in the analysis.
        reason_code: index into :data:`REASONS`.
        bucket: the hash that chose the variant (NaN where none was used).
        layer_bucket: the unit's layer hash (NaN without a layer, or where not computed).
        in_buffer: switchback carry-over flag.
    """

    experiment: str
    variant_names: tuple[str, ...]
    unit_ids: NDArray[np.str_]
    variant_index: NDArray[np.int64]
    in_experiment: NDArray[np.bool_]
    reason_code: NDArray[np.int8]
    bucket: NDArray[np.float64]
    layer_bucket: NDArray[np.float64]
    in_buffer: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.variant_index.shape[0])

    @property
    def variants(self) -> NDArray[np.str_]:
        """The served variant's name for each unit."""
        return np.asarray(self.variant_names)[self.variant_index]

    @property
    def reasons(self) -> NDArray[np.str_]:
        """The reason's name for each unit."""
        return np.asarray(REASONS)[self.reason_code]

    def to_columns(self) -> dict[str, NDArray[Any]]:
        """Named columns, ready for ``pandas.DataFrame``, ``pyarrow.table`` or DuckDB."""
        return {
            "unit_id": self.unit_ids,
            "variant": self.variants,
            "in_experiment": self.in_experiment,
            "reason": self.reasons,
            "bucket": self.bucket,
            "layer_bucket": self.layer_bucket,
            "in_buffer": self.in_buffer,
        }

    def counts(self) -> dict[str, int]:
        """Units in the experiment per variant (the denominators of an SRM check)."""
        idx = self.variant_index[self.in_experiment]
        totals = np.bincount(idx, minlength=len(self.variant_names))
        return {name: int(totals[i]) for i, name in enumerate(self.variant_names)}


def _as_ids(unit_ids: Sequence[Any] | NDArray[Any]) -> NDArray[np.str_]:
    arr = np.asarray(unit_ids)
    if arr.ndim != 1:
        raise AssignmentError(
            f"assign_batch: `unit_ids` must be one-dimensional; got shape {arr.shape}. "
            "Pass a flat column, e.g. ids.ravel()."
        )
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind in "iu":
        return arr.astype(str)
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8")
    texts = [unit_text(v) for v in arr.tolist()]
    return np.asarray(["" if t is None else t for t in texts], dtype=str)


def assign_batch(
    unit_ids: Sequence[Any] | NDArray[Any],
    spec: ExperimentSpec,
    *,
    attributes: Sequence[Mapping[str, Any]] | None = None,
    now: datetime | None = None,
) -> AssignmentBatch:
    """Assign a whole column of units at once, identically to :func:`assign`.

    Args:
        unit_ids: unit ids (a numpy ``U`` array is fastest; ints are converted to text;
            empty strings and None mean "no unit").
        spec: the experiment.
        attributes: one attribute mapping per unit; needed when the spec has targeting or
            a switchback cluster attribute.
        now: the current time, with a zone (time-based specs).

    Returns:
        An :class:`AssignmentBatch`.

    Raises:
        AssignmentError: a time-based spec without ``now``, attributes missing or of the
            wrong length, or ids that are not one-dimensional.

    Example:
        >>> from proving.spec import ExperimentSpec
        >>> spec = ExperimentSpec(name="e", variants=[{"name": "a"}, {"name": "b"}])
        >>> from proving.assign import assign
        >>> batch = assign_batch(np.array(["u1", "u2", "u3"]), spec)
        >>> batch.variants.tolist() == [assign(u, {}, spec).variant for u in ("u1", "u2", "u3")]
        True
    """
    ids = _as_ids(unit_ids)
    n = ids.shape[0]
    check_now(spec, now)
    if attributes is not None and len(attributes) != n:
        raise AssignmentError(
            f"assign_batch: {len(attributes)} attribute rows for {n} unit ids. Pass one "
            "mapping per unit, in the same order."
        )
    control = spec.control_index
    variant = np.full(n, control, dtype=np.int64)
    in_exp = np.zeros(n, dtype=bool)
    code = np.full(n, -1, dtype=np.int8)  # -1: still undecided
    bucket = np.full(n, np.nan)
    layer_bucket = np.full(n, np.nan)
    in_buffer = np.zeros(n, dtype=bool)
    out = AssignmentBatch(
        spec.name, tuple(spec.variant_names), ids, variant, in_exp, code, bucket,
        layer_bucket, in_buffer,
    )  # fmt: skip
    if not spec.enabled:
        code[:] = _CODE["kill_switch"]
        return out
    gate_codes, forced_index = decide_targeting_batch(ids, spec, attributes, now)
    code[:] = _FROM_GATE[gate_codes]
    forced = forced_index >= 0
    variant[forced] = forced_index[forced]
    bypass = code == _CODE["allowlist"]
    open_ = code == -1
    placed = spec.domain is not None or spec.holdout is not None or spec.layer is not None
    if placed and open_.any():
        everyone = bool(open_.all())
        place_codes, lb = place_batch(ids if everyone else ids[open_], spec)
        if everyone:
            layer_bucket[:] = lb
            code[:] = _FROM_PLACE[place_codes]
        else:
            layer_bucket[open_] = lb
            code[open_] = _FROM_PLACE[place_codes]
    todo = (code == -1) | bypass
    if todo.any():
        _bucket_batch(ids, spec, attributes, now, todo, bypass, out)
    return out


def _bucket_batch(
    ids: NDArray[np.str_],
    spec: ExperimentSpec,
    attributes: Sequence[Mapping[str, Any]] | None,
    now: datetime | None,
    todo: NDArray[np.bool_],
    bypass: NDArray[np.bool_],
    out: AssignmentBatch,
) -> None:
    """Vectorized mode bucketing for the units in ``todo``."""
    code, variant, in_exp = out.reason_code, out.variant_index, out.in_experiment
    rows = np.flatnonzero(todo)
    if spec.mode == "switchback":
        settings = spec.settings_for_mode()
        assert isinstance(settings, SwitchbackSpec) and now is not None
        if settings.cluster_attribute is not None and attributes is None:
            raise AssignmentError(
                f"experiment '{spec.name}' is a switchback over clusters "
                f"('{settings.cluster_attribute}'), so assign_batch needs `attributes`."
            )
        clusters = [
            cluster_of(settings, None if attributes is None else attributes[int(i)]) for i in rows
        ]
        idx, inside, b, buffered = assign_windows_batch(spec, clusters, now)
        missing = idx < 0
        variant[rows] = np.where(missing, spec.control_index, idx)
        in_exp[rows] = inside
        out.bucket[rows] = b
        out.in_buffer[rows] = buffered
        reason = np.where(inside, _CODE["switchback"], _CODE["coverage"])
        code[rows] = np.where(missing, _CODE["no_cluster"], reason)
        return
    if spec.mode == "bluegreen":
        active = getattr(spec.bluegreen, "active", None) or spec.control_name
        variant[rows] = spec.variant_names.index(active)
        in_exp[rows] = True
        code[rows] = _CODE["bluegreen"]
        return
    # With every unit still open (the common case), work on whole arrays: no copies.
    sel: NDArray[np.intp] | slice = slice(None) if rows.size == ids.shape[0] else rows
    n = hash_batch(spec.hash_seed, ids[sel], spec.hash_version)
    out.bucket[sel] = n
    allowed = bypass[sel]
    if spec.mode in ("shadow", "interleave"):
        settings = spec.settings_for_mode()
        rate = settings.sample_rate if isinstance(settings, ShadowSpec) else 1.0
        inside = n < np.where(allowed, 1.0, spec.coverage) * rate
        in_exp[sel] = inside
        code[sel] = np.where(inside, _CODE[spec.mode], _CODE["coverage"])
        return
    chosen = choose_variation_batch(n, mode_ranges(spec))
    if allowed.any():  # allowlisted units skip coverage: full ranges
        chosen[allowed] = choose_variation_batch(n[allowed], mode_ranges(spec, 1.0))
    inside = chosen >= 0
    variant[sel] = np.where(inside, chosen, spec.control_index)
    in_exp[sel] = inside
    hit = np.where(allowed, _CODE["allowlist"], _CODE["bucket"])
    code[sel] = np.where(inside, hit, _CODE["coverage"])
