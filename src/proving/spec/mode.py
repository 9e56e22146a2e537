"""Mode-specific settings: shadow, canary, blue-green, interleave and switchback.

Each mode of an experiment has its own settings block, named after the mode
(``shadow:``, ``canary:``, ...). A block for a mode the experiment does not run is an
error: it would silently do nothing.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from proving.spec.duration import Duration
from proving.spec.issues import rule_error

__all__ = [
    "BlueGreenSpec",
    "CanarySpec",
    "CanaryStepSpec",
    "InterleaveSpec",
    "Mode",
    "ShadowSpec",
    "SwitchbackSpec",
]

Mode = Literal["ab", "shadow", "canary", "bluegreen", "interleave", "switchback"]


class ShadowSpec(BaseModel):
    """Shadow mode: the control serves every request; candidates are mirrored off-path.

    ``sample_rate`` is the share of covered units whose requests are mirrored (decided by
    a hash of the unit, so a unit is mirrored always or never); ``max_concurrency`` caps the
    shadow calls in flight so shadows never starve the served path.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    max_concurrency: int = Field(default=64, ge=1)
    timeout_ms: float = Field(default=1000.0, gt=0.0)


class CanaryStepSpec(BaseModel):
    """One step of a canary ramp: the canary's share and how long to hold it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(gt=0.0, le=1.0)
    duration: Duration | None = None
    min_units: int | None = Field(default=None, ge=1)


class CanarySpec(BaseModel):
    """Canary mode: the candidate gets ``weight`` of covered traffic, ramped by ``steps``.

    The canary's range starts at bucket 0 and grows upwards, so raising ``weight`` only
    adds units to the canary: nobody who saw it is moved back to the champion.
    ``weight`` is the current share (the rollout stage raises it step by step); it
    defaults to the first step.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[CanaryStepSpec] = Field(
        default_factory=lambda: [CanaryStepSpec(weight=w) for w in (0.01, 0.05, 0.25, 0.5, 1.0)],
        min_length=1,
    )
    weight: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _increasing(self) -> CanarySpec:
        weights = [s.weight for s in self.steps]
        if any(b <= a for a, b in itertools.pairwise(weights)):
            raise rule_error(
                f"canary steps must have strictly increasing weights; got {weights}",
                "order the steps from the smallest share to the largest, without repeats.",
                ("steps",),
            )
        return self

    @property
    def current_weight(self) -> float:
        """The canary's share now: ``weight`` if set, else the first step's."""
        return self.steps[0].weight if self.weight is None else self.weight


class BlueGreenSpec(BaseModel):
    """Blue-green mode: every unit gets the ``active`` variant; a switch is instant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    active: str | None = Field(default=None, description="The serving variant; control if unset.")


class InterleaveSpec(BaseModel):
    """Interleaving: two rankers' results are merged into one list per request.

    ``team_draft`` is Radlinski, Kurup and Joachims (2008); ``balanced`` is Joachims (2002).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["team_draft", "balanced"] = "team_draft"
    list_length: int = Field(default=10, ge=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SwitchbackSpec(BaseModel):
    """Switchback: the randomization unit is (cluster, time window), not the user.

    Time is cut into windows of length ``window`` starting at ``origin``; each (cluster,
    window) gets a variant by hashing. After a switch, the first ``buffer`` of the new
    window is carry-over: effects of the previous variant may linger, so those units are
    flagged ``in_buffer`` and left out of the analysis (Bojinov, Simchi-Levi and Zhao 2023).
    ``cluster_attribute`` names the attribute that holds the cluster (a city, a region);
    without it the whole traffic is one cluster.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Duration = Field(default=timedelta(hours=1))
    buffer: Duration = Field(default=timedelta(0))
    cluster_attribute: str | None = None
    origin: AwareDatetime = Field(default=_EPOCH)

    @model_validator(mode="after")
    def _buffer_in_window(self) -> SwitchbackSpec:
        if self.window <= timedelta(0):
            raise rule_error(
                f"switchback window must be positive; got {self.window}",
                "use a duration such as 30m or 1h.",
                ("window",),
            )
        if self.buffer < timedelta(0) or self.buffer >= self.window:
            raise rule_error(
                f"switchback buffer must be in [0, window); got buffer {self.buffer} for "
                f"window {self.window}",
                "use a buffer shorter than the window, e.g. 10m for a 1h window.",
                ("buffer",),
            )
        return self
