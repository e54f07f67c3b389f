"""The comparison as a table (the published four rows first, then the rest) or as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .results import BackendResult

HEADLINE = ("Code correctness (HumanEval pass@1)", "First-token latency p50", "Streaming tokens/s p50",
            "Instruction following (schema-strict)")


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%} ({part}/{whole})" if whole else "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _usd(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"${value:,.{digits}f}" if value < 100 else f"${value:,.2f}"


Row = tuple[str, Callable[[BackendResult], str]]

OFFLINE_ROWS: tuple[Row, ...] = (
    (HEADLINE[0], lambda r: _share(r.code_passed, r.code_problems)),
    (HEADLINE[1], lambda r: _ms(r.ttft_p50_ms)),
    (HEADLINE[2], lambda r: _number(r.tokens_per_second_p50)),
    (HEADLINE[3], lambda r: _share(r.schema_ok, r.schema_tasks)),
    ("", lambda r: ""),
    ("First-token latency p95", lambda r: _ms(r.ttft_p95_ms)),
    ("  schema-strict, response_format", lambda r: _share(r.schema_rf_ok, r.schema_rf_tasks)),
    ("  schema-strict, prompt only", lambda r: _share(r.schema_ok - r.schema_rf_ok, r.schema_tasks - r.schema_rf_tasks)),
    ("Requests", lambda r: f"{r.requests:,}"),
    ("Errors", lambda r: f"{r.errors:,}"),
    ("Tokens (prompt + completion)", lambda r: f"{r.prompt_tokens + r.cached_prompt_tokens:,} + {r.completion_tokens:,}"),
    ("Cost", lambda r: _usd(r.cost_usd)),
    ("USD per 1M tokens", lambda r: _usd(r.usd_per_1m_tokens, 2)),
)

# The live view has no evaluation set: the same rows without correctness.
LIVE_ROWS: tuple[Row, ...] = (
    ("Requests", lambda r: f"{r.requests:,}"),
    ("Errors", lambda r: f"{r.errors:,}" + (f" ({r.errors / r.requests:.1%})" if r.requests else "")),
    (HEADLINE[1], lambda r: _ms(r.ttft_p50_ms)),
    ("First-token latency p95", lambda r: _ms(r.ttft_p95_ms)),
    (HEADLINE[2], lambda r: _number(r.tokens_per_second_p50)),
    ("Tokens (prompt + completion)", lambda r: f"{r.prompt_tokens + r.cached_prompt_tokens:,} + {r.completion_tokens:,}"),
    ("Cost", lambda r: _usd(r.cost_usd)),
    ("USD per 1M tokens", lambda r: _usd(r.usd_per_1m_tokens, 2)),
)


def grid(rows: tuple[Row, ...], results: list[BackendResult]) -> list[str]:
    label_width = max(len(label) for label, _ in rows) + 3
    cells = [[render(result) for result in results] for _, render in rows]
    width = max([len(r.backend) for r in results] + [len(c) for row in cells for c in row]) + 3
    lines = [" " * label_width + "".join(f"{r.backend:<{width}}" for r in results).rstrip()]
    for (label, _), row in zip(rows, cells):
        lines.append((f"{label:<{label_width}}" + "".join(f"{cell:<{width}}" for cell in row)).rstrip())
    return lines


def table(results: list[BackendResult], context: dict[str, Any]) -> str:
    lines = [context["headline"], ""] + grid(OFFLINE_ROWS, results) + [""]
    for result in results:
        if result.code_outcomes:
            outcomes = ", ".join(f"{name} {count}" for name, count in sorted(result.code_outcomes.items()))
            lines.append(f"Code outcomes, {result.backend}: {outcomes}")
    for result in results:
        if result.error_kinds:
            kinds = ", ".join(f"{name} ({count})" for name, count in sorted(result.error_kinds.items()))
            lines.append(f"Errors, {result.backend}: {kinds}")
    for result in results:
        lines.append(f"Priced, {result.backend}: {result.cost_basis}")
    if context.get("sandbox"):
        lines.append("Sandbox: " + "; ".join(context["sandbox"]))
    return "\n".join(lines)


def as_json(results: list[BackendResult], context: dict[str, Any], samples: list[dict[str, Any]]) -> str:
    document = {**{k: v for k, v in context.items() if k != "headline"},
                "backends": {r.backend: r.as_json() for r in results}, "samples": samples}
    return json.dumps(document, indent=2, ensure_ascii=False)
