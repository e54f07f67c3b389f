"""The live A/B view end to end: a real Prometheus (Debian's package) scrapes a real gateway while
compare.py's own evaluation run sends it real streaming traffic, pinned to each backend, from
stubs with known delays and error rates; `compare.py --prometheus` then reads the same rows back.

Histogram quantiles are interpolated within buckets, so time to first token is checked to lie in
the gateway's bucket that holds the stub's delay, and tokens/s within 30% of 1 / token delay.
Counts come from increase(), which extrapolates to the window's edges: within 25%.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from compare_stubs import FAIL_MARKER, EvalStub, EvalStubs, prometheus_scraping, wait_for
from gateway_harness import DEMO_KEY, RunningGateway, config_for, example_gateway
from hybridllm.compare import live
from hybridllm.compare.cost import pricing
from hybridllm.layout import REPO_ROOT
from hybridllm.workload import Workload

SETTINGS: dict[str, dict[str, Any]] = {
    "vllm-customer": dict(delay=0.15, token_delay=0.01),
    "azure-openai": dict(delay=0.4, token_delay=0.02, azure=True, error_rate=0.25),
}
# The gateway's TTFT buckets around each stub's delay (gateway/metrics.py _TTFT_BUCKETS).
TTFT_BUCKET_MS = {"vllm-customer": (100, 200), "azure-openai": (300, 500)}
TASKS = 12


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, EvalStub]]:
    with EvalStubs(SETTINGS) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(stubs: dict[str, EvalStub]) -> Iterator[RunningGateway]:
    with example_gateway(config_for(stubs)) as running:  # type: ignore[arg-type]
        yield running


def compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "compare.py"), *args], capture_output=True,
                          text=True, cwd=REPO_ROOT, env={**os.environ, "HYBRID_LLM_GATEWAY_KEY": DEMO_KEY},
                          timeout=120, check=False)


@pytest.fixture(scope="module")
def traffic(gateway: RunningGateway, stubs: dict[str, EvalStub],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    """(Prometheus URL, the offline report of the traffic it saw)."""
    with prometheus_scraping(gateway.port, tmp_path_factory.mktemp("prometheus")) as url:
        # Every series the view reads exists before the measured traffic, so increase() has a
        # baseline: one answer and one failure per backend, then two scrapes.
        for backend in SETTINGS:
            for content in ("warm up", FAIL_MARKER):
                httpx.post(gateway.url + "/v1/chat/completions", timeout=30,
                           headers={"Authorization": f"Bearer {DEMO_KEY}", "x-llm-backend": backend},
                           json={"model": "llama-3.3-70b", "stream": True, "messages": [{"role": "user", "content": content}]})
        wait_for(url, 'count_over_time(llm_gateway_requests_total{backend="azure-openai",status="200"}[1m])', 2)
        done = compare("--gateway", gateway.url, "--suite", "schema", "--limit", str(TASKS), "--concurrency", "4",
                       "--format", "json", "--api-model", "gpt-4o-mini")
        assert done.returncode == 0, done.stderr
        offline = json.loads(done.stdout)
        sent = sum(row["requests"] for row in offline["backends"].values()) + 2  # + the probes
        wait_for(url, 'sum(llm_gateway_requests_total)', sent + 4)  # + the warm-up
        time.sleep(2)
        yield url, offline


def test_the_live_rows_match_the_traffic(traffic: tuple[str, dict[str, Any]]) -> None:
    url, offline = traffic
    done = compare("--prometheus", url, "--window", "2m", "--api-model", "gpt-4o-mini", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"vllm-customer", "azure-openai"} <= set(report["backends"])
    workload = Workload(tokens_per_day=1.0, api_models=("gpt-4o-mini",))
    for backend, settings in SETTINGS.items():
        row, measured = report["backends"][backend], offline["backends"][backend]
        # The run's requests and the probe; the failures are the stub's.
        assert row["requests"] == pytest.approx(measured["requests"] + 1, rel=0.25)
        error_share = row["errors"] / row["requests"]
        assert error_share == pytest.approx(measured["errors"] / measured["requests"], abs=0.08)
        low, high = TTFT_BUCKET_MS[backend]
        assert low <= row["ttft_p50_ms"] <= high and row["ttft_p50_ms"] <= row["ttft_p95_ms"]
        assert row["tokens_per_second_p50"] == pytest.approx(1 / settings["token_delay"], rel=0.3)
        price = pricing(backend, workload, datetime.date.today())
        assert row["cost_usd"] == pytest.approx(price.usd(row["prompt_tokens"], row["cached_prompt_tokens"],
                                                          row["completion_tokens"]))
        assert row["completion_tokens"] == pytest.approx(measured["completion_tokens"], rel=0.25)
    assert report["backends"]["azure-openai"]["errors"] > 0 and report["backends"]["vllm-customer"]["errors"] == 0
    # The gateway's own bill for the API backend is beside the figures-based cost.
    assert report["gateway_cost_usd"]["azure-openai"] > 0 and report["gateway_cost_usd"]["vllm-customer"] == 0


def test_the_live_table(traffic: tuple[str, dict[str, Any]]) -> None:
    url, _ = traffic
    done = compare("--prometheus", url, "--window", "2m", "--backends", "vllm-customer,azure-openai")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Live from {url} over the last 2m")
    for row in ("Requests", "Errors", "First-token latency p50", "First-token latency p95", "Streaming tokens/s p50",
                "Cost", "USD per 1M tokens"):
        assert any(line.startswith(row) for line in done.stdout.splitlines()), row
    assert "p50 of the gateway's per-stream histogram" in done.stdout or "mean over the window" in done.stdout


def test_one_route_only(traffic: tuple[str, dict[str, Any]]) -> None:
    url, _ = traffic
    done = compare("--prometheus", url, "--window", "2m", "--route", "pinned:vllm-customer", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["backends"]
    assert rows["vllm-customer"]["requests"] > 0 and rows.get("azure-openai", {"requests": 0})["requests"] == 0
    nothing = compare("--prometheus", url, "--window", "2m", "--route", "nowhere")
    assert nothing.returncode == 2 and "counted no requests on route nowhere" in nothing.stderr


def test_tokens_per_second_without_the_histogram(traffic: tuple[str, dict[str, Any]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway without the per-stream histogram: the mean from the duration and TTFT sums."""
    url, _ = traffic
    monkeypatch.setattr(live, "TOKENS_PER_SECOND_HISTOGRAM", "llm_gateway_no_such_histogram")
    results, context = live.observe(url, "2m", None, Workload(tokens_per_day=1.0), datetime.date.today(),
                                    ["vllm-customer", "azure-openai"])
    assert context["tokens_per_second_basis"].startswith("mean over the window")
    for result in results:
        # The mean runs a little low: the request time also holds the upstream's connection and the final events.
        assert result.tokens_per_second_p50 == pytest.approx(1 / SETTINGS[result.backend]["token_delay"], rel=0.3)


def test_live_errors(traffic: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    url, _ = traffic
    bad_window = compare("--prometheus", url, "--window", "ten minutes")
    assert bad_window.returncode == 2 and "'ten minutes' is not a Prometheus duration" in bad_window.stderr
    closed = compare("--prometheus", "http://127.0.0.1:9", "--window", "1h")
    assert closed.returncode == 2 and "cannot query Prometheus" in closed.stderr and "Traceback" not in closed.stderr
    plot = compare("--prometheus", url, "--plot", str(tmp_path / "x.png"))
    assert plot.returncode == 2 and "--plot is for an evaluation run" in plot.stderr
