"""The fallback policy in one table: how an upstream attempt's outcome is classified, what the
circuit breaker records for it, and what the gateway does next. Nothing here touches a socket,
so the policy is tested on its own (tests/gateway/test_outcomes.py).

  outcome        comes from                                        circuit   next
  ok             a 2xx with a valid answer                         success   answer
  client_error   400, 409, 413, 422 and other 4xx                  -         answer (the client's mistake)
  too_large      an answer over server.maxUpstreamBodyBytes        -         answer 502 (another would be as big)
  connect_error  refused, reset or dropped before the answer       failure   next backend (wait for a starting primary)
  timeout        connect / first byte / request timeout, 408       failure   next backend
  status_5xx     500-599                                           failure   next backend (wait for a starting primary)
  rate_limited   429                                               -         same backend after a short retry-after
                                                                             when it is the last, else next backend
  upstream_auth  401, 403: our key or token is refused             failure   next backend
  not_found      404: deployment, model or LoRA adapter missing    failure   next backend
  malformed      a 2xx that is no answer, 1xx/3xx, bad encoding    failure   next backend
  empty_stream   a stream closed before its first event            failure   next backend (wait for a starting primary)
  credentials    the gateway could not get its own credentials     failure   next backend
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any

from .circuit import Verdict

# A retry-after longer than this is garbage, not advice.
_LONGEST_RETRY_AFTER = 86400.0


class Outcome(str, Enum):
    OK = "ok"
    CLIENT_ERROR = "client_error"
    TOO_LARGE = "too_large"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    STATUS_5XX = "status_5xx"
    RATE_LIMITED = "rate_limited"
    UPSTREAM_AUTH = "upstream_auth"
    NOT_FOUND = "not_found"
    MALFORMED = "malformed"
    EMPTY_STREAM = "empty_stream"
    CREDENTIALS = "credentials"

    def __str__(self) -> str:
        return self.value


class Step(Enum):
    ANSWER = "answer"                      # this attempt's answer goes to the client
    RETRY_SAME = "retry_same"              # wait the upstream's retry-after, then the same backend again
    WAIT_FOR_PRIMARY = "wait_for_primary"  # the route's queue time is not up: try the primary again soon
    NEXT_BACKEND = "next_backend"


@dataclass(frozen=True)
class Policy:
    verdict: Verdict
    answer: bool            # the client gets this attempt's answer; no other backend is tried
    wait_for_primary: bool  # a primary scaling up from zero or back from an eviction looks like this
    meaning: str            # completes "backend <name> ..." in error messages and logs


POLICIES: dict[Outcome, Policy] = {
    Outcome.OK: Policy(Verdict.SUCCESS, True, False, "answered"),
    Outcome.CLIENT_ERROR: Policy(Verdict.NONE, True, False, "refused the request as invalid"),
    Outcome.TOO_LARGE: Policy(Verdict.NONE, True, False, "answered with more than the gateway accepts"),
    Outcome.CONNECT_ERROR: Policy(Verdict.FAILURE, False, True, "could not be reached or dropped the connection"),
    Outcome.TIMEOUT: Policy(Verdict.FAILURE, False, False, "did not answer in time"),
    Outcome.STATUS_5XX: Policy(Verdict.FAILURE, False, True, "failed"),
    Outcome.RATE_LIMITED: Policy(Verdict.NONE, False, False, "is rate limited"),
    Outcome.UPSTREAM_AUTH: Policy(Verdict.FAILURE, False, False,
                                  "rejected the gateway's credentials (an operator must check its key or identity)"),
    Outcome.NOT_FOUND: Policy(Verdict.FAILURE, False, False,
                              "does not have the deployment, model or adapter asked for (check its name in the config)"),
    Outcome.MALFORMED: Policy(Verdict.FAILURE, False, False, "sent something that is not an OpenAI answer"),
    Outcome.EMPTY_STREAM: Policy(Verdict.FAILURE, False, True, "closed the stream before its first event"),
    Outcome.CREDENTIALS: Policy(Verdict.FAILURE, False, False,
                                "could not be given credentials: the gateway's token request failed"),
}


def _status_outcome(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.OK
    if status in (401, 403):
        return Outcome.UPSTREAM_AUTH
    if status == 404:
        return Outcome.NOT_FOUND
    if status == 408:
        return Outcome.TIMEOUT
    if status == 429:
        return Outcome.RATE_LIMITED
    if 400 <= status < 500:
        return Outcome.CLIENT_ERROR
    if 500 <= status < 600:
        return Outcome.STATUS_5XX
    return Outcome.MALFORMED  # 1xx or a redirect: not something an OpenAI API answers with


_BY_STATUS = tuple(_status_outcome(status) for status in range(600))


def classify_status(status: int) -> Outcome:
    return _BY_STATUS[status] if 0 <= status < 600 else Outcome.MALFORMED


def _finite(text: str | None, scale: float) -> float | None:
    try:
        value = float(text) / scale  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _until(http_date: str) -> float | None:
    try:
        return parsedate_to_datetime(http_date).timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from `retry-after-ms`, else `retry-after` (seconds or an HTTP date); None when
    neither says something sensible (nan, inf, garbage). Clamped to [0, one day]."""
    seconds = _finite(headers.get("retry-after-ms"), 1000)
    if seconds is None:
        value = headers.get("retry-after")
        seconds = _finite(value, 1) if value else None
        if seconds is None and value:
            seconds = _until(value)
    return None if seconds is None else min(max(seconds, 0.0), _LONGEST_RETRY_AFTER)


def next_step(outcome: Outcome, *, last: bool, primary: bool, queue_left: bool, retry_after: float | None,
              max_retry_after: float, retried_same: bool) -> Step:
    """What to do after an attempt. `last`: no backend follows this one; `primary`: this was the
    route's primary; `queue_left`: the route's queue time is not up yet."""
    policy = POLICIES[outcome]
    if policy.answer:
        return Step.ANSWER
    if (outcome is Outcome.RATE_LIMITED and last and not retried_same
            and retry_after is not None and retry_after <= max_retry_after):
        return Step.RETRY_SAME
    if primary and queue_left and policy.wait_for_primary:
        return Step.WAIT_FOR_PRIMARY
    return Step.NEXT_BACKEND


def exhausted(outcomes: list[Outcome], none_attempted: bool) -> tuple[int, str]:
    """Status and error code for the client when no backend could serve."""
    if outcomes and outcomes[-1] is Outcome.RATE_LIMITED:
        return 429, "rate_limited"
    if none_attempted:
        return 503, "overloaded"
    return 502, "upstream_unavailable"
