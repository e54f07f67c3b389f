"""Prometheus metrics of the gateway. The names are documented in the README; dashboards and
alerts depend on them.

  llm_gateway_requests_total{route,backend,status}       requests by outcome
  llm_gateway_fallbacks_total{from,to,reason}            moves to the next backend
  llm_gateway_tokens_total{backend,kind}                 kind: prompt, cached_prompt, completion
  llm_gateway_cost_usd_total{backend}                    from the config's price table
  llm_gateway_request_duration_seconds{backend}          whole request, as the client sees it
  llm_gateway_time_to_first_token_seconds{backend}       streaming only
  llm_gateway_added_latency_seconds                      the gateway's own time on a request
  llm_gateway_in_flight_requests{backend}                requests being served now
  llm_gateway_circuit_state{backend}                     0 closed, 1 open, 2 half-open
  llm_gateway_rejected_requests_total{reason}            requests refused at a limit (header, body, upload, id)
  llm_gateway_keys_reloads_total{result}                 keys file re-reads: ok, error
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from .backends import UpstreamBackend
from .usage import token_counts

log = logging.getLogger("gateway")
REJECTION_REASONS = ("header_too_large", "header_timeout", "body_too_large", "upload_timeout", "invalid_request_id")

# The *_created series only add noise to dashboards.
disable_created_metrics()

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
_ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


class GatewayMetrics:
    def __init__(self, backends: Iterable[UpstreamBackend]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("llm_gateway_requests", "Requests by route, backend and status.",
                                ["route", "backend", "status"], registry=r)
        self.fallbacks = Counter("llm_gateway_fallbacks", "Moves to the next backend, by reason.",
                                 ["from", "to", "reason"], registry=r)
        self.tokens = Counter("llm_gateway_tokens", "Tokens by backend and kind.", ["backend", "kind"], registry=r)
        self.cost = Counter("llm_gateway_cost_usd", "Cost in USD by backend, from the price table.",
                            ["backend"], registry=r)
        self.duration = Histogram("llm_gateway_request_duration_seconds", "Request duration by backend.",
                                  ["backend"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("llm_gateway_time_to_first_token_seconds", "Time to first streamed byte.",
                              ["backend"], buckets=_TTFT_BUCKETS, registry=r)
        self.added = Histogram("llm_gateway_added_latency_seconds", "Time the gateway itself adds.",
                               buckets=_ADDED_BUCKETS, registry=r)
        in_flight = Gauge("llm_gateway_in_flight_requests", "Requests in flight by backend.", ["backend"], registry=r)
        circuit = Gauge("llm_gateway_circuit_state", "Circuit state: 0 closed, 1 open, 2 half-open.",
                        ["backend"], registry=r)
        self._per_backend: dict[str, tuple[Any, ...]] = {}
        for backend in backends:
            # Read at scrape time: nothing to update on the request path.
            in_flight.labels(backend.name).set_function(lambda b=backend: b.in_flight)
            circuit.labels(backend.name).set_function(lambda b=backend: int(b.circuit.state))
            self._per_backend[backend.name] = (
                self.tokens.labels(backend.name, "prompt"),
                self.tokens.labels(backend.name, "cached_prompt"),
                self.tokens.labels(backend.name, "completion"),
                self.cost.labels(backend.name),
                self.duration.labels(backend.name),
                self.ttft.labels(backend.name),
            )
        self._requests: dict[tuple[str, str, str], Any] = {}
        rejected = Counter("llm_gateway_rejected_requests", "Requests refused at a limit, by reason.", ["reason"],
                           registry=r)
        self.rejected = {reason: rejected.labels(reason) for reason in REJECTION_REASONS}
        reloads = Counter("llm_gateway_keys_reloads", "Re-reads of the keys file, by result.", ["result"], registry=r)
        self.keys_reloads = {result: reloads.labels(result) for result in ("ok", "error")}

    def request(self, route: str, backend: str, status: str) -> None:
        key = (route, backend, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(*key)
        child.inc()

    def usage(self, backend: UpstreamBackend, usage: Any) -> tuple[int, int]:
        """Count an answer's tokens and cost; (prompt, completion) tokens for the log."""
        if usage is None:
            return 0, 0
        counts = token_counts(usage)
        if not counts.well_formed:
            log.warning("malformed usage from upstream; counted what could be read",
                        extra={"fields": {"backend": backend.name}})
        prompt_c, cached_c, completion_c, cost_c, _, _ = self._per_backend[backend.name]
        prompt_c.inc(counts.uncached_prompt)
        cached_c.inc(counts.cached_prompt)
        completion_c.inc(counts.completion)
        cost_c.inc(backend.cost(counts.uncached_prompt, counts.cached_prompt, counts.completion))
        return counts.uncached_prompt + counts.cached_prompt, counts.completion

    def duration_of(self, backend: str) -> Any:
        return self._per_backend[backend][4]

    def ttft_of(self, backend: str) -> Any:
        return self._per_backend[backend][5]
