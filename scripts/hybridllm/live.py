"""Live mode of the cost model: what the gateway actually served, read from Prometheus.

It reads the gateway's counters over a window (llm_gateway_tokens_total, _cost_usd_total,
_requests_total) and reports the observed tokens/day, the routed split, how busy the vLLM paths
were, and the effective USD per 1M tokens of each backend next to the API alternative.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from typing import Any

from . import cost_figures
from .cost_figures import ApiModel
from .economics import HOURS_PER_MONTH, hybrid_reference, node_for
from .errors import UserError
from .workload import Workload

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def window_seconds(window: str) -> float:
    match = re.fullmatch(r"(\d+)([smhdw])", window)
    if not match:
        raise UserError("--window", f"{window!r} is not a Prometheus duration", "write it like 30m, 6h or 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_nodes(spec: str) -> dict[str, tuple[int, str]]:
    """`customer=2,batch=1:spot` -> {customer: (2, on-demand), batch: (1, spot)}."""
    nodes = {}
    for part in filter(None, spec.split(",")):
        name, _, rest = part.partition("=")
        count, _, capacity = rest.partition(":")
        capacity = capacity or "on-demand"
        if not count.isdigit() or capacity not in ("on-demand", "spot"):
            raise UserError("--nodes", f"{part!r} is not path=count[:spot]", "write it like customer=2,batch=1:spot")
        nodes[name.strip()] = (int(count), capacity)
    return nodes


def query(url: str, promql: str) -> list[tuple[dict[str, str], float]]:
    address = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(address, timeout=10) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UserError(url, f"cannot query Prometheus: {exc}", "check --prometheus (the HTTP API base URL)") from None
    if body.get("status") != "success":
        raise UserError(url, f"Prometheus refused the query {promql!r}: {body.get('error')}")
    samples = [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]
    # increase() over a series with too few points can be NaN: count it as nothing observed.
    return [(labels, value) for labels, value in samples if math.isfinite(value)]


@dataclass
class BackendUse:
    name: str
    prompt_tokens: float = 0.0
    cached_prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    cost_usd: float = 0.0
    requests: float = 0.0

    @property
    def tokens(self) -> float:
        return self.prompt_tokens + self.cached_prompt_tokens + self.completion_tokens


def observe(url: str, window: str) -> dict[str, BackendUse]:
    backends: dict[str, BackendUse] = {}

    def use(name: str) -> BackendUse:
        return backends.setdefault(name, BackendUse(name))

    for labels, value in query(url, f"sum by (backend, kind) (increase(llm_gateway_tokens_total[{window}]))"):
        attribute = {"prompt": "prompt_tokens", "cached_prompt": "cached_prompt_tokens",
                     "completion": "completion_tokens"}.get(labels.get("kind", ""))
        if attribute:
            setattr(use(labels["backend"]), attribute, value)
    for labels, value in query(url, f"sum by (backend) (increase(llm_gateway_cost_usd_total[{window}]))"):
        use(labels["backend"]).cost_usd = value
    for labels, value in query(url, f'sum by (backend) (increase(llm_gateway_requests_total{{backend!="none"}}[{window}]))'):
        use(labels["backend"]).requests = value
    return backends


def _alternative(workload: Workload, as_of: datetime.date) -> ApiModel:
    """The API the observed traffic is priced against: referenceModel, else the first --api-model,
    else the cheapest Azure OpenAI model deployable on the date."""
    models = cost_figures.api_models()
    name = workload.reference_model or (workload.api_models[0] if workload.api_models else None)
    if name is not None:
        return models[name]
    reference = hybrid_reference(workload, list(models.values()), as_of)
    if reference is None:
        raise UserError("data/figures.yaml", f"no Azure OpenAI model is deployable on {as_of}",
                        "pass --api-model or --as-of")
    return reference


def live_report(url: str, window: str, nodes_spec: str, workload: Workload, output_format: str,
                as_of: datetime.date | None = None) -> str:
    as_of = as_of or datetime.date.today()
    seconds = window_seconds(window)
    nodes = parse_nodes(nodes_spec)
    backends = observe(url, window)
    total = sum(b.tokens for b in backends.values())
    if total <= 0:
        raise UserError(url, f"the gateway counted no tokens in the last {window}",
                        "check that Prometheus scrapes the gateway, or widen --window")
    prompt = sum(b.prompt_tokens + b.cached_prompt_tokens for b in backends.values())
    cached = sum(b.cached_prompt_tokens for b in backends.values())
    completion = sum(b.completion_tokens for b in backends.values())
    requests = sum(b.requests for b in backends.values())
    if requests >= 1 and prompt + completion >= 1:
        # Node capacity depends on the request shape: use the observed average request.
        workload = replace(workload, prompt_tokens=max(0, round(prompt / requests)),
                           completion_tokens=max(1, round(completion / requests)))
    node = node_for(workload)
    model = _alternative(workload, as_of)
    price = model.prices.get(workload.api_deployment)
    if price is None:
        raise UserError("--api-model", f"{model.name} has no {workload.api_deployment} price in data/figures.yaml",
                        "pick another model or --api-deployment")
    alternative = (((prompt - cached) * price.input_per_1m + cached * price.cached_input_per_1m
                    + completion * price.output_per_1m) / total)
    rows = []
    for backend in sorted(backends.values(), key=lambda b: b.name):
        row: dict[str, Any] = {"backend": backend.name, "tokens": round(backend.tokens), "share": backend.tokens / total,
                               "requests": round(backend.requests)}
        if backend.name.startswith("vllm-"):
            count, capacity = nodes.get(backend.name.removeprefix("vllm-"), (0, "on-demand"))
            hourly = node.on_demand_hourly
            if capacity == "spot":
                if node.spot_hourly is None:
                    raise UserError("--nodes", f"no spot price for {node.instance_type} in {node.region}",
                                    "pass --spot-hourly")
                hourly = node.spot_hourly * (1 + workload.spot_eviction_overhead)
            node_cost = count * hourly * seconds / 3600
            row.update(nodes=count, capacityType=capacity, nodeCostUSD=node_cost,
                       utilisation=(backend.tokens / seconds) / (count * node.tokens_per_second) if count else None,
                       usdPer1M=node_cost / backend.tokens * 1e6 if backend.tokens else None)
        else:
            row.update(costUSD=backend.cost_usd, usdPer1M=backend.cost_usd / backend.tokens * 1e6 if backend.tokens else None)
        rows.append(row)
    report = {"window": window, "tokensPerDay": total * 86400 / seconds, "backends": rows,
              "apiAlternative": {"model": model.name, "usdPer1M": alternative,
                                 "retired": model.retires.isoformat() if model.retired_on(as_of) and model.retires
                                 else None},
              "promptShare": prompt / total, "cachedPromptShare": cached / prompt if prompt else 0.0,
              "monthHours": HOURS_PER_MONTH}
    if output_format == "json":
        return json.dumps(report, indent=2)
    lines = [f"Observed over the last {window}: {report['tokensPerDay'] / 1e6:,.2f}M tokens/day, "
             f"prompt {report['promptShare']:.0%} of tokens", "",
             f"  {'backend':<22}{'share':>7}{'tokens':>14}{'$ per 1M':>10}  detail"]
    for row in rows:
        price = f"{row['usdPer1M']:.2f}" if row.get("usdPer1M") is not None else "-"
        detail = (f"{row['nodes']} node(s), utilisation {row['utilisation']:.1%}" if row.get("utilisation") is not None
                  else f"{row.get('nodes', 0)} node(s) given" if "nodes" in row else f"${row['costUSD']:.4f} billed")
        lines.append(f"  {row['backend']:<22}{row['share']:>7.1%}{row['tokens']:>14,}{price:>10}  {detail}")
    retired = f" (retired on {model.retires}: compare with a deployable model)" if model.retired_on(as_of) else ""
    lines += ["", f"API alternative: {model.name}{retired} at ${alternative:.2f} per 1M tokens for this mix. A "
              "self-hosted path only pays when its $ per 1M is below that, and it falls as utilisation rises."]
    return "\n".join(lines)
