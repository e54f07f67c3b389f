"""A cost analysis as the table `scripts/crossover.py` prints."""

from __future__ import annotations

from . import cost_figures
from .cost_figures import DEPLOYMENT_NAMES
from .economics import Analysis, StrategyCost, describe_status


def _money(value: float | None) -> str:
    return "not priced" if value is None else f"${value:,.0f}"


def _detail(analysis: Analysis, s: StrategyCost) -> str:
    models = cost_figures.api_models()
    if s.kind == "api" and s.api_model:
        model = models[s.api_model]
        result = next(m for m in analysis.models if m.model.name == s.api_model)
        price = f"${result.per_token * 1e6:.2f}/1M, " if result.per_token is not None else ""
        return f"{price}{model.provider}, {describe_status(model, analysis.as_of)}"
    if s.monthly_usd is None:
        return ""
    detail = f"{s.customer_nodes} on-demand" + (f" + {s.batch_nodes} spot" if s.batch_on_spot else
                                                 f" + {s.batch_nodes} on-demand" if s.batch_nodes else "")
    detail += " node(s)"
    if s.utilisation is not None:
        detail += f", utilisation {s.utilisation:.0%}" + (" (over capacity)" if s.utilisation > 1 else "")
    if s.api_share:
        detail += f", {s.api_share:.0%} of tokens on {s.api_model}"
    return detail


def _marker(analysis: Analysis, s: StrategyCost) -> str:
    if analysis.recommended is s:
        return "  <- recommended"
    # API rows already show their lifecycle status in the detail column.
    if s.unavailable and s.kind != "api" and s.monthly_usd is not None:
        return f"  [not recommendable: {s.unavailable}]"
    return ""


def table(analysis: Analysis) -> str:
    w, node = analysis.workload, analysis.node
    spot = (f"${node.spot_hourly:.2f}/h spot (+{w.spot_eviction_overhead:.0%} eviction overhead)"
            if node.spot_hourly is not None else "no spot price")
    lines = [
        f"Evaluated on {analysis.as_of} (--as-of). Workload: {w.tokens_per_day / 1e6:,.1f}M tokens/day "
        f"(customer peak x{w.peak_to_average:g}), {w.prompt_tokens}+{w.completion_tokens} tokens/request, "
        f"cached prompt {w.cached_prompt_share:.0%}, batch {w.batch_share:.0%}, "
        f"schema-strict {w.schema_strict_share:.0%}",
        f"Node: {node.instance_type} in {node.region}: ${node.on_demand_hourly:.2f}/h on-demand, {spot}",
        f"Capacity per node: {node.capacity_note}",
        f"Self-hosted cost per 1M tokens with nodes fully used: ${node.cost_per_million(node.on_demand_hourly):.2f} "
        "on-demand"
        + (f", ${node.cost_per_million(node.spot_hourly):.2f} spot" if node.spot_hourly is not None else ""),
        "",
        f"Monthly cost by strategy (API prices: {DEPLOYMENT_NAMES[w.api_deployment]}), cheapest first:",
    ]
    ordered = sorted(analysis.strategies, key=lambda s: (s.monthly_usd is None, s.monthly_usd or 0.0))
    for s in ordered:
        row = f"  {s.name:<36} {_money(s.monthly_usd):>12}  {_detail(analysis, s)}{_marker(analysis, s)}"
        lines.append(row.rstrip())
    lines += ["", "Crossover (self-hosting on on-demand nodes vs each API model; never: every added node costs more "
              "than the API traffic it replaces):"]
    for c in analysis.crossovers:
        where = ("never" if c.tokens_per_day is None else "0 tokens/day (from the first token)" if c.tokens_per_day == 0
                 else f"{c.tokens_per_day / 1e6:,.1f}M tokens/day")
        lines.append(f"  {c.model:<24} {where}: {c.reason}")
    lines.append("")
    best = analysis.recommended
    if best is None:
        lines.append(f"Recommended: nothing: no strategy is deployable and priced on {analysis.as_of}.")
    else:
        count = sum(1 for s in analysis.strategies if s.recommendable)
        lines.append(f"Recommended: {best.name} at {_money(best.monthly_usd)}/month, the cheapest of {count} options "
                     f"deployable on {analysis.as_of} (taking the models as equal in quality).")
    pair = analysis.like_for_like()
    if pair:
        api, own = pair
        lines.append(f"Like for like (Llama 3.3 70B both ways): {api.name} {_money(api.monthly_usd)}/month "
                     f"vs {own.name} {_money(own.monthly_usd)}/month.")
    lines += [f"Note: {note}" for note in analysis.notes]
    return "\n".join(lines)
