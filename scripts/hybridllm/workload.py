"""A cost-model workload: its values, where each came from (a workload file or a flag), and the
checks that keep every value finite and in range, because the arithmetic downstream assumes it.

A value that fails a check stops the tool with the file and key (or the flag) named."""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from . import cost_figures
from .cost_figures import CAPACITY_BASES, DEPLOYMENT_TYPES, GLOBAL_STANDARD
from .errors import UserError
from .layout import display_path
from .yamlfiles import load_mapping


@dataclass(frozen=True)
class Workload:
    tokens_per_day: float
    peak_to_average: float = 2.0
    prompt_tokens: int = 800
    completion_tokens: int = 400
    cached_prompt_share: float = 0.0
    batch_share: float = 0.3
    schema_strict_share: float = 0.1
    region: str = "eastus"
    instance_type: str = "Standard_NC96ads_A100_v4"
    capacity_basis: str = "sustainable"  # or "saturation"
    min_customer_nodes: int = 1
    min_batch_nodes: int = 0
    spot_eviction_overhead: float = 0.15
    egress_bytes_per_token: float = 4.0
    engineering_hours_per_month: float | None = None  # None: the figures file's value
    node_hourly: float | None = None  # overrides the on-demand price
    spot_hourly: float | None = None  # overrides the spot price
    api_models: tuple[str, ...] = ()  # empty: every API model in the figures file
    reference_model: str | None = None  # the Azure OpenAI model the hybrid sends its API share to
    api_deployment: str = GLOBAL_STANDARD  # or "dataZone" (data residency)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


WORKLOAD_FIELDS = {camel(f.name): f.name for f in fields(Workload)}


@dataclass(frozen=True)
class Rule:
    kind: str  # number, whole, name, choice, models
    low: float = 0.0
    high: float = math.inf
    above_low: bool = False  # the low bound itself is not allowed
    choices: tuple[str, ...] = ()


# Azure region and VM size names: letters and digits, with '_' in VM sizes (Standard_NC96ads_A100_v4).
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

# Upper bounds are far beyond any real deployment; they keep every sum finite.
RULES: dict[str, Rule] = {
    "tokensPerDay": Rule("number", 0, 1e13, above_low=True),
    "peakToAverage": Rule("number", 1, 100),
    "promptTokens": Rule("whole", 0, 10_000_000),
    "completionTokens": Rule("whole", 0, 10_000_000),
    "cachedPromptShare": Rule("number", 0, 1),
    "batchShare": Rule("number", 0, 1),
    "schemaStrictShare": Rule("number", 0, 1),
    "region": Rule("name"),
    "instanceType": Rule("name"),
    "capacityBasis": Rule("choice", choices=CAPACITY_BASES),
    "minCustomerNodes": Rule("whole", 0, 1000),
    "minBatchNodes": Rule("whole", 0, 1000),
    "spotEvictionOverhead": Rule("number", 0, 1),
    "egressBytesPerToken": Rule("number", 0, 1000),
    "engineeringHoursPerMonth": Rule("number", 0, 10_000),
    "nodeHourly": Rule("number", 0, 10_000),
    "spotHourly": Rule("number", 0, 10_000),
    "apiModels": Rule("models"),
    "referenceModel": Rule("name"),
    "apiDeployment": Rule("choice", choices=DEPLOYMENT_TYPES),
}

# Command-line flags (argparse dest) and the workload key each sets.
FLAGS = {"tokens_per_day": "tokensPerDay", "prompt_tokens": "promptTokens", "completion_tokens": "completionTokens",
         "node_hourly": "nodeHourly", "spot_hourly": "spotHourly", "engineering_hours": "engineeringHoursPerMonth",
         "api_model": "apiModels", "reference_model": "referenceModel", "api_deployment": "apiDeployment",
         "region": "region", "capacity_basis": "capacityBasis"}


def flag_name(dest: str) -> str:
    return "--" + dest.replace("_", "-")


Where = Callable[[str], tuple[str, str]]  # workload key -> (file or "command line", key or flag)


def _by_key(key: str) -> tuple[str, str]:
    return "workload", key


def _error(where: Where, key: str, problem: str, fix: str | None = None) -> UserError:
    place, name = where(key)
    return UserError(place, f"{name} {problem}", fix)


def _to_number(value: Any, key: str, where: Where) -> float:
    # YAML 1.1 reads 1e8 (no dot) as a string, and flags arrive as strings.
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _error(where, key, f"is {value!r}, not a number", "write a number, for example 1.5e8") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _error(where, key, f"is {value!r}, not a number", "write a number, for example 1.5e8")
    return value


def _parse(key: str, value: Any, where: Where) -> Any:
    rule = RULES[key]
    if rule.kind in ("number", "whole"):
        number = _to_number(value, key, where)
        if rule.kind == "whole" and math.isfinite(number):
            if not float(number).is_integer():
                raise _error(where, key, f"is {number}: it must be a whole number of tokens or nodes",
                             f"write {math.floor(number)} or {math.ceil(number)}")
            return int(number)
        return float(number)
    if rule.kind == "models":
        names = value if isinstance(value, (list, tuple)) else None
        if not names or not all(isinstance(n, str) and n for n in names):
            raise _error(where, key, f"is {value!r}, not a list of model names",
                         "write apiModels: [gpt-5-mini, gpt-5.4-nano]")
        return tuple(names)
    if not isinstance(value, str) or not _NAME.fullmatch(value.strip()):
        raise _error(where, key, f"is {value!r}, not a single name (letters, digits, '_' and '-')",
                     "write one name, for example region: eastus" if key == "region" else None)
    return value.strip()


def validate(workload: Workload, where: Where = _by_key) -> Workload:
    """Every value finite and in range, and every name known to data/figures.yaml."""
    for key, rule in RULES.items():
        value = getattr(workload, WORKLOAD_FIELDS[key])
        if value is None:
            continue
        if rule.kind == "name" and not isinstance(value, str):
            raise _error(where, key, f"is {value!r}, not a single name")
        if rule.kind == "models" and not all(isinstance(name, str) for name in value):
            raise _error(where, key, f"is {value!r}, not a list of model names")
        if rule.kind not in ("number", "whole", "choice"):
            continue
        if rule.kind == "choice":
            if value not in rule.choices:
                raise _error(where, key, f"is {value!r}", f"use one of {', '.join(rule.choices)}")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _error(where, key, f"is {value!r}, not a number")
        if not math.isfinite(value):
            raise _error(where, key, f"is {value}: it must be a finite number",
                         f"give a number from {rule.low:g} to {rule.high:g}")
        if rule.kind == "whole" and not float(value).is_integer():
            raise _error(where, key, f"is {value}: it must be a whole number")
        if value < rule.low or value > rule.high or (rule.above_low and value == rule.low):
            low = f"above {rule.low:g}" if rule.above_low else f"at least {rule.low:g}"
            raise _error(where, key, f"is {value:g}: it must be {low} and at most {rule.high:g}")
    _check_names(workload, where)
    _check_shape(workload, where)
    if workload.batch_share + workload.schema_strict_share > 1:
        raise _error(where, "schemaStrictShare", "plus batchShare exceeds 1",
                     "the batch and schema-strict shares are parts of the same traffic")
    return workload


def _check_names(workload: Workload, where: Where) -> None:
    models = cost_figures.api_models()
    unknown = [m for m in workload.api_models if m not in models]
    if unknown:
        raise _error(where, "apiModels", f"names {', '.join(unknown)}, which data/figures.yaml has no prices for",
                     f"use some of {', '.join(models)}, or add the model with its source")
    if workload.reference_model is not None:
        model = models.get(workload.reference_model)
        if model is None or not model.is_azure_openai:
            known = ", ".join(m for m, entry in models.items() if entry.is_azure_openai)
            raise _error(where, "referenceModel", f"is {workload.reference_model!r}, not an Azure OpenAI model in "
                         "data/figures.yaml", f"use one of {known} (the gateway's fallback is Azure OpenAI)")
    prices = cost_figures.node_prices_or_none(workload.instance_type)
    if prices is None:
        raise _error(where, "instanceType", f"is {workload.instance_type!r}, which has no prices in data/figures.yaml",
                     f"use one of {', '.join(cost_figures.priced_instance_types())}")
    if workload.node_hourly is None and workload.region not in prices.on_demand:
        spot_only = " (it has a spot price only, and the customer path runs on on-demand nodes)" \
            if workload.region in prices.spot else ""
        raise _error(where, "region", f"is {workload.region!r}: no on-demand price for {workload.instance_type} "
                     f"there{spot_only}", f"use one of {', '.join(prices.on_demand)}, or pass --node-hourly")


def _check_shape(workload: Workload, where: Where) -> None:
    total = workload.prompt_tokens + workload.completion_tokens
    if total <= 0:
        raise _error(where, "promptTokens", "and completionTokens are both 0", "give the tokens of an average request")
    limit = cost_figures.max_model_len()
    if total > limit:
        raise _error(where, "promptTokens", f"+ completionTokens is {total:,} tokens, more than the model's "
                     f"{limit:,}-token context", "give the average request's tokens")


def workload_from(path: Path | None, args: argparse.Namespace, require_volume: bool = True) -> Workload:
    """The workload file's values, then the flags given on the command line, checked."""
    raw = load_mapping(path) if path else {}
    file_label = display_path(path) if path else "command line"
    unknown = sorted(str(key) for key in set(raw) - set(WORKLOAD_FIELDS))
    if unknown:
        raise UserError(file_label, f"unknown key(s) {', '.join(unknown)}",
                        f"use keys from: {', '.join(WORKLOAD_FIELDS)}")
    origin = {key: (file_label, key) for key in raw}
    values = {key: value for key, value in raw.items() if value is not None}
    for dest, key in FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            values[key] = value
            origin[key] = ("command line", flag_name(dest))

    def where(key: str) -> tuple[str, str]:
        return origin.get(key, ("workload", key))

    parsed = {WORKLOAD_FIELDS[key]: _parse(key, value, where) for key, value in values.items()}
    if "tokens_per_day" not in parsed:
        if require_volume:
            raise UserError(file_label, "no tokensPerDay",
                            "give --tokens-per-day or a --workload file with tokensPerDay")
        parsed["tokens_per_day"] = 1.0
    return validate(Workload(**parsed), where)
