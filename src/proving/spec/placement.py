"""Where an experiment sits in the traffic: domain, layer slice and holdout.

Google's overlapping-experiment infrastructure (Tang, Agarwal, O'Brien and Meyer, KDD
2010) splits traffic into *domains* (disjoint slices of units), each holding *layers*;
experiments in one layer own disjoint slices of the layer's buckets (so they are mutually
exclusive), while layers hash with their own salts (so they are independent of each
other). A *holdout* is a slice of units kept out of every experiment in its scope, to
measure the cumulative effect of everything launched.

These placements are what :func:`proving.assign.assign` needs to decide for one
experiment. Write them by hand on a single experiment, or let a program file
(:class:`proving.spec.program.ProgramSpec`) derive them from its domains and layers.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from proving.spec.issues import rule_error

__all__ = ["DomainPlacementSpec", "HoldoutSpec", "LayerPlacementSpec", "check_range"]


def check_range(value: tuple[float, float], what: str) -> tuple[float, float]:
    """Check a ``[start, end)`` slice of [0, 1]."""
    start, end = value
    if not (0.0 <= start < end <= 1.0):
        raise rule_error(
            f"{what} must be [start, end) with 0 <= start < end <= 1; got [{start}, {end}]",
            "write e.g. [0.0, 0.5] for the first half.",
        )
    return value


class HoldoutSpec(BaseModel):
    """A slice of units kept out of every experiment in its scope.

    Units whose holdout hash (salt ``salt``) is below ``fraction`` are held out.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="holdout", min_length=1)
    salt: str | None = Field(default=None, description="Hash salt; the name if unset.")
    fraction: float = Field(gt=0.0, lt=1.0)

    @property
    def hash_salt(self) -> str:
        """The salt used for hashing."""
        return self.name if self.salt is None else self.salt


class DomainPlacementSpec(BaseModel):
    """The domain an experiment lives in: a slice of the domain hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    salt: str = Field(default="domains", min_length=1)
    range: tuple[float, float]

    @field_validator("range")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        return check_range(value, "domain range")


class LayerPlacementSpec(BaseModel):
    """The slice of a layer an experiment owns.

    ``range`` is a slice of the layer's hash (salt ``salt``, the layer name if unset).
    Experiments of one layer must own disjoint slices; a program file checks that.
    ``launch`` marks a launch layer, whose variant values are defaults that experiment
    layers override.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    salt: str | None = None
    range: tuple[float, float] = (0.0, 1.0)
    launch: bool = False

    @field_validator("range")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        return check_range(value, "layer range")

    @property
    def hash_salt(self) -> str:
        """The salt used for hashing."""
        return self.name if self.salt is None else self.salt
