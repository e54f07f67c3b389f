"""Routing, auth and request validation, over HTTP against the real gateway and real stub upstreams."""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from gateway_harness import DEMO_KEY, RunningGateway, config_for, example_gateway, upstream_stubs, write_keys
from hybridllm.stub_upstream import StubUpstream

CHAT = "/v1/chat/completions"
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}


def chat(model: str = "llama-3.3-70b", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, StubUpstream]]:
    with upstream_stubs() as started:
        yield started


@pytest.fixture(scope="module")
def gateway(stubs: dict[str, StubUpstream], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    keys = tmp_path_factory.mktemp("keys") / "keys.yaml"
    write_keys(keys, {
        DEMO_KEY: {"name": "demo", "classes": ["*"], "backends": ["*"], "backendOverride": True},
        "sk-customer-only": {"name": "customer-team", "classes": ["customer"], "backends": ["vllm-customer"]},
        "sk-batch": {"name": "batch-team", "classes": ["batch"], "backends": ["vllm-batch", "azure-openai"]},
    })
    config = config_for(stubs)
    config["auth"]["keysFile"] = str(keys)
    with example_gateway(config) as running:
        yield running


def post(gateway: RunningGateway, body: Any, headers: dict[str, str] | None = None, path: str = CHAT) -> httpx.Response:
    return httpx.post(gateway.url + path, json=body, headers={**AUTH, **(headers or {})}, timeout=10)


@pytest.mark.parametrize("body,headers,backend,route", [
    (chat(), {}, "vllm-customer", "customer"),
    (chat(), {"x-llm-class": "batch"}, "vllm-batch", "batch"),
    (chat(), {"x-llm-class": "customer"}, "vllm-customer", "customer"),
    (chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {}}}),
     {}, "azure-openai", "structured"),
    (chat(response_format={"type": "json_object"}), {}, "vllm-customer", "customer"),
    (chat("code"), {}, "vllm-customer", "code"),
    (chat("gpt-4o-mini"), {}, "azure-openai", "azure"),
    (chat(), {"x-llm-backend": "vllm-batch"}, "vllm-batch", "pinned:vllm-batch"),
    # Rule order: the backend header beats the class header, the class header beats request shape.
    (chat(), {"x-llm-backend": "azure-openai", "x-llm-class": "batch"}, "azure-openai", "pinned:azure-openai"),
    (chat(response_format={"type": "json_schema"}), {"x-llm-class": "batch"}, "vllm-batch", "batch"),
])
def test_routing_rules(gateway: RunningGateway, body: dict, headers: dict, backend: str, route: str) -> None:
    response = post(gateway, body, headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-backend"] == backend
    assert response.headers["x-llm-route"] == route
    assert response.headers["x-request-id"]


def test_code_completion_goes_to_vllm(gateway: RunningGateway, stubs: dict[str, StubUpstream]) -> None:
    response = post(gateway, {"model": "code", "prompt": "def add(a, b):"}, path="/v1/completions")
    assert response.status_code == 200
    assert response.headers["x-llm-backend"] == "vllm-customer"
    assert stubs["vllm-customer"].seen[-1].path == "/v1/completions"


def test_model_names_are_rewritten_both_ways(gateway: RunningGateway, stubs: dict[str, StubUpstream]) -> None:
    response = post(gateway, chat(), {"x-request-id": "req-42"})
    assert response.json()["model"] == "llama-3.3-70b"
    seen = stubs["vllm-customer"].seen[-1]
    assert seen.body["model"] == "hybrid-llm-customer"
    assert seen.headers["x-request-id"] == "req-42" == response.headers["x-request-id"]
    post(gateway, chat("gpt-4o-mini"))
    assert stubs["azure-openai"].seen[-1].body["model"] == "gpt-4o-mini"


def test_client_credentials_never_go_upstream(gateway: RunningGateway, stubs: dict[str, StubUpstream]) -> None:
    post(gateway, chat("gpt-4o-mini"), {"api-key": "client-should-not-leak", "cookie": "a=b"})
    seen = stubs["azure-openai"].seen[-1]
    assert seen.path == "/openai/v1/chat/completions"
    assert seen.headers["api-key"] == "aoai-test-key"
    assert "authorization" not in seen.headers and "cookie" not in seen.headers
    post(gateway, chat())
    vllm_headers = stubs["vllm-customer"].seen[-1].headers
    assert "authorization" not in vllm_headers and "api-key" not in vllm_headers


@pytest.mark.parametrize("headers,status,code", [
    ({"Authorization": ""}, 401, "invalid_api_key"),
    ({"Authorization": "Bearer sk-wrong"}, 401, "invalid_api_key"),
    ({"Authorization": "Bearer sk-customer-only", "x-llm-class": "batch"}, 403, "class_not_allowed"),
    ({"Authorization": "Bearer sk-customer-only", "x-llm-backend": "vllm-customer"}, 403, "override_not_allowed"),
    ({"x-llm-backend": "vllm-nowhere"}, 400, "unknown_backend"),
    ({"x-llm-class": "interactive"}, 400, "unknown_class"),
])
def test_refusals_are_openai_errors(gateway: RunningGateway, headers: dict, status: int, code: str) -> None:
    response = post(gateway, chat(), headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_keys_are_limited_to_their_backends(gateway: RunningGateway) -> None:
    # batch-team may not use vllm-customer: the customer route skips it for the Azure fallback...
    skipped = post(gateway, chat(), {"Authorization": "Bearer sk-batch"})
    assert skipped.headers["x-llm-backend"] == "azure-openai"
    # ...and a route left with no allowed backend is refused.
    refused = post(gateway, chat("gpt-4o-mini"), {"Authorization": "Bearer sk-customer-only"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "backend_not_allowed"
    allowed = post(gateway, chat(), {"Authorization": "Bearer sk-batch", "x-llm-class": "batch"})
    assert allowed.headers["x-llm-backend"] == "vllm-batch"
    # api-key is accepted as well as Authorization.
    assert httpx.post(gateway.url + CHAT, json=chat(), headers={"api-key": DEMO_KEY}).status_code == 200


@pytest.mark.parametrize("body,param", [
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "llama-3.3-70b"}, "messages"),
    ({"model": "llama-3.3-70b", "messages": []}, "messages"),
    ({"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ([1, 2, 3], None),
])
def test_invalid_requests_get_400(gateway: RunningGateway, body: Any, param: str | None) -> None:
    response = post(gateway, body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] == param


def test_malformed_json_gets_400(gateway: RunningGateway) -> None:
    response = httpx.post(gateway.url + CHAT, content=b"{not json", headers=AUTH)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_unknown_model_gets_404(gateway: RunningGateway) -> None:
    response = post(gateway, chat("gpt-9"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_body_size_limit(gateway: RunningGateway) -> None:
    big = chat(messages=[{"role": "user", "content": "x" * 2_100_000}])
    assert post(gateway, big).status_code == 413
    chunked = httpx.post(gateway.url + CHAT, content=iter([b"x" * 1_000_000] * 3), headers=AUTH)
    assert chunked.status_code == 413


def test_models_health_and_readiness(gateway: RunningGateway) -> None:
    models = httpx.get(gateway.url + "/v1/models", headers=AUTH).json()
    assert [m["id"] for m in models["data"]] == ["llama-3.3-70b", "code", "gpt-4o-mini"]
    assert httpx.get(gateway.url + "/v1/models").status_code == 401
    assert httpx.get(gateway.url + "/healthz").status_code == 200
    assert httpx.get(gateway.url + "/readyz").status_code == 200


def test_client_errors_pass_through_without_fallback(gateway: RunningGateway, stubs: dict[str, StubUpstream]) -> None:
    stubs["vllm-customer"].mode = "bad_request"
    try:
        response = post(gateway, chat())
    finally:
        stubs["vllm-customer"].mode = "ok"
    assert response.status_code == 400
    assert response.headers["x-llm-backend"] == "vllm-customer"
    assert response.json()["error"]["message"] == "stub says no"


def test_auth_off_is_explicit(stubs: dict[str, StubUpstream], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOAI_API_KEY", "aoai-test-key")
    config = config_for(stubs)
    config["auth"] = {"enabled": False}
    with RunningGateway(config) as running:
        response = httpx.post(running.url + CHAT, json=chat())
        assert response.status_code == 200


def test_azure_deployments_api_mode(stubs: dict[str, StubUpstream], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOAI_API_KEY", "aoai-test-key")
    config = config_for(stubs)
    config["backends"]["azure-openai"].update(apiMode="deployments", apiVersion="2024-10-21", deployment="mini-prod")
    with RunningGateway(config) as running:
        response = httpx.post(running.url + CHAT, json=chat("gpt-4o-mini"), headers=AUTH)
        assert response.status_code == 200 and response.json()["model"] == "gpt-4o-mini"
    seen = stubs["azure-openai"].seen[-1]
    assert seen.path == "/openai/deployments/mini-prod/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == "aoai-test-key"


def test_lora_adapter_is_served_under_its_own_name(stubs: dict[str, StubUpstream], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOAI_API_KEY", "aoai-test-key")
    config = config_for(stubs)
    config["models"]["support-tone"] = {"vllmModel": "support-tone"}
    with RunningGateway(config) as running:
        response = httpx.post(running.url + CHAT, json=chat("support-tone"), headers=AUTH)
        assert response.status_code == 200 and response.json()["model"] == "support-tone"
        assert stubs["vllm-customer"].seen[-1].body["model"] == "support-tone"
        # Falling back to Azure OpenAI sends the deployment, not the adapter name.
        pinned = httpx.post(running.url + CHAT, json=chat("support-tone"), headers={**AUTH, "x-llm-backend": "azure-openai"})
        assert pinned.status_code == 200
        assert stubs["azure-openai"].seen[-1].body["model"] == "gpt-4o-mini"
