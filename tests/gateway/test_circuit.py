"""gateway/circuit.py on its own, with a hand-driven clock: opening, the single half-open probe,
what late answers may and may not change, and the state the gauge shows."""

from __future__ import annotations

import pytest

from gateway.circuit import CircuitBreaker, CircuitState, Ticket, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def fail(circuit: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        ticket = circuit.admit()
        assert ticket is not None
        circuit.settle(ticket, Verdict.FAILURE)


def test_consecutive_failures_open_it_and_a_success_resets_the_count(clock: Clock) -> None:
    circuit = CircuitBreaker(3, 10, clock)
    fail(circuit, 2)
    circuit.settle(circuit.admit(), Verdict.SUCCESS)
    fail(circuit, 2)
    assert circuit.state is CircuitState.CLOSED
    fail(circuit)
    assert circuit.state is CircuitState.OPEN
    assert circuit.admit() is None
    assert circuit.seconds_until_probe() == pytest.approx(10)


def test_after_open_seconds_one_probe_at_a_time(clock: Clock) -> None:
    circuit = CircuitBreaker(1, 10, clock)
    fail(circuit)
    clock.now += 10
    assert circuit.state is CircuitState.HALF_OPEN, "the gauge shows half-open without waiting for traffic"
    assert circuit.seconds_until_probe() == 0
    probe = circuit.admit()
    assert probe is Ticket.PROBE
    assert circuit.admit() is None, "only one probe"
    circuit.settle(probe, Verdict.SUCCESS)
    assert circuit.state is CircuitState.CLOSED and circuit.admit() is Ticket.NORMAL


def test_a_failed_probe_opens_it_again_for_the_full_time(clock: Clock) -> None:
    circuit = CircuitBreaker(1, 10, clock)
    fail(circuit)
    clock.now += 10
    circuit.settle(circuit.admit(), Verdict.FAILURE)
    assert circuit.state is CircuitState.OPEN
    clock.now = 119.5
    assert circuit.admit() is None
    clock.now = 120.0
    assert circuit.admit() is Ticket.PROBE


def test_a_probe_without_a_verdict_lets_the_next_request_probe(clock: Clock) -> None:
    """A cancelled probe, a client error or a 429 say nothing about health: the next one probes."""
    circuit = CircuitBreaker(1, 10, clock)
    fail(circuit)
    clock.now += 10
    circuit.settle(circuit.admit(), Verdict.NONE)
    assert circuit.state is CircuitState.HALF_OPEN
    assert circuit.admit() is Ticket.PROBE


def test_late_answers_from_before_it_opened_change_nothing(clock: Clock) -> None:
    circuit = CircuitBreaker(2, 10, clock)
    slow_good, slow_bad = circuit.admit(), circuit.admit()
    fail(circuit, 2)
    assert circuit.state is CircuitState.OPEN
    circuit.settle(slow_good, Verdict.SUCCESS)
    assert circuit.state is CircuitState.OPEN, "only the probe may close an open circuit"
    clock.now += 10
    probe = circuit.admit()
    circuit.settle(slow_bad, Verdict.FAILURE)
    assert circuit.state is CircuitState.HALF_OPEN, "a late failure must not take the probe away"
    circuit.settle(probe, Verdict.SUCCESS)
    assert circuit.state is CircuitState.CLOSED
