"""Reading a workload (file plus flags) and printing a cost analysis as a table."""

from __future__ import annotations

import argparse
from pathlib import Path

from .economics import WORKLOAD_FIELDS, Analysis, Workload, with_overrides
from .errors import UserError
from .layout import display_path
from .yamlfiles import load_mapping

_FLAGS = {"tokens_per_day": "tokens_per_day", "prompt_tokens": "prompt_tokens",
          "completion_tokens": "completion_tokens", "node_hourly": "node_hourly", "spot_hourly": "spot_hourly",
          "engineering_hours": "engineering_hours_per_month"}


def workload_from(path: Path | None, args: argparse.Namespace, require_volume: bool = True) -> Workload:
    raw = load_mapping(path) if path else {}
    where = display_path(path) if path else "command line"
    unknown = sorted(set(raw) - set(WORKLOAD_FIELDS))
    if unknown:
        raise UserError(where, f"unknown key(s) {', '.join(unknown)}", f"use keys from: {', '.join(WORKLOAD_FIELDS)}")
    fields = {WORKLOAD_FIELDS[k]: v for k, v in raw.items()}
    numeric = {"tokens_per_day", "peak_to_average", "cached_prompt_share", "batch_share", "schema_strict_share",
               "spot_eviction_overhead", "egress_bytes_per_token", "engineering_hours_per_month", "node_hourly",
               "spot_hourly", "prompt_tokens", "completion_tokens", "min_customer_nodes", "min_batch_nodes"}
    for name in numeric & set(fields):
        value = fields[name]
        # YAML 1.1 reads 1e8 as a string; accept it as the number it plainly is.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise UserError(where, f"{next(k for k, v in WORKLOAD_FIELDS.items() if v == name)} is {value!r}, "
                                "not a number", "write a number, for example 1.5e8") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(where, f"{next(k for k, v in WORKLOAD_FIELDS.items() if v == name)} must be a number")
        fields[name] = int(value) if name in ("prompt_tokens", "completion_tokens", "min_customer_nodes",
                                              "min_batch_nodes") else value
    if "api_models" in fields:
        if not isinstance(fields["api_models"], list):
            raise UserError(where, "apiModels must be a list of model names", "write apiModels: [gpt-4o-mini]")
        fields["api_models"] = tuple(fields["api_models"])
    if "tokens_per_day" not in fields and args.tokens_per_day is None:
        if require_volume:
            raise UserError(where, "no tokensPerDay", "give --tokens-per-day or a --workload file with tokensPerDay")
        fields["tokens_per_day"] = 1.0
    try:
        workload = Workload(**{**{"tokens_per_day": args.tokens_per_day or 0}, **fields})
    except TypeError as exc:
        raise UserError(where, f"bad workload value: {exc}") from None
    overrides = {field: getattr(args, flag) for flag, field in _FLAGS.items()}
    if args.api_model:
        overrides["api_models"] = tuple(args.api_model)
        overrides["reference_model"] = args.api_model[0]
    workload = with_overrides(workload, **overrides)
    workload.check(where)
    return workload


def _money(value: float) -> str:
    return f"${value:,.0f}"


def table(analysis: Analysis) -> str:
    w, node = analysis.workload, analysis.node
    lines = [
        f"Workload: {w.tokens_per_day / 1e6:,.1f}M tokens/day (customer peak x{w.peak_to_average}), "
        f"{w.prompt_tokens}+{w.completion_tokens} tokens/request, cached prompt {w.cached_prompt_share:.0%}, "
        f"batch {w.batch_share:.0%}, schema-strict {w.schema_strict_share:.0%}",
        f"Node: {node.instance_type} in {node.region}: ${node.on_demand_hourly:.2f}/h on-demand, "
        + (f"${node.spot_hourly:.2f}/h spot (+{w.spot_eviction_overhead:.0%} eviction overhead)" if node.spot_hourly
           else "no spot price") + f"; capacity {node.tokens_per_second:,.0f} tokens/s = {node.capacity_note}",
        f"Self-hosted cost per 1M tokens with nodes fully used: ${node.cost_per_million(node.on_demand_hourly):.2f} "
        "on-demand" + (f", ${node.cost_per_million(node.spot_hourly):.2f} spot" if node.spot_hourly else ""),
        "",
        "Monthly cost by strategy:",
    ]
    for s in analysis.strategies:
        detail = ""
        if s.nodes:
            detail = f"  {s.customer_nodes} on-demand" + (f" + {s.batch_nodes} spot" if s.batch_on_spot else
                                                           f" + {s.batch_nodes} on-demand" if s.batch_nodes else "")
            detail += f" node(s), utilisation {s.utilisation:.0%}" if s.utilisation is not None else ""
            if s.api_share:
                detail += f", {s.api_share:.0%} of tokens on {s.api_model}"
        marker = "  <- recommended" if s.name == analysis.recommended else ""
        lines.append(f"  {s.name:<28} {_money(s.monthly_usd):>12}{detail}{marker}")
    lines += ["", "Crossover (self-hosting on on-demand nodes vs the API):"]
    for c in analysis.crossovers:
        where = f"{c.tokens_per_day / 1e6:,.1f}M tokens/day" if c.tokens_per_day else "never"
        lines.append(f"  {c.model:<14} {where}: {c.reason}")
    lines += ["", f"Recommended: {analysis.recommended} (cheapest at this volume, taking the API models as equal in quality)."]
    lines += [f"Note: {note}" for note in analysis.notes]
    return "\n".join(lines)
