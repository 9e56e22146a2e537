"""The exception tree of proving.

Every error proving raises on purpose descends from :class:`ProvingError` and from the
built-in exception it refines, so callers can catch either::

    ProvingError
    ├── SpecError(ValueError)            an experiment or metric spec is invalid
    │   └── SpecValidationError          a spec file breaks rules; `.issues` lists each
    ├── StatsInputError(ValueError)      sufficient statistics are malformed (not degenerate)
    ├── AssignmentError(ValueError)      an assignment request cannot be answered
    ├── TelemetryError                   an event store or bus failed
    │   └── EventValidationError(ValueError)  an event is malformed
    ├── MetricsError(ValueError)         a metric definition cannot be computed
    ├── ServeError                       the gateway cannot serve a request
    │   └── HTTPError                    carries an HTTP status code
    └── MissingDependencyError(ImportError)  an optional extra is not installed

Messages name the thing, the rule, the value received and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence


class ProvingError(Exception):
    """Root of every error proving raises on purpose."""


class SpecError(ProvingError, ValueError):
    """An experiment, metric or rollout spec is invalid."""


class SpecValidationError(SpecError):
    """A spec breaks one or more rules; ``issues`` holds each (file, line, field, fix)."""

    def __init__(self, message: str, issues: Sequence[object] | None = None) -> None:
        super().__init__(message)
        self.issues = list(issues or [])


class StatsInputError(ProvingError, ValueError):
    """Sufficient statistics are malformed: a missing field, a wrong shape, a bad parameter.

    Degenerate data (an empty arm, zero variance, NaN) is not an error: the engine returns
    a result with no estimate and a reason instead.
    """


class AssignmentError(ProvingError, ValueError):
    """An assignment request cannot be answered (bad spec, bad unit)."""


class TelemetryError(ProvingError):
    """An event store, writer or bus failed."""


class EventValidationError(TelemetryError, ValueError):
    """An event is malformed; the message names the field and the fix."""


class MetricsError(ProvingError, ValueError):
    """A metric definition cannot be compiled or computed."""


class ServeError(ProvingError):
    """The gateway cannot serve a request."""


class HTTPError(ServeError):
    """An error that maps to an HTTP response."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class MissingDependencyError(ProvingError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; it is needed here. "
            f"Install it with: pip install 'proving[{extra}]'"
        )
        self.package = package
        self.extra = extra


def require(module: str, extra: str) -> object:
    """Import an optional module or raise :class:`MissingDependencyError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.split(".")[0], extra) from exc
