"""Event models and the Arrow schema of the three event tables.

Three kinds of event, one table each (names are a stable contract: ``proving.metrics``
reads these tables and columns):

``exposures``
    a unit saw a variant of an experiment.
``predictions``
    a model answered a request (served or shadow), with its version, latency and status.
``outcomes``
    something happened to a unit or request later: a click, a purchase, a label.

Every event has an ``event_id``. The client may give one (then a retry is idempotent: a
duplicate id is stored once), or one is generated (uuid4 hex). Timestamps are UTC with
microsecond precision; a naive timestamp is taken to be UTC. ``received_at`` is set by
proving when the event enters a store or the writer, never by the client.

Structured fields (``attributes``, ``features``, ``output``) are stored as JSON strings so
that every backend (DuckDB, PostgreSQL, Parquet, Spark) holds the same column types.

Example:
    >>> e = ExposureEvent(experiment="checkout", variant="b", unit_id="u1")
    >>> batch = to_record_batch("exposures", [e])
    >>> batch.num_rows, batch.schema.names[:3]
    (1, ['event_id', 'experiment', 'variant'])
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeAlias

import pyarrow as pa
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import to_json

from proving.errors import EventValidationError

TableName: TypeAlias = Literal["exposures", "predictions", "outcomes"]
EventType: TypeAlias = Literal["exposure", "prediction", "outcome"]

TABLES: Final[tuple[TableName, ...]] = ("exposures", "predictions", "outcomes")
TABLE_OF_TYPE: Final[dict[str, TableName]] = {
    "exposure": "exposures",
    "prediction": "predictions",
    "outcome": "outcomes",
}

TIMESTAMP = pa.timestamp("us", tz="UTC")

EXPOSURES_SCHEMA: Final = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("experiment", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("unit_id", pa.string(), nullable=False),
        pa.field("timestamp", TIMESTAMP, nullable=False),
        pa.field("attributes", pa.string(), nullable=False),
        pa.field("received_at", TIMESTAMP, nullable=False),
    ]
)
PREDICTIONS_SCHEMA: Final = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("unit_id", pa.string(), nullable=True),
        pa.field("deployment", pa.string(), nullable=False),
        pa.field("experiment", pa.string(), nullable=True),
        pa.field("variant", pa.string(), nullable=True),
        pa.field("model", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("features", pa.string(), nullable=False),
        pa.field("output", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=True),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("timestamp", TIMESTAMP, nullable=False),
        pa.field("received_at", TIMESTAMP, nullable=False),
    ]
)
OUTCOMES_SCHEMA: Final = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("unit_id", pa.string(), nullable=True),
        pa.field("request_id", pa.string(), nullable=True),
        pa.field("name", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("timestamp", TIMESTAMP, nullable=False),
        pa.field("received_at", TIMESTAMP, nullable=False),
    ]
)
SCHEMAS: Final[dict[TableName, pa.Schema]] = {
    "exposures": EXPOSURES_SCHEMA,
    "predictions": PREDICTIONS_SCHEMA,
    "outcomes": OUTCOMES_SCHEMA,
}

MAX_ID_LENGTH: Final = 256
# No NUL characters: PostgreSQL text cannot hold them, and no real id contains one.
Identifier = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00]+$"
    ),
]
Scalar: TypeAlias = str | int | float | bool | None


def new_event_id() -> str:
    """A fresh random event id (uuid4, 32 hex characters)."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    event_id: Identifier = Field(default_factory=new_event_id)
    timestamp: datetime = Field(default_factory=utc_now)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # A naive timestamp is taken to be UTC; an aware one is converted to UTC.
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ExposureEvent(_EventBase):
    """A unit saw a variant of an experiment.

    ``attributes`` holds scalar unit attributes (country, platform, ...): segments come
    from here.
    """

    type: Literal["exposure"] = "exposure"
    experiment: Identifier
    variant: Identifier
    unit_id: Identifier
    attributes: dict[str, Scalar] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _finite_attributes(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        for key, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"attribute {key!r} is {item}. Fix: send a finite number or null.")
        return value


class PredictionEvent(_EventBase):
    """A model answered a request, as the served model or as a shadow."""

    type: Literal["prediction"] = "prediction"
    request_id: Identifier
    unit_id: Identifier | None = None
    deployment: Identifier
    experiment: Identifier | None = None
    variant: Identifier | None = None
    model: Identifier
    model_version: Identifier
    role: Literal["served", "shadow"] = "served"
    status: Literal["ok", "error", "timeout", "fallback"] = "ok"
    features: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    score: float | None = Field(default=None, allow_inf_nan=False)
    latency_ms: float = Field(ge=0.0, allow_inf_nan=False)


class OutcomeEvent(_EventBase):
    """Something observed about a unit or a request, possibly long after exposure.

    At least one of ``unit_id`` and ``request_id`` is required: it is the join key back to
    the exposure (unit) or the prediction (request).
    """

    type: Literal["outcome"] = "outcome"
    unit_id: Identifier | None = None
    request_id: Identifier | None = None
    name: Identifier
    value: float = Field(default=1.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _has_join_key(self) -> OutcomeEvent:
        if self.unit_id is None and self.request_id is None:
            raise ValueError(
                "an outcome needs unit_id or request_id (or both) to be joined to its "
                "exposure or prediction; neither was given. Fix: add unit_id or request_id."
            )
        return self


Event: TypeAlias = ExposureEvent | PredictionEvent | OutcomeEvent
_EVENT_CLASSES: Final[dict[str, type[_EventBase]]] = {
    "exposure": ExposureEvent,
    "prediction": PredictionEvent,
    "outcome": OutcomeEvent,
}


def table_of(event: Event) -> TableName:
    """The table an event is stored in."""
    return TABLE_OF_TYPE[event.type]


@dataclass(frozen=True)
class Rejection:
    """Why one event of a batch was rejected: its index, the field and the reason."""

    index: int
    field: str
    reason: str
    event_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (used in HTTP responses)."""
        return {
            "index": self.index,
            "event_id": self.event_id,
            "field": self.field,
            "reason": self.reason,
        }


_FIX_HINTS: Final[dict[str, str]] = {
    "missing": "add the field",
    "extra_forbidden": "remove the field (unknown fields are not stored)",
    "string_type": "send a string",
    "float_type": "send a number",
    "float_parsing": "send a number",
    "finite_number": "send a finite number",
    "datetime_type": "send an ISO 8601 timestamp such as 2024-05-01T12:00:00Z",
    "datetime_parsing": "send an ISO 8601 timestamp such as 2024-05-01T12:00:00Z",
    "datetime_from_date_parsing": "send an ISO 8601 timestamp such as 2024-05-01T12:00:00Z",
    "literal_error": "use one of the allowed values",
    "string_too_short": "send a non-empty string",
    "string_too_long": f"send at most {MAX_ID_LENGTH} characters",
    "dict_type": "send a JSON object",
    "greater_than_equal": "send a value >= 0",
    "string_pattern_mismatch": "remove NUL characters",
}


_TYPE_TAGS: Final = frozenset({"str", "int", "float", "bool", "none", "constrained-str"})


def _rejection_from(index: int, raw: Any, exc: ValidationError) -> Rejection:
    first = exc.errors(include_url=False)[0]
    parts: list[str] = []
    for part in first["loc"]:
        # Union members add type tags (str, constrained-str, ...) to the location: stop there.
        if isinstance(part, str) and (part in _TYPE_TAGS or "[" in part):
            break
        parts.append(str(part))
    location = ".".join(parts) or "event"
    message = first["msg"]
    if location.startswith("attributes.") and len(parts) == 2:
        got = json.dumps(first.get("input"), default=str)[:80]
        message = f"attribute values must be a string, number, boolean or null; got {got}"
        tail = ". Fix: flatten the value into scalar attributes."
    elif first["type"] == "value_error":
        # Our own validators write the whole message, fix included; do not echo the input.
        message = message.removeprefix("Value error, ")
        if location == "event" and "unit_id or request_id" in message:
            location = "unit_id"
        tail = ""
    else:
        fix = _FIX_HINTS.get(first["type"], "correct the value")
        got = json.dumps(first.get("input"), default=str)[:80]
        got_text = "" if first["type"] == "missing" else f"; got {got}"
        tail = f"{got_text}. Fix: {fix}."
    event_id = raw.get("event_id") if isinstance(raw, Mapping) else None
    return Rejection(
        index=index,
        field=location,
        reason=f"event {index}: field {location!r}: {message}{tail}",
        event_id=event_id if isinstance(event_id, str) else None,
    )


def parse_event(raw: Any, index: int = 0, default_type: EventType | None = None) -> Event:
    """Validate one raw event (a JSON object) into its model.

    Args:
        raw: the decoded JSON object. Its ``type`` field picks the model; where absent,
            ``default_type`` is used (the ``/v1/outcomes`` endpoint defaults to outcome).
        index: position in the batch, named in the error.
        default_type: the type assumed when ``raw`` has no ``type``.

    Raises:
        EventValidationError: naming the index, the field and the fix.
    """
    if not isinstance(raw, Mapping):
        raise EventValidationError(
            f"event {index}: must be a JSON object; got {type(raw).__name__}. "
            "Fix: send each event as an object such as "
            '{"type": "exposure", "experiment": ..., "variant": ..., "unit_id": ...}.'
        )
    kind = raw.get("type", default_type)
    cls = _EVENT_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EventValidationError(
            f"event {index}: field 'type' must be one of exposure, prediction, outcome; "
            f"got {kind!r}. Fix: set 'type'."
        )
    try:
        return cls.model_validate(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        raise EventValidationError(_rejection_from(index, raw, exc).reason) from exc


def validate_events(
    raws: Sequence[Any], default_type: EventType | None = None
) -> tuple[list[tuple[int, Event]], list[Rejection]]:
    """Validate a batch one event at a time: good events are kept, bad ones explained.

    Returns:
        ``(accepted, rejected)``: accepted as ``(index, event)`` pairs, rejected as
        :class:`Rejection` records naming the index, the field and the reason.
    """
    accepted: list[tuple[int, Event]] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(raws):
        try:
            accepted.append((index, parse_event(raw, index, default_type)))
        except EventValidationError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                rejected.append(_rejection_from(index, raw, cause))
            else:
                field = "type" if isinstance(raw, Mapping) else "event"
                rejected.append(Rejection(index=index, field=field, reason=str(exc)))
    return accepted, rejected


def _json(value: Any) -> str:
    """Compact JSON text, top-level keys sorted (equal dicts give equal text).

    pydantic-core's Rust encoder is 2-3x faster than ``json.dumps`` here, the writer's
    hottest loop; NaN and infinities become null, unknown types their ``str``.
    """
    if isinstance(value, dict):
        if not value:
            return "{}"
        value = dict(sorted(value.items()))
    return to_json(value, fallback=str).decode()


_ATTRIBUTES_CACHE: dict[tuple[tuple[str, Scalar], ...], str] = {}


def _attributes_json(attributes: dict[str, Scalar]) -> str:
    """``_json`` of scalar attributes, memoized: a few segment combinations repeat a lot."""
    key = tuple(attributes.items())
    text = _ATTRIBUTES_CACHE.get(key)
    if text is None:
        if len(_ATTRIBUTES_CACHE) >= 10_000:
            _ATTRIBUTES_CACHE.clear()  # bounded memory; the hot combinations come back
        text = _ATTRIBUTES_CACHE[key] = _json(attributes)
    return text


def _columns(table: TableName, events: Sequence[Event], received_at: datetime) -> dict[str, Any]:
    received = [received_at] * len(events)
    if table == "exposures":
        ex: Sequence[ExposureEvent] = events  # type: ignore[assignment]
        return {
            "event_id": [e.event_id for e in ex],
            "experiment": [e.experiment for e in ex],
            "variant": [e.variant for e in ex],
            "unit_id": [e.unit_id for e in ex],
            "timestamp": [e.timestamp for e in ex],
            "attributes": [_attributes_json(e.attributes) for e in ex],
            "received_at": received,
        }
    if table == "predictions":
        pr: Sequence[PredictionEvent] = events  # type: ignore[assignment]
        return {
            "event_id": [e.event_id for e in pr],
            "request_id": [e.request_id for e in pr],
            "unit_id": [e.unit_id for e in pr],
            "deployment": [e.deployment for e in pr],
            "experiment": [e.experiment for e in pr],
            "variant": [e.variant for e in pr],
            "model": [e.model for e in pr],
            "model_version": [e.model_version for e in pr],
            "role": [e.role for e in pr],
            "status": [e.status for e in pr],
            "features": [_json(e.features) for e in pr],
            "output": [_json(e.output) for e in pr],
            "score": [e.score for e in pr],
            "latency_ms": [e.latency_ms for e in pr],
            "timestamp": [e.timestamp for e in pr],
            "received_at": received,
        }
    oc: Sequence[OutcomeEvent] = events  # type: ignore[assignment]
    return {
        "event_id": [e.event_id for e in oc],
        "unit_id": [e.unit_id for e in oc],
        "request_id": [e.request_id for e in oc],
        "name": [e.name for e in oc],
        "value": [e.value for e in oc],
        "timestamp": [e.timestamp for e in oc],
        "received_at": received,
    }


def to_record_batch(
    table: TableName, events: Sequence[Event], received_at: datetime | None = None
) -> pa.RecordBatch:
    """Column-wise conversion of same-table events into one Arrow record batch.

    Raises:
        EventValidationError: if an event belongs to another table.
    """
    for index, event in enumerate(events):
        if TABLE_OF_TYPE[event.type] != table:
            raise EventValidationError(
                f"event {index}: a {event.type} event cannot be written to table {table!r}; "
                f"Fix: group events by table (see proving.telemetry.events.group_by_table)."
            )
    columns = _columns(table, events, received_at or utc_now())
    return pa.RecordBatch.from_pydict(columns, schema=SCHEMAS[table])


def group_by_table(events: Iterable[Event]) -> dict[TableName, list[Event]]:
    """Split mixed events into per-table lists (tables with no events are absent)."""
    grouped: dict[TableName, list[Event]] = {}
    for event in events:
        grouped.setdefault(TABLE_OF_TYPE[event.type], []).append(event)
    return grouped


def check_table(table: str) -> TableName:
    """Validate a table name.

    Raises:
        EventValidationError: naming the allowed tables.
    """
    if table not in SCHEMAS:
        raise EventValidationError(
            f"table must be one of {', '.join(TABLES)}; got {table!r}. Fix: use one of those."
        )
    return table


def conform(table: TableName, data: pa.RecordBatch | pa.Table) -> pa.Table:
    """Cast Arrow data to the table's schema (same columns, same order).

    Raises:
        EventValidationError: naming the missing column or the failed cast.
    """
    schema = SCHEMAS[table]
    tbl = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    missing = [name for name in schema.names if name not in tbl.column_names]
    if missing:
        raise EventValidationError(
            f"table {table!r}: columns {missing} are missing; got {tbl.column_names}. "
            "Fix: build batches with proving.telemetry.events.to_record_batch."
        )
    try:
        return tbl.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise EventValidationError(
            f"table {table!r}: the batch does not match the schema: {exc}. "
            "Fix: build batches with proving.telemetry.events.to_record_batch."
        ) from exc


__all__ = [
    "EXPOSURES_SCHEMA",
    "OUTCOMES_SCHEMA",
    "PREDICTIONS_SCHEMA",
    "SCHEMAS",
    "TABLES",
    "Event",
    "EventType",
    "ExposureEvent",
    "OutcomeEvent",
    "PredictionEvent",
    "Rejection",
    "TableName",
    "check_table",
    "conform",
    "group_by_table",
    "new_event_id",
    "parse_event",
    "table_of",
    "to_record_batch",
    "validate_events",
]
