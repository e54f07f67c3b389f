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

# The widely shared analysis: $0.15/$0.60 per 1M tokens, 800 + 400 tokens per request, $23/h node.
BLOG = dict(node_hourly=23.0, engineering_hours_per_month=0, egress_bytes_per_token=0, peak_to_average=1,
            batch_share=0, schema_strict_share=0, api_models=("gpt-4o-mini", "gpt-4o"))


def crossing(workload: Workload, model: str, ignore_capacity: bool = False):
    return next(c for c in analyse(workload, ignore_capacity).crossovers if c.model == model)


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
    # One node serves 1.5 req/s x 1,200 tokens = 1,800 tokens/s; at $23/h that is
    # 23 / (1800 x 3600) x 1e6 = $3.55 per 1M tokens, far above the API's $0.30.
    assert "$3.55 per 1M tokens" in result.reason and "$0.30 per 1M" in result.reason


def test_capacity_aware_crossover_against_gpt_4o_fits_one_node() -> None:
    result = crossing(Workload(tokens_per_day=1e6, **BLOG), "gpt-4o")
    # gpt-4o: (800 x 2.50 + 400 x 10.00) / 1200 = $5.00 per 1M tokens.
    expected = 23 * 730 / (5.00e-6 * 730 / 24)  # = 110.4M tokens/day
    assert result.tokens_per_day == pytest.approx(expected, rel=1e-9)
    assert result.tokens_per_day == pytest.approx(110.4e6, rel=1e-3)
    assert result.nodes == 1 and expected < 1800 * 86400  # one node carries 155.5M tokens/day


def test_crossover_that_needs_several_nodes() -> None:
    # $20,000 of engineering a month: one node cannot repay it, so the break-even needs more nodes.
    workload = Workload(tokens_per_day=1e6, **{**BLOG, "engineering_hours_per_month": 200})
    result = crossing(workload, "gpt-4o")
    node_month, engineering, api_rate, per_node = 23 * 730, 200 * 100, 5.00e-6 * 730 / 24, 1800 * 86400
    # n nodes cost n x 16,790 + 20,000 and carry up to n x 155.52M tokens/day; the first n whose
    # break-even volume fits in its own interval ((n-1) x 155.52M, n x 155.52M]:
    n = next(n for n in range(1, 100) if (n * node_month + engineering) / api_rate <= n * per_node)
    assert n == 3 and result.nodes == 3
    assert result.tokens_per_day == pytest.approx((3 * node_month + engineering) / api_rate, rel=1e-9)
    assert 2 * per_node < result.tokens_per_day <= 3 * per_node


def test_spot_batch_share() -> None:
    workload = Workload(tokens_per_day=300e6, node_hourly=20.0, spot_hourly=2.0, peak_to_average=2.0,
                        batch_share=0.5, schema_strict_share=0.0, spot_eviction_overhead=0.25,
                        engineering_hours_per_month=10, egress_bytes_per_token=0, api_models=("gpt-4o",))
    analysis = analyse(workload)
    spot = next(s for s in analysis.strategies if s.name == "self-host, spot batch")
    capacity = 1800 * 86400  # tokens/day per node
    customer_nodes = math.ceil(300e6 * 0.5 * 2.0 / capacity)  # 300M/day, half at 2x peak -> 2 nodes
    batch_nodes = math.ceil(300e6 * 0.5 / capacity)  # batch at its average -> 1 node
    assert (spot.customer_nodes, spot.batch_nodes, spot.batch_on_spot) == (customer_nodes, batch_nodes, True)
    engineering = 10 * 100  # the figures file's $100/h
    expected = customer_nodes * 20 * 730 + batch_nodes * 2.0 * 730 * 1.25 + engineering
    assert spot.monthly_usd == pytest.approx(expected)
    on_demand = next(s for s in analysis.strategies if s.name == "self-host, on-demand")
    # One on-demand fleet for 300M x (0.5 x 2 + 0.5) = 450M tokens/day of load -> 3 nodes.
    assert on_demand.nodes == math.ceil(450e6 / capacity) == 3
    assert on_demand.monthly_usd == pytest.approx(3 * 20 * 730 + engineering)


def test_hybrid_split_sends_the_schema_strict_share_to_the_api() -> None:
    workload = Workload(tokens_per_day=100e6, node_hourly=20.0, spot_hourly=2.0, peak_to_average=1.0,
                        batch_share=0.3, schema_strict_share=0.2, cached_prompt_share=0.5, spot_eviction_overhead=0,
                        engineering_hours_per_month=0, egress_bytes_per_token=0, api_models=("gpt-4o-mini",))
    hybrid = next(s for s in analyse(workload).strategies if s.name == "hybrid")
    # Customer 50% (1 on-demand node), batch 30% (1 spot node), schema-strict 20% on gpt-4o-mini.
    # gpt-4o-mini per token: prompt 2/3 of tokens, half of them cached:
    #   (1/3 x 0.15 + 1/3 x 0.075 + 1/3 x 0.60) / 1e6 = $0.275 per 1M.
    api_monthly = 100e6 * 0.2 * (0.15 + 0.075 + 0.60) / 3 / 1e6 * (730 / 24)
    assert (hybrid.customer_nodes, hybrid.batch_nodes, hybrid.api_share) == (1, 1, 0.2)
    assert hybrid.monthly_usd == pytest.approx(20 * 730 + 2 * 730 + api_monthly)
    assert hybrid.utilisation == pytest.approx(80e6 / (2 * 1800 * 86400))


def test_egress_and_engineering_are_added_to_self_hosting() -> None:
    base = dict(tokens_per_day=100e6, node_hourly=10.0, peak_to_average=1.0, batch_share=0, schema_strict_share=0,
                api_models=("gpt-4o",))
    plain = next(s for s in analyse(Workload(**base, engineering_hours_per_month=0, egress_bytes_per_token=0)).strategies
                 if s.name == "self-host, on-demand").monthly_usd
    loaded = next(s for s in analyse(Workload(**base, engineering_hours_per_month=20, egress_bytes_per_token=4)).strategies
                  if s.name == "self-host, on-demand").monthly_usd
    # 20 h x $100 + completion third of 100M tokens/day x 4 bytes = 0.133 GB/day at $0.087/GB.
    assert loaded - plain == pytest.approx(20 * 100 + 100e6 / 3 * 4 / 1e9 * 0.087 * 730 / 24)


def test_capacity_and_prices_come_from_the_figures_file() -> None:
    node = node_for(Workload(tokens_per_day=1, region="westeurope"))
    assert node.on_demand_hourly == 19.100 and node.spot_hourly is None
    assert node.tokens_per_second == 1.5 * 1200
    assert node_for(Workload(tokens_per_day=1, capacity_basis="saturation")).tokens_per_second == 2.5 * 1200
    assert HOURS_PER_MONTH == 730 and DAYS_PER_MONTH == pytest.approx(30.4167, rel=1e-4)


def test_retired_models_are_flagged() -> None:
    analysis = analyse(Workload(tokens_per_day=1e8, api_models=("gpt-4o-mini", "gpt-5.1")), today=date(2026, 11, 27))
    assert any("gpt-4o-mini retired on 2026-10-01" in note and "gpt-4.1-mini" in note for note in analysis.notes)
    assert not any("gpt-5.1 retired" in note for note in analysis.notes)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "crossover.py"), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, check=False)


def test_cli_json_has_crossover_and_reason_per_model() -> None:
    done = cli("--tokens-per-day", "5e7", "--node-hourly", "23", "--api-model", "gpt-4o-mini", "--api-model", "gpt-4o",
               "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["apiModels"]["gpt-4o-mini"]["crossover_tokens_per_day"] is None
    assert report["apiModels"]["gpt-4o-mini"]["reason"].startswith("a fully used node costs")
    # At the default 2x peak a node carries 155.52M / 1.7 = 91.5M tokens/day of traffic, which
    # earns $13,916 a month at gpt-4o prices: less than the node's $16,790, so never again.
    assert report["apiModels"]["gpt-4o"]["crossover_tokens_per_day"] is None
    assert "$5.00 per 1M" in report["apiModels"]["gpt-4o"]["reason"]
    assert report["node"]["onDemandHourly"] == 23.0
    assert {s["name"] for s in report["strategies"]} >= {"API only: gpt-4o-mini", "self-host, on-demand",
                                                          "self-host, spot batch", "hybrid"}
    assert report["recommended"] == "API only: gpt-4o-mini"


def test_cli_table_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "crossover.png"
    done = cli("--workload", str(REPO_ROOT / "data" / "workloads" / "default.yaml"), "--plot", str(out))
    assert done.returncode == 0, done.stderr
    assert "Monthly cost by strategy:" in done.stdout and "Crossover" in done.stdout and "Recommended:" in done.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


@pytest.mark.parametrize("args,message", [
    (["--tokens-per-day", "1e8", "--api-model", "gpt-9"], "no Azure OpenAI prices for gpt-9"),
    ([], "no tokensPerDay"),
    (["--tokens-per-day", "-5"], "tokensPerDay must be above 0"),
])
def test_cli_errors(args: list[str], message: str) -> None:
    done = cli(*args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_cli_workload_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "w.yaml"
    bad.write_text("tokensPerDay: 1e8\nbatchShare: 0.8\nschemaStrictShare: 0.5\ntokenz: 1\n", encoding="utf-8")
    done = cli("--workload", str(bad))
    assert done.returncode == 2 and "unknown key(s) tokenz" in done.stderr
    bad.write_text("tokensPerDay: 1e8\nbatchShare: 0.8\nschemaStrictShare: 0.5\n", encoding="utf-8")
    done = cli("--workload", str(bad))
    assert done.returncode == 2 and "batchShare + schemaStrictShare must not exceed 1" in done.stderr
    bad.write_text("tokensPerDay: lots\n", encoding="utf-8")
    done = cli("--workload", str(bad))
    assert done.returncode == 2 and "tokensPerDay is 'lots', not a number" in done.stderr
