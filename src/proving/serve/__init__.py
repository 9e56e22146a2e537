"""Serve: answer requests with A/B, shadow, canary, blue/green and interleaving.

Example:
    >>> from proving.serve import create_app
    >>> from proving.spec import parse_spec
    >>> app = create_app([parse_spec("name: d\\nvariants: [{name: a}, {name: b}]")])
"""

from proving.serve.app import create_app
from proving.serve.backends import (
    BackendError,
    BadFeaturesError,
    CallableBackend,
    ModelBackend,
    RemoteBackend,
    SklearnBackend,
    load_backend,
)
from proving.serve.batching import BatchingBackend
from proving.serve.breaker import CircuitBreaker, CircuitOpenError
from proving.serve.deployment import ServeConfig
from proving.serve.gateway import Gateway
from proving.serve.interleave import InterleavedList, credit_clicks, team_draft
from proving.serve.state import DeploymentState, Overrides

__all__ = [
    "BackendError",
    "BadFeaturesError",
    "BatchingBackend",
    "CallableBackend",
    "CircuitBreaker",
    "CircuitOpenError",
    "DeploymentState",
    "Gateway",
    "InterleavedList",
    "ModelBackend",
    "Overrides",
    "RemoteBackend",
    "ServeConfig",
    "SklearnBackend",
    "create_app",
    "credit_clicks",
    "load_backend",
    "team_draft",
]
