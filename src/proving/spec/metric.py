"""Metric specs: what an experiment is judged on (primary, secondary, guardrails).

A metric has a name, a kind (how its per-unit value is aggregated), the direction that is
good, and for guardrails an optional non-inferiority margin: the largest harm the
experiment may cause before the guardrail fails (Schuirmann 1987's one-sided test against
``-margin``). Margins are relative (a fraction of the control mean) unless
``margin_type: absolute``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from proving.spec.issues import rule_error

__all__ = ["MetricSpec", "MetricsSpec"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"

MetricKind = Literal["mean", "proportion", "ratio", "count", "quantile"]


class MetricSpec(BaseModel):
    """One metric.

    Example:
        >>> MetricSpec(name="revenue", kind="mean").direction
        'increase'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    kind: MetricKind = "mean"
    direction: Literal["increase", "decrease"] = Field(
        default="increase", description="The direction that is good for the business."
    )
    description: str = ""
    numerator: str | None = Field(default=None, description="Ratio metrics: the numerator.")
    denominator: str | None = Field(default=None, description="Ratio metrics: the denominator.")
    quantile: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="Quantile metrics: which quantile, e.g. 0.95."
    )
    non_inferiority_margin: float | None = Field(
        default=None, gt=0.0, description="Largest tolerated harm (guardrails)."
    )
    margin_type: Literal["relative", "absolute"] = "relative"

    @model_validator(mode="after")
    def _kind_fields(self) -> MetricSpec:
        if self.kind == "ratio" and (self.numerator is None or self.denominator is None):
            raise rule_error(
                f"metric '{self.name}' is a ratio, which needs `numerator` and `denominator`",
                "add e.g. `numerator: clicks` and `denominator: sessions`.",
                ("kind",),
            )
        if self.kind != "ratio" and (self.numerator or self.denominator):
            raise rule_error(
                f"metric '{self.name}' has kind '{self.kind}'; `numerator`/`denominator` "
                "only apply to ratio metrics",
                "set `kind: ratio` or remove `numerator` and `denominator`.",
                ("numerator",) if self.numerator else ("denominator",),
            )
        if self.kind == "quantile" and self.quantile is None:
            raise rule_error(
                f"metric '{self.name}' is a quantile metric without `quantile`",
                "add e.g. `quantile: 0.95`.",
                ("kind",),
            )
        if self.kind != "quantile" and self.quantile is not None:
            raise rule_error(
                f"metric '{self.name}' has `quantile` but kind '{self.kind}'",
                "set `kind: quantile` or remove `quantile`.",
                ("quantile",),
            )
        if (
            self.margin_type == "relative"
            and self.non_inferiority_margin is not None
            and self.non_inferiority_margin >= 1.0
        ):
            raise rule_error(
                f"metric '{self.name}': a relative non_inferiority_margin must be below 1 "
                f"(a fraction of the control mean); got {self.non_inferiority_margin}",
                "write 5% as 0.05, or set `margin_type: absolute`.",
                ("non_inferiority_margin",),
            )
        return self


def _as_list(value: Any) -> Any:
    # A single metric may be written as a mapping instead of a one-item list.
    return [value] if isinstance(value, dict) else value


class MetricsSpec(BaseModel):
    """The metrics of an experiment, in three groups.

    ``primary`` metrics decide; ``secondary`` metrics are reported (and corrected for
    multiplicity); ``guardrails`` must not get worse by more than their margin.

    Example:
        >>> m = MetricsSpec(primary=[MetricSpec(name="ctr", kind="proportion")])
        >>> [x.name for x in m.all()]
        ['ctr']
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary: list[MetricSpec] = Field(default_factory=list)
    secondary: list[MetricSpec] = Field(default_factory=list)
    guardrails: list[MetricSpec] = Field(default_factory=list)

    _as_list_validator = field_validator("primary", "secondary", "guardrails", mode="before")(
        _as_list
    )

    @model_validator(mode="after")
    def _unique_names(self) -> MetricsSpec:
        seen: set[str] = set()
        for metric in self.all():
            if metric.name in seen:
                raise rule_error(
                    f"metric name '{metric.name}' appears more than once across primary, "
                    "secondary and guardrails",
                    "give each metric one role and a unique name.",
                )
            seen.add(metric.name)
        return self

    def all(self) -> list[MetricSpec]:
        """Every metric: primary, then secondary, then guardrails."""
        return [*self.primary, *self.secondary, *self.guardrails]
