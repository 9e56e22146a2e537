"""A program: many experiments sharing traffic through domains and layers.

Tang, Agarwal, O'Brien and Meyer (KDD 2010), "Overlapping Experiment Infrastructure":

* **domains** split units into disjoint slices (by a hash with the program's
  ``domain_salt``); each domain may keep a **holdout** out of all its experiments;
* a domain holds **layers**; each layer hashes units with its own salt, so layers are
  independent and one unit can be in one experiment per layer;
* within a layer, experiments own disjoint slices of the layer hash (``experiments:
  {name: [start, end]}``), so they are mutually exclusive;
* **launch layers** (top level) overlap every domain: they carry launches whose variant
  values are defaults that experiment layers override.

The program checks all of this at load and gives each experiment its resolved placement
(:class:`~proving.spec.placement.DomainPlacementSpec`,
:class:`~proving.spec.placement.LayerPlacementSpec`,
:class:`~proving.spec.placement.HoldoutSpec`), so that
:func:`proving.assign.assign` decides for one experiment on its own.
"""

from __future__ import annotations

import itertools

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from proving.spec.experiment import ExperimentSpec
from proving.spec.issues import rule_error
from proving.spec.metric import NAME_PATTERN
from proving.spec.placement import (
    DomainPlacementSpec,
    HoldoutSpec,
    LayerPlacementSpec,
    check_range,
)

__all__ = ["DomainSpec", "LayerSpec", "ProgramSpec"]


def _overlaps(ranges: dict[str, tuple[float, float]]) -> tuple[str, str] | None:
    ordered = sorted(ranges.items(), key=lambda item: item[1])
    for (a, ra), (b, rb) in itertools.pairwise(ordered):
        if rb[0] < ra[1]:
            return a, b
    return None


class LayerSpec(BaseModel):
    """A layer: a hash salt and the slices its experiments own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    salt: str | None = None
    experiments: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _disjoint(self) -> LayerSpec:
        for name, (start, end) in self.experiments.items():
            if not (0.0 <= start < end <= 1.0):
                raise rule_error(
                    f"the slice of '{name}' in layer '{self.name}' must be [start, end) with "
                    f"0 <= start < end <= 1; got [{start}, {end}]",
                    "write e.g. [0.0, 0.5] for the first half.",
                    ("experiments", name),
                )
        pair = _overlaps(self.experiments)
        if pair is not None:
            a, b = pair
            raise rule_error(
                f"experiments '{a}' {list(self.experiments[a])} and '{b}' "
                f"{list(self.experiments[b])} overlap in layer '{self.name}'; experiments "
                "in one layer must own disjoint slices",
                "shrink one slice so they do not overlap, or move one experiment to another layer.",
                ("experiments", b),
            )
        return self


class DomainSpec(BaseModel):
    """A domain: a slice of all units, its optional holdout and its layers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    range: tuple[float, float] = (0.0, 1.0)
    holdout: HoldoutSpec | None = None
    layers: list[LayerSpec] = Field(default_factory=list)

    @field_validator("range")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        return check_range(value, "domain range")


class ProgramSpec(BaseModel):
    """Experiments, with the domains and layers they share traffic through.

    Example:
        >>> program = ProgramSpec(
        ...     name="search",
        ...     domains=[DomainSpec(name="main", layers=[
        ...         LayerSpec(name="ranking", experiments={"a": (0, 0.5), "b": (0.5, 1)})])],
        ...     experiments=[
        ...         ExperimentSpec(name=n, variants=[{"name": "c"}, {"name": "t"}])
        ...         for n in ("a", "b")
        ...     ],
        ... )
        >>> program.experiment("b").layer.range
        (0.5, 1.0)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(default=1, ge=1)
    description: str = ""
    domain_salt: str = Field(default="domains", min_length=1)
    domains: list[DomainSpec] = Field(default_factory=list)
    launch_layers: list[LayerSpec] = Field(default_factory=list)
    experiments: list[ExperimentSpec] = Field(min_length=1)

    _resolved: dict[str, ExperimentSpec] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _resolve(self) -> ProgramSpec:
        self._check_names()
        placements = self._placements()
        resolved: dict[str, ExperimentSpec] = {}
        for i, exp in enumerate(self.experiments):
            placed = placements.get(exp.name)
            if placed is None:
                resolved[exp.name] = exp
                continue
            if exp.layer is not None or exp.domain is not None or exp.holdout is not None:
                raise rule_error(
                    f"experiment '{exp.name}' is placed by the program's layers but also "
                    "sets its own `layer`, `domain` or `holdout`",
                    "remove those fields from the experiment; the program places it.",
                    ("experiments", i),
                )
            domain, layer, holdout = placed
            resolved[exp.name] = exp.model_copy(
                update={"domain": domain, "layer": layer, "holdout": holdout}
            )
        self._resolved = resolved
        return self

    def _check_names(self) -> None:
        names = [e.name for e in self.experiments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise rule_error(
                f"experiment names must be unique; {dupes} appear more than once",
                "rename the repeated experiments.",
                ("experiments",),
            )
        domains = {d.name: d.range for d in self.domains}
        if len(domains) != len(self.domains):
            raise rule_error(
                "domain names must be unique", "rename the repeated domains.", ("domains",)
            )
        pair = _overlaps(domains)
        if pair is not None:
            raise rule_error(
                f"domains '{pair[0]}' and '{pair[1]}' overlap; domains split units into "
                "disjoint slices",
                "give the domains disjoint ranges, e.g. [0, 0.5] and [0.5, 1].",
                ("domains",),
            )
        layers = [lyr.name for d in self.domains for lyr in d.layers] + [
            lyr.name for lyr in self.launch_layers
        ]
        dupes = sorted({n for n in layers if layers.count(n) > 1})
        if dupes:
            raise rule_error(
                f"layer names must be unique across the program; {dupes} repeat",
                "rename the repeated layers.",
                ("domains",),
            )

    def _placements(
        self,
    ) -> dict[str, tuple[DomainPlacementSpec | None, LayerPlacementSpec, HoldoutSpec | None]]:
        known = {e.name for e in self.experiments}
        out: dict[
            str, tuple[DomainPlacementSpec | None, LayerPlacementSpec, HoldoutSpec | None]
        ] = {}
        groups: list[tuple[DomainSpec | None, list[LayerSpec], tuple[int | str, ...]]] = [
            (d, d.layers, ("domains", i)) for i, d in enumerate(self.domains)
        ]
        groups.append((None, self.launch_layers, ()))
        for domain, layers, where in groups:
            placement = (
                None
                if domain is None
                else DomainPlacementSpec(
                    name=domain.name, salt=self.domain_salt, range=domain.range
                )
            )
            for j, lyr in enumerate(layers):
                at = (*where, "layers", j) if domain is not None else ("launch_layers", j)
                for exp_name, rng in lyr.experiments.items():
                    if exp_name not in known:
                        raise rule_error(
                            f"layer '{lyr.name}' allocates a slice to '{exp_name}', which is "
                            "not among `experiments`",
                            f"add an experiment named '{exp_name}' or remove the slice; "
                            f"experiments are {sorted(known)}.",
                            (*at, "experiments", exp_name),
                        )
                    if exp_name in out:
                        raise rule_error(
                            f"experiment '{exp_name}' has slices in more than one layer",
                            "keep it in one layer.",
                            (*at, "experiments", exp_name),
                        )
                    layer = LayerPlacementSpec(
                        name=lyr.name, salt=lyr.salt, range=rng, launch=domain is None
                    )
                    out[exp_name] = (placement, layer, domain.holdout if domain else None)
        return out

    def experiment(self, name: str) -> ExperimentSpec:
        """The experiment called ``name``, with its placement resolved.

        Raises:
            KeyError: no experiment has that name.
        """
        return self._resolved[name]

    def resolved_experiments(self) -> list[ExperimentSpec]:
        """Every experiment, in file order, with placements resolved."""
        return [self._resolved[e.name] for e in self.experiments]
