"""Streaming and usage, through the gateway with the official `openai` client and raw HTTP."""

from __future__ import annotations

import time
from typing import Iterator

import httpx
import openai
import pytest

from gateway_harness import DEMO_KEY, RunningGateway, config_for, example_gateway, upstream_stubs
from hybridllm.stub_upstream import StubUpstream
from test_gateway_fallback import metric

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, StubUpstream]]:
    with upstream_stubs(customer={"token_delay": 0.05}) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(stubs: dict[str, StubUpstream]) -> Iterator[RunningGateway]:
    with example_gateway(config_for(stubs)) as running:
        yield running


@pytest.fixture(scope="module")
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=DEMO_KEY, max_retries=0)


def test_openai_client_chat(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="llama-3.3-70b", messages=MESSAGES)
    completion = raw.parse()
    assert raw.headers["x-llm-backend"] == "vllm-customer"
    assert completion.model == "llama-3.3-70b"
    assert completion.choices[0].message.content == "Hello from the stub."
    assert completion.usage.prompt_tokens == 11 and completion.usage.completion_tokens == 5


def test_openai_client_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the stub."
    assert all(c.usage is None for c in chunks), "usage was not asked for, so it must not arrive"
    assert {c.model for c in chunks} == {"llama-3.3-70b"}


def test_openai_client_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5


def test_openai_client_azure_stream_with_empty_choices(client: openai.OpenAI, stubs: dict[str, StubUpstream]) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert chunks[0].choices == []  # Azure's prompt-filter chunk passes through untouched
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the stub."
    assert stubs["azure-openai"].seen[-1].body["stream_options"] == {"include_usage": True}


def test_openai_client_completions(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="code", prompt="def add(a, b):")
    assert completion.choices[0].text == "Hello from the stub."
    streamed = "".join(c.choices[0].text for c in client.completions.create(model="code", prompt="x", stream=True)
                       if c.choices)
    assert streamed == "Hello from the stub."


def test_openai_client_sees_a_mid_stream_failure(client: openai.OpenAI, stubs: dict[str, StubUpstream]) -> None:
    stubs["vllm-batch"].mode = "cut"
    try:
        stream = client.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES, stream=True,
                                                extra_headers={"x-llm-class": "batch"})
        with pytest.raises(openai.APIError, match="failed mid-stream|closed the stream"):
            list(stream)
    finally:
        stubs["vllm-batch"].mode = "ok"


def test_openai_client_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MESSAGES)
    bad = openai.OpenAI(base_url=client.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)


def test_stream_is_relayed_chunk_by_chunk(gateway: RunningGateway) -> None:
    """The stub waits 50 ms between tokens; each must reach the client before the next is made."""
    arrivals = []
    body = {"model": "llama-3.3-70b", "messages": MESSAGES, "stream": True}
    started = time.monotonic()
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {DEMO_KEY}"}) as response:
        for line in response.iter_lines():
            if '"content"' in line:
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] >= 0.15, "chunks arrived together: the stream was buffered"
    assert arrivals[0] < arrivals[-1] - 0.15


def test_tokens_and_cost_are_counted_per_backend(gateway: RunningGateway, client: openai.OpenAI) -> None:
    before_tokens = metric(gateway, "llm_gateway_tokens_total", backend="azure-openai", kind="completion")
    before_cost = metric(gateway, "llm_gateway_cost_usd_total", backend="azure-openai")
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert metric(gateway, "llm_gateway_tokens_total", backend="azure-openai", kind="completion") - before_tokens == 10
    # 2 x (11 prompt tokens at $0.15/M + 5 completion tokens at $0.60/M)
    expected = 2 * (11 * 0.15 + 5 * 0.60) / 1e6
    assert metric(gateway, "llm_gateway_cost_usd_total", backend="azure-openai") - before_cost == pytest.approx(expected)
    assert metric(gateway, "llm_gateway_time_to_first_token_seconds_count", backend="azure-openai") >= 1
    assert metric(gateway, "llm_gateway_request_duration_seconds_count", backend="azure-openai") >= 2
    assert metric(gateway, "llm_gateway_added_latency_seconds_count") >= 2
