"""Self-hosting Llama 3.3 70B against pay-per-token APIs for one workload: the monthly cost of each
strategy, the crossover volume per API model, and the cheapest strategy deployable on a date.

All prices and capacities come from data/figures.yaml (through cost_figures). Conventions:
- A month is 730 hours (Azure's billing convention), so 730/24 days.
- Tokens/day counts prompt and completion tokens together.
- A node's capacity depends on the request shape: prefill and decode rates (capacity.py).
- The customer path is sized for its peak; the batch path for its average, since batch can wait.
- Self-hosted strategies pay for nodes, engineering time and egress of completion tokens; an API
  pays per token, with cached prompt tokens at the cached-input price.
- A strategy is recommendable only if everything it uses is deployable on the evaluation date:
  a retired model (or a hybrid routing to one) is shown, marked, and never recommended.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field, replace
from typing import Any

from . import cost_figures
from .capacity import NodeThroughput
from .cost_figures import DEPLOYMENT_NAMES, LLAMA, ApiModel, TokenPrice
from .errors import UserError
from .workload import WORKLOAD_FIELDS, Workload, validate

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
MAX_NODES = 10_000  # a fleet beyond this is outside what the model is for

__all__ = ["Analysis", "Crossover", "DAYS_PER_MONTH", "HOURS_PER_MONTH", "Node", "StrategyCost", "Workload",
           "analyse", "crossover", "node_for"]


@dataclass(frozen=True)
class Node:
    instance_type: str
    region: str
    on_demand_hourly: float
    spot_hourly: float | None  # None: no spot price for this region
    throughput: NodeThroughput
    prompt_tokens: int
    completion_tokens: int

    @property
    def requests_per_second(self) -> float:
        return self.throughput.requests_per_second(self.prompt_tokens, self.completion_tokens)

    @property
    def tokens_per_second(self) -> float:
        return self.throughput.tokens_per_second(self.prompt_tokens, self.completion_tokens)

    @property
    def tokens_per_day(self) -> float:
        return self.throughput.tokens_per_day(self.prompt_tokens, self.completion_tokens)

    def cost_per_million(self, hourly: float) -> float:
        """Self-hosted USD per 1M tokens with the node fully used."""
        return hourly / (self.tokens_per_second * 3600) * 1e6

    @property
    def capacity_note(self) -> str:
        t = self.throughput
        return (f"{self.requests_per_second:.2f} req/s = {self.tokens_per_second:,.0f} tokens/s at "
                f"{self.prompt_tokens}+{self.completion_tokens} tokens ({t.basis}: prefill "
                f"{t.prefill_tokens_per_second:,.0f} + decode {t.decode_tokens_per_second:,.0f} tokens/s"
                + (f"; {t.slo}" if t.slo else "") + ")")


def node_for(workload: Workload) -> Node:
    prices = cost_figures.node_prices(workload.instance_type)
    on_demand = workload.node_hourly if workload.node_hourly is not None else prices.on_demand.get(workload.region)
    if on_demand is None:
        raise UserError("workload", f"region {workload.region!r} has no on-demand price for {workload.instance_type}",
                        f"use one of {', '.join(prices.on_demand)}, or pass --node-hourly")
    spot = workload.spot_hourly if workload.spot_hourly is not None else prices.spot.get(workload.region)
    return Node(workload.instance_type, workload.region, on_demand, spot,
                cost_figures.node_throughput(workload.instance_type, workload.capacity_basis),
                workload.prompt_tokens, workload.completion_tokens)


def engineering_month(workload: Workload) -> float:
    hours, rate = cost_figures.engineering()
    if workload.engineering_hours_per_month is not None:
        hours = workload.engineering_hours_per_month
    return hours * rate


def egress_per_token_day(workload: Workload) -> float:
    """Monthly egress USD per (token/day) of traffic: the completion tokens leave the region."""
    completion_share = workload.completion_tokens / (workload.prompt_tokens + workload.completion_tokens)
    return completion_share * workload.egress_bytes_per_token / 1e9 * cost_figures.egress_per_gb() * DAYS_PER_MONTH


@dataclass
class StrategyCost:
    name: str
    kind: str  # api, self-host or hybrid
    monthly_usd: float | None  # None: cannot be priced (`unavailable` says why)
    customer_nodes: int = 0
    batch_nodes: int = 0
    batch_on_spot: bool = False
    api_model: str | None = None
    api_share: float = 0.0
    utilisation: float | None = None  # average load / capacity of the nodes
    unavailable: str | None = None  # why it is never recommended

    @property
    def nodes(self) -> int:
        return self.customer_nodes + self.batch_nodes

    @property
    def recommendable(self) -> bool:
        return self.unavailable is None and self.monthly_usd is not None


def _nodes(load_tokens_per_day: float, node: Node, minimum: int) -> int:
    if load_tokens_per_day <= 0:
        return minimum
    needed = load_tokens_per_day / node.tokens_per_day
    if needed > MAX_NODES:
        raise UserError("tokensPerDay", f"this workload needs {needed:,.0f} {node.instance_type} nodes on one path, "
                        f"more than the {MAX_NODES:,} this model plans for",
                        "lower tokensPerDay or peakToAverage, or check promptTokens and completionTokens")
    return max(minimum, math.ceil(needed - 1e-12))


def self_hosted(workload: Workload, node: Node, tokens_per_day: float, *, spot_batch: bool,
                api: tuple[ApiModel, TokenPrice] | None = None, ignore_capacity: bool = False,
                as_of: datetime.date | None = None) -> StrategyCost:
    """Self-hosted paths (and, with `api`, the schema-strict share on that API: the hybrid)."""
    name = "hybrid" if api is not None else "self-host, spot batch" if spot_batch else "self-host, on-demand"
    kind = "hybrid" if api is not None else "self-host"
    api_share = workload.schema_strict_share if api is not None else 0.0
    customer_share = 1 - workload.batch_share - api_share
    customer_load = tokens_per_day * customer_share * workload.peak_to_average
    batch_load = tokens_per_day * workload.batch_share
    if ignore_capacity:
        customer_nodes = max(workload.min_customer_nodes, 1 if customer_share > 0 else 0)
        batch_nodes = max(workload.min_batch_nodes, 1 if batch_load > 0 and spot_batch else 0)
        if customer_nodes + batch_nodes == 0:
            customer_nodes = 1
    elif spot_batch:
        customer_nodes = _nodes(customer_load, node, workload.min_customer_nodes)
        batch_nodes = _nodes(batch_load, node, workload.min_batch_nodes)
    else:
        # One on-demand fleet: customer peak plus batch average.
        customer_nodes = _nodes(customer_load + batch_load, node,
                                max(workload.min_customer_nodes + workload.min_batch_nodes, 1))
        batch_nodes = 0
    batch_on_spot = spot_batch and batch_nodes > 0
    served = tokens_per_day * (1 - api_share)
    capacity = (customer_nodes + batch_nodes) * node.tokens_per_day
    result = StrategyCost(name, kind, None, customer_nodes, batch_nodes, batch_on_spot,
                          api[0].name if api else None, api_share, served / capacity if capacity else None)
    if batch_on_spot and node.spot_hourly is None:
        result.unavailable = (f"no spot price for {node.instance_type} in {node.region} in data/figures.yaml "
                              "(pass --spot-hourly to price it)")
        return result
    node_month = node.on_demand_hourly * HOURS_PER_MONTH
    spot_month = (node.spot_hourly or 0.0) * HOURS_PER_MONTH * (1 + workload.spot_eviction_overhead)
    monthly = customer_nodes * node_month + batch_nodes * (spot_month if batch_on_spot else node_month)
    monthly += engineering_month(workload) + egress_per_token_day(workload) * served
    if api is not None:
        model, price = api
        monthly += _per_token(workload, price) * tokens_per_day * api_share * DAYS_PER_MONTH
        if as_of is not None and model.retired_on(as_of):
            result.unavailable = f"its API share goes to {model.name}, retired on {model.retires}"
    result.monthly_usd = monthly
    if ignore_capacity and result.utilisation is not None and result.utilisation > 1:
        result.unavailable = f"utilisation {result.utilisation:.0%}: these nodes could not carry the volume"
    return result


def _per_token(workload: Workload, price: TokenPrice) -> float:
    return price.per_token(workload.prompt_tokens, workload.completion_tokens, workload.cached_prompt_share)


def api_only(workload: Workload, model: ApiModel, tokens_per_day: float, as_of: datetime.date) -> StrategyCost:
    price = model.prices.get(workload.api_deployment)
    strategy = StrategyCost(f"API only: {model.name}", "api", None, api_model=model.name, api_share=1.0)
    if price is None:
        strategy.unavailable = f"no {DEPLOYMENT_NAMES[workload.api_deployment]} price in data/figures.yaml"
        return strategy
    strategy.monthly_usd = _per_token(workload, price) * tokens_per_day * DAYS_PER_MONTH
    if model.retired_on(as_of):
        strategy.unavailable = f"retired on {model.retires}"
    return strategy


@dataclass
class Crossover:
    model: str
    tokens_per_day: float | None  # None: never
    reason: str
    nodes: int | None = None


def crossover(workload: Workload, node: Node, model: ApiModel, ignore_capacity: bool = False) -> Crossover:
    """The smallest volume at which self-hosting on on-demand nodes costs no more than the API.

    Self-hosted cost is n(V)*M + E + e*V: n whole nodes at M a month, engineering E, and egress e per
    token/day. The fleet needs n(V) = max(m, ceil(V / W)) nodes, where W = C / r is the traffic one
    node carries (C its tokens/day, r the load factor: customer share at peak plus batch share at
    average). With k = a - e (a the API's monthly cost per token/day), node count n breaks even
    within its own interval ((n-1)W, nW] iff n (kW - M) >= E, so the first such n is
    max(m, ceil(E / (kW - M))) and the volume there is max((nM + E) / k, (n-1)W). No search."""
    price = model.prices.get(workload.api_deployment)
    if price is None:
        return Crossover(model.name, None, f"{model.name} has no {DEPLOYMENT_NAMES[workload.api_deployment]} price")
    api_rate = _per_token(workload, price) * DAYS_PER_MONTH
    egress_rate = egress_per_token_day(workload)
    node_month = node.on_demand_hourly * HOURS_PER_MONTH
    engineering = engineering_month(workload)
    minimum = max(workload.min_customer_nodes + workload.min_batch_nodes, 1)
    k = api_rate - egress_rate
    if k <= 0:
        return Crossover(model.name, None, f"{model.name} costs no more per token than the egress alone")
    if ignore_capacity:
        return Crossover(model.name, (minimum * node_month + engineering) / k,
                         "fixed-cost break-even: assumes one node serves any volume", minimum)
    load_factor = (1 - workload.batch_share) * workload.peak_to_average + workload.batch_share
    per_node_volume = node.tokens_per_day / load_factor
    margin = k * per_node_volume - node_month  # what one more fully used node saves against the API
    if margin <= 0:
        marginal = node_month / per_node_volume + egress_rate
        return Crossover(model.name, None,
                         f"a fully used node costs ${node.cost_per_million(node.on_demand_hourly):.2f} per 1M tokens "
                         f"(${marginal / DAYS_PER_MONTH * 1e6:.2f} with peak headroom and egress), above "
                         f"{model.name}'s ${_per_token(workload, price) * 1e6:.2f} per 1M for this mix")
    needed = engineering / margin
    if needed > MAX_NODES:
        return Crossover(model.name, None, f"it would take more than {MAX_NODES:,} nodes to repay the fixed costs")
    n = max(minimum, math.ceil(needed - 1e-12))
    volume = max((n * node_month + engineering) / k, (n - 1) * per_node_volume if n > minimum else 0.0)
    return Crossover(model.name, volume, f"from here {n} on-demand node(s) cost no more than {model.name}", n)


@dataclass
class ModelResult:
    model: ApiModel
    price: TokenPrice | None  # at the workload's deployment type
    per_token: float | None
    crossover: Crossover


@dataclass
class Analysis:
    workload: Workload
    node: Node
    as_of: datetime.date
    strategies: list[StrategyCost]
    models: list[ModelResult]
    recommended: StrategyCost | None
    notes: list[str] = field(default_factory=list)

    @property
    def crossovers(self) -> list[Crossover]:
        return [m.crossover for m in self.models]

    def strategy(self, name: str) -> StrategyCost:
        return next(s for s in self.strategies if s.name == name)

    def like_for_like(self) -> tuple[StrategyCost, StrategyCost] | None:
        """(Llama on a serverless API, the cheapest self-hosted strategy): the same model both ways."""
        api = [s for s in self.strategies if s.kind == "api" and s.api_model and s.api_model.lower() == LLAMA
               and s.monthly_usd is not None]
        own = [s for s in self.strategies if s.kind == "self-host" and s.monthly_usd is not None]
        if not api or not own:
            return None
        return api[0], min(own, key=lambda s: s.monthly_usd or 0.0)

    def as_json(self) -> dict[str, Any]:
        node = self.node
        recommended = self.recommended
        return {
            "asOf": self.as_of.isoformat(),
            "workload": {key: _jsonable(getattr(self.workload, name)) for key, name in WORKLOAD_FIELDS.items()},
            "node": {
                "instanceType": node.instance_type, "region": node.region, "onDemandHourly": node.on_demand_hourly,
                "spotHourly": node.spot_hourly, "capacityBasis": node.throughput.basis, "slo": node.throughput.slo,
                "prefillTokensPerSecond": node.throughput.prefill_tokens_per_second,
                "decodeTokensPerSecond": node.throughput.decode_tokens_per_second,
                "requestsPerSecond": node.requests_per_second, "tokensPerSecond": node.tokens_per_second,
                "costPer1MTokensFullUse": {
                    "onDemand": node.cost_per_million(node.on_demand_hourly),
                    "spot": None if node.spot_hourly is None else node.cost_per_million(node.spot_hourly)}},
            "strategies": [{"name": s.name, "kind": s.kind,
                            "monthlyUSD": None if s.monthly_usd is None else round(s.monthly_usd, 2),
                            "customerNodes": s.customer_nodes, "batchNodes": s.batch_nodes,
                            "batchOnSpot": s.batch_on_spot, "apiModel": s.api_model, "apiShare": s.api_share,
                            "utilisation": s.utilisation, "recommendable": s.recommendable,
                            "unavailable": s.unavailable} for s in self.strategies],
            "apiModels": {m.model.name: {
                "provider": m.model.provider,
                "deploymentType": self.workload.api_deployment,
                "usdPer1MTokens": None if m.per_token is None else m.per_token * 1e6,
                "priceIsEstimate": None if m.price is None else m.price.estimate,
                "retired": m.model.retires.isoformat() if m.model.retired_on(self.as_of) and m.model.retires else None,
                "retires": None if m.model.retires is None else m.model.retires.isoformat(),
                "deprecated": None if m.model.deprecated is None else m.model.deprecated.isoformat(),
                "successor": m.model.successor,
                "crossoverTokensPerDay": m.crossover.tokens_per_day, "crossoverNodes": m.crossover.nodes,
                "reason": m.crossover.reason} for m in self.models},
            "recommended": None if recommended is None else {
                "strategy": recommended.name, "model": recommended.api_model,
                "monthlyUSD": None if recommended.monthly_usd is None else round(recommended.monthly_usd, 2)},
            "notes": self.notes,
        }


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def hybrid_reference(workload: Workload, compared: list[ApiModel], as_of: datetime.date) -> ApiModel | None:
    """The Azure OpenAI model the hybrid sends its API share to: the workload's referenceModel, else
    the cheapest deployable Azure OpenAI model compared (else in the figures file)."""
    models = cost_figures.api_models()
    if workload.reference_model is not None:
        return models[workload.reference_model]

    def deployable(model: ApiModel) -> bool:
        return model.is_azure_openai and not model.retired_on(as_of) and workload.api_deployment in model.prices

    for pool in (compared, list(models.values())):
        candidates = [m for m in pool if deployable(m)]
        if candidates:
            return min(candidates, key=lambda m: _per_token(workload, m.prices[workload.api_deployment]))
    return None


def analyse(workload: Workload, ignore_capacity: bool = False, today: datetime.date | None = None) -> Analysis:
    workload = validate(workload)
    as_of = today or datetime.date.today()
    models = cost_figures.api_models()
    compared = [models[name] for name in (workload.api_models or tuple(models))]
    node = node_for(workload)
    volume = workload.tokens_per_day
    strategies = [api_only(workload, model, volume, as_of) for model in compared]
    strategies.append(self_hosted(workload, node, volume, spot_batch=False, ignore_capacity=ignore_capacity))
    strategies.append(self_hosted(workload, node, volume, spot_batch=True, ignore_capacity=ignore_capacity))
    reference = hybrid_reference(workload, compared, as_of)
    notes: list[str] = []
    if reference is not None and workload.api_deployment in reference.prices:
        strategies.append(self_hosted(workload, node, volume, spot_batch=True, ignore_capacity=ignore_capacity,
                                      api=(reference, reference.prices[workload.api_deployment]), as_of=as_of))
    else:
        why = (f"{reference.name} has no {DEPLOYMENT_NAMES[workload.api_deployment]} price" if reference
               else f"no Azure OpenAI model is deployable on {as_of}")
        strategies.append(StrategyCost("hybrid", "hybrid", None, unavailable=why))
    results = []
    for model in compared:
        price = model.prices.get(workload.api_deployment)
        results.append(ModelResult(model, price, None if price is None else _per_token(workload, price),
                                   crossover(workload, node, model, ignore_capacity)))
    candidates = [s for s in strategies if s.recommendable]
    recommended = min(candidates, key=lambda s: s.monthly_usd or 0.0) if candidates else None
    notes += _notes(workload, node, compared, strategies, recommended, as_of, ignore_capacity)
    return Analysis(workload, node, as_of, strategies, results, recommended, notes)


def _notes(workload: Workload, node: Node, compared: list[ApiModel], strategies: list[StrategyCost],
           recommended: StrategyCost | None, as_of: datetime.date, ignore_capacity: bool) -> list[str]:
    notes = []
    for model in compared:
        if model.retired_on(as_of):
            notes.append(f"{model.name} retired on {model.retires} (Microsoft's retirement table)"
                         + (f"; successor {model.successor}" if model.successor else "") + ": shown, never recommended")
    if recommended is not None and recommended.api_model:
        model = cost_figures.api_models()[recommended.api_model]
        if model.closed_to_new_customers_on(as_of):
            notes.append(f"{model.name} takes no new customers since {model.deprecated} and retires on "
                         f"{model.retires}: existing customers can deploy it until then; plan the move")
        elif model.retires is not None:
            notes.append(f"{model.name} retires on {model.retires}")
    unpriced = [s for s in strategies if s.monthly_usd is None]
    notes += [f"{s.name}: not priced: {s.unavailable}" for s in unpriced]
    if ignore_capacity:
        notes.append("--ignore-capacity: one node is assumed to serve any volume (the naive break-even)")
        over = [s for s in strategies if s.utilisation is not None and s.utilisation > 1]
        if over:
            notes.append("utilisation above 100% (" + ", ".join(f"{s.name} {s.utilisation:.0%}" for s in over)
                         + "): those nodes could not carry this volume; drop --ignore-capacity for the real fleet")
    if any(m.prices.get(workload.api_deployment) and m.prices[workload.api_deployment].estimate for m in compared):
        notes.append("API prices are estimates (third-party price maps; see kind and source in data/figures.yaml)")
    return notes


def sweep(workload: Workload, volumes: list[float], ignore_capacity: bool,
          today: datetime.date) -> list[tuple[float, Analysis]]:
    """The analysis at each volume, stopping where the fleet would exceed MAX_NODES."""
    runs = []
    for volume in volumes:
        try:
            runs.append((volume, analyse(replace(workload, tokens_per_day=volume), ignore_capacity, today)))
        except UserError:
            break
    return runs


def describe_status(model: ApiModel, as_of: datetime.date) -> str:
    if model.retired_on(as_of):
        return f"RETIRED {model.retires}, never recommended"
    if model.closed_to_new_customers_on(as_of):
        return f"retires {model.retires}, no new customers since {model.deprecated}"
    return f"retires {model.retires}" if model.retires else "no retirement date published"
