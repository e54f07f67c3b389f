"""gateway/backends.py: one owner per upstream attempt. A lease holds the in-flight slot and any
half-open probe and gives both back on every way out, unless a stream takes it over."""

from __future__ import annotations

import pytest

from gateway.backends import Lease, UpstreamBackend
from gateway.circuit import CircuitState, Ticket, Verdict
from gateway.config import VllmBackend


def backend(max_in_flight: int = 2, threshold: int = 1) -> UpstreamBackend:
    return UpstreamBackend("vllm-x", VllmBackend(kind="vllm", baseURL="http://127.0.0.1:1/v1", model="m",
                                                 maxInFlight=max_in_flight, circuit={"failureThreshold": threshold,
                                                                                     "openSeconds": 0.3}))


def test_slots_are_limited_and_given_back() -> None:
    b = backend(max_in_flight=2)
    first, second = b.lease(), b.lease()
    assert isinstance(first, Lease) and isinstance(second, Lease) and b.in_flight == 2
    assert b.lease() == "overflow"
    with first:
        pass
    assert b.in_flight == 1
    with second:
        pass
    assert b.in_flight == 0


def test_an_exception_gives_the_slot_and_the_probe_back() -> None:
    b = backend()
    with b.lease() as lease:
        lease.verdict = Verdict.FAILURE
    assert b.circuit.state is CircuitState.OPEN
    import time
    time.sleep(0.35)
    probe = b.lease()
    assert isinstance(probe, Lease) and probe.ticket is Ticket.PROBE
    with pytest.raises(RuntimeError):
        with probe:
            raise RuntimeError("token endpoint down")  # no verdict was reached
    assert b.in_flight == 0
    assert b.circuit.state is CircuitState.HALF_OPEN
    again = b.lease()
    assert isinstance(again, Lease) and again.ticket is Ticket.PROBE, "the probe was handed back"
    with again:
        again.verdict = Verdict.SUCCESS
    assert b.circuit.state is CircuitState.CLOSED


def test_an_open_circuit_refuses_without_taking_a_slot() -> None:
    b = backend()
    with b.lease() as lease:
        lease.verdict = Verdict.FAILURE
    assert b.lease() == "circuit_open" and b.in_flight == 0


def test_a_stream_takes_the_lease_over_and_closes_it_once() -> None:
    b = backend()
    with b.lease() as lease:
        kept = lease.keep()
    assert b.in_flight == 1, "the stream holds the slot after the attempt returned"
    kept.close(Verdict.SUCCESS)
    kept.close(Verdict.FAILURE)
    assert b.in_flight == 0 and b.circuit.state is CircuitState.CLOSED
