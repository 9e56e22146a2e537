"""Validation at the boundary: raw JSON events in, models or explained rejections out.

:func:`parse_event` validates one decoded JSON object into its model
(:class:`~proving.telemetry.events.ExposureEvent`, ``PredictionEvent`` or ``OutcomeEvent``,
picked by its ``type``); :func:`validate_events` judges each event of a batch on its own,
keeping the good ones and returning one :class:`Rejection` per bad one. A rejection names
the event's index, the field, the rule, the value received and the fix, in words a client
can act on without reading pydantic's error codes:

    event 1: field 'latency_ms': Input should be a valid number, unable to parse string as
    a number; got "slow". Fix: send a number.

Example:
    >>> accepted, rejected = validate_events(
    ...     [{"type": "outcome", "unit_id": "u1", "name": "buy"}, {"type": "click"}]
    ... )
    >>> [index for index, _ in accepted], rejected[0].field
    ([0], 'type')
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from proving.errors import EventValidationError
from proving.telemetry.events import (
    MAX_ID_LENGTH,
    Event,
    EventType,
    ExposureEvent,
    OutcomeEvent,
    PredictionEvent,
)

_EVENT_CLASSES: Final[dict[str, type[Event]]] = {
    "exposure": ExposureEvent,
    "prediction": PredictionEvent,
    "outcome": OutcomeEvent,
}


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
        return cls.model_validate(raw)
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


__all__ = ["Rejection", "parse_event", "validate_events"]
