"""The `helm test` pod's script, run for real with sh and curl against a real gateway (only the
cluster DNS name is swapped for 127.0.0.1): it passes on a good answer and fails without the
x-llm-backend header."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Iterator

import pytest

from conftest import Render
from gateway_harness import DEMO_KEY, RunningGateway, example_config
from hybridllm.stub_upstream import StubUpstream


@pytest.fixture(scope="module")
def stubs() -> Iterator[list[StubUpstream]]:
    started = [StubUpstream().start(), StubUpstream().start(), StubUpstream(azure=True).start()]
    yield started
    for stub in started:
        stub.stop()


def script(render: Render) -> str:
    pod = render("hybrid").find("Pod", "hybrid-llm-gateway-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    return pod["spec"]["containers"][0]["args"][0]


KEY_DIR = "/var/run/secrets/hybrid-llm/test"


def run_script(text: str, url: str, tmp_path, key: str = DEMO_KEY) -> subprocess.CompletedProcess[str]:
    """The pod's script with the Service URL, /tmp and the mounted key Secret moved to this machine."""
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the helm test script")
    keys = tmp_path / "key"
    keys.mkdir(exist_ok=True)
    (keys / "api-key").write_text(key, encoding="utf-8")
    local = (text.replace("http://hybrid-llm-gateway.llm.svc.cluster.local", url).replace("/tmp/", f"{tmp_path}/")
             .replace(KEY_DIR, str(keys)))
    environment = {k: v for k, v in os.environ.items() if k != "API_KEY"}
    return subprocess.run(["/bin/sh", "-c", local], capture_output=True, text=True, timeout=60, check=False,
                          env=environment)


def test_the_key_is_a_mounted_file_not_an_env_var(render: Render) -> None:
    """checkov CKV_K8S_35: a Secret in an env var leaks into crash dumps and `kubectl describe`
    tooling; the key is mounted read-only and reaches curl on stdin, never on a command line."""
    pod = render("hybrid").find("Pod", "hybrid-llm-gateway-test")
    (container,) = pod["spec"]["containers"]
    assert "env" not in container and "envFrom" not in container
    mount = next(m for m in container["volumeMounts"] if m["name"] == "api-key")
    assert mount == {"name": "api-key", "mountPath": KEY_DIR, "readOnly": True}
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "api-key")
    assert volume["secret"] == {"secretName": "hybrid-llm-gateway-test-key", "defaultMode": 0o440,
                                "items": [{"key": "api-key", "path": "api-key"}]}
    assert "-H @-" in container["args"][0] and "Bearer ${" not in container["args"][0]
    without_auth = render("hybrid", {"gateway": {"auth": {"enabled": False}}}).find("Pod", "hybrid-llm-gateway-test")
    assert all(v["name"] != "api-key" for v in without_auth["spec"]["volumes"])
    assert "Authorization" not in without_auth["spec"]["containers"][0]["args"][0]


def test_helm_test_names_an_empty_key(render: Render, stubs: list[StubUpstream], tmp_path) -> None:
    done = run_script(script(render), stubs[0].url, tmp_path, key="")
    assert done.returncode != 0
    assert "key api-key of Secret hybrid-llm-gateway-test-key is empty" in done.stdout


def test_helm_test_passes_against_the_gateway(render: Render, stubs: list[StubUpstream], tmp_path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOAI_API_KEY", "k")
    config = example_config(vllm_customer=stubs[0].port, vllm_batch=stubs[1].port, azure_openai=stubs[2].port)
    with RunningGateway(config) as gateway:
        done = run_script(script(render), gateway.url, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "x-llm-backend: vllm-customer" in done.stdout.lower()


def test_helm_test_fails_without_the_backend_header(render: Render, stubs: list[StubUpstream], tmp_path) -> None:
    # Straight to an upstream (no gateway): a 200 without x-llm-backend must fail the test.
    done = run_script(script(render), stubs[0].url, tmp_path)
    assert done.returncode != 0
    assert "no x-llm-backend header" in done.stdout


def test_helm_test_fails_on_an_error_answer(render: Render, stubs: list[StubUpstream], tmp_path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOAI_API_KEY", "k")
    config = example_config(vllm_customer=stubs[0].port, vllm_batch=stubs[1].port, azure_openai=stubs[2].port)
    with RunningGateway(config) as gateway:
        done = run_script(script(render).replace("llama-3.3-70b", "no-such-model"), gateway.url, tmp_path)
    assert done.returncode != 0 and "expected HTTP 200" in done.stdout
