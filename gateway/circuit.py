"""A per-backend circuit breaker: N consecutive failures open it for T seconds, then a single
half-open probe decides whether it closes again."""

from __future__ import annotations

import time
from enum import IntEnum


class CircuitState(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(self, failure_threshold: int, open_seconds: float, clock=time.monotonic) -> None:
        self._threshold = failure_threshold
        self._open_seconds = open_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.state = CircuitState.CLOSED

    def allow(self) -> bool:
        """May a request go to this backend now? In half-open, only one probe at a time."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if self._clock() - self._opened_at < self._open_seconds:
                return False
            self.state = CircuitState.HALF_OPEN
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def would_allow(self) -> bool:
        """Like allow(), without taking the half-open probe (for readiness)."""
        if self.state is CircuitState.OPEN:
            return self._clock() - self._opened_at >= self._open_seconds
        return not (self.state is CircuitState.HALF_OPEN and self._probe_in_flight)

    def record_success(self) -> None:
        self._failures = 0
        self._probe_in_flight = False
        self.state = CircuitState.CLOSED

    def record_failure(self) -> None:
        self._probe_in_flight = False
        self._failures += 1
        if self.state is CircuitState.HALF_OPEN or self._failures >= self._threshold:
            self.state = CircuitState.OPEN
            self._opened_at = self._clock()

    def release_probe(self) -> None:
        """A half-open probe ended without a verdict (client error, cancelled)."""
        self._probe_in_flight = False
