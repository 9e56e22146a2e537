"""The circuit breaker opens, refuses, half-opens and closes as specified."""

from __future__ import annotations

import pytest

from proving.errors import ServeError
from proving.serve.breaker import CircuitBreaker


def test_breaker_lifecycle_with_a_fake_clock() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10.0, clock=lambda: now[0])
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record_failure()  # the trial failed: open again, for a full timeout
    assert breaker.state == "open"
    now[0] = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_breaker_rejects_bad_settings() -> None:
    with pytest.raises(ServeError, match="failure_threshold must be >= 1; got 0"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ServeError, match="reset_timeout must be > 0"):
        CircuitBreaker(reset_timeout=0)
