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
duplicate id is stored once), or one is generated (:func:`new_event_id`). Timestamps are UTC with
microsecond precision; a naive timestamp is taken to be UTC. ``received_at`` is set by
proving when the event enters a store or the writer, never by the client.

Structured fields (``attributes``, ``features``, ``output``) are stored as JSON strings so
that every backend (DuckDB, PostgreSQL, Parquet, Spark) holds the same column types.

Raw JSON events become these models in :mod:`proving.telemetry.validation`, which rejects
bad ones one by one with the field and the fix.

Example:
    >>> e = ExposureEvent(experiment="checkout", variant="b", unit_id="u1")
    >>> batch = to_record_batch("exposures", [e])
    >>> batch.num_rows, batch.schema.names[:3]
    (1, ['event_id', 'experiment', 'variant'])
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Annotated, Any, Final, Literal, NamedTuple, TypeAlias

import numpy as np
import orjson
import pyarrow as pa
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
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

_KEYS_AS_GIVEN: Final = orjson.OPT_UTC_Z
_SORTED_KEYS: Final = orjson.OPT_UTC_Z | orjson.OPT_SORT_KEYS


def new_event_id() -> str:
    """A new event id: 32 hex digits, the time in milliseconds then 80 random bits.

    Time-ordered ids (the layout of UUIDv7) go into the stores' primary-key indexes at
    the right end, a third cheaper than random ones in DuckDB; 80 random bits per
    millisecond keep them unique. The process PRNG (seeded from ``os.urandom``): no
    system call per id, which matters on the gateway's hot path.
    """
    # One 128-bit integer turned into hex: a third of the cost of formatting two fields.
    return ((time.time_ns() // 1_000_000) << 80 | random.getrandbits(80)).to_bytes(16).hex()


def new_event_ids(n: int) -> pa.StringArray:
    """``n`` new event ids at once, as an Arrow column (the layout of :func:`new_event_id`).

    A fifth of the cost of ``n`` calls (``benchmarks/event_rows.py``): the ids of one batch
    share its millisecond and take their random bits from one draw, made hex in one pass.
    A batch's ids follow the earlier batches' in a store's primary-key index (a later
    millisecond); within the batch their order is random, as for ids made in one
    millisecond one by one.

    Example:
        >>> ids = new_event_ids(3).to_pylist()
        >>> len(set(ids)), {len(i) for i in ids}
        (3, {32})
    """
    millis = f"{time.time_ns() // 1_000_000:012x}".encode()
    tails = random.getrandbits(80 * n).to_bytes(10 * n).hex().encode() if n else b""
    data = np.empty((n, 32), np.uint8)
    data[:, :12] = np.frombuffer(millis, np.uint8)
    data[:, 12:] = np.frombuffer(tails, np.uint8).reshape(n, 20)
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def now_micros() -> int:
    """The current time in microseconds since the Unix epoch (a row's ``timestamp``)."""
    return time.time_ns() // 1000


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


def json_bytes(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON, keys sorted if asked; NaN and infinities become null.

    orjson encodes JSON's own types (string keys, numbers, strings, lists, dicts,
    datetimes) 3-4x faster than the alternatives, which counts on the gateway's hot path;
    anything else (non-string keys, numpy scalars, sets, integers past 64 bits) goes to
    pydantic-core, which sorts only the top-level keys (where they compare) and writes
    unknown types as their ``str``.

    Raises:
        ValueError: the value cannot be JSON (a lone surrogate, a reference cycle).
    """
    try:
        return orjson.dumps(value, option=_SORTED_KEYS if sort_keys else _KEYS_AS_GIVEN)
    except TypeError:  # orjson.JSONEncodeError: not one of JSON's own types
        pass
    if sort_keys and isinstance(value, dict):
        try:  # noqa: SIM105 - a try costs nothing here; contextlib.suppress costs 0.3 us a call
            value = dict(sorted(value.items()))
        except TypeError:  # keys of mixed types keep their order
            pass
    return to_json(value, fallback=str, inf_nan_mode="null")


def json_text(value: Any) -> str:
    """Compact JSON text, keys sorted: equal dicts give equal text (see
    :func:`json_bytes`)."""
    try:  # orjson first, as json_bytes does: one call less on the gateway's hot path
        return orjson.dumps(value, option=_SORTED_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError: not one of JSON's own types
        return json_bytes(value, sort_keys=True).decode()


_ATTRIBUTES_CACHE: dict[tuple[tuple[tuple[str, Scalar], ...], tuple[type, ...]], str] = {}


def attributes_json(attributes: dict[str, Scalar]) -> str:
    """``json_text`` of scalar attributes, memoized: a few segment combinations repeat a
    lot."""
    # With the types: True, 1 and 1.0 are equal keys but different JSON.
    key = (tuple(attributes.items()), tuple(map(type, attributes.values())))
    text = _ATTRIBUTES_CACHE.get(key)
    if text is None:
        if len(_ATTRIBUTES_CACHE) >= 10_000:
            _ATTRIBUTES_CACHE.clear()  # bounded memory; the hot combinations come back
        text = _ATTRIBUTES_CACHE[key] = json_text(attributes)
    return text


class ExposureRow(NamedTuple):
    """An exposure as a row of ``exposures`` (every column but ``received_at``, in order).

    For producers that build events from values they have already validated (the
    gateway: ids from its spec and the request model, attributes filtered to finite
    scalars): a row skips model validation, which costs more than the rest of a request's
    telemetry, and becomes Arrow with one transpose. Structured fields are JSON text
    (:func:`attributes_json`), the timestamp an integer (:func:`now_micros`). An
    ``event_id`` of None is filled in when the row is converted (:func:`new_event_ids`,
    cheaper than one id a row); that conversion happens once, so a retried write keeps
    the ids.
    """

    event_id: str | None
    experiment: str
    variant: str
    unit_id: str
    timestamp: int  # microseconds since the Unix epoch, UTC (:func:`now_micros`)
    attributes: str

    @property
    def type(self) -> Literal["exposure"]:
        """The event type (as on :class:`ExposureEvent`)."""
        return "exposure"


class PredictionRow(NamedTuple):
    """A prediction as a row of ``predictions`` (see :class:`ExposureRow`); ``features``
    and ``output`` are JSON text (:func:`json_text`)."""

    event_id: str | None
    request_id: str
    unit_id: str | None
    deployment: str
    experiment: str | None
    variant: str | None
    model: str
    model_version: str
    role: Literal["served", "shadow"]
    status: Literal["ok", "error", "timeout", "fallback"]
    features: str
    output: str
    score: float | None
    latency_ms: float
    timestamp: int  # microseconds since the Unix epoch, UTC

    @property
    def type(self) -> Literal["prediction"]:
        """The event type (as on :class:`PredictionEvent`)."""
        return "prediction"


EventRow: TypeAlias = ExposureRow | PredictionRow
_ROW_OF_TABLE: Final[dict[str, type[EventRow]]] = {
    "exposures": ExposureRow,
    "predictions": PredictionRow,
}


def table_of(event: Event | EventRow) -> TableName:
    """The table an event is stored in."""
    return TABLE_OF_TYPE[event.type]


# Structured fields are stored as JSON text; every other column copies the model's field
# of the same name, so the schemas above are the one list of columns.
_ENCODERS: Final[dict[str, Callable[[Any], str]]] = {
    "attributes": attributes_json,
    "features": json_text,
    "output": json_text,
}


_STRING_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    table: tuple(field.name for field in schema if field.type == pa.string())
    for table, schema in SCHEMAS.items()
}


def _transpose(row_type: type[EventRow], rows: Sequence[Any]) -> dict[str, Any]:
    # Rows hold their columns already encoded: one transpose gives them all, by name.
    return dict(zip(row_type._fields, zip(*rows, strict=True), strict=True))


def _columns(
    table: TableName, events: Sequence[Event | EventRow], received_at: datetime
) -> dict[str, Any]:
    row_type = _ROW_OF_TABLE.get(table)
    if row_type is not None and set(map(type, events)) == {row_type}:
        # Rows only (the gateway's case): their types, checked in one pass, fix the table.
        columns = _transpose(row_type, events)
    else:
        for index, event in enumerate(events):
            if TABLE_OF_TYPE[event.type] != table:
                raise EventValidationError(
                    f"event {index}: a {event.type} event cannot be written to table "
                    f"{table!r}; Fix: group events by table (see "
                    f"proving.telemetry.events.group_by_table)."
                )
        models = [e for e in events if not isinstance(e, tuple)]
        rows = [e for e in events if isinstance(e, tuple)]
        transposed = _transpose(row_type, rows) if row_type is not None and rows else {}
        columns = {}
        for name in SCHEMAS[table].names:
            if name == "received_at":
                continue
            values = list(map(attrgetter(name), models))
            encode = _ENCODERS.get(name)
            if encode is not None:
                values = list(map(encode, values))
            values.extend(transposed.get(name, ()))
            columns[name] = values
    ids = columns["event_id"]
    missing = ids.count(None)
    if missing:  # rows whose id is left to the conversion (the gateway's)
        if missing == len(ids):
            columns["event_id"] = new_event_ids(missing)
        else:
            columns["event_id"] = [new_event_id() if i is None else i for i in ids]
    for name in _STRING_COLUMNS[table]:
        columns[name] = _repeated(columns[name])
    # As integers: Arrow converts them 6x faster than datetimes.
    columns["received_at"] = [(received_at - _EPOCH) // _MICROSECOND] * len(events)
    return columns


# A repeat has a fixed cost of a few microseconds: below this many rows, converting each
# value costs less.
_REPEAT_FROM: Final = 64


def _repeated(values: Any) -> Any:
    """A string column holding one value throughout, as one Arrow repeat: a fifth of the
    cost of converting each of 512 values. Most of the gateway's columns are such (its
    deployment, model, version, role, status). Other columns are returned as they are."""
    if not isinstance(values, list | tuple) or len(values) < _REPEAT_FROM:
        return values
    first = values[0]
    # Comparing the ends first rejects most other columns at once (ids, JSON, numbers).
    if type(first) is not str or first != values[-1] or values.count(first) != len(values):
        return values
    return pa.repeat(pa.scalar(first, pa.string()), len(values))


def to_record_batch(
    table: TableName, events: Sequence[Event | EventRow], received_at: datetime | None = None
) -> pa.RecordBatch:
    """Column-wise conversion of same-table events (models or rows) into one Arrow record
    batch.

    Raises:
        EventValidationError: if an event belongs to another table.
    """
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
    if tbl.schema.equals(schema):
        return tbl  # the writer's batches: built in this schema, nothing to select or cast
    names = set(tbl.column_names)  # a property that builds a new list on every access
    missing = [name for name in schema.names if name not in names]
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


# Re-exported: validation lived here before proving.telemetry.validation. Imported last
# because validation imports the models above (a cycle that is safe only in this order).
from proving.telemetry.validation import Rejection, parse_event, validate_events  # noqa: E402

__all__ = [
    "EXPOSURES_SCHEMA",
    "OUTCOMES_SCHEMA",
    "PREDICTIONS_SCHEMA",
    "SCHEMAS",
    "TABLES",
    "Event",
    "EventRow",
    "EventType",
    "ExposureEvent",
    "ExposureRow",
    "OutcomeEvent",
    "PredictionEvent",
    "PredictionRow",
    "Rejection",
    "TableName",
    "attributes_json",
    "check_table",
    "conform",
    "group_by_table",
    "json_bytes",
    "json_text",
    "new_event_id",
    "new_event_ids",
    "now_micros",
    "parse_event",
    "table_of",
    "to_record_batch",
    "validate_events",
]
