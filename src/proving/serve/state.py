"""Runtime state of each deployment: spec versions, weights, kill switch, colour, promotion.

The spec file says what a deployment *should* run; operators change it at runtime through
the admin API, and those changes are kept here as *overrides* on top of the current spec:

==================  ==========================================================================
``killed``          kill switch: the experiment is off, everyone gets the control
``weights``         A/B/n weights (``ab`` mode)
``canary_weight``   the canary's share; it only rises (monotone ramp: the canary's bucket
                    range is anchored at 0, so a rise only adds units to it). Going back
                    is a rollback or the kill switch, never a silent decrease.
``active``          blue/green: the colour that serves everyone; ``previous_active`` is kept
                    so an undo is one call
``pinned``          promote: every unit gets this variant (outside the experiment)
==================  ==========================================================================

:meth:`DeploymentState.effective_spec` folds the overrides into a spec that the pure
assignment engine reads, so routing has one source of truth. Every change bumps
``revision`` and, when the gateway has a DuckDB or PostgreSQL store, is saved in the store's
state table (namespace ``serve``, key = deployment): a restarted gateway resumes where it
was, and replicas sharing the database converge (the reload loop polls the revision).

A spec replaced by a newer version goes to ``history``; ``rollback`` brings one back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from proving.errors import HTTPError
from proving.spec.experiment import ExperimentSpec
from proving.spec.mode import BlueGreenSpec, CanarySpec

__all__ = ["DeploymentState", "Overrides"]

_HISTORY = 20


@dataclass(frozen=True)
class Overrides:
    """Runtime changes on top of the spec (see the module docstring)."""

    killed: bool = False
    weights: tuple[float, ...] | None = None
    canary_weight: float | None = None
    active: str | None = None
    previous_active: str | None = None
    pinned: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["weights"] = None if self.weights is None else list(self.weights)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Overrides:
        """Inverse of :meth:`to_dict`."""
        weights = data.get("weights")
        return cls(**{**data, "weights": None if weights is None else tuple(weights)})


def _conflict(message: str) -> HTTPError:
    return HTTPError(409, message)


@dataclass
class DeploymentState:
    """One deployment's spec, history and overrides, with the spec routing reads."""

    spec: ExperimentSpec
    overrides: Overrides = field(default_factory=Overrides)
    history: list[ExperimentSpec] = field(default_factory=list)
    revision: int = 0
    _effective: ExperimentSpec | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The deployment's name (the experiment's name)."""
        return self.spec.name

    def effective_spec(self) -> ExperimentSpec:
        """The spec with the overrides folded in (cached until the next change)."""
        if self._effective is None:
            self._effective = _fold(self.spec, self.overrides)
        return self._effective

    def _change(self, overrides: Overrides) -> None:
        self.overrides = overrides
        self._effective = None
        self.revision += 1

    def _variant(self, name: str, what: str) -> str:
        if name not in self.spec.variant_names:
            raise HTTPError(
                422,
                f"deployment '{self.name}': {what} '{name}' is not a variant; variants are "
                f"{self.spec.variant_names}.",
            )
        return name

    def set_spec(self, spec: ExperimentSpec) -> None:
        """Replace the spec by a newer version (the old one goes to history)."""
        if spec.name != self.name:
            raise HTTPError(
                422, f"spec name '{spec.name}' does not match deployment '{self.name}'."
            )
        if spec.version <= self.spec.version:
            raise _conflict(
                f"deployment '{self.name}': spec version {spec.version} is not newer than the "
                f"running version {self.spec.version}. Fix: bump `version`."
            )
        self.history = [*self.history, self.spec][-_HISTORY:]
        self.spec = spec
        self._change(Overrides())

    def rollback(self, version: int | None = None) -> ExperimentSpec:
        """Return to the previous spec version (or ``version``); overrides are cleared."""
        if not self.history:
            raise _conflict(f"deployment '{self.name}': no earlier spec version to roll back to.")
        index = len(self.history) - 1
        if version is not None:
            versions = [s.version for s in self.history]
            if version not in versions:
                raise _conflict(
                    f"deployment '{self.name}': version {version} is not in the history "
                    f"{versions}. Fix: pick one of those."
                )
            index = versions.index(version)
        target = self.history[index]
        self.history = self.history[:index]
        self.spec = target
        self._change(Overrides())
        return target

    def set_killed(self, killed: bool) -> None:
        """Turn the kill switch on (everyone gets the control) or off."""
        self._change(replace(self.overrides, killed=killed))

    def set_weights(self, weights: list[float]) -> None:
        """Set A/B/n weights (``ab`` mode only)."""
        if self.spec.mode != "ab":
            raise _conflict(
                f"deployment '{self.name}' runs in {self.spec.mode} mode; weights apply to ab."
                + (" Fix: set the canary weight instead." if self.spec.mode == "canary" else "")
            )
        try:
            checked = ExperimentSpec.model_validate(
                {**self.spec.model_dump(), "weights": weights, "variants": _unweighted(self.spec)}
            )
        except ValueError as exc:  # pydantic's ValidationError names the rule and the fix
            raise HTTPError(422, f"deployment '{self.name}': weights rejected: {exc}") from exc
        self._change(replace(self.overrides, weights=tuple(checked.resolved_weights())))

    def set_canary_weight(self, weight: float) -> None:
        """Raise the canary's share; a decrease is refused (use rollback or kill)."""
        if self.spec.mode != "canary":
            raise _conflict(f"deployment '{self.name}' is not a canary ({self.spec.mode} mode).")
        if not 0.0 <= weight <= 1.0:
            raise HTTPError(422, f"canary weight must be in [0, 1]; got {weight}.")
        current = self.effective_spec().settings_for_mode()
        assert isinstance(current, CanarySpec)
        if weight < current.current_weight:
            raise _conflict(
                f"deployment '{self.name}': canary weight {weight} is below the current "
                f"{current.current_weight}; ramps only rise, so nobody flips back. Fix: use "
                "the kill switch or a rollback to take traffic away."
            )
        self._change(replace(self.overrides, canary_weight=weight))

    def switch(self, active: str | None = None) -> str:
        """Blue/green: send everyone to ``active`` (default: the other colour)."""
        if self.spec.mode != "bluegreen":
            raise _conflict(f"deployment '{self.name}' is not blue/green ({self.spec.mode} mode).")
        now = self.active_colour()
        if active is None:
            others = [v for v in self.spec.variant_names if v != now]
            active = others[0]
        self._variant(active, "colour")
        self._change(replace(self.overrides, active=active, previous_active=now))
        return active

    def undo_switch(self) -> str:
        """Blue/green: go back to the colour before the last switch."""
        previous = self.overrides.previous_active
        if previous is None:
            raise _conflict(f"deployment '{self.name}': no switch to undo.")
        return self.switch(previous)

    def active_colour(self) -> str:
        """Blue/green: the colour serving now."""
        block = self.spec.bluegreen
        return self.overrides.active or (block.active if block else None) or self.spec.control_name

    def promote(self, variant: str | None) -> None:
        """Send every unit to ``variant`` (None: undo the promotion)."""
        if variant is not None:
            self._variant(variant, "promoted variant")
        self._change(replace(self.overrides, pinned=variant))

    def to_dict(self) -> dict[str, Any]:
        """The persisted document (and the admin API's view)."""
        return {
            "deployment": self.name,
            "revision": self.revision,
            "spec": self.spec.model_dump(mode="json"),
            "history": [s.model_dump(mode="json") for s in self.history],
            "overrides": self.overrides.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentState:
        """Inverse of :meth:`to_dict` (specs are validated again)."""
        return cls(
            spec=ExperimentSpec.model_validate(data["spec"]),
            overrides=Overrides.from_dict(data.get("overrides", {})),
            history=[ExperimentSpec.model_validate(s) for s in data.get("history", [])],
            revision=int(data.get("revision", 0)),
        )


def _unweighted(spec: ExperimentSpec) -> list[dict[str, Any]]:
    return [{**v.model_dump(), "weight": None} for v in spec.variants]


def _fold(spec: ExperimentSpec, overrides: Overrides) -> ExperimentSpec:
    """The spec the assignment engine reads: the spec with the overrides applied."""
    update: dict[str, Any] = {}
    if overrides.killed:
        update["enabled"] = False
    if overrides.weights is not None:
        update["weights"] = list(overrides.weights)
        update["variants"] = [v.model_copy(update={"weight": None}) for v in spec.variants]
    if overrides.canary_weight is not None:
        steps = (spec.canary or CanarySpec()).steps
        update["canary"] = CanarySpec(steps=steps, weight=overrides.canary_weight)
    if overrides.active is not None:
        update["bluegreen"] = BlueGreenSpec(active=overrides.active)
    return spec.model_copy(update=update) if update else spec
