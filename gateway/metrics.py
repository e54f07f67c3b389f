"""Prometheus metrics of the gateway. The names are documented in the README; dashboards and
alerts depend on them.

  llm_gateway_requests_total{route,backend,status}       requests by outcome
  llm_gateway_fallbacks_total{from,to,reason}            moves to the next backend
  llm_gateway_tokens_total{route,backend,kind}           kind: prompt, cached_prompt, completion
  llm_gateway_cost_usd_total{route,backend}              from the config's price table
  llm_gateway_request_duration_seconds{route,backend}    whole request, as the client sees it
  llm_gateway_time_to_first_token_seconds{route,backend} streaming only
  llm_gateway_stream_tokens_per_second{route,backend}    completion tokens over the time after the first token
  llm_gateway_split_decisions_total{route,arm}           the arm each request of a split route landed on
  llm_gateway_split_weight{route,arm}                    each arm's configured share of its route (0 to 1)
  llm_gateway_added_latency_seconds                      the gateway's own time on a request
  llm_gateway_in_flight_requests{backend}                requests being served now
  llm_gateway_circuit_state{backend}                     0 closed, 1 open, 2 half-open
  llm_gateway_rejected_requests_total{reason}            requests refused at a limit (header, body, upload, id)
  llm_gateway_keys_reloads_total{result}                 keys file re-reads: ok, error
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .backends import UpstreamBackend
from .usage import token_counts

if TYPE_CHECKING:
    from .routing import Router

log = logging.getLogger("gateway")
REJECTION_REASONS = ("header_too_large", "header_timeout", "body_too_large", "upload_timeout", "invalid_request_id")

# The *_created series only add noise to dashboards.
disable_created_metrics()

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
_ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
_TOKENS_PER_SECOND_BUCKETS = (1, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 300, 500, 1000)


class Series:
    """The labelled children of one (route, backend), resolved once and then reused."""

    __slots__ = ("prompt", "cached", "completion", "cost", "duration", "ttft", "tokens_per_second")

    def __init__(self, metrics: "GatewayMetrics", route: str, backend: str) -> None:
        self.prompt = metrics.tokens.labels(route, backend, "prompt")
        self.cached = metrics.tokens.labels(route, backend, "cached_prompt")
        self.completion = metrics.tokens.labels(route, backend, "completion")
        self.cost = metrics.cost.labels(route, backend)
        self.duration = metrics.duration.labels(route, backend)
        self.ttft = metrics.ttft.labels(route, backend)
        self.tokens_per_second = metrics.tokens_per_second.labels(route, backend)


class GatewayMetrics:
    def __init__(self, backends: Iterable[UpstreamBackend]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("llm_gateway_requests", "Requests by route, backend and status.",
                                ["route", "backend", "status"], registry=r)
        self.fallbacks = Counter("llm_gateway_fallbacks", "Moves to the next backend, by reason.",
                                 ["from", "to", "reason"], registry=r)
        # Route as well as backend: an A/B view compares a split route's arms on that route's
        # traffic alone, without pinned, structured-output or fallback traffic of other routes.
        self.tokens = Counter("llm_gateway_tokens", "Tokens by route, backend and kind.", ["route", "backend", "kind"],
                              registry=r)
        self.cost = Counter("llm_gateway_cost_usd", "Cost in USD by route and backend, from the price table.",
                            ["route", "backend"], registry=r)
        self.duration = Histogram("llm_gateway_request_duration_seconds", "Request duration by route and backend.",
                                  ["route", "backend"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("llm_gateway_time_to_first_token_seconds", "Time to first streamed byte.",
                              ["route", "backend"], buckets=_TTFT_BUCKETS, registry=r)
        self.tokens_per_second = Histogram(
            "llm_gateway_stream_tokens_per_second",
            "Completed streams: completion tokens over the seconds after the first token.",
            ["route", "backend"], buckets=_TOKENS_PER_SECOND_BUCKETS, registry=r)
        self.added = Histogram("llm_gateway_added_latency_seconds", "Time the gateway itself adds.",
                               buckets=_ADDED_BUCKETS, registry=r)
        in_flight = Gauge("llm_gateway_in_flight_requests", "Requests in flight by backend.", ["backend"], registry=r)
        circuit = Gauge("llm_gateway_circuit_state", "Circuit state: 0 closed, 1 open, 2 half-open.",
                        ["backend"], registry=r)
        for backend in backends:
            # Read at scrape time: nothing to update on the request path.
            in_flight.labels(backend.name).set_function(lambda b=backend: b.in_flight)
            circuit.labels(backend.name).set_function(lambda b=backend: int(b.circuit.state))
        self._series: dict[tuple[str, str], Series] = {}
        self._requests: dict[tuple[str, str, str], Any] = {}
        rejected = Counter("llm_gateway_rejected_requests", "Requests refused at a limit, by reason.", ["reason"],
                           registry=r)
        self.rejected = {reason: rejected.labels(reason) for reason in REJECTION_REASONS}
        reloads = Counter("llm_gateway_keys_reloads", "Re-reads of the keys file, by result.", ["result"], registry=r)
        self.keys_reloads = {result: reloads.labels(result) for result in ("ok", "error")}

    def prepare(self, router: "Router") -> None:
        """At start-up: the series of every backend each route can reach, so that they exist
        from the start, at 0 (rates are right from a series' first request) and requests only
        look them up; and the split routes' arms, read from the router at scrape time."""
        for route, backends in router.reachable().items():
            for backend in backends:
                self.series(route, backend)
        if router.split_arms():
            self.registry.register(_SplitCollector(router))

    def series(self, route: str, backend: str) -> Series:
        key = (route, backend)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = Series(self, route, backend)
        return found

    def request(self, route: str, backend: str, status: str) -> None:
        key = (route, backend, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(*key)
        child.inc()

    @staticmethod
    def usage(series: Series, backend: UpstreamBackend, usage: Any) -> tuple[int, int]:
        """Count an answer's tokens and cost; (prompt, completion) tokens for the log."""
        if usage is None:
            return 0, 0
        counts = token_counts(usage)
        if not counts.well_formed:
            log.warning("malformed usage from upstream; counted what could be read",
                        extra={"fields": {"backend": backend.name}})
        series.prompt.inc(counts.uncached_prompt)
        series.cached.inc(counts.cached_prompt)
        series.completion.inc(counts.completion)
        series.cost.inc(backend.cost(counts.uncached_prompt, counts.cached_prompt, counts.completion))
        return counts.uncached_prompt + counts.cached_prompt, counts.completion


class _SplitCollector(Collector):
    """llm_gateway_split_decisions_total and llm_gateway_split_weight, from the router's own
    per-arm counts (plain integers: the request path takes no lock for them)."""

    def __init__(self, router: "Router") -> None:
        self._router = router
        self._shares = router.split_arms()

    def describe(self) -> Iterable[Metric]:
        return self._families(with_counts=False)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(with_counts=True))

    def _families(self, with_counts: bool) -> list[Metric]:
        decisions = CounterMetricFamily("llm_gateway_split_decisions",
                                        "Requests of split routes by the arm they landed on (before fallbacks).",
                                        labels=["route", "arm"])
        weights = GaugeMetricFamily("llm_gateway_split_weight", "Configured share of each split arm (0 to 1).",
                                    labels=["route", "arm"])
        if with_counts:
            for route, arm, count in self._router.split_counts():
                decisions.add_metric([route, arm], count)
            for route, arms in self._shares.items():
                for arm, share in arms.items():
                    weights.add_metric([route, arm], share)
        return [decisions, weights]
