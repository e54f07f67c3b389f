"""gateway/sse.py: the stream relay on its own (event boundaries, [DONE], usage, renames, sizes),
then streaming end to end through the gateway with the official `openai` client and raw HTTP."""

from __future__ import annotations

import time
from typing import Iterator

import httpx
import openai
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sse import EventTooLarge, StreamRelay, error_event, is_done, model_renames
from gateway_harness import DEMO_KEY, FaultyUpstream, RunningGateway, config_for, example_gateway, upstream_stubs

MESSAGES = [{"role": "user", "content": "hi"}]


def chunk(content: str, model: str = "served", **extra: object) -> bytes:
    data = {"id": "c", "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": {"content": content}}], **extra}
    return b"data: " + orjson.dumps(data) + b"\n\n"


USAGE = b'data: {"id":"c","model":"served","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
STREAM = chunk("Hel") + chunk("lo") + USAGE + b"data: [DONE]\n\n"


# ---- the relay on its own -----------------------------------------------------------------------


@pytest.mark.parametrize("event", [b"data: [DONE]\n\n", b"data:[DONE]\n\n", b"data: [DONE]\r\n\r\n",
                                   b"data:[DONE]", b": keep-alive\ndata: [DONE]\n\n", b"id: 7\r\ndata:[DONE]\r\n\r\n"])
def test_done_is_recognised_in_every_valid_spelling(event: bytes) -> None:
    assert is_done(event)
    relay = StreamRelay((), forward_usage=True)
    assert relay.feed(event) + relay.finish() == event
    assert relay.saw_done


@pytest.mark.parametrize("event", [chunk("[DONE]"), b"data: [DONE]x\n\n", b"event: done\n\n", b"data: {}\n\n"])
def test_done_is_not_found_where_it_is_not(event: bytes) -> None:
    assert not is_done(event)


def test_usage_is_read_and_dropped_unless_asked_for() -> None:
    hidden = StreamRelay((), forward_usage=False)
    assert hidden.feed(STREAM) == chunk("Hel") + chunk("lo") + b"data: [DONE]\n\n"
    assert hidden.usage == {"prompt_tokens": 3, "completion_tokens": 2} and hidden.saw_done
    shown = StreamRelay((), forward_usage=True)
    assert shown.feed(STREAM) == STREAM and shown.usage == {"prompt_tokens": 3, "completion_tokens": 2}


def test_usage_that_is_not_an_object_is_passed_through_uncounted() -> None:
    relay = StreamRelay((), forward_usage=False)
    odd = b'data: {"choices":[],"usage":"lots"}\n\n'
    assert relay.feed(odd) == odd and relay.usage is None


def test_the_served_model_is_renamed_to_the_public_one() -> None:
    relay = StreamRelay(model_renames("served", "llama-3.3-70b"), forward_usage=True)
    out = relay.feed(chunk("a") + chunk("b").replace(b'"model":', b'"model": '))
    assert b'"served"' not in out and out.count(b'"llama-3.3-70b"') == 2
    assert model_renames("same", "same") == ()


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_of_the_stream_gives_the_same_bytes(cuts: list[int]) -> None:
    """Upstream chunks end anywhere: in the middle of an event, of a CRLF, of [DONE]."""
    stream = STREAM.replace(b"\n\n", b"\r\n\r\n", 1)
    points = sorted({0, len(stream), *(min(c, len(stream)) for c in cuts)})
    relay = StreamRelay((), forward_usage=False)
    out = b"".join(relay.feed(stream[a:b]) for a, b in zip(points, points[1:])) + relay.finish()
    whole = StreamRelay((), forward_usage=False)
    assert out == whole.feed(stream) + whole.finish()
    assert relay.saw_done and relay.usage == {"prompt_tokens": 3, "completion_tokens": 2}


def test_an_unterminated_event_is_bounded() -> None:
    relay = StreamRelay((), forward_usage=True, max_event_bytes=1024)
    assert relay.feed(chunk("ok")) == chunk("ok")
    relay.feed(b"data: " + b"x" * 1000)
    with pytest.raises(EventTooLarge):
        relay.feed(b"x" * 100)


def test_the_last_event_without_a_separator_is_flushed_on_finish() -> None:
    relay = StreamRelay((), forward_usage=True)
    assert relay.feed(b"data: [DONE]") == b""
    assert relay.finish() == b"data: [DONE]" and relay.saw_done


def test_error_event_is_what_the_openai_client_raises_on() -> None:
    event = error_event("backend x failed mid-stream", "stream_error")
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    assert orjson.loads(event[6:])["error"] == {"message": "backend x failed mid-stream", "type": "upstream_error",
                                                 "code": "stream_error", "param": None}


# ---- streaming end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, FaultyUpstream]]:
    with upstream_stubs(customer={"token_delay": 0.05}) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(stubs: dict[str, FaultyUpstream]) -> Iterator[RunningGateway]:
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


def test_openai_client_azure_stream_with_empty_choices(client: openai.OpenAI, stubs: dict[str, FaultyUpstream]) -> None:
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


def test_openai_client_sees_a_mid_stream_failure(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES, stream=True,
                                            extra_headers={"x-llm-class": "batch"},
                                            extra_body={"fault": {"vllm-batch": {"cut_after": 2}}})
    with pytest.raises(openai.APIError, match="failed mid-stream|closed the stream"):
        list(stream)


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
    before_tokens = gateway.metric("llm_gateway_tokens_total", backend="azure-openai", kind="completion")
    before_cost = gateway.metric("llm_gateway_cost_usd_total", backend="azure-openai")
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert gateway.metric("llm_gateway_tokens_total", backend="azure-openai", kind="completion") - before_tokens == 10
    # 2 x (11 prompt tokens at $0.15/M + 5 completion tokens at $0.60/M)
    expected = 2 * (11 * 0.15 + 5 * 0.60) / 1e6
    assert gateway.metric("llm_gateway_cost_usd_total", backend="azure-openai") - before_cost == pytest.approx(expected)
    assert gateway.metric("llm_gateway_time_to_first_token_seconds_count", backend="azure-openai") >= 1
    assert gateway.metric("llm_gateway_request_duration_seconds_count", backend="azure-openai") >= 2
    assert gateway.metric("llm_gateway_added_latency_seconds_count") >= 2
