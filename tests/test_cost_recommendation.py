"""The recommendation: the cheapest strategy across every API model compared and every self-hosted
strategy, among what is deployable on the evaluation date. Expected values are recomputed here by
hand from the raw figures file, not through the code under test."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import date

import pytest
import yaml

from hybridllm.economics import Workload, analyse
from hybridllm.layout import FIGURES_FILE, REPO_ROOT
from hybridllm.workload import WORKLOAD_FIELDS

TODAY = date(2026, 11, 27)
DAYS = 730 / 24
RAW = yaml.safe_load(FIGURES_FILE.read_text(encoding="utf-8"))
PRICES = {**RAW["azureOpenAI"], **RAW["foundryModels"]}
DEFAULT = yaml.safe_load((REPO_ROOT / "data" / "workloads" / "default.yaml").read_text(encoding="utf-8"))
NODE_TOKENS_PER_DAY = 1200 / (800 / 3538 + 400 / 630) * 86400  # one node, 800+400 requests


def default_workload(**changes: object) -> Workload:
    values = {WORKLOAD_FIELDS[key]: value for key, value in DEFAULT.items()}
    return Workload(**{**values, **changes})


def per_token(entry: dict, cached_share: float = 0.2) -> float:
    """800 prompt + 400 completion tokens, a share of the prompt at the cached-input price."""
    prompt, completion = 800 / 1200, 400 / 1200
    return (prompt * (1 - cached_share) * entry["inputPer1M"] + prompt * cached_share * entry["cachedInputPer1M"]
            + completion * entry["outputPer1M"]) / 1e6


def deployable(entry: dict, day: date) -> bool:
    return "retires" not in entry or date.fromisoformat(entry["retires"]) > day


def self_hosted_by_hand(api_model: str | None = None) -> dict[str, float]:
    """The default workload's three self-hosted strategies in eastus, from the figures by hand."""
    on_demand, spot = 14.692 * 730, 1.78 * 730 * 1.15
    engineering = 20 * 100

    def egress(share: float) -> float:
        return 150e6 * share / 3 * 4 / 1e9 * 0.087 * DAYS

    fleet = math.ceil((150e6 * 0.7 * 2 + 150e6 * 0.3) / NODE_TOKENS_PER_DAY)  # 255M of load -> 3 nodes
    customer = math.ceil(150e6 * 0.7 * 2 / NODE_TOKENS_PER_DAY)  # 210M -> 2
    batch = math.ceil(150e6 * 0.3 / NODE_TOKENS_PER_DAY)  # 45M -> 1
    hybrid_customer = math.ceil(150e6 * 0.6 * 2 / NODE_TOKENS_PER_DAY)  # 180M -> 2
    assert (fleet, customer, batch, hybrid_customer) == (3, 2, 1, 2)
    costs = {"self-host, on-demand": fleet * on_demand + engineering + egress(1),
             "self-host, spot batch": customer * on_demand + batch * spot + engineering + egress(1)}
    if api_model:
        costs["hybrid"] = (hybrid_customer * on_demand + batch * spot + engineering + egress(0.9)
                           + per_token(PRICES[api_model]) * 150e6 * 0.1 * DAYS)
    return costs


def test_the_cheapest_choice_across_every_model_and_strategy() -> None:
    analysis = analyse(default_workload(), today=TODAY)
    api = {f"API only: {name}": per_token(entry) * 150e6 * DAYS for name, entry in PRICES.items()
           if deployable(entry, TODAY)}
    cheapest_azure_openai = min((n for n, e in RAW["azureOpenAI"].items() if deployable(e, TODAY)),
                                key=lambda n: per_token(RAW["azureOpenAI"][n]))
    assert cheapest_azure_openai == "gpt-5-nano"
    options = {**api, **self_hosted_by_hand(cheapest_azure_openai)}
    best = min(options, key=options.get)
    # gpt-5-nano: (2/3 x 0.8 x 0.05 + 2/3 x 0.2 x 0.005 + 1/3 x 0.40) / 1e6 per token x 150M x 30.42 = $733.
    assert best == "API only: gpt-5-nano" and options[best] == pytest.approx(733.1, abs=0.1)
    assert analysis.recommended.name == best
    assert analysis.recommended.monthly_usd == pytest.approx(options[best])
    for name, cost in options.items():
        assert analysis.strategy(name).monthly_usd == pytest.approx(cost), name
    assert sum(1 for s in analysis.strategies if s.recommendable) == len(options) == 13


def test_a_reference_model_no_longer_hides_a_cheaper_api() -> None:
    # The case: hybrid on gpt-5.1, compared with gpt-4o only. While gpt-4o is deployable it is
    # cheaper than any self-hosted strategy, so it is the answer (the old code recommended self-hosting).
    workload = default_workload(reference_model="gpt-5.1", api_models=("gpt-4o",))
    gpt_4o = per_token(PRICES["gpt-4o"]) * 150e6 * DAYS  # $4.83 per 1M -> $22,052
    by_hand = self_hosted_by_hand("gpt-5.1")
    assert gpt_4o == pytest.approx(22_052, abs=1) and gpt_4o < min(by_hand.values())
    before = analyse(workload, today=date(2026, 9, 1))
    assert before.recommended.name == "API only: gpt-4o"
    # From 2026-10-01 gpt-4o is retired: shown at the same price, never recommended.
    after = analyse(workload, today=TODAY)
    assert after.strategy("API only: gpt-4o").monthly_usd == pytest.approx(gpt_4o)
    assert after.strategy("API only: gpt-4o").unavailable == "retired on 2026-10-01"
    best = min(by_hand, key=by_hand.get)
    assert after.recommended.name == best == "self-host, spot batch"
    assert after.recommended.monthly_usd == pytest.approx(by_hand[best])


@pytest.mark.parametrize("day", ["2026-09-30", "2026-10-01", "2026-10-14", "2026-12-12", "2027-02-05", "2027-02-06",
                                 "2027-03-18", "2027-05-15", "2028-01-01"])
@pytest.mark.parametrize("volume", [1e6, 1.5e8, 5e9])
def test_a_retired_model_is_never_recommended(day: str, volume: float) -> None:
    as_of = date.fromisoformat(day)
    analysis = analyse(default_workload(tokens_per_day=volume), today=as_of)
    best = analysis.recommended
    if best.api_model is not None:
        assert deployable(PRICES[best.api_model], as_of)
    for strategy in analysis.strategies:
        model = PRICES.get(strategy.api_model or "")
        if model is not None and not deployable(model, as_of):
            assert not strategy.recommendable and "retired on" in strategy.unavailable
    # And it is the cheapest of what is deployable, by hand.
    deployable_api = {n: per_token(e) * volume * DAYS for n, e in PRICES.items() if deployable(e, as_of)}
    self_hosted = [s.monthly_usd for s in analysis.strategies if s.kind != "api" and s.recommendable]
    assert best.monthly_usd == pytest.approx(min([*deployable_api.values(), *self_hosted]))


def test_the_answer_moves_on_the_day_a_model_retires() -> None:
    # gpt-5-nano retires on 2027-02-06: the day before it is the answer, on the day gpt-5.4-nano is.
    assert analyse(default_workload(), today=date(2027, 2, 5)).recommended.api_model == "gpt-5-nano"
    assert analyse(default_workload(), today=date(2027, 2, 6)).recommended.api_model == "gpt-5.4-nano"


def test_foundry_llama_is_the_like_for_like_comparator() -> None:
    analysis = analyse(default_workload(api_models=("Llama-3.3-70B-Instruct",)), today=TODAY)
    # $0.71 per 1M in and out, no cache discount: 150M x 0.71e-6 x 30.42 = $3,239 a month.
    expected = 150e6 * 0.71e-6 * DAYS
    assert expected == pytest.approx(3239.4, abs=0.1)
    assert analysis.recommended.name == "API only: Llama-3.3-70B-Instruct"
    assert analysis.recommended.monthly_usd == pytest.approx(expected)
    api, own = analysis.like_for_like()
    by_hand = self_hosted_by_hand()
    assert api.monthly_usd == pytest.approx(expected)
    assert own.name == "self-host, spot batch" and own.monthly_usd == pytest.approx(min(by_hand.values()))
    llama = next(m for m in analysis.models if m.model.name == "Llama-3.3-70B-Instruct")
    assert llama.model.provider == "Foundry serverless" and llama.crossover.tokens_per_day is None
    # The same model on the API costs $0.71 per 1M; a fully used node costs $2.93.
    assert "$2.93 per 1M tokens" in llama.crossover.reason and "$0.71 per 1M" in llama.crossover.reason


def test_data_zone_prices_and_models_without_a_data_zone_offer() -> None:
    analysis = analyse(default_workload(api_deployment="dataZone"), today=TODAY)
    nano = per_token(RAW["azureOpenAI"]["gpt-5-nano"]["dataZone"]) * 150e6 * DAYS
    assert nano == pytest.approx(733.1 * 1.1, abs=0.2)  # Data Zone is 10% above Global Standard
    assert analysis.recommended.name == "API only: gpt-5-nano"
    assert analysis.recommended.monthly_usd == pytest.approx(nano)
    for name in ("Llama-3.3-70B-Instruct", "gpt-5.4-mini", "gpt-4.1-mini"):
        strategy = analysis.strategy(f"API only: {name}")
        assert strategy.monthly_usd is None and "no Data Zone Standard price" in strategy.unavailable
    # Self-hosting is unchanged by the API's deployment type.
    assert analysis.strategy("self-host, on-demand").monthly_usd == pytest.approx(
        self_hosted_by_hand()["self-host, on-demand"])


def test_json_has_recommended_and_a_retired_date_or_null_per_model() -> None:
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "crossover.py"), "--workload",
                           str(REPO_ROOT / "data" / "workloads" / "default.yaml"), "--format", "json",
                           "--as-of", "2026-11-27"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["recommended"] == {"strategy": "API only: gpt-5-nano", "model": "gpt-5-nano",
                                     "monthlyUSD": pytest.approx(733.1, abs=0.1)}
    assert set(report["apiModels"]) == set(PRICES)
    for name, entry in report["apiModels"].items():
        expected = None if deployable(PRICES[name], TODAY) else PRICES[name]["retires"]
        assert entry["retired"] == expected, name
    assert report["apiModels"]["gpt-4o-mini"]["retired"] == "2026-10-01"
    assert report["apiModels"]["gpt-5.1"]["retired"] is None
    assert report["apiModels"]["gpt-5.1"]["retires"] == "2027-05-15"
