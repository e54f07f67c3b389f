"""The alert rules, run by promtool (Debian's prometheus package) on synthetic series: each alert
fires when it should and stays quiet when it should not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Render
from hybridllm.crds import CrdCatalog

ALERTS = {"monitoring": {"alerts": {"enabled": True}}}
NS = 'namespace="llm"'
CUSTOMER = f'{NS},service="hybrid-llm-customer-vllm"'
BATCH = f'{NS},service="hybrid-llm-batch-vllm"'


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is needed: `make test` installs Debian's prometheus package")
    return binary


def rule_groups(render: Render, overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    rule = render("hybrid", {**ALERTS, **(overrides or {})}).of_kind("PrometheusRule")[0]
    return rule["spec"]["groups"]


def alert(name: str, eval_time: str, labels: dict[str, str] | None) -> dict[str, Any]:
    """An expectation: the alert fires with these labels at eval_time (None: it must not fire)."""
    expected = [] if labels is None else [{"exp_labels": labels}]
    return {"eval_time": eval_time, "alertname": name, "exp_alerts": expected}


CASES: list[tuple[str, list[dict[str, str]], list[dict[str, Any]]]] = [
    ("customer path down", [{"series": f'up{{{CUSTOMER},pod="p0"}}', "values": "1 1 0x20"}],
     [alert("VllmCustomerPathDown", "4m", None), alert("VllmCustomerPathDown", "9m", {"severity": "critical"})]),
    ("customer path gone entirely", [{"series": f'up{{{BATCH},pod="b0"}}', "values": "1x20"}],
     [alert("VllmCustomerPathDown", "6m", {"severity": "critical"})]),
    ("customer path healthy", [{"series": f'up{{{CUSTOMER},pod="p0"}}', "values": "1x20"}],
     [alert("VllmCustomerPathDown", "15m", None)]),
    ("kv cache high", [{"series": f'vllm:kv_cache_usage_perc{{{CUSTOMER},pod="p0"}}', "values": "0.95x30"},
                       {"series": f'vllm:kv_cache_usage_perc{{{BATCH},pod="b0"}}', "values": "0.5x30"}],
     [alert("VllmKvCacheHigh", "15m", {"severity": "warning", "service": "hybrid-llm-customer-vllm"})]),
    ("many waiting", [{"series": f'vllm:num_requests_waiting{{{BATCH},pod="b0"}}', "values": "25x20"}],
     [alert("VllmRequestsWaiting", "3m", None),
      alert("VllmRequestsWaiting", "8m", {"severity": "warning", "service": "hybrid-llm-batch-vllm"})]),
    ("ttft over slo",
     [{"series": f'llm_gateway_time_to_first_token_seconds_bucket{{{NS},backend="vllm-customer",le="{le}"}}',
       "values": values} for le, values in (("1", "0x40"), ("2", "0x40"), ("3", "0+10x40"), ("+Inf", "0+10x40"))],
     [alert("LlmTimeToFirstTokenOverSlo", "25m", {"severity": "warning", "backend": "vllm-customer"})]),
    ("ttft within slo",
     [{"series": f'llm_gateway_time_to_first_token_seconds_bucket{{{NS},backend="vllm-customer",le="{le}"}}',
       "values": values} for le, values in (("1", "0+10x40"), ("2", "0+10x40"), ("3", "0+10x40"), ("+Inf", "0+10x40"))],
     [alert("LlmTimeToFirstTokenOverSlo", "25m", None)]),
    ("fallbacks high",
     [{"series": f'llm_gateway_fallbacks_total{{{NS},from="vllm-customer",to="azure-gpt-5-4-mini",reason="overflow"}}',
       "values": "0+5x40"},
      {"series": f'llm_gateway_requests_total{{{NS},route="customer",backend="vllm-customer",status="200"}}',
       "values": "0+10x40"}],
     [alert("LlmGatewayFallbackRateHigh", "25m", {"severity": "warning"})]),
    ("fallbacks low",
     [{"series": f'llm_gateway_fallbacks_total{{{NS},from="vllm-customer",to="azure-gpt-5-4-mini",reason="overflow"}}',
       "values": "0+1x40"},
      {"series": f'llm_gateway_requests_total{{{NS},route="customer",backend="vllm-customer",status="200"}}',
       "values": "0+100x40"}],
     [alert("LlmGatewayFallbackRateHigh", "25m", None)]),
    ("azure 429s",
     [{"series": f'llm_gateway_fallbacks_total{{{NS},from="azure-gpt-5-4-mini",to="none",reason="rate_limited"}}',
       "values": "0+60x40"}],
     [alert("AzureOpenAIRateLimited", "25m", {"severity": "warning", "from": "azure-gpt-5-4-mini"})]),
    ("batch unavailable with demand",
     [{"series": f'llm_gateway_requests_total{{{NS},route="batch",backend="azure-gpt-5-4-mini",status="200"}}',
       "values": "0+10x60"}],
     [alert("BatchPathUnavailable", "20m", None), alert("BatchPathUnavailable", "50m", {"severity": "warning"})]),
    ("batch parked without demand", [{"series": f'up{{{CUSTOMER},pod="p0"}}', "values": "1x60"}],
     [alert("BatchPathUnavailable", "50m", None)]),
    ("spend over budget",
     [{"series": f'llm_gateway_cost_usd_total{{{NS},backend="azure-gpt-5-4-mini"}}', "values": "0+25x40"}],
     [alert("LlmDailySpendOverBudget", "10m", None), alert("LlmDailySpendOverBudget", "39m", {"severity": "warning"})]),
]


@pytest.mark.parametrize("name,series,expectations", CASES, ids=[c[0] for c in CASES])
def test_alert_rule(render: Render, tmp_path: Path, name: str, series: list, expectations: list) -> None:
    groups = rule_groups(render)
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # checked by `promtool check rules` below; values are templated
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": expectations}]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    done = subprocess.run([promtool(), "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_with_annotations_pass_promtool_check(render: Render, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(render)}), encoding="utf-8")
    done = subprocess.run([promtool(), "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


def test_thresholds_come_from_values(render: Render) -> None:
    groups = rule_groups(render, {"monitoring": {"alerts": {"enabled": True, "kvCacheUsageHigh": 0.75,
                                                            "dailyBudgetUSD": 0}}})
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    assert rules["VllmKvCacheHigh"]["expr"].endswith("> 0.75")
    assert "LlmDailySpendOverBudget" not in rules


def test_prometheus_rule_matches_the_real_crd(render: Render, crd_catalog: CrdCatalog) -> None:
    rule = render("hybrid", ALERTS).of_kind("PrometheusRule")[0]
    assert crd_catalog.problems(rule) == []
