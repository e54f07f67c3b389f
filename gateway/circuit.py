"""A per-backend circuit breaker: N consecutive failures open it for T seconds, then a single
half-open probe decides whether it closes again.

Each admitted request holds a ticket and settles it exactly once (backends.Lease sees to that).
Only the probe's verdict moves a half-open circuit; answers to requests admitted before the
circuit opened are too late to say anything about the backend now.
"""

from __future__ import annotations

import time
from enum import Enum, IntEnum
from typing import Callable


class CircuitState(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class Ticket(Enum):
    NORMAL = "normal"  # admitted while closed
    PROBE = "probe"    # the single half-open probe


class Verdict(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    NONE = "none"      # the attempt says nothing about the backend's health (client error, 429, cancelled)


class CircuitBreaker:
    def __init__(self, failure_threshold: int, open_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failure_threshold
        self._open_seconds = open_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._open = False
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        """What the circuit would do with a request now (the gauge reads this at scrape time)."""
        if not self._open:
            return CircuitState.CLOSED
        if self._probe_in_flight or self._clock() - self._opened_at >= self._open_seconds:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def admit(self) -> Ticket | None:
        """A ticket for a request to this backend now, or None. In half-open, one probe at a time."""
        if not self._open:
            return Ticket.NORMAL
        if self._probe_in_flight or self._clock() - self._opened_at < self._open_seconds:
            return None
        self._probe_in_flight = True
        return Ticket.PROBE

    def settle(self, ticket: Ticket, verdict: Verdict) -> None:
        if ticket is Ticket.PROBE:
            self._probe_in_flight = False
            if verdict is Verdict.SUCCESS:
                self._open, self._failures = False, 0
            elif verdict is Verdict.FAILURE:
                self._opened_at = self._clock()
            # NONE: still half-open; the next request probes.
        elif not self._open:
            if verdict is Verdict.SUCCESS:
                self._failures = 0
            elif verdict is Verdict.FAILURE:
                self._failures += 1
                if self._failures >= self._threshold:
                    self._open, self._opened_at = True, self._clock()

    def seconds_until_probe(self) -> float:
        """How long until this circuit admits a request again (0: it would now)."""
        if not self._open:
            return 0.0
        if self._probe_in_flight:
            return 1.0  # the probe's answer is due any moment; no better estimate
        return max(0.0, self._opened_at + self._open_seconds - self._clock())
