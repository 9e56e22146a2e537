"""Record: exposures, predictions and outcomes, each stored once (see docs/telemetry)."""

from proving.telemetry.events import (
    EXPOSURES_SCHEMA,
    OUTCOMES_SCHEMA,
    PREDICTIONS_SCHEMA,
    SCHEMAS,
    TABLES,
    Event,
    ExposureEvent,
    OutcomeEvent,
    PredictionEvent,
    to_record_batch,
    validate_events,
)

__all__ = [
    "EXPOSURES_SCHEMA",
    "OUTCOMES_SCHEMA",
    "PREDICTIONS_SCHEMA",
    "SCHEMAS",
    "TABLES",
    "Event",
    "ExposureEvent",
    "OutcomeEvent",
    "PredictionEvent",
    "to_record_batch",
    "validate_events",
]
