"""The Grafana dashboard: valid JSON the sidecar loads, every query parses, and every metric it
(and every alert) names is one the gateway or vLLM actually exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import openai
import pytest
import yaml

from conftest import Render
from gateway.backends import UpstreamBackend
from gateway.config import GatewayConfig
from gateway.metrics import GatewayMetrics
from gateway.routing import Router
from gateway_harness import (DEMO_KEY, FaultyUpstream, config_for, example_gateway, expected_arm, prometheus_query,
                             prometheus_scraping)
from hybridllm.layout import REPO_ROOT

MONITORING = {"monitoring": {"dashboard": {"enabled": True}, "alerts": {"enabled": True}}}
_METRIC = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


def gateway_metric_names() -> set[str]:
    """Every sample name a gateway with a split route exports (the metrics are real; only their
    values are made up)."""
    vllm = {"kind": "vllm", "model": "m"}
    config = GatewayConfig.model_validate({
        "auth": {"enabled": False},
        "backends": {"vllm-x": {**vllm, "baseURL": "http://x/v1"}, "vllm-y": {**vllm, "baseURL": "http://y/v1"}},
        "routes": {"ab": {"split": [{"backend": "vllm-x", "weight": 1}, {"backend": "vllm-y", "weight": 1}]}},
        "routing": {"defaultRoute": "ab"}, "models": {"m": {}}})
    backends = {name: UpstreamBackend(name, backend) for name, backend in config.backends.items()}
    metrics = GatewayMetrics(backends.values())
    metrics.prepare(Router(config, backends))
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
    # The live A/B view: each split route's arms side by side.
    for topic in ("A/B split: share", "A/B split: requests", "A/B split: errors", "A/B split: time to first token",
                  "A/B split: streaming tokens per second", "A/B split: cost per day", "A/B split: USD per 1M tokens"):
        assert topic in titles
    panels = dashboard(render)["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["datasource"]["uid"] == "${datasource}" and p["targets"] for p in panels)


def test_every_queried_metric_is_exported(render: Render) -> None:
    known = gateway_metric_names() | vllm_metric_names() | {"up"}
    used = {name for expr in queries(render) for name in _METRIC.findall(expr)}
    assert used, "no metric names found: the pattern is broken"
    assert used - known == set()
    assert {"vllm:kv_cache_usage_perc", "llm_gateway_cost_usd_total", "llm_gateway_time_to_first_token_seconds_bucket",
            "llm_gateway_split_decisions_total", "llm_gateway_split_weight",
            "llm_gateway_stream_tokens_per_second_bucket"} <= used


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


# ---- the A/B panels against real traffic, in a real Prometheus --------------------------------------

SPLIT = [("vllm-customer", 65.0), ("azure-openai", 35.0)]


def ab_panels(render: Render) -> dict[str, dict[str, str]]:
    """The A/B panels' queries: {short title: {refId: expr}}."""
    return {panel["title"].split(":")[1].split("(")[0].strip(): {t["refId"]: t["expr"] for t in panel["targets"]}
            for panel in dashboard(render)["panels"] if panel["title"].startswith("A/B split:")}


def wait_until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "prometheus never saw it"
        time.sleep(0.3)


def by_route_backend(url: str, expr: str) -> dict[tuple[str, str], float]:
    return {(s["metric"].get("route", ""), s["metric"].get("backend") or s["metric"].get("arm", "")): float(s["value"][1])
            for s in prometheus_query(url, expr)}


def test_the_ab_panels_compare_the_arms_of_real_split_traffic(render: Render, tmp_path: Path) -> None:
    """A gateway splits 200 users 65/35 between a fast vLLM stub and a slower Azure stub; a real
    Prometheus scrapes it; every A/B panel's query then shows each arm as the stubs made it, and
    pinned traffic to the same backend stays out."""
    panels = ab_panels(render)
    vllm = FaultyUpstream(name="vllm-customer", delay=0.1, token_delay=0.02).start()   # ~50 tokens/s
    azure = FaultyUpstream(name="azure-openai", azure=True, delay=0.4, token_delay=0.05).start()  # ~20 tokens/s
    batch = FaultyUpstream(name="vllm-batch").start()
    config = config_for({"vllm-customer": vllm, "azure-openai": azure, "vllm-batch": batch})
    config["routes"]["customer"] = {"split": [{"backend": b, "weight": w} for b, w in SPLIT],
                                    "stickyBy": "header:x-llm-user", "fallbacks": ["azure-openai", "vllm-customer"]}
    users = [f"user-{n:03d}" for n in range(200)]
    arms = {user: expected_arm(user, SPLIT) for user in users}
    faulted = [u for u in users if arms[u] == "vllm-customer"][::10]  # every 10th vLLM user gets an upstream 400
    try:
        with example_gateway(config) as gateway:
            # A second job stands in for the customer path's vLLM Service: only its `up` is kept.
            jobs = [{"job_name": "gateway", "static_configs": [{"targets": [f"127.0.0.1:{gateway.port}"],
                                                                "labels": {"namespace": "llm"}}]},
                    {"job_name": "vllm", "static_configs": [{"targets": [f"127.0.0.1:{gateway.port}"],
                                                             "labels": {"namespace": "llm", "service": "hybrid-llm-customer-vllm"}}],
                     "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": ".+", "action": "drop"}]}]
            with prometheus_scraping(jobs, tmp_path) as prometheus:
                baseline = 'count_over_time(llm_gateway_split_decisions_total{namespace="llm"}[1m])'
                wait_until(lambda: min((float(s["value"][1]) for s in prometheus_query(prometheus, baseline)), default=0) >= 2)
                api = openai.OpenAI(base_url=gateway.url + "/v1", api_key=DEMO_KEY, max_retries=0, timeout=20)

                def send(user: str) -> None:
                    extra = {"fault": {"vllm-customer": {"status": 400}}} if user in faulted else None
                    try:
                        stream = api.chat.completions.create(model="llama-3.3-70b", messages=[{"role": "user", "content": "hi"}],
                                                             stream=True, extra_headers={"x-llm-user": user}, extra_body=extra)
                        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from the stub."
                    except openai.BadRequestError:
                        assert user in faulted

                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(send, users))
                # Pinned to the Azure arm's backend, and slow: must not show in the A/B view.
                slow = {"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                        "fault": {"azure-openai": {"delay": 1.6}}}
                with ThreadPoolExecutor(20) as pool:
                    pinned = list(pool.map(lambda _: gateway.post(slow, {"x-llm-backend": "azure-openai"}), range(20)))
                assert all(response.status_code == 200 for response in pinned)
                total = 'sum(llm_gateway_requests_total{namespace="llm"})'
                wait_until(lambda: sum(float(s["value"][1]) for s in prometheus_query(prometheus, total)) >= 220)
                time.sleep(1.5)
                results = {name: {ref: by_route_backend(prometheus, expr) for ref, expr in exprs.items()}
                           for name, exprs in panels.items()}
    finally:
        for stub in (vllm, azure, batch):
            stub.stop()

    on_vllm = sum(arm == "vllm-customer" for arm in arms.values())
    share = results["share of each route's requests per arm, landed and configured"]
    landed, configured = share["A"], share["B"]
    assert landed == pytest.approx({("customer", "vllm-customer"): on_vllm / 200,
                                    ("customer", "azure-openai"): 1 - on_vllm / 200}, abs=0.02)
    assert configured == pytest.approx({("customer", "vllm-customer"): 0.65, ("customer", "azure-openai"): 0.35})
    requests = results["requests per second per arm"]["A"]
    assert set(requests) == {("customer", "vllm-customer"), ("customer", "azure-openai")}, "pinned traffic stays out"
    errors = results["errors per arm"]["A"]
    assert errors == pytest.approx({("customer", "vllm-customer"): len(faulted) / on_vllm,
                                    ("customer", "azure-openai"): 0.0}, abs=0.02)
    p50, p95 = results["time to first token p50 / p95 per arm"].values()
    assert 0.1 <= p50[("customer", "vllm-customer")] <= 0.2 and 0.3 <= p50[("customer", "azure-openai")] <= 0.5, p50
    assert p95[("customer", "azure-openai")] <= 0.5, "the 1.6 s pinned requests are not in the arm's TTFT"
    speed = results["streaming tokens per second p50 per arm"]["A"]
    assert 30 <= speed[("customer", "vllm-customer")] <= 60 and 12 <= speed[("customer", "azure-openai")] <= 25, speed
    cost = results["cost per day per arm"]
    # Each stub answer is 11 prompt and 5 completion tokens at the example's gpt-4o-mini prices.
    assert results["USD per 1M tokens per arm"]["A"] == pytest.approx(
        {("customer", "azure-openai"): (11 * 0.15 + 5 * 0.60) / 16}, rel=0.02)
    assert set(cost["A"]) == {("customer", "azure-openai")}
    # The customer path's node day (one node up), all of it on the customer route's vLLM arm.
    assert cost["customer"] == pytest.approx({("customer", "vllm-customer"): 14.692 * 24}, rel=0.01)
    assert cost["batch"] == {}, "no split on the batch route"
