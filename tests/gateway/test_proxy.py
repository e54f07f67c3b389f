"""gateway/proxy.py end to end: what the gateway does with each upstream outcome (connect error,
timeout, 5xx, 429, upstream auth, not found, client error, malformed, too large), fallback and
overflow, the circuit breaker, and no retry once bytes have gone out. Real gateway, real
fault-injecting upstreams on 127.0.0.1, the real `openai` client where a client is involved."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import openai
import pytest

from gateway_harness import (DEMO_KEY, FaultyUpstream, RunningGateway, config_for, example_gateway, free_port,
                             sse_data, unanswered_port, upstream_stubs, with_fault)

BODY = {"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**BODY, "stream": True}
AZURE_ONLY = {**BODY, "model": "gpt-4o-mini"}


@pytest.fixture(autouse=True)
def aoai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOAI_API_KEY", "aoai-test-key")


@pytest.fixture
def stubs() -> Iterator[dict[str, FaultyUpstream]]:
    with upstream_stubs() as started:
        yield started


def gateway_for(stubs: dict[str, FaultyUpstream], **backend_tweaks: dict[str, Any]) -> RunningGateway:
    config = config_for(stubs)
    for name, tweaks in backend_tweaks.items():
        config["backends"][name.replace("_", "-")].update(tweaks)
    return RunningGateway(config)


@pytest.fixture(scope="module")
def shared_stubs() -> Iterator[dict[str, FaultyUpstream]]:
    with upstream_stubs() as started:
        yield started


@pytest.fixture(scope="module")
def shared(shared_stubs: dict[str, FaultyUpstream]) -> Iterator[RunningGateway]:
    """One gateway for the tests whose faults are chosen per request (circuits never open:
    the threshold is out of reach)."""
    config = config_for(shared_stubs)
    for backend in config["backends"].values():
        backend["circuit"] = {"failureThreshold": 1000, "openSeconds": 1}
    with example_gateway(config) as running:
        yield running


@pytest.fixture(scope="module")
def client(shared: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=shared.url + "/v1", api_key=DEMO_KEY, max_retries=0)


# ---- fallback on connect errors, timeouts, 5xx and 429 ------------------------------------------


def test_5xx_falls_back(stubs: dict[str, FaultyUpstream]) -> None:
    stubs["vllm-customer"].fault = {"status": 503}
    with gateway_for(stubs) as gateway:
        response = gateway.post(BODY)
        assert response.status_code == 200
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert gateway.fallbacks("status_5xx") == 1
        assert gateway.metric("llm_gateway_requests_total", route="customer", backend="azure-openai", status="200") == 1


def test_connect_error_falls_back(stubs: dict[str, FaultyUpstream]) -> None:
    closed = free_port()
    with gateway_for(stubs, vllm_customer={"baseURL": f"http://127.0.0.1:{closed}/v1"}) as gateway:
        response = gateway.post(BODY)
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert gateway.fallbacks("connect_error") == 1


def test_connection_dropped_before_the_answer_falls_back(shared: RunningGateway) -> None:
    response = shared.post(with_fault(BODY, vllm_customer={"drop": True}))
    assert response.status_code == 200 and response.headers["x-llm-backend"] == "azure-openai"


def test_429_moves_to_the_next_backend(stubs: dict[str, FaultyUpstream]) -> None:
    stubs["vllm-customer"].fault = {"status": 429, "headers": {"retry-after-ms": "50"}}
    with gateway_for(stubs) as gateway:
        assert gateway.post(BODY).headers["x-llm-backend"] == "azure-openai"
        assert gateway.fallbacks("rate_limited") == 1


def test_429_on_the_last_backend_honours_retry_after_ms(stubs: dict[str, FaultyUpstream]) -> None:
    azure = stubs["azure-openai"]
    azure.fault, azure.fault_count = {"status": 429, "headers": {"retry-after-ms": "300"}}, 1
    with gateway_for(stubs) as gateway:
        started = time.monotonic()
        response = gateway.post(AZURE_ONLY)
        assert response.status_code == 200
        assert time.monotonic() - started >= 0.3
        assert len(azure.seen) == 2


def test_429_with_a_long_retry_after_goes_back_to_the_client(shared: RunningGateway,
                                                             shared_stubs: dict[str, FaultyUpstream]) -> None:
    calls = len(shared_stubs["azure-openai"].seen)
    response = shared.post(with_fault(AZURE_ONLY, azure_openai={"status": 429, "headers": {"retry-after-ms": "7000"}}))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "rate_limited"
    assert len(shared_stubs["azure-openai"].seen) == calls + 1


@pytest.mark.parametrize("headers", [
    {"retry-after-ms": "nan"}, {"retry-after-ms": "inf"}, {"retry-after": "inf"}, {"retry-after": "nan"},
    {"retry-after": "-5"}, {"retry-after-ms": "1e400"}, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},
])
def test_odd_retry_after_values_are_ignored_not_a_500(shared: RunningGateway, headers: dict[str, str]) -> None:
    """Defect 6: `retry-after-ms: nan` or `retry-after: inf` gave a 500."""
    response = shared.post(with_fault(AZURE_ONLY, azure_openai={"status": 429, "headers": headers}))
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response.headers.get("retry-after", "1")) >= 1


# ---- timeouts mean what the config says ---------------------------------------------------------


@pytest.mark.parametrize("body", [BODY, STREAM])
def test_connect_timeout_falls_back(stubs: dict[str, FaultyUpstream], body: dict[str, Any]) -> None:
    with unanswered_port() as port:
        tweaks = {"baseURL": f"http://127.0.0.1:{port}/v1", "connectTimeoutSeconds": 0.3}
        with gateway_for(stubs, vllm_customer=tweaks) as gateway:
            started = time.monotonic()
            response = gateway.post(body)
            assert response.headers["x-llm-backend"] == "azure-openai"
            assert time.monotonic() - started < 1.5
            assert gateway.fallbacks("timeout") == 1


def test_stream_timeout_before_first_byte_falls_back(stubs: dict[str, FaultyUpstream]) -> None:
    stubs["vllm-customer"].fault = {"delay": 5}
    with gateway_for(stubs, vllm_customer={"firstByteTimeoutSeconds": 0.3}) as gateway:
        started = time.monotonic()
        response = gateway.post(STREAM)
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert time.monotonic() - started < 2
        assert gateway.fallbacks("timeout") == 1


def test_stream_stalled_after_headers_before_first_chunk_falls_back(stubs: dict[str, FaultyUpstream]) -> None:
    stubs["vllm-customer"].fault = {"first_chunk_delay": 5}
    with gateway_for(stubs, vllm_customer={"firstByteTimeoutSeconds": 0.3}) as gateway:
        started = time.monotonic()
        response = gateway.post(STREAM)
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert response.text.rstrip().endswith("data: [DONE]")
        assert gateway.fallbacks("timeout") == 1
        # One first-byte budget from sending to the first chunk, not one per stage.
        assert time.monotonic() - started < 1.5


def test_slow_non_streaming_answer_is_not_cut_by_the_first_byte_timeout(stubs: dict[str, FaultyUpstream]) -> None:
    """vLLM sends a non-streaming answer's headers only when it has finished generating."""
    stubs["vllm-customer"].delay = 0.8
    with gateway_for(stubs, vllm_customer={"firstByteTimeoutSeconds": 0.3}) as gateway:
        assert gateway.post(BODY).headers["x-llm-backend"] == "vllm-customer"
        assert gateway.fallbacks("timeout") == 0


def test_slow_non_streaming_answer_is_not_cut_by_the_stream_idle_timeout(stubs: dict[str, FaultyUpstream]) -> None:
    """Defect 2: aiohttp's sock_read (streamIdleTimeoutSeconds) also covered the wait for a
    non-streaming answer, so an answer due after it was dropped and generated again elsewhere."""
    stubs["vllm-customer"].delay = 0.8
    with gateway_for(stubs, vllm_customer={"streamIdleTimeoutSeconds": 0.3, "requestTimeoutSeconds": 5}) as gateway:
        response = gateway.post(BODY)
        assert response.headers["x-llm-backend"] == "vllm-customer"
        assert gateway.fallbacks("timeout") == 0
        assert gateway.metric("llm_gateway_circuit_state", backend="vllm-customer") == 0


def test_stream_first_byte_is_bound_by_its_own_timeout_not_the_idle_one(stubs: dict[str, FaultyUpstream]) -> None:
    """Defect 2: the batch path's 120 s first-byte timeout acted as the 60 s idle timeout."""
    stubs["vllm-customer"].fault = {"first_chunk_delay": 0.8}
    tweaks = {"firstByteTimeoutSeconds": 3, "streamIdleTimeoutSeconds": 0.3}
    with gateway_for(stubs, vllm_customer=tweaks) as gateway:
        response = gateway.post(STREAM)
        assert response.headers["x-llm-backend"] == "vllm-customer"
        assert sse_data(response.text)[-1] == "[DONE]"
        assert gateway.fallbacks("timeout") == 0


def test_stream_idle_timeout_ends_a_silent_stream_with_an_error_event(stubs: dict[str, FaultyUpstream]) -> None:
    stubs["vllm-customer"].fault = {"gap": 5, "gap_before": 3}
    with gateway_for(stubs, vllm_customer={"streamIdleTimeoutSeconds": 0.4}) as gateway:
        started = time.monotonic()
        response = gateway.post(STREAM)
        events = sse_data(response.text)
        assert time.monotonic() - started < 3
        assert [e["choices"][0]["delta"]["content"] for e in events[:-1]] == ["Hello", " from", " the"]
        assert events[-1]["error"]["code"] == "stream_idle_timeout"
        assert gateway.metric("llm_gateway_requests_total", backend="vllm-customer", status="stream_timeout") == 1


def test_non_streaming_request_timeout_falls_back(stubs: dict[str, FaultyUpstream]) -> None:
    stubs["vllm-customer"].fault = {"delay": 5}
    with gateway_for(stubs, vllm_customer={"requestTimeoutSeconds": 0.5}) as gateway:
        started = time.monotonic()
        response = gateway.post(BODY)
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert time.monotonic() - started < 2.5
        assert gateway.fallbacks("timeout") == 1


def test_non_streaming_request_timeout_covers_a_slow_body(stubs: dict[str, FaultyUpstream]) -> None:
    stubs["vllm-customer"].fault = {"body_delay": 5}
    with gateway_for(stubs, vllm_customer={"requestTimeoutSeconds": 0.5}) as gateway:
        started = time.monotonic()
        response = gateway.post(BODY)
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert time.monotonic() - started < 2.5
        assert gateway.fallbacks("timeout") == 1


# ---- upstream auth, not found, client errors ------------------------------------------------------


@pytest.mark.parametrize("status,reason", [(401, "upstream_auth"), (403, "upstream_auth"), (404, "not_found")])
def test_upstream_auth_and_not_found_are_backend_failures(stubs: dict[str, FaultyUpstream], status: int,
                                                          reason: str) -> None:
    """Defect 4: a rotated key or a deleted deployment reached callers as their own fault."""
    stubs["vllm-customer"].fault = {"status": status}
    with gateway_for(stubs, vllm_customer={"circuit": {"failureThreshold": 2, "openSeconds": 30}}) as gateway:
        for _ in range(2):
            response = gateway.post(BODY)
            assert response.status_code == 200
            assert response.headers["x-llm-backend"] == "azure-openai"
        assert gateway.fallbacks(reason) == 2
        assert gateway.metric("llm_gateway_circuit_state", backend="vllm-customer") == 1


@pytest.mark.parametrize("status,reason,words", [
    (401, "upstream_auth", "rejected the gateway's credentials"),
    (403, "upstream_auth", "rejected the gateway's credentials"),
    (404, "not_found", "does not have"),
])
def test_upstream_auth_failure_with_no_fallback_is_a_clear_502(client: openai.OpenAI, status: int, reason: str,
                                                              words: str) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=BODY["messages"],
                                       extra_body={"fault": {"azure-openai": {"status": status}}})
    assert raised.value.status_code == 502
    error = raised.value.body
    assert error["code"] == "upstream_unavailable"
    assert f"azure-openai:{reason} (HTTP {status})" in error["message"] and words in error["message"]
    assert "upstream says" not in error["message"], "the upstream's own text is not the client's business"


@pytest.mark.parametrize("status", [400, 422])
def test_client_errors_pass_through_without_fallback(shared: RunningGateway,
                                                    shared_stubs: dict[str, FaultyUpstream], status: int) -> None:
    calls = len(shared_stubs["azure-openai"].seen)
    response = shared.post(with_fault(BODY, vllm_customer={"status": status}))
    assert response.status_code == status
    assert response.headers["x-llm-backend"] == "vllm-customer"
    assert response.json()["error"]["message"] == f"upstream says {status}"
    assert len(shared_stubs["azure-openai"].seen) == calls


# ---- malformed answers -------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"body": "{not json"},
    {"body": ""},
    {"body": "[1, 2]"},
    {"body": '{"object": "chat.completion"}'},
    {"body": "<html>gateway error</html>", "content_type": "text/html"},
])
def test_a_200_that_is_no_answer_falls_back(shared: RunningGateway, fault: dict[str, Any]) -> None:
    """Defect 6: a 200 with invalid JSON or an empty body was passed on as success."""
    before = shared.fallbacks("malformed")
    response = shared.post(with_fault(BODY, vllm_customer=fault))
    assert response.status_code == 200
    assert response.headers["x-llm-backend"] == "azure-openai"
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the stub."
    assert shared.fallbacks("malformed") == before + 1


def test_a_malformed_answer_with_no_fallback_is_a_502(shared: RunningGateway) -> None:
    response = shared.post(with_fault(AZURE_ONLY, azure_openai={"body": ""}))
    assert response.status_code == 502
    assert "azure-openai:malformed" in response.json()["error"]["message"]


def test_a_stream_answered_with_json_falls_back(shared: RunningGateway) -> None:
    fault = {"body": '{"error": {"message": "nope"}}', "content_type": "application/json"}
    response = shared.post(with_fault(STREAM, vllm_customer=fault))
    assert response.headers["x-llm-backend"] == "azure-openai"
    assert sse_data(response.text)[-1] == "[DONE]"


@pytest.mark.parametrize("usage,prompt,cached,completion", [
    ({"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 50}}, 0, 10, 5),
    ({"prompt_tokens": "10", "completion_tokens": "5"}, 0, 0, 0),
    ({"prompt_tokens": 10.0, "completion_tokens": 5.5, "prompt_tokens_details": {"cached_tokens": 2.0}}, 8, 2, 0),
    ({"prompt_tokens": -3, "completion_tokens": 4, "prompt_tokens_details": "lots"}, 0, 0, 4),
    ({"prompt_tokens": True, "completion_tokens": 2 ** 62}, 0, 0, 0),
    ("all of them", 0, 0, 0),
])
@pytest.mark.parametrize("stream", [False, True])
def test_odd_usage_is_counted_safely(stubs: dict[str, FaultyUpstream], usage: Any, prompt: int, cached: int,
                                     completion: int, stream: bool) -> None:
    """Defect 6: usage with cached > prompt tokens, strings or floats gave a 500, or an aborted
    stream after [DONE]. The answer still goes through whole; tokens are counted where they can be."""
    stubs["vllm-customer"].fault = {"usage": usage}
    with gateway_for(stubs) as gateway:
        response = gateway.post(STREAM if stream else BODY)
        assert response.status_code == 200
        if stream:
            events = sse_data(response.text)
            assert events[-1] == "[DONE]" and not any("error" in e for e in events if isinstance(e, dict))
        else:
            assert response.json()["usage"] == usage
        assert gateway.metric("llm_gateway_requests_total", backend="vllm-customer", status="200") == 1
        tokens = {kind: gateway.metric("llm_gateway_tokens_total", backend="vllm-customer", kind=kind)
                  for kind in ("prompt", "cached_prompt", "completion")}
        assert tokens == {"prompt": prompt, "cached_prompt": cached, "completion": completion}


def test_done_without_the_space_is_a_finished_stream(stubs: dict[str, FaultyUpstream]) -> None:
    """Defect 6: `data:[DONE]` (valid SSE) got an error event appended and counted as a circuit
    failure, so five good streams opened the circuit."""
    stubs["vllm-customer"].fault = {"done": "data:[DONE]"}
    with gateway_for(stubs) as gateway:
        for _ in range(6):
            response = gateway.post(STREAM)
            assert response.headers["x-llm-backend"] == "vllm-customer"
            assert "error" not in response.text
            assert response.text.rstrip().endswith("data:[DONE]")
        assert gateway.metric("llm_gateway_circuit_state", backend="vllm-customer") == 0
        assert gateway.metric("llm_gateway_requests_total", backend="vllm-customer", status="200") == 6


# ---- compression ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_answers_reach_the_client_decoded(shared: RunningGateway, client: openai.OpenAI,
                                                    shared_stubs: dict[str, FaultyUpstream], encoding: str) -> None:
    """Defect 3: a compressing upstream's gzip bytes went out as application/json, 0 tokens counted."""
    before = shared.metric("llm_gateway_tokens_total", backend="azure-openai", kind="completion")
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=BODY["messages"], extra_body={"fault": {"azure-openai": {"encoding": encoding}}})
    assert "content-encoding" not in raw.headers
    assert raw.parse().choices[0].message.content == "Hello from the stub."
    assert shared.metric("llm_gateway_tokens_total", backend="azure-openai", kind="completion") == before + 5
    # The gateway asks for an uncompressed answer in the first place.
    assert shared_stubs["azure-openai"].seen[-1].headers.get("accept-encoding") == "identity"


def test_compressed_stream_reaches_the_client_decoded(client: openai.OpenAI, shared: RunningGateway) -> None:
    before = shared.metric("llm_gateway_tokens_total", backend="azure-openai", kind="completion")
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=BODY["messages"], stream=True,
                                            extra_body={"fault": {"azure-openai": {"encoding": "gzip"}}})
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello from the stub."
    assert shared.metric("llm_gateway_tokens_total", backend="azure-openai", kind="completion") == before + 5


# ---- sizes ---------------------------------------------------------------------------------------------


def test_oversized_upstream_answer_is_refused_not_buffered(shared: RunningGateway) -> None:
    """Defect 7: a 50 MB upstream body was read whole. Over server.maxUpstreamBodyBytes (16 MiB by
    default) the client gets a clear 502 and nothing is retried: another backend would answer as big."""
    response = shared.post(with_fault(BODY, vllm_customer={"pad_bytes": 17 * 1024 * 1024}), timeout=30)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_response_too_large"
    assert "16777216 bytes" in error["message"] and "server.maxUpstreamBodyBytes" in error["message"]
    assert response.headers["x-llm-backend"] == "vllm-customer"


def test_oversized_upstream_answer_without_length_is_cut(shared: RunningGateway) -> None:
    fault = {"pad_bytes": 17 * 1024 * 1024, "encoding": "gzip"}  # compressed: the length says nothing
    response = shared.post(with_fault(BODY, vllm_customer=fault), timeout=30)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_response_too_large"


def test_oversized_stream_event_ends_the_stream(shared: RunningGateway) -> None:
    response = shared.post(with_fault(STREAM, vllm_customer={"pad_bytes": 17 * 1024 * 1024}), timeout=30)
    events = sse_data(response.text)
    assert events[-1]["error"]["code"] == "upstream_event_too_large"


# ---- circuit breaker and overflow ----------------------------------------------------------------------


def test_circuit_opens_then_half_open_probe_closes_it(stubs: dict[str, FaultyUpstream]) -> None:
    customer = stubs["vllm-customer"]
    customer.fault = {"status": 500}
    with gateway_for(stubs, vllm_customer={"circuit": {"failureThreshold": 2, "openSeconds": 1.5}}) as gateway:
        for _ in range(2):
            assert gateway.post(BODY).headers["x-llm-backend"] == "azure-openai"
        assert gateway.metric("llm_gateway_circuit_state", backend="vllm-customer") == 1
        calls = len(customer.seen)
        assert gateway.post(BODY).headers["x-llm-backend"] == "azure-openai"
        assert len(customer.seen) == calls, "an open circuit must not send traffic"
        assert gateway.fallbacks("circuit_open") == 1
        customer.fault = None
        time.sleep(1.6)
        assert gateway.post(BODY).headers["x-llm-backend"] == "vllm-customer"
        assert gateway.metric("llm_gateway_circuit_state", backend="vllm-customer") == 0


def test_half_open_probe_failure_reopens(stubs: dict[str, FaultyUpstream]) -> None:
    stubs["vllm-customer"].fault = {"status": 500}
    with gateway_for(stubs, vllm_customer={"circuit": {"failureThreshold": 1, "openSeconds": 1.0}}) as gateway:
        gateway.post(BODY)
        time.sleep(1.05)
        gateway.post(BODY)  # the probe fails
        assert gateway.metric("llm_gateway_circuit_state", backend="vllm-customer") == 1


def test_circuit_gauge_turns_half_open_without_traffic(stubs: dict[str, FaultyUpstream]) -> None:
    """Defect 10: the gauge kept showing open after openSeconds until the next request."""
    stubs["vllm-customer"].fault = {"status": 500}
    with gateway_for(stubs, vllm_customer={"circuit": {"failureThreshold": 1, "openSeconds": 1.0}}) as gateway:
        gateway.post(BODY)
        assert gateway.metric("llm_gateway_circuit_state", backend="vllm-customer") == 1
        time.sleep(1.1)
        assert gateway.metric("llm_gateway_circuit_state", backend="vllm-customer") == 2


def test_full_in_flight_limit_overflows(stubs: dict[str, FaultyUpstream]) -> None:
    stubs["vllm-customer"].token_delay = 0.15
    with gateway_for(stubs, vllm_customer={"maxInFlight": 1}) as gateway:
        holder = threading.Thread(target=gateway.post, args=(STREAM,))
        holder.start()
        deadline = time.monotonic() + 5
        while gateway.metric("llm_gateway_in_flight_requests", backend="vllm-customer") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        response = gateway.post(BODY)
        holder.join()
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert gateway.fallbacks("overflow") == 1
        assert gateway.metric("llm_gateway_in_flight_requests", backend="vllm-customer") == 0


def test_every_backend_full_is_503_with_retry_after(stubs: dict[str, FaultyUpstream]) -> None:
    stubs["azure-openai"].token_delay = 0.15
    with gateway_for(stubs, azure_openai={"maxInFlight": 1}) as gateway:
        holder = threading.Thread(target=gateway.post, args=({**AZURE_ONLY, "stream": True},))
        holder.start()
        while gateway.metric("llm_gateway_in_flight_requests", backend="azure-openai") < 1:
            time.sleep(0.02)
        response = gateway.post(AZURE_ONLY)
        holder.join()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "overloaded"


def test_every_backend_failing_is_502_naming_each_attempt(shared: RunningGateway) -> None:
    response = shared.post(with_fault(BODY, vllm_customer={"status": 500}, azure_openai={"status": 503}))
    assert response.status_code == 502
    assert response.headers["x-llm-backend"] == "none"
    message = response.json()["error"]["message"]
    assert "vllm-customer:status_5xx (HTTP 500)" in message and "azure-openai:status_5xx (HTTP 503)" in message


def test_no_slot_is_left_behind_after_any_outcome(shared: RunningGateway) -> None:
    """Every attempt gives back its in-flight slot, whatever happened to it."""
    faults = [{"status": 500}, {"status": 401}, {"status": 404}, {"status": 400}, {"status": 429}, {"drop": True},
              {"body": ""}, {"cut_after": 2}, {"done": "data:[DONE]"}, {"usage": "odd"}, {"encoding": "gzip"}]
    for fault in faults:
        shared.post(with_fault(BODY, vllm_customer=fault, azure_openai=fault))
        shared.post(with_fault(STREAM, vllm_customer=fault, azure_openai=fault))
    for backend in ("vllm-customer", "azure-openai"):
        assert shared.metric("llm_gateway_in_flight_requests", backend=backend) == 0


def test_no_retry_after_the_first_byte(stubs: dict[str, FaultyUpstream]) -> None:
    stubs["vllm-customer"].fault = {"cut_after": 2}
    with gateway_for(stubs) as gateway:
        response = gateway.post(STREAM)
        assert response.status_code == 200
        assert response.headers["x-llm-backend"] == "vllm-customer"
        events = [line for line in response.text.splitlines() if line.startswith("data: ")]
        assert '"content":"Hello"' in events[0] and '"content":" from"' in events[1]
        assert '"error"' in events[-1], "a cut stream must end with an error event"
        assert "[DONE]" not in response.text
        assert stubs["azure-openai"].seen == []
        failed = sum(gateway.metric("llm_gateway_requests_total", backend="vllm-customer", status=s)
                     for s in ("stream_error", "stream_truncated"))
        assert failed == 1


def test_batch_queue_waits_for_the_path_to_come_back(stubs: dict[str, FaultyUpstream]) -> None:
    port = free_port()
    config = config_for(stubs)
    config["backends"]["vllm-batch"]["baseURL"] = f"http://127.0.0.1:{port}/v1"
    config["routes"]["batch"].update(queueSeconds=5, fallbacks=["azure-openai"])
    late = FaultyUpstream(port=port, name="vllm-batch")
    timer = threading.Timer(1.0, late.start)
    with RunningGateway(config) as gateway:
        timer.start()
        started = time.monotonic()
        response = gateway.post(BODY, {"x-llm-class": "batch"})
        elapsed = time.monotonic() - started
        timer.join()
        late.stop()
        assert response.headers["x-llm-backend"] == "vllm-batch", "the queue should have waited for the batch path"
        assert 0.9 <= elapsed < 5
        assert gateway.fallbacks("connect_error", "vllm-batch", "azure-openai") == 0


def test_batch_queue_is_bounded_then_spills(stubs: dict[str, FaultyUpstream]) -> None:
    config = config_for(stubs)
    config["backends"]["vllm-batch"]["baseURL"] = f"http://127.0.0.1:{free_port()}/v1"
    config["routes"]["batch"].update(queueSeconds=1, fallbacks=["azure-openai"])
    with RunningGateway(config) as gateway:
        started = time.monotonic()
        response = gateway.post(BODY, {"x-llm-class": "batch"})
        assert response.headers["x-llm-backend"] == "azure-openai"
        assert 1.0 <= time.monotonic() - started < 3
