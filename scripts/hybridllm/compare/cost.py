"""What the tokens a backend used cost, from data/figures.yaml.

- A self-hosted backend (named vllm-*, as the chart names them) costs the node time the tokens
  take at the node's measured throughput: prompt tokens at the prefill rate plus completion
  tokens at the decode rate, times the node's hourly price (capacity.py's model, at the
  workload's capacity basis). That is the cost with the node fully used; an idle node costs more.
- An API backend costs its list price: uncached prompt, cached prompt and completion tokens each
  at their price per 1M.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from .. import cost_figures
from ..cost_figures import DEPLOYMENT_NAMES, ApiModel
from ..economics import hybrid_reference, node_for
from ..errors import UserError
from ..workload import Workload

SELF_HOSTED_PREFIX = "vllm-"


@dataclass(frozen=True)
class Pricing:
    backend: str
    basis: str  # how it is priced, for the report
    self_hosted: bool
    prompt_per_token: float  # USD per uncached prompt token
    cached_per_token: float
    completion_per_token: float

    def usd(self, prompt: float, cached: float, completion: float) -> float:
        return prompt * self.prompt_per_token + cached * self.cached_per_token + completion * self.completion_per_token


def api_model(workload: Workload, as_of: datetime.date) -> ApiModel:
    """The model API backends are priced as: --api-model, else the cheapest Azure OpenAI model
    deployable on the date (as the cost model's hybrid picks it)."""
    models = cost_figures.api_models()
    if workload.api_models:
        return models[workload.api_models[0]]
    model = hybrid_reference(workload, [], as_of)
    if model is None:
        raise UserError("data/figures.yaml", f"no Azure OpenAI model is deployable on {as_of}", "pass --api-model")
    return model


def pricing(backend: str, workload: Workload, as_of: datetime.date) -> Pricing:
    if backend.startswith(SELF_HOSTED_PREFIX):
        node = node_for(workload)
        rate = node.throughput
        per_second = node.on_demand_hourly / 3600
        basis = (f"{node.instance_type} at ${node.on_demand_hourly:.2f}/h, {rate.basis} throughput "
                 f"(prefill {rate.prefill_tokens_per_second:,.0f}, decode {rate.decode_tokens_per_second:,.0f} tokens/s)")
        prefill = per_second / rate.prefill_tokens_per_second
        return Pricing(backend, basis, True, prefill, prefill, per_second / rate.decode_tokens_per_second)
    model = api_model(workload, as_of)
    price = model.prices.get(workload.api_deployment)
    if price is None:
        raise UserError("--api-model", f"{model.name} has no {DEPLOYMENT_NAMES[workload.api_deployment]} price in "
                        "data/figures.yaml", "pick another model or --api-deployment")
    retired = f", retired {model.retires}" if model.retired_on(as_of) else ""
    basis = (f"{model.name} {DEPLOYMENT_NAMES[workload.api_deployment]} list price{retired} "
             f"(${price.input_per_1m:g} in, ${price.cached_input_per_1m:g} cached, ${price.output_per_1m:g} out per 1M)")
    return Pricing(backend, basis, False, price.input_per_1m / 1e6, price.cached_input_per_1m / 1e6,
                   price.output_per_1m / 1e6)
