"""Where self-hosting Llama 3.3 70B beats Azure OpenAI for a workload, capacity-aware.

All prices and capacities come from data/figures.yaml. Conventions:
- A month is 730 hours (Azure's billing convention), so 730/24 days.
- Tokens/day counts prompt and completion tokens together.
- Node capacity is the figures' requests/s at their token shape, converted to tokens/s; a workload
  with another shape gets the same tokens/s (compute scales with total tokens).
- The customer path is sized for its peak; the batch path for its average, since batch can wait.
- Self-hosted strategies pay for nodes, engineering time and egress of completion tokens; the API
  pays per token, with cached prompt tokens at the cached-input price.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

from . import figures
from .errors import UserError
from .layout import FIGURES_FILE, display_path

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
SECONDS_PER_DAY = 86_400
MODEL = "llama-3.3-70b-instruct"


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
    api_models: tuple[str, ...] = ()  # empty: every model in the figures file
    reference_model: str | None = None  # the API model hybrid and the recommendation use

    def check(self, where: str) -> None:
        problems = []
        if self.tokens_per_day <= 0:
            problems.append("tokensPerDay must be above 0")
        if self.prompt_tokens < 0 or self.completion_tokens < 0 or self.prompt_tokens + self.completion_tokens == 0:
            problems.append("promptTokens and completionTokens must be >= 0 and not both 0")
        for name in ("cached_prompt_share", "batch_share", "schema_strict_share", "spot_eviction_overhead"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{_camel(name)} must be between 0 and 1")
        if self.batch_share + self.schema_strict_share > 1:
            problems.append("batchShare + schemaStrictShare must not exceed 1")
        if self.peak_to_average < 1:
            problems.append("peakToAverage must be at least 1")
        if self.capacity_basis not in ("sustainable", "saturation"):
            problems.append("capacityBasis must be sustainable or saturation")
        if self.min_customer_nodes < 0 or self.min_batch_nodes < 0:
            problems.append("minimum node counts must be >= 0")
        if problems:
            raise UserError(where, "; ".join(problems), "fix the workload values")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


WORKLOAD_FIELDS = {_camel(f): f for f in Workload.__dataclass_fields__}


@dataclass(frozen=True)
class ApiPrice:
    model: str
    input_per_1m: float
    cached_input_per_1m: float
    output_per_1m: float
    retires: str | None
    successor: str | None
    source: str

    def per_token(self, workload: Workload) -> float:
        """USD per token for the workload's prompt/completion mix and cache share."""
        total = workload.prompt_tokens + workload.completion_tokens
        prompt = workload.prompt_tokens / total
        cached = prompt * workload.cached_prompt_share
        return ((prompt - cached) * self.input_per_1m + cached * self.cached_input_per_1m
                + workload.completion_tokens / total * self.output_per_1m) / 1e6

    def retired_on(self, today: date) -> bool:
        return self.retires is not None and date.fromisoformat(self.retires) <= today


@dataclass(frozen=True)
class Node:
    instance_type: str
    region: str
    on_demand_hourly: float
    spot_hourly: float | None
    tokens_per_second: float  # capacity at the chosen basis
    capacity_note: str

    @property
    def tokens_per_day(self) -> float:
        return self.tokens_per_second * SECONDS_PER_DAY

    def cost_per_million(self, hourly: float) -> float:
        """Self-hosted USD per 1M tokens with the node fully used."""
        return hourly / (self.tokens_per_second * 3600) * 1e6


def api_prices() -> dict[str, ApiPrice]:
    prices = {}
    for model, entry in figures.load().get("azureOpenAI", {}).items():
        prices[model] = ApiPrice(model, float(entry["inputPer1M"]),
                                 float(entry.get("cachedInputPer1M", entry["inputPer1M"])),
                                 float(entry["outputPer1M"]), entry.get("retires"), entry.get("successor"),
                                 str(entry.get("source", "")))
    return prices


def node_for(workload: Workload) -> Node:
    data = figures.load()
    where = display_path(FIGURES_FILE)
    prices = data.get("vmPrices", {}).get(workload.instance_type)
    throughput = data.get("nodeThroughput", {}).get(MODEL, {}).get(workload.instance_type)
    if not prices or not throughput:
        raise UserError(where, f"no vmPrices or nodeThroughput for {workload.instance_type}",
                        "add its price and measured throughput with sources")
    on_demand = workload.node_hourly
    if on_demand is None:
        on_demand = prices["onDemand"]["perHourUSD"].get(workload.region)
        if on_demand is None:
            raise UserError(where, f"no on-demand price for {workload.instance_type} in {workload.region!r}",
                            f"use one of {', '.join(prices['onDemand']['perHourUSD'])}, or pass --node-hourly")
    spot = workload.spot_hourly
    if spot is None:
        spot = prices.get("spot", {}).get("perHourUSD", {}).get(workload.region)
    shape = throughput["tokenShape"]
    rps = throughput[f"{workload.capacity_basis}RequestsPerSecond"]
    tokens_per_second = rps * (shape["promptTokens"] + shape["completionTokens"])
    note = (f"{rps} req/s at {shape['promptTokens']}+{shape['completionTokens']} tokens "
            f"({workload.capacity_basis}; {throughput.get('sloAtSustainable', '')})")
    return Node(workload.instance_type, workload.region, float(on_demand), None if spot is None else float(spot),
                tokens_per_second, note)


def engineering_month(workload: Workload) -> float:
    people = figures.load()["engineering"]
    hours = people["hoursPerMonth"] if workload.engineering_hours_per_month is None \
        else workload.engineering_hours_per_month
    return float(hours) * float(people["hourlyRateUSD"])


def egress_per_token_day(workload: Workload) -> float:
    """Monthly egress USD per (token/day) of traffic: the completion tokens leave the region."""
    completion_share = workload.completion_tokens / (workload.prompt_tokens + workload.completion_tokens)
    price = float(figures.load()["egress"]["internetPerGB"])
    return completion_share * workload.egress_bytes_per_token / 1e9 * price * DAYS_PER_MONTH


@dataclass
class StrategyCost:
    name: str
    monthly_usd: float
    customer_nodes: int = 0
    batch_nodes: int = 0
    batch_on_spot: bool = False
    api_model: str | None = None
    api_share: float = 0.0
    utilisation: float | None = None  # average load / capacity of the nodes

    @property
    def nodes(self) -> int:
        return self.customer_nodes + self.batch_nodes


def _nodes(load_tokens_per_day: float, node: Node, minimum: int) -> int:
    needed = math.ceil(load_tokens_per_day / node.tokens_per_day - 1e-12) if load_tokens_per_day > 0 else 0
    return max(minimum, needed)


def self_hosted(workload: Workload, node: Node, tokens_per_day: float, *, spot_batch: bool,
                api: ApiPrice | None = None, ignore_capacity: bool = False) -> StrategyCost:
    """Self-hosted paths (and, with `api`, the schema-strict share on the API: the hybrid)."""
    api_share = workload.schema_strict_share if api is not None else 0.0
    customer_share = 1 - workload.batch_share - api_share
    customer_load = tokens_per_day * customer_share * workload.peak_to_average
    batch_load = tokens_per_day * workload.batch_share
    if ignore_capacity:
        customer_nodes = max(workload.min_customer_nodes, 1 if customer_share > 0 else 0)
        batch_nodes = max(workload.min_batch_nodes, 1 if batch_load > 0 and spot_batch else 0)
        if customer_nodes + batch_nodes == 0:
            customer_nodes = 1
    else:
        if spot_batch:
            customer_nodes = _nodes(customer_load, node, workload.min_customer_nodes)
            batch_nodes = _nodes(batch_load, node, workload.min_batch_nodes)
        else:
            # One on-demand fleet: customer peak plus batch average.
            customer_nodes = _nodes(customer_load + batch_load, node,
                                    max(workload.min_customer_nodes + workload.min_batch_nodes, 1))
            batch_nodes = 0
    batch_on_spot = spot_batch and batch_nodes > 0
    if batch_on_spot and node.spot_hourly is None:
        raise UserError(display_path(FIGURES_FILE), f"no spot price for {node.instance_type} in {node.region}",
                        "pass --spot-hourly or pick a region with a spot price")
    node_month = node.on_demand_hourly * HOURS_PER_MONTH
    spot_month = (node.spot_hourly or 0) * HOURS_PER_MONTH * (1 + workload.spot_eviction_overhead)
    monthly = customer_nodes * node_month + (batch_nodes * spot_month if batch_on_spot else batch_nodes * node_month)
    monthly += engineering_month(workload) + egress_per_token_day(workload) * tokens_per_day * (1 - api_share)
    if api is not None:
        monthly += api.per_token(workload) * tokens_per_day * api_share * DAYS_PER_MONTH
    served = tokens_per_day * (1 - api_share)
    capacity = (customer_nodes + batch_nodes) * node.tokens_per_day
    name = ("hybrid" if api is not None else "self-host, spot batch" if spot_batch else "self-host, on-demand")
    return StrategyCost(name, monthly, customer_nodes, batch_nodes, batch_on_spot,
                        api.model if api else None, api_share, served / capacity if capacity else None)


def api_only(workload: Workload, api: ApiPrice, tokens_per_day: float) -> StrategyCost:
    return StrategyCost(f"API only: {api.model}", api.per_token(workload) * tokens_per_day * DAYS_PER_MONTH,
                        api_model=api.model, api_share=1.0)


@dataclass
class Crossover:
    model: str
    tokens_per_day: float | None  # None: never
    reason: str
    nodes: int | None = None


def crossover(workload: Workload, node: Node, api: ApiPrice, ignore_capacity: bool = False) -> Crossover:
    """The smallest volume at which self-hosting on on-demand nodes costs no more than the API.

    Self-hosted cost is F(n) + e*V: n whole nodes plus engineering, and egress linear in V. The
    fleet needs n(V) = max(minimum, ceil(V * r / C)) nodes, where r is the load factor (customer
    share at peak plus batch share at average) and C one node's tokens/day. Node count n covers
    volumes ((n-1)C/r, nC/r]; within it the crossing V = F(n) / (a - e) is exact, with a the
    API's monthly cost per token/day."""
    api_rate = api.per_token(workload) * DAYS_PER_MONTH
    egress_rate = egress_per_token_day(workload)
    node_month = node.on_demand_hourly * HOURS_PER_MONTH
    engineering = engineering_month(workload)
    minimum = max(workload.min_customer_nodes + workload.min_batch_nodes, 1)
    if api_rate <= egress_rate:
        return Crossover(api.model, None, f"{api.model} costs less per token than the egress alone")
    if ignore_capacity:
        return Crossover(api.model, (minimum * node_month + engineering) / (api_rate - egress_rate),
                         "fixed-cost break-even: assumes one node serves any volume", minimum)
    load_factor = (1 - workload.batch_share) * workload.peak_to_average + workload.batch_share
    per_node_volume = node.tokens_per_day / load_factor  # tokens/day of traffic one more node carries
    marginal = node_month / per_node_volume + egress_rate
    if marginal >= api_rate:
        return Crossover(api.model, None,
                         f"a fully used node costs ${node.cost_per_million(node.on_demand_hourly):.2f} per 1M tokens "
                         f"(${marginal / DAYS_PER_MONTH * 1e6:.2f} with peak headroom and egress), above "
                         f"{api.model}'s ${api.per_token(workload) * 1e6:.2f} per 1M for this mix, so every added "
                         "node costs more than the API traffic it replaces")
    n = minimum
    while True:
        lower = 0.0 if n == minimum else (n - 1) * per_node_volume
        volume = max((n * node_month + engineering) / (api_rate - egress_rate), lower)
        if volume <= n * per_node_volume:
            return Crossover(api.model, volume,
                             f"from here {n} on-demand node(s) cost no more than {api.model}", n)
        n += 1


@dataclass
class Analysis:
    workload: Workload
    node: Node
    strategies: list[StrategyCost]
    crossovers: list[Crossover]
    recommended: str
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": {camel: getattr(self.workload, name) for camel, name in WORKLOAD_FIELDS.items()},
            "node": {**{_camel(k): v for k, v in asdict(self.node).items()}, "costPer1MTokensFullUse": {
                "onDemand": self.node.cost_per_million(self.node.on_demand_hourly),
                "spot": None if self.node.spot_hourly is None else self.node.cost_per_million(self.node.spot_hourly)}},
            "strategies": [{"name": s.name, "monthlyUSD": round(s.monthly_usd, 2), "customerNodes": s.customer_nodes,
                            "batchNodes": s.batch_nodes, "batchOnSpot": s.batch_on_spot, "apiModel": s.api_model,
                            "apiShare": s.api_share, "utilisation": s.utilisation} for s in self.strategies],
            "apiModels": {c.model: {"crossover_tokens_per_day": c.tokens_per_day, "reason": c.reason, "nodes": c.nodes}
                          for c in self.crossovers},
            "recommended": self.recommended,
            "notes": self.notes,
        }


def analyse(workload: Workload, ignore_capacity: bool = False, today: date | None = None) -> Analysis:
    today = today or date.today()
    prices = api_prices()
    models = list(workload.api_models) or list(prices)
    unknown = [m for m in models if m not in prices]
    if unknown:
        raise UserError(display_path(FIGURES_FILE), f"no Azure OpenAI prices for {', '.join(unknown)}",
                        f"use one of {', '.join(prices)}, or add the model with its source")
    reference = prices[workload.reference_model or models[0]]
    node = node_for(workload)
    volume = workload.tokens_per_day
    strategies = [api_only(workload, prices[m], volume) for m in models]
    strategies.append(self_hosted(workload, node, volume, spot_batch=False, ignore_capacity=ignore_capacity))
    if node.spot_hourly is not None:
        strategies.append(self_hosted(workload, node, volume, spot_batch=True, ignore_capacity=ignore_capacity))
        strategies.append(self_hosted(workload, node, volume, spot_batch=True, api=reference,
                                      ignore_capacity=ignore_capacity))
    candidates = [s for s in strategies if s.api_model in (None, reference.model)]
    best = min(candidates, key=lambda s: s.monthly_usd)
    notes = [f"{m} retired on {prices[m].retires} by Microsoft's table"
             + (f"; successor {prices[m].successor}" if prices[m].successor else "")
             for m in models if prices[m].retired_on(today)]
    if ignore_capacity:
        notes.append("--ignore-capacity: one node is assumed to serve any volume (the naive break-even)")
    return Analysis(workload, node, strategies, [crossover(workload, node, prices[m], ignore_capacity) for m in models],
                    best.name, notes)


def with_overrides(workload: Workload, **overrides: Any) -> Workload:
    return replace(workload, **{k: v for k, v in overrides.items() if v is not None})
