"""The cost model, checked against hand arithmetic done in the test."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from hybridllm.economics import DAYS_PER_MONTH, HOURS_PER_MONTH, Workload, analyse, node_for
from hybridllm.layout import REPO_ROOT

# Before Microsoft retired gpt-4o-mini and gpt-4o (2026-10-01), so both are still recommendable.
BEFORE_RETIREMENTS = date(2026, 9, 1)
# The widely shared analysis: $0.15/$0.60 per 1M tokens, 800 + 400 tokens per request, $23/h node.
BLOG = dict(node_hourly=23.0, engineering_hours_per_month=0, egress_bytes_per_token=0, peak_to_average=1,
            batch_share=0, schema_strict_share=0, api_models=("gpt-4o-mini", "gpt-4o"))
# One NC96ads_A100_v4 node at the sustainable rates of data/figures.yaml (prefill 3,538 and decode
# 630 tokens/s): an 800+400 request takes 800/3538 + 400/630 s of the node.
REQUESTS_PER_SECOND = 1 / (800 / 3538 + 400 / 630)  # 1.1614
TOKENS_PER_DAY = REQUESTS_PER_SECOND * 1200 * 86400  # 120.4M tokens/day


def crossing(workload: Workload, model: str, ignore_capacity: bool = False):
    return next(c for c in analyse(workload, ignore_capacity, BEFORE_RETIREMENTS).crossovers if c.model == model)


def test_naive_crossover_is_1_84_billion_tokens_a_day_not_1_7_million() -> None:
    workload = Workload(tokens_per_day=1e6, **BLOG)
    # Per request: 800 x $0.15/M + 400 x $0.60/M = $0.00036, i.e. $0.30 per 1M tokens.
    # The node: $23 x 730 h = $16,790 a month. Break-even: 16,790 / (0.30e-6 x 730/24) tokens/day.
    expected = 23 * 730 / (0.30e-6 * 730 / 24)
    assert expected == pytest.approx(1.84e9, rel=1e-3)
    result = crossing(workload, "gpt-4o-mini", ignore_capacity=True)
    assert result.tokens_per_day == pytest.approx(expected, rel=1e-9)


def test_capacity_aware_crossover_against_gpt_4o_mini_is_never() -> None:
    result = crossing(Workload(tokens_per_day=1e6, **BLOG), "gpt-4o-mini")
    assert result.tokens_per_day is None
    # One node serves 1,393.7 tokens/s at this shape; at $23/h that is
    # 23 / (1393.7 x 3600) x 1e6 = $4.58 per 1M tokens, far above the API's $0.30.
    assert 23 / (REQUESTS_PER_SECOND * 1200 * 3600) * 1e6 == pytest.approx(4.584, abs=1e-3)
    assert "$4.58 per 1M tokens" in result.reason and "$0.30 per 1M" in result.reason


def test_capacity_aware_crossover_against_gpt_4o_fits_one_node() -> None:
    result = crossing(Workload(tokens_per_day=1e6, **BLOG), "gpt-4o")
    # gpt-4o: (800 x 2.50 + 400 x 10.00) / 1200 = $5.00 per 1M tokens.
    expected = 23 * 730 / (5.00e-6 * 730 / 24)  # = 110.4M tokens/day
    assert result.tokens_per_day == pytest.approx(expected, rel=1e-9)
    assert result.tokens_per_day == pytest.approx(110.4e6, rel=1e-3)
    assert result.nodes == 1 and expected < TOKENS_PER_DAY  # one node carries 120.4M tokens/day


def test_crossover_that_needs_several_nodes() -> None:
    # $20,000 of engineering a month: one node cannot repay it, so the break-even needs more nodes.
    workload = Workload(tokens_per_day=1e6, **{**BLOG, "engineering_hours_per_month": 200})
    result = crossing(workload, "gpt-4o")
    node_month, engineering, api_rate = 23 * 730, 200 * 100, 5.00e-6 * 730 / 24
    # n nodes cost n x 16,790 + 20,000 and carry up to n x 120.4M tokens/day; the first n whose
    # break-even volume fits in its own interval ((n-1) x 120.4M, n x 120.4M], found by walking n:
    n = next(n for n in range(1, 100) if (n * node_month + engineering) / api_rate <= n * TOKENS_PER_DAY)
    assert n == 14 and result.nodes == 14
    assert result.tokens_per_day == pytest.approx((14 * node_month + engineering) / api_rate, rel=1e-9)
    assert 13 * TOKENS_PER_DAY < result.tokens_per_day <= 14 * TOKENS_PER_DAY


def test_spot_batch_share() -> None:
    workload = Workload(tokens_per_day=300e6, node_hourly=20.0, spot_hourly=2.0, peak_to_average=2.0,
                        batch_share=0.5, schema_strict_share=0.0, spot_eviction_overhead=0.25,
                        engineering_hours_per_month=10, egress_bytes_per_token=0, api_models=("gpt-5.5",))
    analysis = analyse(workload, today=BEFORE_RETIREMENTS)
    spot = analysis.strategy("self-host, spot batch")
    customer_nodes = math.ceil(300e6 * 0.5 * 2.0 / TOKENS_PER_DAY)  # half at 2x peak: 300M -> 3 nodes
    batch_nodes = math.ceil(300e6 * 0.5 / TOKENS_PER_DAY)  # batch at its average: 150M -> 2 nodes
    assert (customer_nodes, batch_nodes) == (3, 2)
    assert (spot.customer_nodes, spot.batch_nodes, spot.batch_on_spot) == (customer_nodes, batch_nodes, True)
    engineering = 10 * 100  # the figures file's $100/h
    expected = customer_nodes * 20 * 730 + batch_nodes * 2.0 * 730 * 1.25 + engineering
    assert spot.monthly_usd == pytest.approx(expected)
    on_demand = analysis.strategy("self-host, on-demand")
    # One on-demand fleet for 300M x (0.5 x 2 + 0.5) = 450M tokens/day of load -> 4 nodes.
    assert on_demand.nodes == math.ceil(450e6 / TOKENS_PER_DAY) == 4
    assert on_demand.monthly_usd == pytest.approx(4 * 20 * 730 + engineering)


def test_hybrid_split_sends_the_schema_strict_share_to_the_api() -> None:
    workload = Workload(tokens_per_day=100e6, node_hourly=20.0, spot_hourly=2.0, peak_to_average=1.0,
                        batch_share=0.3, schema_strict_share=0.2, cached_prompt_share=0.5, spot_eviction_overhead=0,
                        engineering_hours_per_month=0, egress_bytes_per_token=0, api_models=("gpt-4o-mini",),
                        reference_model="gpt-4o-mini")
    hybrid = analyse(workload, today=BEFORE_RETIREMENTS).strategy("hybrid")
    # Customer 50% (1 on-demand node), batch 30% (1 spot node), schema-strict 20% on gpt-4o-mini.
    # gpt-4o-mini per token: prompt 2/3 of tokens, half of them cached:
    #   (1/3 x 0.15 + 1/3 x 0.075 + 1/3 x 0.60) / 1e6 = $0.275 per 1M.
    api_monthly = 100e6 * 0.2 * (0.15 + 0.075 + 0.60) / 3 / 1e6 * (730 / 24)
    assert (hybrid.customer_nodes, hybrid.batch_nodes, hybrid.api_share) == (1, 1, 0.2)
    assert hybrid.monthly_usd == pytest.approx(20 * 730 + 2 * 730 + api_monthly)
    assert hybrid.utilisation == pytest.approx(80e6 / (2 * TOKENS_PER_DAY))
    assert hybrid.recommendable
    # After gpt-4o-mini retires, the same hybrid is shown but never recommended.
    later = analyse(workload, today=date(2026, 11, 27)).strategy("hybrid")
    assert later.monthly_usd == pytest.approx(hybrid.monthly_usd) and not later.recommendable
    assert "gpt-4o-mini, retired on 2026-10-01" in later.unavailable


def test_egress_and_engineering_are_added_to_self_hosting() -> None:
    base = dict(tokens_per_day=100e6, node_hourly=10.0, peak_to_average=1.0, batch_share=0, schema_strict_share=0,
                api_models=("gpt-5",))
    plain = analyse(Workload(**base, engineering_hours_per_month=0, egress_bytes_per_token=0)).strategy(
        "self-host, on-demand").monthly_usd
    loaded = analyse(Workload(**base, engineering_hours_per_month=20, egress_bytes_per_token=4)).strategy(
        "self-host, on-demand").monthly_usd
    # 20 h x $100 + completion third of 100M tokens/day x 4 bytes = 0.133 GB/day at $0.087/GB.
    assert loaded - plain == pytest.approx(20 * 100 + 100e6 / 3 * 4 / 1e9 * 0.087 * 730 / 24)


def test_capacity_and_prices_come_from_the_figures_file() -> None:
    node = node_for(Workload(tokens_per_day=1, region="westeurope"))
    assert node.on_demand_hourly == 19.100 and node.spot_hourly is None
    assert node.tokens_per_second == pytest.approx(REQUESTS_PER_SECOND * 1200)
    saturated = node_for(Workload(tokens_per_day=1, capacity_basis="saturation"))
    assert saturated.tokens_per_second == pytest.approx(1200 / (800 / 4422 + 400 / 1154))
    assert HOURS_PER_MONTH == 730 and DAYS_PER_MONTH == pytest.approx(30.4167, rel=1e-4)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "crossover.py"), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, check=False)


def test_cli_json_has_crossover_reason_and_lifecycle_per_model() -> None:
    args = ["--tokens-per-day", "5e7", "--node-hourly", "23", "--api-model", "gpt-4o-mini", "--api-model", "gpt-4o",
            "--format", "json"]
    done = cli(*args, "--as-of", "2026-09-01")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["asOf"] == "2026-09-01"
    assert report["apiModels"]["gpt-4o-mini"]["crossoverTokensPerDay"] is None
    assert report["apiModels"]["gpt-4o-mini"]["reason"].startswith("a fully used node costs")
    # At the default 2x peak and 30% batch a node carries 120.4M / 1.7 = 70.8M tokens/day of traffic,
    # which earns 70.8M x $5.00/1M x 30.42 = $10,772 a month at gpt-4o prices: less than the node's
    # $16,790, so never.
    assert TOKENS_PER_DAY / 1.7 * 5.00e-6 * 730 / 24 == pytest.approx(10_772, rel=1e-3)
    assert report["apiModels"]["gpt-4o"]["crossoverTokensPerDay"] is None
    assert "$5.00 per 1M" in report["apiModels"]["gpt-4o"]["reason"]
    assert report["node"]["onDemandHourly"] == 23.0
    assert {s["name"] for s in report["strategies"]} >= {"API only: gpt-4o-mini", "self-host, on-demand",
                                                          "self-host, spot batch", "hybrid"}
    # 50M tokens/day x $0.30/1M x 30.42 days = $456 a month: gpt-4o-mini is the cheapest while deployable.
    assert report["recommended"] == {"strategy": "API only: gpt-4o-mini", "model": "gpt-4o-mini",
                                     "monthlyUSD": pytest.approx(50e6 * 0.30e-6 * 730 / 24, abs=0.01)}
    assert report["apiModels"]["gpt-4o-mini"]["retired"] is None
    assert report["apiModels"]["gpt-4o-mini"]["retires"] == "2026-10-01"

    later = json.loads(cli(*args, "--as-of", "2026-11-27").stdout)
    assert later["apiModels"]["gpt-4o-mini"]["retired"] == "2026-10-01"
    assert later["apiModels"]["gpt-4o"]["retired"] == "2026-10-01"
    # Both compared APIs are gone, so the answer is the cheapest self-hosted strategy.
    self_hosted = [s for s in later["strategies"] if s["kind"] != "api" and s["recommendable"]]
    cheapest = min(self_hosted, key=lambda s: s["monthlyUSD"])
    assert later["recommended"] == {"strategy": cheapest["name"], "model": None, "monthlyUSD": cheapest["monthlyUSD"]}


def test_cli_table_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "crossover.png"
    done = cli("--workload", str(REPO_ROOT / "data" / "workloads" / "default.yaml"), "--plot", str(out),
               "--as-of", "2026-11-27")
    assert done.returncode == 0, done.stderr
    for text in ("Monthly cost by strategy", "Crossover", "Recommended: API only: gpt-5-nano",
                 "RETIRED 2026-10-01, never recommended", "Like for like (Llama 3.3 70B both ways)"):
        assert text in done.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
