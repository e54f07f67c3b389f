"""The node throughput model: two rates fitted to the cited measurements, so request shape matters.

Each fitted rate in data/figures.yaml is recomputed here from the measurements recorded beside it."""

from __future__ import annotations

import math
from datetime import date

import pytest
import yaml

from hybridllm.economics import Workload, analyse, node_for
from hybridllm.layout import FIGURES_FILE

SKU = "Standard_NC96ads_A100_v4"


@pytest.fixture(scope="module")
def figures() -> dict:
    raw = yaml.safe_load(FIGURES_FILE.read_text(encoding="utf-8"))
    return raw["nodeThroughput"]["llama-3.3-70b-instruct"][SKU]


def test_prefill_ceiling_is_the_compute_bound(figures: dict) -> None:
    # 4 A100s x 312 dense BF16 TFLOPS over 2 FLOPs per parameter per token.
    ceiling = 4 * 312e12 / (2 * 70_553_706_496)
    assert ceiling == pytest.approx(8844.3, abs=0.1)
    assert figures["measurements"]["prefillCeiling"]["tokensPerSecondAtFullUtilisation"] == round(ceiling)


def test_sustainable_rates_reproduce_the_measured_run_on_this_sku(figures: dict) -> None:
    ceiling = figures["measurements"]["prefillCeiling"]["tokensPerSecondAtFullUtilisation"]
    run = figures["measurements"]["nc96adsQps4"]
    shape = (run["requestsPerSecond"], run["promptTokens"], run["completionTokens"], run["meanTpotMs"])
    assert shape == (2.50, 213, 214, 74.0)
    prefill = 0.40 * ceiling  # 40% utilisation
    decode = run["completionTokens"] / (1 / run["requestsPerSecond"] - run["promptTokens"] / prefill)
    assert figures["sustainable"]["prefillTokensPerSecond"] == pytest.approx(prefill, abs=0.5)
    assert figures["sustainable"]["decodeTokensPerSecond"] == pytest.approx(decode, abs=0.5)
    # The measured run's 533 output tokens/s come out of the model again: 2.50 req/s x 214.
    node = node_for(Workload(tokens_per_day=1, prompt_tokens=213, completion_tokens=214))
    assert node.requests_per_second == pytest.approx(2.50, abs=0.005)
    assert node.requests_per_second * 214 == pytest.approx(run["outputTokensPerSecond"], rel=0.01)


def test_saturation_rates_come_from_the_sxm_run_and_the_pcie_penalty(figures: dict) -> None:
    m = figures["measurements"]
    penalty = m["nc96adsQps1"]["meanTpotMs"] / m["a100SxmSaturation"]["medianTpotMsAt10InFlight"]
    assert m["pciePenalty"]["factor"] == pytest.approx(penalty, abs=0.005)
    prefill = 0.50 * m["prefillCeiling"]["tokensPerSecondAtFullUtilisation"]
    sxm_decode = m["a100SxmSaturation"]["outputTokensPerSecond"] / (
        1 - m["a100SxmSaturation"]["inputTokensPerSecond"] / prefill)
    assert figures["saturation"]["prefillTokensPerSecond"] == pytest.approx(prefill, abs=0.5)
    assert figures["saturation"]["decodeTokensPerSecond"] == pytest.approx(sxm_decode / penalty, abs=1)
    assert figures["sustainable"]["decodeTokensPerSecond"] < figures["saturation"]["decodeTokensPerSecond"]


def test_every_throughput_figure_says_where_it_came_from(figures: dict) -> None:
    for basis in ("sustainable", "saturation"):
        assert figures[basis]["kind"] == "derived" and len(figures[basis]["derivation"]) > 100
    for name, entry in figures["measurements"].items():
        assert entry["kind"] in ("measured", "derived"), name
        assert entry.get("source") or entry.get("derivation"), name


def test_two_request_shapes_get_different_node_capacity() -> None:
    chat = node_for(Workload(tokens_per_day=1, prompt_tokens=800, completion_tokens=400))
    rag = node_for(Workload(tokens_per_day=1, prompt_tokens=4000, completion_tokens=100))
    # 800/3538 + 400/630 = 0.861 s of node time per request; 4000/3538 + 100/630 = 1.289 s.
    assert chat.requests_per_second == pytest.approx(1 / (800 / 3538 + 400 / 630))
    assert rag.requests_per_second == pytest.approx(1 / (4000 / 3538 + 100 / 630))
    assert chat.tokens_per_second == pytest.approx(1393.7, abs=0.1)
    assert rag.tokens_per_second == pytest.approx(3180.0, abs=0.1)
    # The same 400M tokens/day then needs 4 nodes of chat but 2 of prompt-heavy traffic.
    base = dict(tokens_per_day=400e6, peak_to_average=1, batch_share=0, schema_strict_share=0,
                api_models=("gpt-5.5",))
    chat_fleet = analyse(Workload(**base), today=date(2026, 11, 27)).strategy("self-host, on-demand")
    rag_fleet = analyse(Workload(**base, prompt_tokens=4000, completion_tokens=100),
                        today=date(2026, 11, 27)).strategy("self-host, on-demand")
    assert chat_fleet.nodes == math.ceil(400e6 / (1393.67 * 86400)) == 4
    assert rag_fleet.nodes == math.ceil(400e6 / (3179.99 * 86400)) == 2
