"""Domains, layers, launch layers and holdouts (Tang et al., KDD 2010).

Google's "Overlapping Experiment Infrastructure" lets many experiments run at once on the
same traffic:

* a **domain** is a slice of units; domains are disjoint (one hash, salt ``domain.salt``);
* a **layer** hashes units with its own salt; experiments in one layer own disjoint
  slices of that hash, so they are *mutually exclusive*; two layers' hashes are
  independent, so a unit is in one experiment per layer and the layers' assignments are
  *independent* (the test suite checks both, by exclusivity and by a chi-square test on
  the cross-tab);
* a **launch layer** overlaps every domain and carries launches whose parameters are
  defaults that experiment layers override (:func:`merge_parameters`);
* a **holdout** keeps a slice of units out of every experiment of its domain.

Every hash here is GrowthBook's hash version 2 over a seed that names its purpose
(``proving/layer/<salt>/``), so a layer hash never coincides with an experiment hash of
the same name, and each is computed with :func:`proving.assign.hashing.hash_value` (scalar)
or :func:`proving.assign.hashing.hash_batch` (vectorized) with identical results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from proving.assign.hashing import hash_batch, hash_value
from proving.spec.experiment import ExperimentSpec
from proving.spec.placement import DomainPlacementSpec, HoldoutSpec, LayerPlacementSpec
from proving.spec.program import ProgramSpec

if TYPE_CHECKING:
    from proving.assign.assignment import Assignment

__all__ = [
    "PlacementResult",
    "ProgramAssignment",
    "assign_program",
    "domain_seed",
    "holdout_seed",
    "layer_seed",
    "merge_parameters",
    "place",
    "place_batch",
]

PLACEMENT_HASH_VERSION: Final = 2


def domain_seed(domain: DomainPlacementSpec) -> str:
    """The hash seed of a domain split."""
    return f"proving/domain/{domain.salt}/"


def layer_seed(layer: LayerPlacementSpec) -> str:
    """The hash seed of a layer."""
    return f"proving/layer/{layer.hash_salt}/"


def holdout_seed(holdout: HoldoutSpec) -> str:
    """The hash seed of a holdout."""
    return f"proving/holdout/{holdout.hash_salt}/"


@dataclass(frozen=True)
class PlacementResult:
    """Whether a unit reaches an experiment's slice of traffic, and why not.

    Attributes:
        placed: the unit is in the experiment's domain and layer slice and not held out.
        reason: ``None`` when placed, else ``"other_domain"``, ``"holdout"`` or
            ``"other_layer_slice"``.
        detail: a sentence explaining the decision, with the hashes.
        layer_bucket: the unit's hash in the layer, if the experiment has a layer.
    """

    placed: bool
    reason: str | None
    detail: str
    layer_bucket: float | None = None


def _in(n: float, rng: tuple[float, float]) -> bool:
    return rng[0] <= n < rng[1]


def place(unit_id: str, spec: ExperimentSpec) -> PlacementResult:
    """Check the domain, holdout and layer slice of one unit for one experiment.

    Args:
        unit_id: the unit's id.
        spec: the experiment, with its placement (``domain``, ``holdout``, ``layer``).

    Returns:
        The placement, with the reason and the hashes that decided it.

    Example:
        >>> from proving.spec import ExperimentSpec
        >>> spec = ExperimentSpec(name="e", variants=[{"name": "a"}, {"name": "b"}],
        ...                       layer={"name": "ranking", "range": [0.0, 0.5]})
        >>> place("user-1", spec).reason in (None, "other_layer_slice")
        True
    """
    notes: list[str] = []
    if spec.domain is not None:
        d = hash_value(domain_seed(spec.domain), unit_id, PLACEMENT_HASH_VERSION)
        assert d is not None  # version 2 always hashes
        lo, hi = spec.domain.range
        if not _in(d, spec.domain.range):
            return PlacementResult(
                False,
                "other_domain",
                f"domain hash {d:.4f} is outside domain '{spec.domain.name}' [{lo}, {hi})",
            )
        notes.append(f"domain hash {d:.4f} is in domain '{spec.domain.name}' [{lo}, {hi})")
    if spec.holdout is not None:
        h = hash_value(holdout_seed(spec.holdout), unit_id, PLACEMENT_HASH_VERSION)
        assert h is not None
        name, fraction = spec.holdout.name, spec.holdout.fraction
        if h < fraction:
            return PlacementResult(
                False,
                "holdout",
                "; ".join(
                    [*notes, f"holdout hash {h:.4f} < {fraction}: the unit is in holdout "
                     f"'{name}', kept out of every experiment"]
                ),
            )  # fmt: skip
        notes.append(f"holdout hash {h:.4f} >= {fraction}: not in holdout '{name}'")
    if spec.layer is None:
        notes.append("no layer: the experiment sees all traffic")
        return PlacementResult(True, None, "; ".join(notes))
    n = hash_value(layer_seed(spec.layer), unit_id, PLACEMENT_HASH_VERSION)
    assert n is not None
    lo, hi = spec.layer.range
    if not _in(n, spec.layer.range):
        notes.append(
            f"layer hash {n:.4f} is outside this experiment's slice [{lo}, {hi}) of layer "
            f"'{spec.layer.name}' (another experiment of the layer may own it)"
        )
        return PlacementResult(False, "other_layer_slice", "; ".join(notes), n)
    notes.append(f"layer hash {n:.4f} is in slice [{lo}, {hi}) of layer '{spec.layer.name}'")
    return PlacementResult(True, None, "; ".join(notes), n)


def place_batch(
    unit_ids: NDArray[np.str_], spec: ExperimentSpec
) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    """Vectorized :func:`place`: a reason code per unit and the layer hashes.

    Returns:
        ``(codes, layer_bucket)``: ``codes`` is 0 (placed), 1 (other_domain), 2 (holdout)
        or 3 (other_layer_slice); ``layer_bucket`` is NaN without a layer.
    """
    n = unit_ids.shape[0]
    codes = np.zeros(n, dtype=np.int8)
    if spec.domain is not None:
        d = hash_batch(domain_seed(spec.domain), unit_ids, PLACEMENT_HASH_VERSION)
        lo, hi = spec.domain.range
        codes[~((d >= lo) & (d < hi))] = 1
    if spec.holdout is not None:
        h = hash_batch(holdout_seed(spec.holdout), unit_ids, PLACEMENT_HASH_VERSION)
        codes[(codes == 0) & (h < spec.holdout.fraction)] = 2
    if spec.layer is None:
        return codes, np.full(n, np.nan)
    b = hash_batch(layer_seed(spec.layer), unit_ids, PLACEMENT_HASH_VERSION)
    lo, hi = spec.layer.range
    codes[(codes == 0) & ~((b >= lo) & (b < hi))] = 3
    return codes, b


PLACEMENT_REASONS: Final = (None, "other_domain", "holdout", "other_layer_slice")


def merge_parameters(
    assignments: Iterable[tuple[bool, bool, Any]],
) -> dict[str, Any]:
    """Merge the parameters of a unit's assignments: launch layers first, then experiments.

    Tang et al. (2010), section 4: a launch layer's values are defaults; an experiment
    layer that sets the same parameter overrides them. Only mapping values take part.

    Args:
        assignments: ``(in_experiment, from_launch_layer, value)`` for each experiment.

    Returns:
        The merged parameters.

    Example:
        >>> merge_parameters([(True, False, {"k": 2}), (True, True, {"k": 1, "x": 0})])
        {'k': 2, 'x': 0}
    """
    ordered = sorted(assignments, key=lambda a: not a[1])  # launch layers first
    merged: dict[str, Any] = {}
    for in_experiment, _launch, value in ordered:
        if in_experiment and isinstance(value, Mapping):
            merged.update(value)
    return merged


@dataclass(frozen=True)
class ProgramAssignment:
    """A unit's assignments in every experiment of a program, and its merged parameters.

    Attributes:
        unit_id: the unit.
        assignments: the assignment in each experiment, by experiment name.
        parameters: variant values merged launch layers first, then experiment layers
            (:func:`merge_parameters`), from the experiments the unit is in.
    """

    unit_id: str | None
    assignments: dict[str, Assignment]
    parameters: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "unit_id": self.unit_id,
            "assignments": {k: v.to_dict() for k, v in self.assignments.items()},
            "parameters": self.parameters,
        }


def assign_program(
    unit_id: str | None,
    attributes: Mapping[str, Any] | None,
    program: ProgramSpec,
    *,
    now: datetime | None = None,
) -> ProgramAssignment:
    """Assign a unit in every experiment of a program (one per layer it reaches).

    Example:
        >>> from proving.spec import parse_spec
        >>> program = parse_spec(open("docs/examples/search-program.yaml").read())
        >>> sorted(assign_program("user-7", {}, program).parameters)  # doctest: +SKIP
        ['bm25_boost', 'snippet_chars', 'spellcheck']
    """
    # Imported here: assignment.py depends on this module's placement functions.
    from proving.assign.assignment import assign

    results = {
        e.name: assign(unit_id, attributes, e, now=now) for e in program.resolved_experiments()
    }
    launch = {
        e.name: e.layer is not None and e.layer.launch for e in program.resolved_experiments()
    }
    parameters = merge_parameters(
        (a.in_experiment, launch[name], a.value) for name, a in results.items()
    )
    return ProgramAssignment(unit_id, results, parameters)
