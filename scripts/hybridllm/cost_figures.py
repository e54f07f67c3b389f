"""The cost side of data/figures.yaml, checked and typed: pay-per-token API prices with their
lifecycle dates, GPU node prices and throughput, egress and engineering time.

Every figure is checked on load (a finite number, not negative; dates in ISO form), so a bad
figure stops the tools with the file and key named instead of turning into a NaN or a hang."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import figures
from .capacity import NodeThroughput
from .errors import UserError
from .layout import FIGURES_FILE, display_path

GLOBAL_STANDARD = "globalStandard"
DATA_ZONE = "dataZone"
DEPLOYMENT_TYPES = (GLOBAL_STANDARD, DATA_ZONE)
DEPLOYMENT_NAMES = {GLOBAL_STANDARD: "Global Standard", DATA_ZONE: "Data Zone Standard"}
PROVIDERS = {"azureOpenAI": "Azure OpenAI", "foundryModels": "Foundry serverless"}
CAPACITY_BASES = ("sustainable", "saturation")
LLAMA = "llama-3.3-70b-instruct"


def _where() -> str:
    return display_path(FIGURES_FILE)


def _bad(key: str, problem: str) -> UserError:
    return UserError(_where(), f"{key} {problem}", "fix the figure (and its source and date) in data/figures.yaml")


def number(entry: Any, field: str, key: str) -> float:
    """A figure that must be a finite number >= 0."""
    value = entry.get(field) if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"{key}.{field}", f"is {value!r}, not a number")
    if not math.isfinite(value) or value < 0:
        raise _bad(f"{key}.{field}", f"is {value}: it must be a finite number >= 0")
    return float(value)


def _date(entry: dict[str, Any], field: str, key: str) -> datetime.date | None:
    value = entry.get(field)
    if value is None:
        return None
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise _bad(f"{key}.{field}", f"is {value!r}, not a date like 2026-10-01") from None


@dataclass(frozen=True)
class TokenPrice:
    """USD per 1M tokens for one deployment type of one model."""

    input_per_1m: float
    cached_input_per_1m: float
    output_per_1m: float
    estimate: bool
    source: str

    def per_token(self, prompt_tokens: int, completion_tokens: int, cached_prompt_share: float) -> float:
        """USD per token (prompt and completion together) for this request shape."""
        total = prompt_tokens + completion_tokens
        prompt = prompt_tokens / total
        cached = prompt * cached_prompt_share
        return ((prompt - cached) * self.input_per_1m + cached * self.cached_input_per_1m
                + completion_tokens / total * self.output_per_1m) / 1e6


def _price(entry: dict[str, Any], key: str) -> TokenPrice:
    input_price = number(entry, "inputPer1M", key)
    cached = number(entry, "cachedInputPer1M", key) if "cachedInputPer1M" in entry else input_price
    return TokenPrice(input_price, cached, number(entry, "outputPer1M", key),
                      entry.get("kind") != "list", str(entry.get("source", "")))


@dataclass(frozen=True)
class ApiModel:
    """A pay-per-token model and its lifecycle: deprecated = no new customers; retires = gone."""

    name: str
    provider: str
    prices: dict[str, TokenPrice]  # by deployment type; absent when not offered (or not priced)
    deprecated: datetime.date | None
    retires: datetime.date | None
    successor: str | None

    @property
    def is_azure_openai(self) -> bool:
        return self.provider == PROVIDERS["azureOpenAI"]

    def retired_on(self, day: datetime.date) -> bool:
        return self.retires is not None and self.retires <= day

    def closed_to_new_customers_on(self, day: datetime.date) -> bool:
        return self.deprecated is not None and self.deprecated <= day and not self.retired_on(day)


@lru_cache(maxsize=1)
def api_models() -> dict[str, ApiModel]:
    """Every priced API model of the figures file, Azure OpenAI first, by name."""
    data = figures.load()
    models: dict[str, ApiModel] = {}
    for section, provider in PROVIDERS.items():
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise _bad(section, "must be a mapping of model name to prices")
        for name, entry in entries.items():
            key = f"{section}.{name}"
            if not isinstance(entry, dict):
                raise _bad(key, "must be a mapping with inputPer1M, outputPer1M, source and retrieved")
            if name in models:
                raise _bad(key, f"repeats the model name {name!r}; names must be unique across API sections")
            prices = {GLOBAL_STANDARD: _price(entry, key)}
            if entry.get("dataZone") is not None:
                prices[DATA_ZONE] = _price(entry["dataZone"], f"{key}.dataZone")
            successor = entry.get("successor")
            models[str(name)] = ApiModel(str(name), provider, prices, _date(entry, "deprecated", key),
                                         _date(entry, "retires", key), None if successor is None else str(successor))
    return models


@dataclass(frozen=True)
class NodePrices:
    on_demand: dict[str, float]  # region -> USD/hour
    spot: dict[str, float]


def priced_instance_types() -> list[str]:
    """Instance types with both hourly prices and a throughput model."""
    data = figures.load()
    throughput = (data.get("nodeThroughput") or {}).get(LLAMA) or {}
    return [name for name in (data.get("vmPrices") or {}) if name in throughput]


def node_prices_or_none(instance_type: str) -> NodePrices | None:
    return node_prices(instance_type) if instance_type in priced_instance_types() else None


def node_prices(instance_type: str) -> NodePrices:
    entry = (figures.load().get("vmPrices") or {}).get(instance_type)
    if not isinstance(entry, dict):
        raise UserError(_where(), f"vmPrices has no {instance_type}",
                        "add its hourly prices per region with their source, or pick a priced instanceType")
    regions = {}
    for kind in ("onDemand", "spot"):
        per_hour = (entry.get(kind) or {}).get("perHourUSD") or {}
        regions[kind] = {str(r): number(per_hour, r, f"vmPrices.{instance_type}.{kind}.perHourUSD")
                         for r in per_hour}
    return NodePrices(regions["onDemand"], regions["spot"])


def node_throughput(instance_type: str, basis: str) -> NodeThroughput:
    entry = (((figures.load().get("nodeThroughput") or {}).get(LLAMA) or {}).get(instance_type) or {}).get(basis)
    key = f"nodeThroughput.{LLAMA}.{instance_type}.{basis}"
    if not isinstance(entry, dict):
        raise UserError(_where(), f"{key} is missing",
                        "add the node's prefill and decode rates with their derivation, "
                        "or pick a measured instanceType")
    prefill = number(entry, "prefillTokensPerSecond", key)
    decode = number(entry, "decodeTokensPerSecond", key)
    if prefill == 0 or decode == 0:
        raise _bad(key, "has a zero rate: a node that serves nothing cannot be costed")
    return NodeThroughput(prefill, decode, basis, str(entry.get("slo", "")))


def max_model_len() -> int:
    entry = (figures.load().get("models") or {}).get(LLAMA) or {}
    return int(number(entry, "maxModelLen", f"models.{LLAMA}"))


def egress_per_gb() -> float:
    return number(figures.load().get("egress"), "internetPerGB", "egress")


def engineering() -> tuple[float, float]:
    """(hours per month, USD per hour) of running the self-hosted stack."""
    people = figures.load().get("engineering")
    return number(people, "hoursPerMonth", "engineering"), number(people, "hourlyRateUSD", "engineering")
