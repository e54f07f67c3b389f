"""scripts/compare.py end to end: the real CLI, through a real gateway with each backend pinned,
against stub upstreams with known answers and delays (tests/compare_stubs.py).

- vllm-customer answers every HumanEval problem right, 3 in 4 schema tasks right, its first
  token after 150 ms and then 100 tokens/s.
- azure-openai answers every problem wrongly, with hostile programs (a busy loop, a write outside
  the sandbox, a memory hog, a plain wrong value, in turn), 1 in 2 schema tasks right, its first
  token after 300 ms and then 50 tokens/s, and fails 1 request in 8 with an HTTP 500.

Tolerances, on a 2-core machine with the gateway and stubs in this process: time to first token
p50 at least the stub's delay and at most 120 ms above it; streaming tokens/s p50 within 25% of
1 / token delay. Rates and counts are exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compare_stubs import EvalStub, EvalStubs, right_at
from gateway_harness import DEMO_KEY, RunningGateway, config_for, example_gateway, free_port, write_keys
from hybridllm import cost_figures
from hybridllm.capacity import NodeThroughput
from hybridllm.compare.evalsets import schema_tasks
from hybridllm.layout import REPO_ROOT

LIMIT = 8
SETTINGS: dict[str, dict[str, Any]] = {
    "vllm-customer": dict(code_pass_rate=1.0, schema_ok_rate=0.75, delay=0.15, token_delay=0.01, record=True),
    "azure-openai": dict(code_pass_rate=0.0, schema_ok_rate=0.5, delay=0.3, token_delay=0.02, azure=True,
                         hostile=True, error_rate=0.125, record=True),
}
NO_OVERRIDE_KEY = "sk-compare-no-override"
TTFT_SLACK_MS = 120
RATE_TOLERANCE = 0.25


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("canary") / "escaped.txt"


@pytest.fixture(scope="module")
def stubs(canary: Path) -> Iterator[dict[str, EvalStub]]:
    settings = {**SETTINGS, "azure-openai": {**SETTINGS["azure-openai"], "canary": str(canary)}}
    with EvalStubs(settings) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(stubs: dict[str, EvalStub], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    keys = tmp_path_factory.mktemp("keys") / "keys.yaml"
    everything = {"classes": ["*"], "backends": ["*"]}
    write_keys(keys, {DEMO_KEY: {"name": "ab-tester", **everything, "backendOverride": True},
                      NO_OVERRIDE_KEY: {"name": "plain", **everything, "backendOverride": False}})
    config = config_for(stubs)  # type: ignore[arg-type]
    config["auth"]["keysFile"] = str(keys)
    with example_gateway(config) as running:
        yield running


def compare(*args: str, key: str | None = DEMO_KEY, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYBRID_LLM_GATEWAY_KEY"}
    if key is not None:
        env["HYBRID_LLM_GATEWAY_KEY"] = key
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "compare.py"), *args], capture_output=True,
                          text=True, cwd=REPO_ROOT, env=env, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def report(gateway: RunningGateway, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    picture = tmp_path_factory.mktemp("plot") / "compare.png"
    done = compare("--gateway", gateway.url, "--backends", "vllm-customer,azure-openai", "--suite", "all",
                   "--limit", str(LIMIT), "--concurrency", "4", "--exec-timeout", "2", "--api-model", "gpt-4o-mini",
                   "--format", "json", "--plot", str(picture))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    document = json.loads(done.stdout)
    document["picture"] = picture
    return document


def test_pass_rates_match_the_stubs(report: dict[str, Any]) -> None:
    right, wrong = report["backends"]["vllm-customer"], report["backends"]["azure-openai"]
    assert right["pass_rate"] == 1.0 and right["code_problems"] == LIMIT
    assert wrong["pass_rate"] == 0.0 and wrong["code_problems"] == LIMIT
    # 8 problems, every 8th request of this backend fails: some problems are request errors.
    assert sum(wrong["code_outcomes"].values()) == LIMIT


def test_hostile_programs_are_contained(report: dict[str, Any], canary: Path) -> None:
    """The wrong stub's programs loop forever, write outside the sandbox and eat memory: each is
    stopped and counted failed, nothing escapes, and the run finishes."""
    outcomes = {s["id"]: s for s in report["samples"] if s["backend"] == "azure-openai" and s["suite"] == "humaneval"}
    kinds = {index: outcomes[f"HumanEval/{index}"] for index in range(LIMIT)}
    executed = {i: s for i, s in kinds.items() if s["outcome"] != "request_error"}
    loops = [s for i, s in executed.items() if i % 4 == 0]
    writes = [s for i, s in executed.items() if i % 4 == 1]
    hogs = [s for i, s in executed.items() if i % 4 == 2]
    assert loops and writes and hogs, "the request errors hit every hostile kind; change error_rate"
    assert all(s["outcome"] in ("cpu_limit", "timeout") for s in loops)
    assert all("PermissionError" in s["detail"] for s in writes)
    assert all("MemoryError" in s["detail"] for s in hogs)
    assert not canary.exists()
    assert all(not s["passed"] for s in outcomes.values())


def test_schema_conformance_matches_the_stubs(report: dict[str, Any]) -> None:
    tasks = schema_tasks()[:LIMIT]
    for backend in ("vllm-customer", "azure-openai"):
        row = report["backends"][backend]
        rate = SETTINGS[backend]["schema_ok_rate"]
        samples = {s["id"]: s for s in report["samples"] if s["backend"] == backend and s["suite"] == "schema"}
        expected = {t.id for i, t in enumerate(tasks) if right_at(i, rate) and not samples[t.id]["error"]}
        assert {t for t, s in samples.items() if s["schema_ok"]} == expected
        assert row["schema_ok_rate"] == len(expected) / LIMIT
    assert report["backends"]["vllm-customer"]["schema_ok_rate"] == 0.75  # no errors on this backend


def test_latency_matches_the_stub_delays(report: dict[str, Any]) -> None:
    for backend, settings in SETTINGS.items():
        row = report["backends"][backend]
        delay_ms = settings["delay"] * 1000
        assert delay_ms <= row["ttft_p50_ms"] <= delay_ms + TTFT_SLACK_MS, (backend, row["ttft_p50_ms"])
        assert row["ttft_p50_ms"] <= row["ttft_p95_ms"]
        expected_rate = 1 / settings["token_delay"]
        assert row["tokens_per_second_p50"] == pytest.approx(expected_rate, rel=RATE_TOLERANCE), backend


def test_errors_and_requests_are_counted(report: dict[str, Any], stubs: dict[str, EvalStub]) -> None:
    right, wrong = report["backends"]["vllm-customer"], report["backends"]["azure-openai"]
    assert right["requests"] == wrong["requests"] == 2 * LIMIT
    assert right["errors"] == 0
    # The probe was the azure stub's first request; the run's 16 follow, one in eight failing.
    assert wrong["errors"] == stubs["azure-openai"].failed == sum(right_at(i, 0.125) for i in range(1, 2 * LIMIT + 1))
    assert all(s["error"].startswith("HTTP 502") for s in report["samples"] if s["error"])


def test_every_request_was_pinned(report: dict[str, Any], stubs: dict[str, EvalStub]) -> None:
    """Schema tasks with response_format would go to the structured route (Azure) unless pinned:
    vllm-customer received its share of them."""
    for name in ("vllm-customer", "azure-openai"):
        seen = [r for r in stubs[name].seen if r.body.get("stream")]
        assert len(seen) == 2 * LIMIT + 1  # the run and the probe
        assert all(r.body.get("stream_options", {}).get("include_usage") for r in seen)
        assert all(r.body["temperature"] == 0 and r.body["max_completion_tokens"] > 0 for r in seen)
    formatted = [r for r in stubs["vllm-customer"].seen if r.body.get("response_format")]
    assert len(formatted) == sum(t.response_format for t in schema_tasks()[:LIMIT]) > 0
    assert stubs["vllm-batch"].seen == []


def test_cost_comes_from_the_figures(report: dict[str, Any]) -> None:
    api = report["backends"]["azure-openai"]
    price = cost_figures.api_models()["gpt-4o-mini"].prices["globalStandard"]
    assert api["cost_usd"] == pytest.approx((api["prompt_tokens"] * price.input_per_1m
                                             + api["completion_tokens"] * price.output_per_1m) / 1e6)
    node = cost_figures.node_prices("Standard_NC96ads_A100_v4").on_demand["eastus"]
    rate: NodeThroughput = cost_figures.node_throughput("Standard_NC96ads_A100_v4", "sustainable")
    vllm = report["backends"]["vllm-customer"]
    seconds = rate.seconds_per_request(vllm["prompt_tokens"], vllm["completion_tokens"])
    assert vllm["cost_usd"] == pytest.approx(seconds * node / 3600)
    assert vllm["usd_per_1m_tokens"] == pytest.approx(vllm["cost_usd"] / (vllm["prompt_tokens"]
                                                                        + vllm["completion_tokens"]) * 1e6)
    assert "gpt-4o-mini" in api["cost_basis"] and "Standard_NC96ads_A100_v4" in vllm["cost_basis"]


def test_the_picture_is_written(report: dict[str, Any]) -> None:
    data = Path(report["picture"]).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000


def test_the_table_leads_with_the_published_rows(gateway: RunningGateway) -> None:
    done = compare("--gateway", gateway.url, "--suite", "schema", "--limit", "2", "--backends", "vllm-customer")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("vllm-customer"))
    assert [line[:38].strip() for line in lines[start + 1:start + 5]] == [
        "Code correctness (HumanEval pass@1)", "First-token latency p50", "Streaming tokens/s p50",
        "Instruction following (schema-strict)"]
    assert "50.0% (1/2)" in lines[start + 4]  # 3 in 4 right: the first 2 hold 1
    assert done.stderr == ""  # no progress bar when stderr is not a terminal


BAD_INPUT = {
    "concurrency zero": (["--concurrency", "0"], "--concurrency is 0"),
    "limit not a number": (["--limit", "ten"], "--limit is 'ten', not a whole number"),
    "backend name": (["--backends", "vllm customer"], "--backends has 'vllm customer'"),
    "backend twice": (["--backends", "azure-openai,azure-openai"], "names a backend twice"),
    "gateway not http": (["--gateway", "ftp://example"], "--gateway is 'ftp://example', not an http(s) URL"),
    "suite": (["--suite", "math"], "argument --suite: invalid choice: 'math'"),
    "exec timeout": (["--exec-timeout", "nan"], "--exec-timeout is 'nan'"),
    "temperature": (["--temperature", "hot"], "--temperature is 'hot'"),
    "max tokens": (["--max-tokens", "1"], "--max-tokens is 1"),
    "plot into a folder": (["--plot", "docs"], "--plot docs is a directory"),
    "plot nowhere": (["--plot", "/nonexistent/x.png"], "--plot /nonexistent/x.png cannot be written"),
    "api model": (["--api-model", "gpt-9"], "--api-model names gpt-9, which data/figures.yaml has no prices for"),
    "api model twice": (["--api-model", "gpt-4o-mini", "--api-model", "gpt-5"], "--api-model is given more than once"),
    "live and gateway": (["--prometheus", "http://127.0.0.1:9"], "--gateway is for an evaluation run"),
    "route offline": (["--route", "customer"], "--route is for the live view"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(case: str) -> None:
    flags, message = BAD_INPUT[case]
    done = compare("--gateway", "http://127.0.0.1:9", *flags)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_no_key_is_refused() -> None:
    done = compare("--gateway", "http://127.0.0.1:9", key=None)
    assert done.returncode == 2 and "no gateway key: neither --key nor HYBRID_LLM_GATEWAY_KEY" in done.stderr


def test_an_unreachable_gateway_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = compare("--gateway", url, "--limit", "1")
    assert done.returncode == 2 and f"error: {url}: cannot reach the gateway" in done.stderr
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(("key", "backends", "message"), [
    ("sk-wrong", "vllm-customer", "the gateway refused the key (401)"),
    (NO_OVERRIDE_KEY, "vllm-customer", "HTTP 403 override_not_allowed"),
    (DEMO_KEY, "vllm-customer,vllm-nowhere", "--backends vllm-nowhere: the gateway refused it: HTTP 400 unknown_backend"),
])
def test_the_gateway_refusing_the_run_stops_it_before_it_starts(gateway: RunningGateway, key: str, backends: str,
                                                                 message: str) -> None:
    done = compare("--gateway", gateway.url, "--backends", backends, "--limit", "1", key=key)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""
