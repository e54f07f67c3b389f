"""Fallback and overflow: connect errors, timeouts before the first byte, 5xx, 429 with
retry-after, the circuit breaker, full in-flight limits, and no retry once bytes have gone out."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_harness import DEMO_KEY, RunningGateway, config_for, free_port, upstream_stubs
from hybridllm.stub_upstream import StubUpstream

CHAT = "/v1/chat/completions"
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
BODY = {"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def stubs() -> Iterator[dict[str, StubUpstream]]:
    with upstream_stubs() as started:
        yield started


@pytest.fixture(autouse=True)
def aoai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOAI_API_KEY", "aoai-test-key")


def gateway_for(stubs: dict[str, StubUpstream], **backend_tweaks: dict[str, Any]) -> RunningGateway:
    config = config_for(stubs)
    for name, tweaks in backend_tweaks.items():
        config["backends"][name.replace("_", "-")].update(tweaks)
    return RunningGateway(config)


def metric(gateway: RunningGateway, name: str, **labels: str) -> float:
    text = httpx.get(gateway.url + "/metrics").text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def post(gateway: RunningGateway, body: dict[str, Any] = BODY, **headers: str) -> httpx.Response:
    return httpx.post(gateway.url + CHAT, json=body, headers={**AUTH, **headers}, timeout=15)


def fallbacks(gateway: RunningGateway, reason: str, source: str = "vllm-customer", target: str = "azure-openai") -> float:
    return metric(gateway, "llm_gateway_fallbacks_total", **{"from": source, "to": target, "reason": reason})


def test_5xx_falls_back(stubs: dict[str, StubUpstream]) -> None:
    stubs["vllm-customer"].mode = "error503"
    with gateway_for(stubs) as gateway:
        response = post(gateway)
        assert response.status_code == 200
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert fallbacks(gateway, "status_5xx") == 1
        assert metric(gateway, "llm_gateway_requests_total", route="customer", backend="azure-openai", status="200") == 1


def test_connect_error_falls_back(stubs: dict[str, StubUpstream]) -> None:
    closed = free_port()
    with gateway_for(stubs, vllm_customer={"baseURL": f"http://127.0.0.1:{closed}/v1"}) as gateway:
        response = post(gateway)
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert fallbacks(gateway, "connect_error") == 1


def test_stream_timeout_before_first_byte_falls_back(stubs: dict[str, StubUpstream]) -> None:
    stubs["vllm-customer"].mode = "stall"
    with gateway_for(stubs, vllm_customer={"firstByteTimeoutSeconds": 0.3}) as gateway:
        started = time.monotonic()
        response = post(gateway, {**BODY, "stream": True})
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert time.monotonic() - started < 2
        assert fallbacks(gateway, "timeout") == 1


def test_slow_non_streaming_answer_is_not_cut_by_the_first_byte_timeout(stubs: dict[str, StubUpstream]) -> None:
    """vLLM sends a non-streaming answer's headers only when it has finished generating."""
    stubs["vllm-customer"].delay = 0.8
    with gateway_for(stubs, vllm_customer={"firstByteTimeoutSeconds": 0.3}) as gateway:
        assert post(gateway).headers["x-llm-backend"] == "vllm-customer"
        assert fallbacks(gateway, "timeout") == 0


def test_non_streaming_request_timeout_falls_back(stubs: dict[str, StubUpstream]) -> None:
    stubs["vllm-customer"].mode = "stall"
    with gateway_for(stubs, vllm_customer={"requestTimeoutSeconds": 0.5}) as gateway:
        started = time.monotonic()
        response = post(gateway)
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert time.monotonic() - started < 2.5
        assert fallbacks(gateway, "timeout") == 1


def test_stream_stalled_before_first_chunk_falls_back(stubs: dict[str, StubUpstream]) -> None:
    stubs["vllm-customer"].mode = "stall_body"
    with gateway_for(stubs, vllm_customer={"firstByteTimeoutSeconds": 0.3}) as gateway:
        response = post(gateway, {**BODY, "stream": True})
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert response.text.rstrip().endswith("data: [DONE]")
        assert fallbacks(gateway, "timeout") == 1


def test_429_moves_to_the_next_backend(stubs: dict[str, StubUpstream]) -> None:
    stubs["vllm-customer"].mode = "rate_limit"
    with gateway_for(stubs) as gateway:
        assert post(gateway).headers["x-llm-backend"] == "azure-openai"
        assert fallbacks(gateway, "rate_limited") == 1


def test_429_on_the_last_backend_honours_retry_after_ms(stubs: dict[str, StubUpstream]) -> None:
    azure = stubs["azure-openai"]
    azure.mode, azure.mode_count, azure.retry_after_ms = "rate_limit", 1, 300
    with gateway_for(stubs) as gateway:
        started = time.monotonic()
        response = post(gateway, {**BODY, "model": "gpt-4o-mini"})
        assert response.status_code == 200
        assert time.monotonic() - started >= 0.3
        assert len(azure.seen) == 2


def test_429_with_a_long_retry_after_goes_back_to_the_client(stubs: dict[str, StubUpstream]) -> None:
    azure = stubs["azure-openai"]
    azure.mode, azure.retry_after_ms = "rate_limit", 7000
    with gateway_for(stubs) as gateway:
        response = post(gateway, {**BODY, "model": "gpt-4o-mini"})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "7"
        assert response.json()["error"]["code"] == "rate_limited"
        assert len(azure.seen) == 1


def test_circuit_opens_then_half_open_probe_closes_it(stubs: dict[str, StubUpstream]) -> None:
    customer = stubs["vllm-customer"]
    customer.mode = "error500"
    with gateway_for(stubs, vllm_customer={"circuit": {"failureThreshold": 2, "openSeconds": 0.5}}) as gateway:
        for _ in range(2):
            assert post(gateway).headers["x-llm-backend"] == "azure-openai"
        assert metric(gateway, "llm_gateway_circuit_state", backend="vllm-customer") == 1
        calls = len(customer.seen)
        assert post(gateway).headers["x-llm-backend"] == "azure-openai"
        assert len(customer.seen) == calls, "an open circuit must not send traffic"
        assert fallbacks(gateway, "circuit_open") == 1
        customer.mode = "ok"
        time.sleep(0.6)
        assert post(gateway).headers["x-llm-backend"] == "vllm-customer"
        assert metric(gateway, "llm_gateway_circuit_state", backend="vllm-customer") == 0


def test_half_open_probe_failure_reopens(stubs: dict[str, StubUpstream]) -> None:
    stubs["vllm-customer"].mode = "error500"
    with gateway_for(stubs, vllm_customer={"circuit": {"failureThreshold": 1, "openSeconds": 0.3}}) as gateway:
        post(gateway)
        time.sleep(0.35)
        post(gateway)  # the probe fails
        assert metric(gateway, "llm_gateway_circuit_state", backend="vllm-customer") == 1


def test_full_in_flight_limit_overflows(stubs: dict[str, StubUpstream]) -> None:
    stubs["vllm-customer"].token_delay = 0.15
    with gateway_for(stubs, vllm_customer={"maxInFlight": 1}) as gateway:
        holder = threading.Thread(target=post, args=(gateway, {**BODY, "stream": True}))
        holder.start()
        deadline = time.monotonic() + 5
        while metric(gateway, "llm_gateway_in_flight_requests", backend="vllm-customer") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        response = post(gateway)
        holder.join()
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert fallbacks(gateway, "overflow") == 1
        assert metric(gateway, "llm_gateway_in_flight_requests", backend="vllm-customer") == 0


def test_every_backend_full_is_503_with_retry_after(stubs: dict[str, StubUpstream]) -> None:
    stubs["azure-openai"].token_delay = 0.15
    with gateway_for(stubs, azure_openai={"maxInFlight": 1}) as gateway:
        holder = threading.Thread(target=post, args=(gateway, {**BODY, "model": "gpt-4o-mini", "stream": True}))
        holder.start()
        while metric(gateway, "llm_gateway_in_flight_requests", backend="azure-openai") < 1:
            time.sleep(0.02)
        response = post(gateway, {**BODY, "model": "gpt-4o-mini"})
        holder.join()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "overloaded"


def test_every_backend_failing_is_502_naming_each_attempt(stubs: dict[str, StubUpstream]) -> None:
    stubs["vllm-customer"].mode = "error500"
    stubs["azure-openai"].mode = "error503"
    with gateway_for(stubs) as gateway:
        response = post(gateway)
        assert response.status_code == 502
        assert response.headers["x-llm-backend"] == "none"
        message = response.json()["error"]["message"]
        assert "vllm-customer:status_5xx" in message and "azure-openai:status_5xx" in message


def test_no_retry_after_the_first_byte(stubs: dict[str, StubUpstream]) -> None:
    stubs["vllm-customer"].mode = "cut"
    with gateway_for(stubs) as gateway:
        response = post(gateway, {**BODY, "stream": True})
        assert response.status_code == 200
        assert response.headers["x-llm-backend"] == "vllm-customer"
        events = [line for line in response.text.splitlines() if line.startswith("data: ")]
        assert '"content":"Hello"' in events[0] and '"content":" from"' in events[1]
        assert '"error"' in events[-1], "a cut stream must end with an error event"
        assert "[DONE]" not in response.text
        assert stubs["azure-openai"].seen == []
        failed = sum(metric(gateway, "llm_gateway_requests_total", backend="vllm-customer", status=s)
                     for s in ("stream_error", "stream_truncated"))
        assert failed == 1


def test_batch_queue_waits_for_the_path_to_come_back(stubs: dict[str, StubUpstream]) -> None:
    port = free_port()
    config_batch = {"baseURL": f"http://127.0.0.1:{port}/v1"}
    config = config_for(stubs)
    config["backends"]["vllm-batch"].update(config_batch)
    config["routes"]["batch"].update(queueSeconds=5, fallbacks=["azure-openai"])
    late = StubUpstream(port=port)
    timer = threading.Timer(1.0, late.start)
    with RunningGateway(config) as gateway:
        timer.start()
        started = time.monotonic()
        response = post(gateway, **{"x-llm-class": "batch"})
        elapsed = time.monotonic() - started
        timer.join()
        late.stop()
        assert response.headers["x-llm-backend"] == "vllm-batch", "the queue should have waited for the batch path"
        assert 0.9 <= elapsed < 5
        assert fallbacks(gateway, "connect_error", "vllm-batch", "azure-openai") == 0


def test_batch_queue_is_bounded_then_spills(stubs: dict[str, StubUpstream]) -> None:
    config = config_for(stubs)
    config["backends"]["vllm-batch"]["baseURL"] = f"http://127.0.0.1:{free_port()}/v1"
    config["routes"]["batch"].update(queueSeconds=1, fallbacks=["azure-openai"])
    with RunningGateway(config) as gateway:
        started = time.monotonic()
        response = post(gateway, **{"x-llm-class": "batch"})
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert 1.0 <= time.monotonic() - started < 3
