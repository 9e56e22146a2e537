"""Metric definitions: what to measure, over which events, for which units, in YAML.

A metrics spec names the experiment(s), the segment dimensions (keys of the exposure
``attributes``), the policy for units exposed to more than one variant, and a list of
metrics. Each metric reads one event table (``outcomes`` or ``predictions``), keeps the
rows that pass declarative filters (column, op, value: never SQL), keeps the events inside
a window after the unit's first exposure, aggregates them per unit (sum, count, max, min,
any) and then the compiler sums the unit values per arm (see :mod:`proving.metrics.compile`).

Example:
    >>> spec = MetricsSpec.model_validate({
    ...     "experiment": "checkout",
    ...     "metrics": [{"name": "revenue", "kind": "mean", "event": "purchase"}],
    ... })
    >>> spec.metrics[0].numerator_measure().aggregation
    'sum'
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from proving.errors import SpecError

Kind = Literal["mean", "proportion", "ratio", "count", "quantile"]
Source = Literal["outcomes", "predictions"]
Aggregation = Literal["sum", "count", "max", "min", "any"]
FilterOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_null", "not_null"]
Scalar = str | int | float | bool

#: Columns a filter or a value may name, per event table (see proving.telemetry.events).
SOURCE_COLUMNS: dict[str, dict[str, str]] = {
    "outcomes": {
        "name": "string",
        "value": "numeric",
        "unit_id": "string",
        "request_id": "string",
    },
    "predictions": {
        "request_id": "string",
        "unit_id": "string",
        "deployment": "string",
        "experiment": "string",
        "variant": "string",
        "model": "string",
        "model_version": "string",
        "role": "string",
        "status": "string",
        "score": "numeric",
        "latency_ms": "numeric",
    },
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m|s)\s*$")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object, *, field: str) -> timedelta:
    """Parse ``"7d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a duration such as '7d'; got {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    raise ValueError(
        f"{field} must be a duration such as '30m', '12h', '7d', '2w' or a number of "
        f"seconds; got {value!r}"
    )


def format_duration(d: timedelta) -> str:
    """The shortest exact form of a duration: ``7d``, ``36h``, ``90s`` (inverse of
    :func:`parse_duration`)."""
    seconds = d.total_seconds()
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilterSpec(_Strict):
    """Keep the events where ``column op value`` holds (``value`` is bound as a literal)."""

    column: str
    op: FilterOp = "eq"
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _check_value(self) -> FilterSpec:
        if self.op in ("is_null", "not_null"):
            if self.value is not None:
                raise ValueError(f"op '{self.op}' takes no value; remove `value`")
        elif self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(
                    f"op '{self.op}' needs `value` to be a non-empty list; got {self.value!r}"
                )
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(
                f"op '{self.op}' needs a single scalar `value`; got {self.value!r}. "
                "Use op 'in' for a list or 'is_null' for missing values"
            )
        return self


def _check_filter_type(f: FilterSpec, column_type: str) -> None:
    values = f.value if isinstance(f.value, list) else [f.value] if f.value is not None else []
    for v in values:
        numeric = isinstance(v, int | float) and not isinstance(v, bool)
        if column_type == "numeric" and not numeric:
            raise ValueError(f"filter on numeric column {f.column!r} needs a number; got {v!r}")
        if column_type == "string" and not isinstance(v, str):
            raise ValueError(
                f"filter on text column {f.column!r} needs a string; got {v!r}. "
                f"Quote it in YAML: '{v}'"
            )


class MeasureSpec(_Strict):
    """One per-unit quantity: events of one table, filtered, aggregated per unit.

    Args:
        source: ``outcomes`` or ``predictions``.
        event: outcomes only: the outcome ``name`` to keep (a shortcut for a filter).
        value: the numeric column to aggregate (``value`` for outcomes; ``latency_ms`` or
            ``score`` for predictions). Not needed for ``count`` and ``any``.
        aggregation: how a unit's events become one number: ``sum``, ``count``, ``max``,
            ``min`` or ``any`` (1 if the unit has at least one event, else 0).
        filters: declarative filters, all of which must hold.
    """

    source: Source = "outcomes"
    event: str | None = None
    value: str | None = None
    aggregation: Aggregation = "sum"
    filters: tuple[FilterSpec, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _default_value(cls, data: Any) -> Any:
        # An outcome's number is its `value`: `{event: purchase}` sums purchase values.
        if (
            isinstance(data, dict)
            and data.get("source", "outcomes") == "outcomes"
            and data.get("value") is None
            and data.get("aggregation", "sum") in ("sum", "max", "min")
        ):
            data = {**data, "value": "value"}
        return data

    @model_validator(mode="after")
    def _check_columns(self) -> MeasureSpec:
        columns = SOURCE_COLUMNS[self.source]
        if self.event is not None and self.source != "outcomes":
            raise ValueError(
                "`event` selects an outcome name and works only with source 'outcomes'; "
                "use a filter on a predictions column instead"
            )
        if self.value is not None and columns.get(self.value) != "numeric":
            numeric = sorted(c for c, t in columns.items() if t == "numeric")
            raise ValueError(
                f"`value` must be a numeric column of {self.source} ({', '.join(numeric)}); "
                f"got {self.value!r}"
            )
        if self.value is None and self.aggregation in ("sum", "max", "min"):
            raise ValueError(
                f"aggregation '{self.aggregation}' needs `value` (the column to aggregate); "
                "set value, or use aggregation 'count' or 'any'"
            )
        for f in self.filters:
            if f.column not in columns:
                raise ValueError(
                    f"filter column {f.column!r} is not a column of {self.source}; "
                    f"use one of {', '.join(sorted(columns))}"
                )
            _check_filter_type(f, columns[f.column])
        return self

    def value_column(self) -> str | None:
        """The column aggregated per unit (None when only events are counted)."""
        if self.aggregation in ("count", "any"):
            return None
        return self.value


class WindowSpec(_Strict):
    """Events count from ``start`` after the unit's first exposure up to ``end`` (exclusive).

    ``end: null`` means no end: every event after ``start`` counts.
    """

    start: timedelta = timedelta(0)
    end: timedelta | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _duration(cls, value: object, info: Any) -> timedelta | None:
        if value is None and info.field_name == "end":
            return None
        return parse_duration(value, field=f"window.{info.field_name}")

    @model_validator(mode="after")
    def _order(self) -> WindowSpec:
        if self.start < timedelta(0):
            raise ValueError(
                "window.start must be >= 0 (events before exposure belong to the covariate "
                f"window); got {self.start}"
            )
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"window.end ({self.end}) must be after window.start ({self.start})")
        return self


class CovariateSpec(_Strict):
    """CUPED covariate: the same measure over ``window`` before the first exposure.

    Args:
        window: length of the pre-period, e.g. ``14d``: events in
            [first exposure - window, first exposure) count.
        indicator: also add a 0/1 covariate "the unit had any pre-period event", which
            lets CUPED treat new units (no history) apart from returning ones.
    """

    window: timedelta
    indicator: bool = False

    @field_validator("window", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        d = parse_duration(value, field="covariate.window")
        if d <= timedelta(0):
            raise ValueError(f"covariate.window must be positive; got {value!r}")
        return d


class CappingSpec(_Strict):
    """Winsorize unit values from above: at ``value`` (absolute) or at a pooled quantile.

    Exactly one of ``value`` and ``quantile`` is given. The quantile cap is the
    ``quantile`` of the unit values pooled over all arms of the experiment (so every arm
    is capped at the same number); the covariate is capped at the same number.
    """

    value: float | None = None
    quantile: float | None = None

    @model_validator(mode="after")
    def _one(self) -> CappingSpec:
        if (self.value is None) == (self.quantile is None):
            raise ValueError(
                "capping needs exactly one of `value` (an absolute cap) or `quantile` (e.g. 0.99)"
            )
        if self.quantile is not None and not 0.5 <= self.quantile < 1:
            raise ValueError(f"capping.quantile must be in [0.5, 1); got {self.quantile}")
        return self


class QuantileSpec(_Strict):
    """A quantile metric: the ``p`` quantile of event values (``level: event``, clustered
    by unit) or of unit values (``level: unit``)."""

    p: float
    level: Literal["event", "unit"] = "event"
    rank_alpha: float = 0.05

    @field_validator("p", "rank_alpha")
    @classmethod
    def _p(cls, value: float, info: Any) -> float:
        if not 0 < value < 1:
            raise ValueError(f"quantile.{info.field_name} must be in (0, 1); got {value}")
        return value


_MEASURE_FIELDS = ("source", "event", "value", "aggregation", "filters")
_DEFAULT_AGGREGATION: dict[str, Aggregation] = {
    "mean": "sum",
    "proportion": "any",
    "count": "count",
    "quantile": "sum",
}


class MetricSpec(_Strict):
    """One metric. Mean, proportion, count and quantile metrics give the measure inline
    (``source``, ``event``, ``value``, ``aggregation``, ``filters``); ratio metrics give
    ``numerator`` and ``denominator`` measures."""

    name: str
    kind: Kind = "mean"
    family: Literal["primary", "secondary", "guardrail"] | None = None
    description: str | None = None
    source: Source | None = None
    event: str | None = None
    value: str | None = None
    aggregation: Aggregation | None = None
    filters: tuple[FilterSpec, ...] = ()
    numerator: MeasureSpec | None = None
    denominator: MeasureSpec | None = None
    window: WindowSpec = Field(default_factory=WindowSpec)
    covariate: CovariateSpec | None = None
    capping: CappingSpec | None = None
    missing: Literal["zero", "drop"] | None = None
    quantile: QuantileSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_.:-]+$", value):
            raise ValueError(
                f"metric name must use letters, digits, '_', '.', ':' or '-'; got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> MetricSpec:
        inline = [f for f in _MEASURE_FIELDS if getattr(self, f) not in (None, ())]
        if self.kind == "ratio":
            if self.numerator is None or self.denominator is None:
                raise ValueError("a ratio metric needs both `numerator` and `denominator`")
            if inline:
                raise ValueError(
                    f"a ratio metric gives its measures under numerator/denominator; "
                    f"move {', '.join(inline)} there"
                )
        else:
            if self.numerator is not None or self.denominator is not None:
                raise ValueError(
                    f"numerator/denominator are for kind 'ratio'; a {self.kind} metric "
                    "gives source, event, value, aggregation and filters inline"
                )
            self.numerator_measure()  # validates the inline measure
        agg = self.numerator_measure().aggregation
        if self.kind == "proportion" and agg != "any":
            raise ValueError(
                f"a proportion metric counts units with at least one event (aggregation "
                f"'any'); got aggregation {agg!r}. Use kind 'mean' for other aggregations"
            )
        if self.kind == "count" and agg != "count":
            raise ValueError(f"a count metric uses aggregation 'count'; got {agg!r}")
        if self.kind == "quantile":
            if self.quantile is None:
                raise ValueError("a quantile metric needs `quantile: {p: 0.9}`")
            if self.value is None:
                raise ValueError("a quantile metric needs `value` (the column, e.g. latency_ms)")
            if self.covariate is not None or self.capping is not None:
                raise ValueError("covariate and capping do not apply to quantile metrics")
        elif self.quantile is not None:
            raise ValueError(f"`quantile` is for kind 'quantile'; this metric is {self.kind!r}")
        return self

    def numerator_measure(self) -> MeasureSpec:
        """The measure of y (the metric value, or a ratio's numerator)."""
        if self.numerator is not None:
            return self.numerator
        agg = self.aggregation or _DEFAULT_AGGREGATION[self.kind]
        if self.kind == "mean" and self.aggregation is None and self.value is None:
            agg = "sum" if self.source != "predictions" else "count"
        value = self.value
        if (
            value is None
            and (self.source or "outcomes") == "outcomes"
            and agg
            in (
                "sum",
                "max",
                "min",
            )
        ):
            value = "value"
        return MeasureSpec(
            source=self.source or "outcomes",
            event=self.event,
            value=value,
            aggregation=agg,
            filters=self.filters,
        )

    def fill_missing(self) -> bool:
        """True if a unit with no event in the window counts as 0 (else it is dropped)."""
        if self.missing is not None:
            return self.missing == "zero"
        return self.numerator_measure().aggregation in ("sum", "count", "any")

    def output_kind(self) -> Literal["mean", "proportion", "ratio", "quantile"]:
        """The ``kind`` written to the statistics table (a count is a mean of counts)."""
        return "mean" if self.kind == "count" else self.kind

    def covariate_names(self) -> tuple[str, ...]:
        """Names of the CUPED covariates this metric produces, in column order."""
        if self.covariate is None:
            return ()
        names = [f"pre_{self.name}"]
        if self.kind == "ratio":
            names.append(f"pre_{self.name}_denominator")
        if self.covariate.indicator:
            names.append(f"pre_{self.name}_any")
        return tuple(names)


class MetricsSpec(_Strict):
    """A file of metric definitions for one or more experiments.

    Args:
        version: format version (1).
        experiment: one experiment name, or ``experiments``: a list of names.
        segments: exposure attribute keys to break results down by (each on its own,
            plus the segment ``all``).
        multiple_exposures: ``exclude`` drops units seen in more than one variant and
            counts them in the output; ``first`` keeps each unit in its first variant.
        outcomes_by_request: attribute outcomes that carry only a ``request_id`` to the
            unit of the prediction with that request id (default: they are skipped).
        metrics: the metric definitions.
    """

    version: Literal[1] = 1
    experiment: str | None = None
    experiments: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    multiple_exposures: Literal["exclude", "first"] = "exclude"
    outcomes_by_request: bool = False
    metrics: tuple[MetricSpec, ...]

    @field_validator("segments")
    @classmethod
    def _segments(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for s in value:
            if not _IDENTIFIER.match(s):
                raise ValueError(
                    f"segment {s!r} must be an attribute key of letters, digits and '_' "
                    "(it is looked up in the exposure attributes)"
                )
        if len(set(value)) != len(value):
            raise ValueError(f"segments repeat a name: {list(value)}; list each once")
        return value

    @model_validator(mode="after")
    def _check(self) -> MetricsSpec:
        if self.experiment is not None and self.experiments:
            raise ValueError("give `experiment` (one name) or `experiments` (a list), not both")
        if not self.experiment_names():
            raise ValueError("name the experiment: `experiment: my-test`")
        if not self.metrics:
            raise ValueError("`metrics` is empty; define at least one metric")
        names = [m.name for m in self.metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metric names repeat: {dupes}; give each metric its own name")
        return self

    def experiment_names(self) -> tuple[str, ...]:
        """The experiments this spec measures."""
        return (self.experiment,) if self.experiment is not None else self.experiments


def _format_location(loc: tuple[int | str, ...], data: Any) -> str:
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and item < len(node):
            node = node[item]
            name = node.get("name") if isinstance(node, dict) else None
            parts.append(f"[{item}]" + (f" ({name!r})" if name else ""))
            continue
        parts.append(f".{item}" if parts else str(item))
        node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def parse_metrics_spec(data: Any, *, where: str = "metrics spec") -> MetricsSpec:
    """Validate a mapping into a :class:`MetricsSpec`; errors name ``where`` and the field."""
    if not isinstance(data, dict):
        raise SpecError(
            f"{where}: expected a mapping with `experiment` and `metrics`; "
            f"got {type(data).__name__}."
        )
    try:
        return MetricsSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(x for x in err["loc"] if not str(x).startswith("function-after"))
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field; remove it or check its spelling"
            elif err["type"] == "literal_error":
                msg = f"{msg}; got {err.get('input')!r}"
            lines.append(f"{where}: field `{_format_location(loc, data)}`: {msg}.")
        raise SpecError("\n".join(lines)) from None


def load_metrics_spec(path: str | Path) -> MetricsSpec:
    """Load and validate a metrics spec from a YAML file.

    Example:
        >>> spec = load_metrics_spec("docs/examples/metrics.yaml")  # doctest: +SKIP
        >>> [m.name for m in spec.metrics]  # doctest: +SKIP
        ['revenue', 'converted', ...]
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(f"{p}: cannot read the metrics spec ({exc.strerror}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: not valid YAML: {exc}. Fix the syntax at that line.") from None
    return parse_metrics_spec(data, where=str(p))
