"""Record: exposures, predictions and outcomes, each stored once (see docs/telemetry).

Light imports only here (pydantic, pyarrow, prometheus-client): the ingestion API
(FastAPI) and the NATS bus load on first use of their names.
"""

from proving._lazy import lazy_exports as _lazy_exports
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
)
from proving.telemetry.privacy import PrivacyPolicy
from proving.telemetry.store import EventStore, open_store
from proving.telemetry.validation import Rejection, validate_events
from proving.telemetry.writer import BatchWriter, WriterOverloadedError

_LAZY = {
    "IngestConfig": "proving.telemetry.ingest",
    "create_ingest_app": "proving.telemetry.ingest",
    "NatsLoader": "proving.telemetry.nats_bus",
    "NatsStore": "proving.telemetry.nats_bus",
}


__all__ = [
    "EXPOSURES_SCHEMA",
    "OUTCOMES_SCHEMA",
    "PREDICTIONS_SCHEMA",
    "SCHEMAS",
    "TABLES",
    "BatchWriter",
    "Event",
    "EventStore",
    "ExposureEvent",
    "IngestConfig",
    "NatsLoader",
    "NatsStore",
    "OutcomeEvent",
    "PredictionEvent",
    "PrivacyPolicy",
    "Rejection",
    "WriterOverloadedError",
    "create_ingest_app",
    "open_store",
    "to_record_batch",
    "validate_events",
]

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
