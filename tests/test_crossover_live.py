"""Live mode end to end: a real Prometheus (Debian's package) scrapes a real gateway that served
real traffic from stub upstreams; crossover.py reads the counters back over the HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import Iterator

import httpx
import pytest
import yaml

from gateway_harness import DEMO_KEY, RunningGateway, config_for, example_gateway, free_port, upstream_stubs
from hybridllm.layout import REPO_ROOT
from hybridllm.stub_upstream import StubUpstream

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, StubUpstream]]:
    with upstream_stubs() as started:
        yield started


@pytest.fixture(scope="module")
def gateway(stubs: dict[str, StubUpstream]) -> Iterator[RunningGateway]:
    with example_gateway(config_for(stubs)) as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(gateway: RunningGateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Debian's prometheus package is needed: `make test` installs it (apt-get install prometheus)")
    folder = tmp_path_factory.mktemp("prometheus")
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "gateway", "static_configs": [{"targets": [f"127.0.0.1:{gateway.port}"]}]}]}
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen([binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "prometheus did not start"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def samples(url: str, promql: str) -> list:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}") as response:
        return json.load(response)["data"]["result"]


def wait_for_baseline(url: str) -> None:
    """Two scrapes of the zero counters: increase() needs a baseline before the traffic."""
    deadline = time.monotonic() + 30
    query = 'count_over_time(llm_gateway_tokens_total{kind="completion",backend="vllm-customer"}[1m])'
    while time.monotonic() < deadline:
        result = samples(url, query)
        if result and float(result[0]["value"][1]) >= 2:
            return
        time.sleep(0.3)
    raise AssertionError("prometheus never scraped the gateway")


def wait_for_scrape(url: str, expected_completion: float) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/v1/query?query=sum(llm_gateway_tokens_total%7Bkind%3D%22completion%22%7D)") as r:
            result = json.load(r)["data"]["result"]
        if result and float(result[0]["value"][1]) >= expected_completion:
            return
        time.sleep(0.3)
    raise AssertionError("prometheus never saw the traffic")


def test_live_mode_reports_what_the_gateway_served(gateway: RunningGateway, prometheus: str) -> None:
    wait_for_baseline(prometheus)
    body = {"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(30):
        assert httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=AUTH).status_code == 200
    for _ in range(10):
        httpx.post(gateway.url + "/v1/chat/completions", json=body, headers={**AUTH, "x-llm-class": "batch"})
    for _ in range(20):
        httpx.post(gateway.url + "/v1/chat/completions", json={**body, "model": "gpt-4o-mini"}, headers=AUTH)
    wait_for_scrape(prometheus, 60 * 5)
    time.sleep(2)

    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "crossover.py"), "--prometheus", prometheus,
                           "--window", "2m", "--nodes", "customer=1,batch=1:spot", "--api-model", "gpt-4o-mini",
                           "--format", "json", "--as-of", "2026-09-01"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {row["backend"]: row for row in report["backends"]}
    # Each stub answer is 11 prompt + 5 completion tokens: 30, 10 and 20 requests.
    shares = {name: rows[name]["share"] for name in ("vllm-customer", "vllm-batch", "azure-openai")}
    assert shares == pytest.approx({"vllm-customer": 0.5, "vllm-batch": 10 / 60, "azure-openai": 20 / 60}, abs=0.01)
    # increase() extrapolates to the window edges, so absolute counts are close, not exact.
    assert rows["azure-openai"]["tokens"] == pytest.approx(20 * 16, rel=0.25)
    assert report["tokensPerDay"] == pytest.approx(60 * 16 * 86400 / 120, rel=0.25)
    # Azure's cost per 1M comes from the gateway's cost counter: (11 x 0.15 + 5 x 0.60) / 16 per token.
    assert rows["azure-openai"]["usdPer1M"] == pytest.approx((11 * 0.15 + 5 * 0.60) / 16, rel=0.02)
    assert report["apiAlternative"] == {"model": "gpt-4o-mini", "usdPer1M": pytest.approx((11 * 0.15 + 5 * 0.60) / 16),
                                        "retired": None}  # gpt-4o-mini retires on 2026-10-01
    # A self-hosted path costs its nodes over the window, whatever it served.
    assert rows["vllm-customer"]["nodeCostUSD"] == pytest.approx(14.692 * 120 / 3600)
    assert rows["vllm-batch"]["nodeCostUSD"] == pytest.approx(1.78 * 1.15 * 120 / 3600)
    assert rows["vllm-customer"]["utilisation"] < 0.01
    assert rows["vllm-customer"]["usdPer1M"] > 100 * report["apiAlternative"]["usdPer1M"]
    # The same comparison after Microsoft's retirement date says so.
    later = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "crossover.py"), "--prometheus", prometheus,
                            "--window", "2m", "--api-model", "gpt-4o-mini", "--as-of", "2026-11-27"],
                           capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False)
    assert later.returncode == 0, later.stderr
    assert "API alternative: gpt-4o-mini (retired on 2026-10-01" in later.stdout


def test_live_mode_errors(prometheus: str) -> None:
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "crossover.py"), "--prometheus", prometheus,
                           "--window", "ten minutes"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=False)
    assert done.returncode == 2 and "'ten minutes' is not a Prometheus duration" in done.stderr
    closed = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "crossover.py"), "--prometheus",
                             f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=60, check=False)
    assert closed.returncode == 2 and "cannot query Prometheus" in closed.stderr and "Traceback" not in closed.stderr
