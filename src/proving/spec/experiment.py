"""The experiment spec: what runs, for whom, and how it is judged.

An :class:`ExperimentSpec` holds the variants (each a model reference or a JSON value),
their weights and coverage, the hashing seed, targeting, forced variants, the kill switch,
the schedule, the mode with its settings, the metrics and the analysis settings. It is
validated as a whole on construction; every rule's error names the fix.

Weights must sum to 1 (within 1e-6). We do not normalize silently: a typo such as
``[0.5, 0.05]`` would otherwise become a 91/9 split without anyone noticing. The error
message gives the normalized weights to paste if that was the intent.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from proving.spec.analysis import AnalysisSpec
from proving.spec.condition import condition_problems
from proving.spec.issues import rule_error
from proving.spec.metric import NAME_PATTERN, MetricsSpec
from proving.spec.mode import (
    BlueGreenSpec,
    CanarySpec,
    InterleaveSpec,
    Mode,
    ShadowSpec,
    SwitchbackSpec,
)
from proving.spec.placement import DomainPlacementSpec, HoldoutSpec, LayerPlacementSpec

__all__ = ["ExperimentSpec", "ModelRefSpec", "ScheduleSpec", "VariantSpec"]

WEIGHT_TOLERANCE = 1e-6
_MODE_BLOCKS = ("shadow", "canary", "bluegreen", "interleave", "switchback")


class ModelRefSpec(BaseModel):
    """A reference to a model: a name, a version and where to load it from.

    ``uri`` points at an artifact or a remote endpoint (``file://``, ``s3://``,
    ``http://``); ``entry_point`` names a Python callable (``package.module:attr``).
    With neither, the serving stage looks the model up by name and version.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    version: str | None = None
    uri: str | None = None
    entry_point: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        # YAML reads `version: 3` or `version: 1.2` as numbers; a version is a label.
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _one_location(self) -> ModelRefSpec:
        if self.uri is not None and self.entry_point is not None:
            raise rule_error(
                f"model '{self.name}' has both `uri` and `entry_point`",
                "keep one: `uri` for an artifact or endpoint, `entry_point` for a callable.",
            )
        return self


class VariantSpec(BaseModel):
    """One arm of an experiment: a model, a value (any JSON), or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    weight: float | None = Field(default=None, ge=0.0, le=1.0)
    model: ModelRefSpec | None = None
    value: Any = None
    description: str = ""


class ScheduleSpec(BaseModel):
    """When the experiment runs: from ``start`` (inclusive) to ``stop`` (exclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: AwareDatetime | None = None
    stop: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ScheduleSpec:
        if self.start is not None and self.stop is not None and self.stop <= self.start:
            raise rule_error(
                f"schedule stop ({self.stop.isoformat()}) must be after start "
                f"({self.start.isoformat()})",
                "swap them or move `stop` later.",
                ("stop",),
            )
        return self


def _check_weight_values(weights: list[float], at: tuple[int | str, ...]) -> None:
    """Each weight in [0, 1] and the sum 1 (within WEIGHT_TOLERANCE)."""
    if any(not (0.0 <= w <= 1.0) or math.isnan(w) for w in weights):
        raise rule_error(
            f"every weight must be in [0, 1]; got {weights}", "use shares such as 0.5.", at
        )
    total = math.fsum(weights)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        fix = "make them sum to 1"
        if total > 0:
            fix += f", e.g. {[round(w / total, 6) for w in weights]} (the same proportions)"
        raise rule_error(f"weights must sum to 1; got {weights} (sum {total:g})", fix + ".", at)


def _ids_as_text(value: Any) -> Any:
    # YAML reads numeric ids (`12345: treatment`) as ints; unit ids are strings.
    if isinstance(value, dict):
        return {str(k) if isinstance(k, int) else k: v for k, v in value.items()}
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


class ExperimentSpec(BaseModel):
    """An experiment.

    Example:
        >>> spec = ExperimentSpec(
        ...     name="ranker-v2",
        ...     variants=[VariantSpec(name="control"), VariantSpec(name="treatment")],
        ... )
        >>> spec.resolved_weights(), spec.control_name, spec.hash_seed
        ((0.5, 0.5), 'control', 'ranker-v2')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    version: int = Field(default=1, ge=1)
    description: str = ""
    unit: str = Field(default="id", min_length=1, description="Attribute holding the unit id.")
    variants: list[VariantSpec] = Field(min_length=2)
    control: str | None = Field(default=None, description="The control variant; the first.")
    weights: list[float] | None = None
    coverage: float = Field(default=1.0, ge=0.0, le=1.0)
    seed: str | None = Field(default=None, description="Hash seed; the name if unset.")
    hash_version: int = Field(default=2, ge=1, le=2)
    targeting: dict[str, Any] | None = None
    saved_groups: dict[str, list[Any]] = Field(default_factory=dict)
    allowlist: list[str] = Field(
        default_factory=list, description="Unit ids let in regardless of targeting/coverage."
    )
    forced: dict[str, str] = Field(default_factory=dict, description="Unit id -> variant.")
    enabled: bool = Field(default=True, description="Kill switch: false sends all to control.")
    schedule: ScheduleSpec | None = None
    mode: Mode = "ab"
    shadow: ShadowSpec | None = None
    canary: CanarySpec | None = None
    bluegreen: BlueGreenSpec | None = None
    interleave: InterleaveSpec | None = None
    switchback: SwitchbackSpec | None = None
    domain: DomainPlacementSpec | None = None
    layer: LayerPlacementSpec | None = None
    holdout: HoldoutSpec | None = None
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)

    _ids = field_validator("forced", "allowlist", mode="before")(_ids_as_text)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("variants")
    @classmethod
    def _unique_variants(cls, variants: list[VariantSpec]) -> list[VariantSpec]:
        names = [v.name for v in variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise rule_error(
                f"variant names must be unique; {', '.join(dupes)} appear more than once",
                "rename the repeated variants.",
            )
        return variants

    @field_validator("weights")
    @classmethod
    def _weights_sum(cls, value: list[float] | None) -> list[float] | None:
        # Checked here as well as in _rules: a field validator runs even when other fields
        # fail, so a file with several problems reports this one too.
        if value is not None:
            _check_weight_values(value, ())
        return value

    @field_validator("targeting")
    @classmethod
    def _condition(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            problems = condition_problems(value)
            if problems:
                raise rule_error(
                    "; ".join(problems),
                    "correct the condition (GrowthBook syntax, e.g. `country: {$in: [US, CA]}`).",
                )
        return value

    @model_validator(mode="after")
    def _rules(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if self.control is not None and self.control not in names:
            raise rule_error(
                f"control '{self.control}' is not a variant; variants are {names}",
                f"set `control` to one of {names}, or add a variant named '{self.control}'.",
                ("control",),
            )
        self._check_weights(names)
        self._check_mode(names)
        for unit_id, variant in self.forced.items():
            if variant not in names:
                raise rule_error(
                    f"forced variant '{variant}' for unit '{unit_id}' is not a variant",
                    f"use one of {names}.",
                    ("forced", unit_id),
                )
        return self

    def _check_weights(self, names: list[str]) -> None:
        per_variant = [v.weight for v in self.variants]
        given = [w for w in per_variant if w is not None]
        if self.weights is not None and given:
            raise rule_error(
                "weights are given both in `weights` and on variants",
                "keep one: the top-level `weights` list or a `weight` on each variant.",
                ("weights",),
            )
        if given and len(given) != len(per_variant):
            missing = [v.name for v in self.variants if v.weight is None]
            raise rule_error(
                f"only some variants have a weight; missing on {missing}",
                "give every variant a weight, or none (equal split).",
                ("variants",),
            )
        weights = self.weights if self.weights is not None else (given or None)
        if weights is None:
            return
        at: tuple[int | str, ...] = ("weights",) if self.weights is not None else ("variants",)
        if self.mode in ("canary", "shadow", "bluegreen", "interleave"):
            raise rule_error(
                f"weights have no effect in {self.mode} mode",
                "remove them"
                + (" and set `canary.weight` instead." if self.mode == "canary" else "."),
                at,
            )
        if len(weights) != len(names):
            raise rule_error(
                f"there are {len(weights)} weights for {len(names)} variants",
                "give one weight per variant, in the order of `variants`.",
                at,
            )
        _check_weight_values(weights, at)

    def _check_mode(self, names: list[str]) -> None:
        stray = [b for b in _MODE_BLOCKS if b != self.mode and getattr(self, b) is not None]
        if stray:
            raise rule_error(
                f"mode is '{self.mode}' but settings are given for {stray}",
                f"remove the {stray} block(s) or set `mode` to match.",
                (stray[0],),
            )
        if self.mode in ("canary", "interleave") and len(names) != 2:
            raise rule_error(
                f"{self.mode} mode compares exactly two variants (control and candidate); "
                f"got {len(names)}: {names}",
                "keep two variants, or use `mode: ab` for more.",
                ("variants",),
            )
        if self.mode == "bluegreen":
            active = self.bluegreen.active if self.bluegreen else None
            if active is not None and active not in names:
                raise rule_error(
                    f"bluegreen.active '{active}' is not a variant",
                    f"use one of {names}.",
                    ("bluegreen", "active"),
                )

    # Derived values used by the assignment engine.

    @property
    def control_name(self) -> str:
        """The control variant's name (``control``, or the first variant)."""
        return self.variants[0].name if self.control is None else self.control

    @property
    def control_index(self) -> int:
        """The control variant's position in ``variants``."""
        return self.variant_names.index(self.control_name)

    @property
    def variant_names(self) -> list[str]:
        """Variant names in order."""
        return [v.name for v in self.variants]

    @property
    def hash_seed(self) -> str:
        """The hashing seed: ``seed``, or the name."""
        return self.name if self.seed is None else self.seed

    def resolved_weights(self) -> tuple[float, ...]:
        """The weights in variant order: given ones, or an equal split."""
        if self.weights is not None:
            return tuple(self.weights)
        if self.variants[0].weight is not None:
            return tuple(float(v.weight or 0.0) for v in self.variants)
        k = len(self.variants)
        return tuple(1.0 / k for _ in range(k))

    def variant(self, name: str) -> VariantSpec:
        """The variant called ``name``."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def is_time_based(self) -> bool:
        """True when assignment depends on the clock (a schedule or switchback)."""
        return self.mode == "switchback" or (
            self.schedule is not None
            and (self.schedule.start is not None or self.schedule.stop is not None)
        )

    def settings_for_mode(
        self,
    ) -> ShadowSpec | CanarySpec | BlueGreenSpec | InterleaveSpec | SwitchbackSpec | None:
        """The settings block of the mode (defaults where omitted); None for ab."""
        defaults = {
            "shadow": ShadowSpec,
            "canary": CanarySpec,
            "bluegreen": BlueGreenSpec,
            "interleave": InterleaveSpec,
            "switchback": SwitchbackSpec,
        }
        if self.mode == "ab":
            return None
        block: ShadowSpec | CanarySpec | BlueGreenSpec | InterleaveSpec | SwitchbackSpec | None
        block = getattr(self, self.mode)
        return block if block is not None else defaults[self.mode]()
