"""gateway/outcomes.py: how each upstream outcome is classified and what happens next, without
sockets. This is the fallback policy; the end-to-end tests in test_proxy.py drive the same table
through real servers."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from gateway.circuit import Verdict
from gateway.outcomes import POLICIES, Outcome, Step, classify_status, exhausted, next_step, retry_after_seconds


@pytest.mark.parametrize("status,outcome", [
    (200, Outcome.OK), (201, Outcome.OK),
    (400, Outcome.CLIENT_ERROR), (409, Outcome.CLIENT_ERROR), (413, Outcome.CLIENT_ERROR), (422, Outcome.CLIENT_ERROR),
    (401, Outcome.UPSTREAM_AUTH), (403, Outcome.UPSTREAM_AUTH), (404, Outcome.NOT_FOUND),
    (408, Outcome.TIMEOUT), (429, Outcome.RATE_LIMITED),
    (500, Outcome.STATUS_5XX), (502, Outcome.STATUS_5XX), (503, Outcome.STATUS_5XX), (599, Outcome.STATUS_5XX),
    (101, Outcome.MALFORMED), (204, Outcome.OK), (301, Outcome.MALFORMED), (307, Outcome.MALFORMED),
])
def test_status_classification(status: int, outcome: Outcome) -> None:
    assert classify_status(status) is outcome


def test_every_outcome_has_a_policy() -> None:
    assert set(POLICIES) == set(Outcome)


@pytest.mark.parametrize("outcome,verdict", [
    (Outcome.OK, Verdict.SUCCESS),
    (Outcome.CLIENT_ERROR, Verdict.NONE), (Outcome.RATE_LIMITED, Verdict.NONE), (Outcome.TOO_LARGE, Verdict.NONE),
    (Outcome.CONNECT_ERROR, Verdict.FAILURE), (Outcome.TIMEOUT, Verdict.FAILURE), (Outcome.STATUS_5XX, Verdict.FAILURE),
    (Outcome.UPSTREAM_AUTH, Verdict.FAILURE), (Outcome.NOT_FOUND, Verdict.FAILURE), (Outcome.MALFORMED, Verdict.FAILURE),
    (Outcome.EMPTY_STREAM, Verdict.FAILURE), (Outcome.CREDENTIALS, Verdict.FAILURE),
])
def test_what_the_circuit_records(outcome: Outcome, verdict: Verdict) -> None:
    assert POLICIES[outcome].verdict is verdict


def step(outcome: Outcome, *, last: bool = False, primary: bool = False, queue_left: bool = False,
         retry_after: float | None = None, retried_same: bool = False) -> Step:
    return next_step(outcome, last=last, primary=primary, queue_left=queue_left, retry_after=retry_after,
                     max_retry_after=2.0, retried_same=retried_same)


@pytest.mark.parametrize("outcome", [Outcome.OK, Outcome.CLIENT_ERROR, Outcome.TOO_LARGE])
def test_answers_go_to_the_client(outcome: Outcome) -> None:
    assert step(outcome) is Step.ANSWER and step(outcome, last=True) is Step.ANSWER


@pytest.mark.parametrize("outcome", [Outcome.CONNECT_ERROR, Outcome.TIMEOUT, Outcome.STATUS_5XX,
                                     Outcome.UPSTREAM_AUTH, Outcome.NOT_FOUND, Outcome.MALFORMED,
                                     Outcome.EMPTY_STREAM, Outcome.CREDENTIALS, Outcome.RATE_LIMITED])
def test_failures_move_on(outcome: Outcome) -> None:
    assert step(outcome) is Step.NEXT_BACKEND


@pytest.mark.parametrize("outcome,queues", [
    (Outcome.CONNECT_ERROR, True), (Outcome.STATUS_5XX, True), (Outcome.EMPTY_STREAM, True),
    (Outcome.TIMEOUT, False), (Outcome.UPSTREAM_AUTH, False), (Outcome.NOT_FOUND, False), (Outcome.MALFORMED, False),
])
def test_the_primary_is_waited_for_only_while_it_may_be_starting(outcome: Outcome, queues: bool) -> None:
    """A path scaling up from zero refuses connections or answers 503; a wrong key will not heal."""
    expected = Step.WAIT_FOR_PRIMARY if queues else Step.NEXT_BACKEND
    assert step(outcome, primary=True, queue_left=True) is expected
    assert step(outcome, primary=True, queue_left=False) is Step.NEXT_BACKEND
    assert step(outcome, primary=False, queue_left=True) is Step.NEXT_BACKEND


def test_a_short_retry_after_is_honoured_once_on_the_last_backend() -> None:
    assert step(Outcome.RATE_LIMITED, last=True, retry_after=0.5) is Step.RETRY_SAME
    assert step(Outcome.RATE_LIMITED, last=True, retry_after=0.5, retried_same=True) is Step.NEXT_BACKEND
    assert step(Outcome.RATE_LIMITED, last=True, retry_after=7) is Step.NEXT_BACKEND
    assert step(Outcome.RATE_LIMITED, last=True, retry_after=None) is Step.NEXT_BACKEND
    assert step(Outcome.RATE_LIMITED, last=False, retry_after=0.5) is Step.NEXT_BACKEND


@pytest.mark.parametrize("outcomes,none_attempted,status,code", [
    ([Outcome.STATUS_5XX, Outcome.RATE_LIMITED], False, 429, "rate_limited"),
    ([Outcome.RATE_LIMITED, Outcome.STATUS_5XX], False, 502, "upstream_unavailable"),
    ([Outcome.UPSTREAM_AUTH], False, 502, "upstream_unavailable"),
    ([], True, 503, "overloaded"),
])
def test_what_the_client_gets_when_every_backend_failed(outcomes: list[Outcome], none_attempted: bool,
                                                        status: int, code: str) -> None:
    assert exhausted(outcomes, none_attempted) == (status, code)


@pytest.mark.parametrize("headers,seconds", [
    ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after": "3"}, 3.0),
    ({"retry-after-ms": "250", "retry-after": "3"}, 0.25),   # the finer one wins
    ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),    # a useless ms value falls back to seconds
    ({"retry-after-ms": "inf"}, None), ({"retry-after": "inf"}, None), ({"retry-after": "nan"}, None),
    ({"retry-after-ms": "1e400"}, None), ({"retry-after": "soon"}, None), ({}, None),
    ({"retry-after": "-5"}, 0.0), ({"retry-after": "1e9"}, 86400.0),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
])
def test_retry_after_is_read_safely(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    assert retry_after_seconds({"retry-after": formatdate(time.time() + 30, usegmt=True)}) == pytest.approx(30, abs=2)
