"""A circuit breaker for model backends (closed, open, half-open).

After ``failure_threshold`` consecutive failures the breaker *opens*: calls fail at once
for ``reset_timeout`` seconds instead of waiting on a backend that is down, so the
gateway falls back to the champion without paying a timeout per request. Then one trial
call is let through (*half-open*): success closes the breaker, failure opens it again.
This is the pattern of Nygard, *Release It!* (2007, ch. 5), as in Hystrix and resilience4j.

Example:
    >>> breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30.0)
    >>> breaker.record_failure(); breaker.record_failure(); breaker.allow()
    False
    >>> breaker.state
    'open'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from proving.errors import ServeError

__all__ = ["CircuitBreaker", "CircuitOpenError"]

BreakerState = Literal["closed", "open", "half_open"]


class CircuitOpenError(ServeError):
    """The backend's circuit breaker is open: the call was not attempted."""


class CircuitBreaker:
    """Counts consecutive failures and refuses calls while the backend looks down.

    Args:
        failure_threshold: consecutive failures that open the breaker.
        reset_timeout: seconds to stay open before a half-open trial call.
        clock: monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ServeError(
                f"CircuitBreaker: failure_threshold must be >= 1; got {failure_threshold}."
            )
        if reset_timeout <= 0:
            raise ServeError(f"CircuitBreaker: reset_timeout must be > 0; got {reset_timeout}.")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        """``closed`` (calls pass), ``open`` (calls refused) or ``half_open`` (one trial)."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_timeout:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """May a call go through now? In half-open state only one trial at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        """A call failed: count it, and open (or re-open) the breaker at the threshold."""
        self._failures += 1
        if self._trial_running or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._trial_running = False
