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


def run_script(text: str, url: str, tmp_path) -> subprocess.CompletedProcess[str]:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the helm test script")
    local = text.replace("http://hybrid-llm-gateway.llm.svc.cluster.local", url).replace("/tmp/", f"{tmp_path}/")
    return subprocess.run(["/bin/sh", "-c", local], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "API_KEY": DEMO_KEY})


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


def test_notes_tell_the_installer_what_and_how_long(tmp_path) -> None:
    import helm_python

    from hybridllm.layout import CHART_DIR
    from hybridllm.profiles import load_profile

    rendered = helm_python.Chart.load(str(CHART_DIR)).render(load_profile("hybrid").values, name="hybrid-llm",
                                                             namespace="llm", is_install=True)
    notes = next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))
    for phrase in ("http://hybrid-llm-gateway.llm.svc.cluster.local/v1", "helm test hybrid-llm -n llm",
                   "131 GiB of weights", "3-8 min", "kubectl -n llm get inferencesets,workspaces,pods -w",
                   "customer: InferenceSet hybrid-llm-customer, 1 replica(s) on on-demand",
                   "batch: InferenceSet hybrid-llm-batch, 1 replica(s) on spot", "nodeProvisioner=byo"):
        assert phrase in notes
