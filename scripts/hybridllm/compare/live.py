"""The live A/B view: the report's latency, tokens/s, error and cost rows per backend, read from
the gateway's Prometheus metrics over real traffic instead of from an evaluation run.

  requests, errors   llm_gateway_requests_total (errors: every status but 200 and client_closed)
                     plus llm_gateway_fallbacks_total{from}: attempts the backend failed or could
                     not take (open circuit, full), which the gateway counts as fallbacks from it
  TTFT p50/p95       llm_gateway_time_to_first_token_seconds (histogram_quantile over the window)
  tokens/s p50       llm_gateway_stream_tokens_per_second where the gateway exports it; else the
                     mean: completion tokens over (request seconds - first-token seconds)
  tokens, cost       llm_gateway_tokens_total, priced from data/figures.yaml as the offline report
                     prices them (the gateway's own llm_gateway_cost_usd_total is shown beside it)

Quantiles from histograms are interpolated within buckets, so they are as fine as the buckets.
With --route, only that route's traffic counts (a split route's arms on its own traffic); the
fallbacks carry no route label, so there errors are the answers that failed once under way.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from ..errors import UserError
from ..live import query, window_seconds
from ..workload import Workload
from .cost import pricing
from .results import BackendResult

TOKENS_PER_SECOND_HISTOGRAM = "llm_gateway_stream_tokens_per_second"
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


def _selector(route: str | None, *matchers: str) -> str:
    parts = list(matchers) + ([f'route="{route}"'] if route else [])
    return "{" + ",".join(parts) + "}" if parts else ""


def _by_backend(url: str, promql: str) -> dict[str, float]:
    return {labels.get("backend", ""): value for labels, value in query(url, promql)}


def observe(url: str, window: str, route: str | None, workload: Workload, as_of: datetime.date,
            backends: list[str] | None = None) -> tuple[list[BackendResult], dict[str, Any]]:
    window_seconds(window)
    if route is not None and not _NAME.match(route):
        raise UserError("--route", f"{route!r} is not a route name", "give a route of the gateway config, e.g. customer")
    w = f"[{window}]"
    s = _selector(route)
    served = _selector(route, 'backend!="none"')
    failed = _selector(route, 'backend!="none"', 'status!~"200|client_closed"')
    requests = _by_backend(url, f"sum by (backend) (increase(llm_gateway_requests_total{served}{w}))")
    errors = _by_backend(url, f"sum by (backend) (increase(llm_gateway_requests_total{failed}{w}))")
    if route is None:
        # A failed attempt is not a request of that backend's: the gateway counts it as a fallback
        # from it (to the next backend, or to "none" when the client got the error).
        for labels, value in query(url, f"sum by (from) (increase(llm_gateway_fallbacks_total{w}))"):
            name = labels.get("from", "")
            requests[name] = requests.get(name, 0.0) + value
            errors[name] = errors.get(name, 0.0) + value
    ttft = {q: _by_backend(url, f"histogram_quantile({q}, sum by (backend, le) "
                                f"(rate(llm_gateway_time_to_first_token_seconds_bucket{s}{w})))") for q in (0.5, 0.95)}
    rate = _by_backend(url, f"histogram_quantile(0.5, sum by (backend, le) (rate({TOKENS_PER_SECOND_HISTOGRAM}_bucket{s}{w})))")
    rate_basis = "p50 of the gateway's per-stream histogram"
    tokens: dict[str, dict[str, float]] = {}
    for labels, value in query(url, f"sum by (backend, kind) (increase(llm_gateway_tokens_total{s}{w}))"):
        tokens.setdefault(labels.get("backend", ""), {})[labels.get("kind", "")] = value
    if not rate:
        duration = _by_backend(url, f"sum by (backend) (increase(llm_gateway_request_duration_seconds_sum{s}{w}))")
        first = _by_backend(url, f"sum by (backend) (increase(llm_gateway_time_to_first_token_seconds_sum{s}{w}))")
        rate = {name: tokens.get(name, {}).get("completion", 0.0) / (duration[name] - first.get(name, 0.0))
                for name in duration if duration[name] - first.get(name, 0.0) > 0}
        rate_basis = "mean over the window: completion tokens / (request seconds - first-token seconds)"
    billed = _by_backend(url, f"sum by (backend) (increase(llm_gateway_cost_usd_total{s}{w}))")
    seen = sorted(name for name, count in requests.items() if name and name != "none" and count > 0)
    names = backends or seen
    if not any(requests.get(name, 0) > 0 for name in names):
        where = f" on route {route}" if route else ""
        raise UserError(url, f"the gateway counted no requests{where} to {', '.join(names) or 'any backend'} "
                        f"in the last {window}", "check that Prometheus scrapes the gateway, or widen --window")
    results = []
    for name in names:
        used = tokens.get(name, {})
        result = BackendResult(name, requests=round(requests.get(name, 0.0)), errors=round(errors.get(name, 0.0)))
        result.ttft_p50_ms = ttft[0.5][name] * 1000 if name in ttft[0.5] else None
        result.ttft_p95_ms = ttft[0.95][name] * 1000 if name in ttft[0.95] else None
        result.tokens_per_second_p50 = rate.get(name)
        result.prompt_tokens = round(used.get("prompt", 0.0))
        result.cached_prompt_tokens = round(used.get("cached_prompt", 0.0))
        result.completion_tokens = round(used.get("completion", 0.0))
        price = pricing(name, workload, as_of)
        result.cost_usd = price.usd(result.prompt_tokens, result.cached_prompt_tokens, result.completion_tokens)
        result.cost_basis = price.basis
        results.append(result)
    context = {"source": url, "window": window, "route": route, "tokens_per_second_basis": rate_basis,
               "gateway_cost_usd": {name: billed.get(name, 0.0) for name in names},
               "headline": f"Live from {url} over the last {window}"
                           + (f", route {route}" if route else "") + " (quantiles interpolated within histogram buckets)"}
    return results, context
