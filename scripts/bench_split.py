#!/usr/bin/env python3
"""What a weighted, sticky split adds to the gateway's request path.

Times the gateway's own routing step (Router.decide on the request's real Starlette headers,
which also counts split decisions) for a plain route and for split routes: sticky by a header,
sticky by the key, and without the sticky value (random by weight). Prints nanoseconds per
request side by side, each the best of several interleaved rounds (other load on the machine only
ever adds time), with the median beside it, and the difference to the plain route. The step costs
microseconds, below what an end-to-end run (`make bench-gateway`) can resolve, so it is timed on
its own.

  python scripts/bench_split.py [--requests 200000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from starlette.datastructures import Headers

from gateway.backends import UpstreamBackend
from gateway.config import GatewayConfig
from gateway.keys import ApiKey
from gateway.routing import Decision, Router


def _config() -> GatewayConfig:
    vllm = {"kind": "vllm", "model": "m"}
    arms = [{"backend": "vllm-customer", "weight": 65}, {"backend": "vllm-batch", "weight": 35}]
    return GatewayConfig.model_validate({
        # The keys file is only read by the running gateway; the router takes the key as given.
        "auth": {"enabled": True, "keysFile": "unused-keys.yaml"},
        "backends": {"vllm-customer": {**vllm, "baseURL": "http://127.0.0.1:1/v1"},
                     "vllm-batch": {**vllm, "baseURL": "http://127.0.0.1:2/v1"}},
        "routes": {"plain": {"primary": "vllm-customer", "fallbacks": ["vllm-batch"]},
                   "by-header": {"split": arms, "stickyBy": "header:x-llm-user", "fallbacks": ["vllm-batch"]},
                   "by-key": {"split": arms, "stickyBy": "key", "fallbacks": ["vllm-batch"]},
                   "random": {"split": arms, "fallbacks": ["vllm-batch"]}},
        "routing": {"defaultRoute": "plain"},
        "models": {name: {"route": name} for name in ("plain", "by-header", "by-key", "random")},
    })


def _headers() -> Headers:
    """What the openai Python client sends, plus the sticky header."""
    raw = {"host": "gateway:8080", "accept-encoding": "gzip, deflate", "connection": "keep-alive",
           "accept": "application/json", "content-type": "application/json", "user-agent": "OpenAI/Python 1.57.0",
           "x-stainless-lang": "python", "x-stainless-package-version": "1.57.0", "x-stainless-os": "Linux",
           "x-stainless-arch": "x64", "x-stainless-runtime": "CPython", "x-stainless-retry-count": "0",
           "authorization": "Bearer sk-xxxxxxxxxxxxxxxxxxxxxxxx", "content-length": "97",
           "x-llm-user": "user-7f3a9c2e-1b4d-4e8f-9a6b-5c3d2e1f0a9b"}
    return Headers(raw=[(k.encode(), v.encode()) for k, v in raw.items()])


def _time(router: Router, model: str, headers: Headers, key: ApiKey, requests: int) -> float:
    payload: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    decide = router.decide
    started = time.perf_counter_ns()
    for _ in range(requests):
        decide(headers, payload, model, key)
    return (time.perf_counter_ns() - started) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200_000, help="requests per round and case")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    config = _config()
    backends = {name: UpstreamBackend(name, backend) for name, backend in config.backends.items()}
    router = Router(config, backends)
    key = ApiKey("team-a", frozenset({"*"}), frozenset({"*"}), False)
    headers = _headers()
    cases = {"plain route (primary)": "plain", "split, stickyBy header": "by-header",
             "split, stickyBy key": "by-key", "split, no sticky value": "random"}
    for model in cases.values():
        assert isinstance(router.decide(headers, {"model": model}, model, key), Decision)
        _time(router, model, headers, key, args.requests // 10)  # warm up

    rounds: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(args.rounds):  # interleaved, so drift in the machine's speed hits every case alike
        for label, model in cases.items():
            rounds[label].append(_time(router, model, headers, key, args.requests))
    base = min(rounds["plain route (primary)"])
    print(f"Router.decide per request, best of {args.rounds} rounds x {args.requests:,}\n")
    print(f"{'case':<26}{'ns/request':>12}{'added ns':>10}{'median ns':>11}")
    for label, values in rounds.items():
        print(f"{label:<26}{min(values):>12.0f}{min(values) - base:>10.0f}{statistics.median(values):>11.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
