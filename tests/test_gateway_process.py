"""The gateway as a process: `python -m gateway`, JSON logs without bodies, and graceful shutdown
on SIGTERM that lets an in-flight stream finish."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml

from gateway_harness import DEMO_KEY, example_config, free_port
from hybridllm.layout import REPO_ROOT
from hybridllm.stub_upstream import StubUpstream


def test_sigterm_drains_in_flight_streams_and_logs_json(tmp_path: Path) -> None:
    customer = StubUpstream(token_delay=0.3).start()
    others = [StubUpstream().start(), StubUpstream().start()]
    config = example_config(vllm_customer=customer.port, vllm_batch=others[0].port, azure_openai=others[1].port)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={"AOAI_API_KEY": "k", "PATH": "/usr/bin:/bin"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gateway did not become ready"
            time.sleep(0.1)

        received: list[str] = []
        first_chunk = threading.Event()

        def stream() -> None:
            body = {"model": "llama-3.3-70b", "stream": True,
                    "messages": [{"role": "user", "content": "a secret prompt"}]}
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=20,
                              headers={"Authorization": f"Bearer {DEMO_KEY}"}) as response:
                for line in response.iter_lines():
                    received.append(line)
                    first_chunk.set()

        reader = threading.Thread(target=stream)
        reader.start()
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
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("logger") == "gateway.access"]
    assert len(access) == 1
    assert access[0]["route"] == "customer" and access[0]["backend"] == "vllm-customer"
    assert access[0]["completion_tokens"] == 5 and access[0]["request_id"]
    assert "a secret prompt" not in output, "request bodies must never be logged"
    assert DEMO_KEY not in output
