"""gateway/app.py end to end: health, readiness, models, request validation and the request
limits (body size, upload time, x-request-id), each with the OpenAI-style error a client gets."""

from __future__ import annotations

import socket
import time
from typing import Any, Iterator

import httpx
import openai
import orjson
import pytest

from gateway_harness import (AUTH, CHAT, DEMO_KEY, FaultyUpstream, RunningGateway, config_for, example_gateway,
                             upstream_stubs)


def chat(model: str = "llama-3.3-70b", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, FaultyUpstream]]:
    with upstream_stubs() as started:
        yield started


@pytest.fixture(scope="module")
def gateway(stubs: dict[str, FaultyUpstream]) -> Iterator[RunningGateway]:
    with example_gateway(config_for(stubs)) as running:
        yield running


@pytest.fixture(scope="module")
def impatient(stubs: dict[str, FaultyUpstream]) -> Iterator[RunningGateway]:
    """A gateway that gives uploads one second."""
    config = config_for(stubs)
    config["server"]["uploadTimeoutSeconds"] = 1
    with example_gateway(config) as running:
        yield running


def raw_exchange(gateway: RunningGateway, head: bytes, body_parts: list[bytes] = (), pause: float = 0.0,
                 timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send a request by hand (to control its pace) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        sock.sendall(head)
        for part in body_parts:
            try:
                sock.sendall(part)
            except OSError:
                break  # the gateway already answered and closed
            time.sleep(pause)
        data = b""
        while True:
            try:
                piece = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not piece:
                break
            data += piece
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def test_health_models_and_readiness(gateway: RunningGateway) -> None:
    models = httpx.get(gateway.url + "/v1/models", headers=AUTH).json()
    assert [m["id"] for m in models["data"]] == ["llama-3.3-70b", "code", "gpt-4o-mini"]
    assert httpx.get(gateway.url + "/v1/models").status_code == 401
    assert httpx.get(gateway.url + "/healthz").status_code == 200
    assert httpx.get(gateway.url + "/readyz").status_code == 200


def test_readiness_is_about_the_gateway_not_upstream_circuits(stubs: dict[str, FaultyUpstream],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 8: with every circuit open every replica went NotReady, and clients got connection
    errors instead of the designed JSON 503 with retry-after."""
    monkeypatch.setenv("AOAI_API_KEY", "aoai-test-key")
    config = config_for(stubs)
    config["backends"]["azure-openai"]["circuit"] = {"failureThreshold": 1, "openSeconds": 30}
    for name in ("vllm-customer", "vllm-batch"):
        config["backends"][name]["circuit"] = {"failureThreshold": 1, "openSeconds": 30}
    with RunningGateway(config) as gateway:
        failing = {"status": 500}
        gateway.post({**chat(), "fault": {"*": failing}}, {"x-llm-class": "batch"})
        for name in ("vllm-customer", "vllm-batch", "azure-openai"):
            assert gateway.metric("llm_gateway_circuit_state", backend=name) == 1
        assert httpx.get(gateway.url + "/readyz").status_code == 200
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=DEMO_KEY, max_retries=0)
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="gpt-4o-mini", messages=chat()["messages"])
        assert raised.value.status_code == 503
        assert raised.value.body["code"] == "overloaded"
        retry_after = int(raised.value.response.headers["retry-after"])
        assert 20 <= retry_after <= 30, "retry-after says when the first circuit lets a probe through"


def test_readiness_turns_off_while_draining(gateway: RunningGateway) -> None:
    gateway.gateway.draining = True
    try:
        assert httpx.get(gateway.url + "/readyz").status_code == 503
    finally:
        gateway.gateway.draining = False


@pytest.mark.parametrize("body,param", [
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "llama-3.3-70b"}, "messages"),
    ({"model": "llama-3.3-70b", "messages": []}, "messages"),
    ({"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ({"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "x"}], "stream_options": 3}, "stream_options"),
    ([1, 2, 3], None),
])
def test_invalid_requests_get_400(gateway: RunningGateway, body: Any, param: str | None) -> None:
    response = gateway.post(body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] == param


def test_stream_null_is_a_non_streaming_request(gateway: RunningGateway, stubs: dict[str, FaultyUpstream]) -> None:
    """Defect 10: `stream: null` is allowed by the OpenAI API and was refused with a 400."""
    response = gateway.post({"model": "llama-3.3-70b", "messages": chat()["messages"], "stream": None})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the stub."
    assert "stream" not in stubs["vllm-customer"].seen[-1].body


def test_malformed_json_gets_400(gateway: RunningGateway) -> None:
    response = httpx.post(gateway.url + CHAT, content=b"{not json", headers=AUTH)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_unknown_model_gets_404(gateway: RunningGateway) -> None:
    response = gateway.post(chat("gpt-9"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_body_size_limit(gateway: RunningGateway) -> None:
    big = chat(messages=[{"role": "user", "content": "x" * 2_100_000}])
    response = gateway.post(big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert "server.maxBodyBytes" in response.json()["error"]["message"]
    chunked = httpx.post(gateway.url + CHAT, content=iter([b"x" * 1_000_000] * 3), headers=AUTH)
    assert chunked.status_code == 413


def test_a_slow_upload_is_timed_out(impatient: RunningGateway) -> None:
    """Defect 7: a 1 byte/s upload was never timed out (server.uploadTimeoutSeconds is 1 here)."""
    body = orjson.dumps(chat())
    head = (f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {DEMO_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    started = time.monotonic()
    status, headers, answer = raw_exchange(impatient, head, [body[i:i + 1] for i in range(len(body))], pause=0.2)
    assert status == 408
    assert 1 <= time.monotonic() - started < 5
    assert headers["connection"] == "close"
    error = orjson.loads(answer)["error"]
    assert error["code"] == "upload_timeout" and "server.uploadTimeoutSeconds" in error["message"]


def test_headers_then_silence_is_timed_out(impatient: RunningGateway) -> None:
    """A client that announces a body and never sends it does not hold the connection for ever."""
    head = (f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {DEMO_KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n").encode()
    started = time.monotonic()
    status, _, answer = raw_exchange(impatient, head)
    assert status == 408 and 1 <= time.monotonic() - started < 5
    assert "request body did not arrive within 1 s" in orjson.loads(answer)["error"]["message"]
    assert impatient.metric("llm_gateway_rejected_requests_total", reason="upload_timeout") >= 1


def test_a_steady_upload_within_the_time_is_fine(impatient: RunningGateway) -> None:
    body = orjson.dumps(chat())
    head = (f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {DEMO_KEY}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    status, _, answer = raw_exchange(impatient, head, [body[:20], body[20:]], pause=0.3)
    assert status == 200, answer


@pytest.mark.parametrize("request_id,status", [
    ("a" * 128, 200), ("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa", 200),
    ("a" * 129, 400), ("trace\tid", 400), (b"caf\xe9", 400),
    ("x" * 1_000_000, 431),  # past the header limit as well: refused before it is even parsed
])
def test_request_id_is_bounded(gateway: RunningGateway, stubs: dict[str, FaultyUpstream], request_id: str | bytes,
                               status: int) -> None:
    """Defect 7: a 1 MB x-request-id was forwarded, echoed and logged whole."""
    response = gateway.post(chat(), {"x-request-id": request_id})
    assert response.status_code == status
    if status == 200:
        assert response.headers["x-request-id"] == request_id == stubs["vllm-customer"].seen[-1].headers["x-request-id"]
        return
    error = response.json()["error"]
    if status == 400:
        assert error["code"] == "invalid_request_id" and "server.maxRequestIdLength" in error["message"]
        assert len(response.headers["x-request-id"]) == 32, "a fresh id replaces the refused one"
    else:
        assert error["code"] == "header_too_large"


def test_auth_off_is_explicit(stubs: dict[str, FaultyUpstream], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOAI_API_KEY", "aoai-test-key")
    config = config_for(stubs)
    config["auth"] = {"enabled": False}
    with RunningGateway(config) as running:
        response = httpx.post(running.url + CHAT, json=chat())
        assert response.status_code == 200
