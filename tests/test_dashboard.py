"""The Grafana dashboard: valid JSON the sidecar loads, every query parses, and every metric it
(and every alert) names is one the gateway or vLLM actually exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import Render
from gateway.backends import UpstreamBackend
from gateway.config import VllmBackend
from gateway.metrics import GatewayMetrics
from hybridllm.layout import REPO_ROOT

MONITORING = {"monitoring": {"dashboard": {"enabled": True}, "alerts": {"enabled": True}}}
_METRIC = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


def gateway_metric_names() -> set[str]:
    backend = UpstreamBackend("vllm-x", VllmBackend(kind="vllm", baseURL="http://x/v1", model="m"))
    metrics = GatewayMetrics([backend])
    metrics.request("r", "vllm-x", "200")
    metrics.fallbacks.labels("a", "b", "c").inc()
    return {sample.name for family in metrics.registry.collect() for sample in family.samples}


def vllm_metric_names() -> set[str]:
    data = yaml.safe_load((REPO_ROOT / "data" / "vllm-metrics.yaml").read_text(encoding="utf-8"))
    names = set(data["gauges"]) | set(data["counters"])
    for histogram in data["histograms"]:
        names |= {f"{histogram}_bucket", f"{histogram}_sum", f"{histogram}_count"}
    return names


def dashboard(render: Render) -> dict:
    config_map = render("hybrid", MONITORING).find("ConfigMap", "hybrid-llm-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    return json.loads(config_map["data"]["hybrid-llm.json"])


def queries(render: Render) -> list[str]:
    exprs = [t["expr"] for panel in dashboard(render)["panels"] for t in panel["targets"]]
    rule = render("hybrid", MONITORING).of_kind("PrometheusRule")[0]
    return exprs + [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def test_dashboard_panels_cover_what_operators_need(render: Render) -> None:
    titles = " / ".join(panel["title"] for panel in dashboard(render)["panels"])
    for topic in ("Requests", "Tokens", "Routed split", "Time to first token", "latency", "Fallbacks",
                  "KV cache", "Cost per backend per day", "USD per 1M tokens"):
        assert topic in titles
    panels = dashboard(render)["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["datasource"]["uid"] == "${datasource}" and p["targets"] for p in panels)


def test_every_queried_metric_is_exported(render: Render) -> None:
    known = gateway_metric_names() | vllm_metric_names() | {"up"}
    used = {name for expr in queries(render) for name in _METRIC.findall(expr)}
    assert used, "no metric names found: the pattern is broken"
    assert used - known == set()
    assert {"vllm:kv_cache_usage_perc", "llm_gateway_cost_usd_total", "llm_gateway_time_to_first_token_seconds_bucket"} <= used


def test_the_check_catches_a_renamed_metric() -> None:
    known = gateway_metric_names() | vllm_metric_names()
    assert "vllm:gpu_cache_usage_perc" not in known  # renamed in vLLM; a dashboard using it would be caught
    assert set(_METRIC.findall('max(vllm:gpu_cache_usage_perc{namespace="x"})')) - known == {"vllm:gpu_cache_usage_perc"}


def test_every_query_parses(render: Render, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is needed: `make test` installs Debian's prometheus package")
    rules = [{"record": f"hybrid_llm:query_{i}", "expr": expr} for i, expr in enumerate(queries(render))]
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", "queries.yaml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cost_panels_use_the_figures_prices(render: Render) -> None:
    exprs = [t["expr"] for panel in dashboard(render)["panels"] for t in panel["targets"]]
    assert any("* 14.692 * 24" in e for e in exprs), "customer path on on-demand at the eastus list price"
    assert any("* 1.78 * 24" in e for e in exprs), "batch path on spot at the eastus estimate"
    assert any("* 0.75 +" in e and "* 4.5)" in e for e in exprs), "gpt-5.4-mini prices for the API comparison"
