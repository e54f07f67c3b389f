"""Per-backend figures from the scored samples: the rows of the report."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .cost import Pricing
from .runner import Sample


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) with linear interpolation between the closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class BackendResult:
    backend: str
    requests: int = 0
    errors: int = 0
    code_problems: int = 0
    code_passed: int = 0
    schema_tasks: int = 0
    schema_ok: int = 0
    schema_rf_tasks: int = 0  # sent with response_format
    schema_rf_ok: int = 0
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    tokens_per_second_p50: float | None = None
    prompt_tokens: int = 0  # uncached
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_basis: str = ""
    code_outcomes: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def pass_rate(self) -> float | None:
        return self.code_passed / self.code_problems if self.code_problems else None

    @property
    def schema_ok_rate(self) -> float | None:
        return self.schema_ok / self.schema_tasks if self.schema_tasks else None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.cached_prompt_tokens + self.completion_tokens

    @property
    def usd_per_1m_tokens(self) -> float | None:
        return self.cost_usd / self.tokens * 1e6 if self.tokens else None

    def as_json(self) -> dict[str, Any]:
        def rate(part: int, whole: int) -> float | None:
            return part / whole if whole else None

        return {
            "backend": self.backend, "requests": self.requests, "errors": self.errors,
            "pass_rate": self.pass_rate, "code_problems": self.code_problems, "code_passed": self.code_passed,
            "schema_ok_rate": self.schema_ok_rate, "schema_tasks": self.schema_tasks, "schema_ok": self.schema_ok,
            "schema_ok_rate_response_format": rate(self.schema_rf_ok, self.schema_rf_tasks),
            "schema_ok_rate_prompt_only": rate(self.schema_ok - self.schema_rf_ok,
                                               self.schema_tasks - self.schema_rf_tasks),
            "ttft_p50_ms": self.ttft_p50_ms, "ttft_p95_ms": self.ttft_p95_ms,
            "tokens_per_second_p50": self.tokens_per_second_p50,
            "prompt_tokens": self.prompt_tokens, "cached_prompt_tokens": self.cached_prompt_tokens,
            "completion_tokens": self.completion_tokens, "cost_usd": self.cost_usd,
            "usd_per_1m_tokens": self.usd_per_1m_tokens, "cost_basis": self.cost_basis,
            "code_outcomes": dict(sorted(self.code_outcomes.items())),
            "error_kinds": dict(sorted(self.error_kinds.items())),
        }


def summarise(samples: list[Sample], prices: dict[str, Pricing]) -> dict[str, BackendResult]:
    """Samples must carry the scorer's verdict in extra: passed (code) or schema_ok (schema)."""
    results: dict[str, BackendResult] = {}
    ttfts: dict[str, list[float]] = {}
    rates: dict[str, list[float]] = {}
    for sample in samples:
        result = results.setdefault(sample.backend, BackendResult(sample.backend))
        result.requests += 1
        if sample.error:
            result.errors += 1
            result.error_kinds[sample.error.split(":")[0][:60]] += 1
        else:
            if sample.ttft is not None:
                ttfts.setdefault(sample.backend, []).append(sample.ttft * 1000)
            if sample.tokens_per_second is not None:
                rates.setdefault(sample.backend, []).append(sample.tokens_per_second)
        result.prompt_tokens += sample.prompt_tokens
        result.cached_prompt_tokens += sample.cached_prompt_tokens
        result.completion_tokens += sample.completion_tokens
        if sample.suite == "humaneval":
            result.code_problems += 1
            result.code_passed += bool(sample.extra.get("passed"))
            result.code_outcomes[str(sample.extra.get("outcome", "request_error"))] += 1
        elif sample.suite == "schema":
            result.schema_tasks += 1
            result.schema_ok += bool(sample.extra.get("schema_ok"))
            if sample.extra.get("response_format"):
                result.schema_rf_tasks += 1
                result.schema_rf_ok += bool(sample.extra.get("schema_ok"))
    for name, result in results.items():
        result.ttft_p50_ms = percentile(ttfts.get(name, []), 0.50)
        result.ttft_p95_ms = percentile(ttfts.get(name, []), 0.95)
        result.tokens_per_second_p50 = percentile(rates.get(name, []), 0.50)
        price = prices[name]
        result.cost_usd = price.usd(result.prompt_tokens, result.cached_prompt_tokens, result.completion_tokens)
        result.cost_basis = price.basis
    return results
