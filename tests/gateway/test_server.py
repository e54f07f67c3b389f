"""gateway/server.py and `python -m gateway`: the HTTP layer's own limits (request header size
and the time to send headers), JSON logs without bodies, and SIGTERM: in-flight streams finish
within the grace period, and those still running when it ends get an error event."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import orjson
import pytest
import yaml

from gateway_harness import (CHAT, DEMO_KEY, FaultyUpstream, RunningGateway, config_for, example_config,
                             example_gateway, free_port, upstream_stubs)
from hybridllm.layout import REPO_ROOT


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


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read until the gateway closes the connection (it always does after a refusal)."""
    data = b""
    while piece := sock.recv(65536):
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return int(lines[0].split()[1]), dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line), body


def test_an_oversized_request_header_gets_431_and_does_not_stall_others(gateway: RunningGateway) -> None:
    """Defect 7: a 100 MB request header was accepted and stalled /healthz for seconds."""
    stalls: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            started = time.monotonic()
            assert httpx.get(gateway.url + "/healthz", timeout=10).status_code == 200
            stalls.append(time.monotonic() - started)
            time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
            sock.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {DEMO_KEY}\r\nX-Big: ".encode())
            try:
                sock.sendall(b"a" * 16 * 1024 * 1024)
            except OSError:
                pass  # the gateway answered and closed
            status, headers, body = read_answer(sock)
    finally:
        stop.set()
        prober.join()
    assert status == 431
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    error = orjson.loads(body)["error"]
    assert error["code"] == "header_too_large" and "server.maxHeaderBytes" in error["message"]
    assert max(stalls) < 1.0, "other requests must not wait while a huge header is parsed"
    assert gateway.metric("llm_gateway_rejected_requests_total", reason="header_too_large") >= 1


def test_headers_just_under_the_limit_are_fine(gateway: RunningGateway) -> None:
    response = httpx.get(gateway.url + "/healthz", headers={"x-pad": "a" * 60_000})
    assert response.status_code == 200


def test_headers_sent_too_slowly_get_408(impatient: RunningGateway) -> None:
    """A client that trickles its request headers (slowloris) is cut off after uploadTimeoutSeconds."""
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\n".encode())
        try:
            for _ in range(50):
                sock.sendall(b"X-Slow: a\r\n")
                time.sleep(0.1)
        except OSError:
            pass
        status, headers, body = read_answer(sock)
    assert status == 408 and headers["connection"] == "close"
    assert orjson.loads(body)["error"]["code"] == "upload_timeout"
    assert time.monotonic() - started < 4


def test_a_connection_that_sends_nothing_is_closed_quietly(impatient: RunningGateway) -> None:
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(65536) == b"", "nothing was asked, so nothing is answered"
    assert 0.9 <= time.monotonic() - started < 4


def test_keep_alive_requests_are_not_hit_by_the_header_timer(impatient: RunningGateway) -> None:
    with httpx.Client(base_url=impatient.url) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(0.6)  # longer in total than the upload timeout, but between requests


# ---- the gateway as a process -------------------------------------------------------------------


def start_process(tmp_path: Path, config: dict[str, Any]) -> tuple[subprocess.Popen, str]:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={"AOAI_API_KEY": "k", "PATH": "/usr/bin:/bin"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "gateway did not become ready"
        time.sleep(0.1)
    return process, url


def stream_in_background(url: str, received: list[str], first_chunk: threading.Event, prompt: str) -> threading.Thread:
    def stream() -> None:
        body = {"model": "llama-3.3-70b", "stream": True, "messages": [{"role": "user", "content": prompt}]}
        try:
            with httpx.stream("POST", url + CHAT, json=body, timeout=20,
                              headers={"Authorization": f"Bearer {DEMO_KEY}"}) as response:
                for line in response.iter_lines():
                    received.append(line)
                    first_chunk.set()
        except httpx.HTTPError as exc:
            received.append(f"transport error: {exc}")

    reader = threading.Thread(target=stream)
    reader.start()
    return reader


def access_records(output: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [r for r in records if r.get("logger") == "gateway.access"]


def test_sigterm_drains_in_flight_streams_and_logs_json(tmp_path: Path) -> None:
    customer = FaultyUpstream(name="vllm-customer", token_delay=0.3).start()
    others = [FaultyUpstream().start(), FaultyUpstream(azure=True).start()]
    config = example_config(vllm_customer=customer.port, vllm_batch=others[0].port, azure_openai=others[1].port)
    process, url = start_process(tmp_path, config)
    try:
        received: list[str] = []
        first_chunk = threading.Event()
        reader = stream_in_background(url, received, first_chunk, "a secret prompt")
        assert first_chunk.wait(10)
        process.send_signal(signal.SIGTERM)
        reader.join(20)
        # uvicorn re-raises SIGTERM once it has shut down cleanly, so the exit status is -SIGTERM.
        assert process.wait(20) in (0, -signal.SIGTERM)
        assert "data: [DONE]" in received, "the in-flight stream must finish after SIGTERM"
        assert sum('"content"' in line for line in received) == 5
    finally:
        if process.poll() is None:
            process.kill()
        for stub in (customer, *others):
            stub.stop()

    output = process.stdout.read() if process.stdout else ""
    access = access_records(output)
    assert len(access) == 1
    assert access[0]["route"] == "customer" and access[0]["backend"] == "vllm-customer"
    assert access[0]["completion_tokens"] == 5 and access[0]["request_id"]
    assert "a secret prompt" not in output, "request bodies must never be logged"
    assert DEMO_KEY not in output


def test_streams_cut_by_the_shutdown_grace_end_with_an_error_event(tmp_path: Path) -> None:
    """Defect 10: streams still running when shutdownGraceSeconds ran out ended without an SSE
    error event and were logged as client_closed."""
    customer = FaultyUpstream(name="vllm-customer", token_delay=1.0).start()
    others = [FaultyUpstream().start(), FaultyUpstream(azure=True).start()]
    config = example_config(vllm_customer=customer.port, vllm_batch=others[0].port, azure_openai=others[1].port)
    config["server"]["shutdownGraceSeconds"] = 1
    process, url = start_process(tmp_path, config)
    try:
        received: list[str] = []
        first_chunk = threading.Event()
        reader = stream_in_background(url, received, first_chunk, "a long answer")
        assert first_chunk.wait(10)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        reader.join(20)
        assert process.wait(20) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 4
    finally:
        if process.poll() is None:
            process.kill()
        for stub in (customer, *others):
            stub.stop()
    events = [json.loads(line[6:]) for line in received if line.startswith("data: {")]
    assert 1 <= sum("choices" in e for e in events) < 5
    assert events[-1]["error"]["code"] == "gateway_shutdown"
    access = access_records(process.stdout.read() if process.stdout else "")
    assert [r["status"] for r in access] == ["shutdown"]
