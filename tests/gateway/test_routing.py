"""gateway/routing.py: the rules on their own (no sockets), then routing, keys and model renames
over HTTP against the real gateway and real upstreams."""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest
from starlette.datastructures import Headers

from gateway.backends import UpstreamBackend
from gateway.config import GatewayConfig
from gateway.keys import ANY, UNRESTRICTED, ApiKey
from gateway.routing import Decision, Refusal, Router
from gateway_harness import (AUTH, CHAT, DEMO_KEY, FaultyUpstream, RunningGateway, config_for, example_config,
                             example_gateway, upstream_stubs, write_keys)


def chat(model: str = "llama-3.3-70b", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def key(classes: set[str] = frozenset({ANY}), backends: set[str] = frozenset({ANY}), override: bool = False) -> ApiKey:
    return ApiKey("k", frozenset(classes), frozenset(backends), override)


# ---- the router on its own -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def router() -> Router:
    config = example_config()
    config["backends"]["azure-openai"]["auth"] = {"type": "apiKey", "apiKeyFile": __file__}  # any readable file
    parsed = GatewayConfig.model_validate(config)
    backends = {name: UpstreamBackend(name, backend) for name, backend in parsed.backends.items()}
    return Router(parsed, backends)


def decide(router: Router, headers: dict[str, str] | None = None, model: str = "llama-3.3-70b",
           api_key: ApiKey = UNRESTRICTED, **payload: Any) -> Decision | Refusal:
    return router.decide(Headers(headers=headers or {}), {"model": model, **payload}, model, api_key)


def names(decision: Decision | Refusal) -> tuple[str, list[str]]:
    assert isinstance(decision, Decision), decision
    return decision.route, [b.name for b in decision.candidates]


def test_rules_pick_routes_in_order(router: Router) -> None:
    assert names(decide(router)) == ("customer", ["vllm-customer", "azure-openai"])
    assert names(decide(router, {"x-llm-class": "batch"})) == ("batch", ["vllm-batch", "vllm-customer", "azure-openai"])
    assert names(decide(router, model="code")) == ("code", ["vllm-customer", "azure-openai"])
    assert names(decide(router, response_format={"type": "json_schema"})) == ("structured", ["azure-openai"])
    assert names(decide(router, {"x-llm-backend": "vllm-batch"}, api_key=key(override=True))) == (
        "pinned:vllm-batch", ["vllm-batch"])


@pytest.mark.parametrize("headers,model,code", [
    ({}, "llama-3.3-70b", "class_not_allowed"),                 # the default route is the customer class's
    ({}, "code", "class_not_allowed"),                          # the code route serves the customer class
    ({"x-llm-class": "customer"}, "llama-3.3-70b", "class_not_allowed"),
])
def test_a_class_limited_key_reaches_no_other_class_on_any_route(router: Router, headers: dict[str, str], model: str,
                                                               code: str) -> None:
    """Defect 5: the class was checked only when the header was sent."""
    refusal = decide(router, headers, model=model, api_key=key({"batch"}))
    assert isinstance(refusal, Refusal) and refusal.status == 403 and refusal.code == code
    assert "x-llm-class: batch" in refusal.message, "the refusal says how to send the request instead"


def test_a_class_limited_key_keeps_its_own_class_and_shared_routes(router: Router) -> None:
    batch = key({"batch"})
    assert names(decide(router, {"x-llm-class": "batch"}, api_key=batch))[0] == "batch"
    # Routes that serve no traffic class (Azure-only models, structured output) are open to any key.
    assert names(decide(router, model="gpt-4o-mini", api_key=batch))[0] == "azure"
    assert names(decide(router, response_format={"type": "json_schema"}, api_key=batch))[0] == "structured"
    assert names(decide(router, api_key=key({"customer"})))[0] == "customer"


def test_keys_lose_the_backends_they_may_not_use(router: Router) -> None:
    assert names(decide(router, api_key=key(backends={"azure-openai"}))) == ("customer", ["azure-openai"])
    refused = decide(router, model="gpt-4o-mini", api_key=key(backends={"vllm-customer"}))
    assert isinstance(refused, Refusal) and refused.code == "backend_not_allowed"


def test_queueing_only_while_the_primary_may_serve(router: Router) -> None:
    config = example_config()
    config["backends"]["azure-openai"]["auth"] = {"type": "apiKey", "apiKeyFile": __file__}
    config["routes"]["batch"]["queueSeconds"] = 30
    parsed = GatewayConfig.model_validate(config)
    queued = Router(parsed, {n: UpstreamBackend(n, b) for n, b in parsed.backends.items()})
    assert decide(queued, {"x-llm-class": "batch"}).queue_seconds == 30
    assert decide(queued, {"x-llm-class": "batch"}, api_key=key(backends={"azure-openai"})).queue_seconds == 0


def split_router(**route: Any) -> Router:
    config = example_config()
    config["backends"]["azure-openai"]["auth"] = {"type": "apiKey", "apiKeyFile": __file__}
    config["routes"]["batch"] = route
    parsed = GatewayConfig.model_validate(config)
    return Router(parsed, {n: UpstreamBackend(n, b) for n, b in parsed.backends.items()})


def test_a_split_route_names_its_arm_and_puts_it_first() -> None:
    router = split_router(split=[{"backend": "vllm-batch", "weight": 1}, {"backend": "azure-openai", "weight": 1}],
                          stickyBy="header:x-llm-user", fallbacks=["vllm-customer", "azure-openai"], queueSeconds=20)
    chains = {}
    for user in (f"u{n}" for n in range(50)):
        decision = decide(router, {"x-llm-class": "batch", "x-llm-user": user})
        assert isinstance(decision, Decision)
        chains[decision.arm] = (names(decision)[1], decision.queue_seconds)
    assert chains == {"vllm-batch": (["vllm-batch", "vllm-customer", "azure-openai"], 20),
                      "azure-openai": (["azure-openai", "vllm-customer"], 20)}
    # Routes without a split have no arm.
    assert decide(router).arm == ""


def test_an_arm_the_key_may_not_use_goes_to_its_fallbacks_without_queueing() -> None:
    router = split_router(split=[{"backend": "vllm-batch", "weight": 1}], fallbacks=["azure-openai"], queueSeconds=20)
    decision = decide(router, {"x-llm-class": "batch"}, api_key=key(backends={"azure-openai"}))
    assert isinstance(decision, Decision)
    assert (decision.arm, names(decision)[1], decision.queue_seconds) == ("vllm-batch", ["azure-openai"], 0)
    refused = decide(router, {"x-llm-class": "batch"}, api_key=key(backends={"vllm-customer"}))
    assert isinstance(refused, Refusal) and refused.code == "backend_not_allowed"


def test_every_reachable_backend_is_known_at_start_up() -> None:
    router = split_router(split=[{"backend": "vllm-batch", "weight": 0}, {"backend": "azure-openai", "weight": 2}],
                          fallbacks=["vllm-customer"])
    reachable = router.reachable()
    assert reachable["batch"] == ("vllm-batch", "vllm-customer", "azure-openai")
    assert reachable["customer"] == ("vllm-customer", "azure-openai")
    assert reachable["pinned:vllm-batch"] == ("vllm-batch",)
    assert router.split_arms() == {"batch": {"vllm-batch": 0.0, "azure-openai": 1.0}}


# ---- over HTTP -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, FaultyUpstream]]:
    with upstream_stubs() as started:
        yield started


@pytest.fixture(scope="module")
def gateway(stubs: dict[str, FaultyUpstream], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    keys = tmp_path_factory.mktemp("keys") / "keys.yaml"
    write_keys(keys, {
        DEMO_KEY: {"name": "demo", "classes": ["*"], "backends": ["*"], "backendOverride": True},
        "sk-customer-only": {"name": "customer-team", "classes": ["customer"], "backends": ["vllm-customer"]},
        "sk-batch": {"name": "batch-team", "classes": ["batch"], "backends": ["vllm-batch", "azure-openai"]},
        "sk-no-customer-path": {"name": "overflow-team", "classes": ["*"], "backends": ["vllm-batch", "azure-openai"]},
    })
    config = config_for(stubs)
    config["auth"]["keysFile"] = str(keys)
    with example_gateway(config) as running:
        yield running


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
    response = gateway.post(body, headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-backend"] == backend
    assert response.headers["x-llm-route"] == route
    assert response.headers["x-request-id"]


def test_code_completion_goes_to_vllm(gateway: RunningGateway, stubs: dict[str, FaultyUpstream]) -> None:
    response = gateway.post({"model": "code", "prompt": "def add(a, b):"}, path="/v1/completions")
    assert response.status_code == 200
    assert response.headers["x-llm-backend"] == "vllm-customer"
    assert stubs["vllm-customer"].seen[-1].path == "/v1/completions"


def test_model_names_are_rewritten_both_ways(gateway: RunningGateway, stubs: dict[str, FaultyUpstream]) -> None:
    response = gateway.post(chat(), {"x-request-id": "req-42"})
    assert response.json()["model"] == "llama-3.3-70b"
    seen = stubs["vllm-customer"].seen[-1]
    assert seen.body["model"] == "hybrid-llm-customer"
    assert seen.headers["x-request-id"] == "req-42" == response.headers["x-request-id"]
    gateway.post(chat("gpt-4o-mini"))
    assert stubs["azure-openai"].seen[-1].body["model"] == "gpt-4o-mini"


def test_client_credentials_never_go_upstream(gateway: RunningGateway, stubs: dict[str, FaultyUpstream]) -> None:
    gateway.post(chat("gpt-4o-mini"), {"api-key": "client-should-not-leak", "cookie": "a=b"})
    seen = stubs["azure-openai"].seen[-1]
    assert seen.path == "/openai/v1/chat/completions"
    assert seen.headers["api-key"] == "aoai-test-key"
    assert "authorization" not in seen.headers and "cookie" not in seen.headers
    gateway.post(chat())
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
    response = gateway.post(chat(), headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_a_batch_key_without_the_class_header_stays_off_the_customer_path(gateway: RunningGateway,
                                                                          stubs: dict[str, FaultyUpstream]) -> None:
    """Defect 5: a key limited to batch was served on the customer route (default and model routes)."""
    calls = len(stubs["vllm-customer"].seen)
    for body in (chat(), chat("code")):
        response = gateway.post(body, {"Authorization": "Bearer sk-batch"})
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "class_not_allowed"
    assert len(stubs["vllm-customer"].seen) == calls
    assert gateway.post(chat(), {"Authorization": "Bearer sk-batch", "x-llm-class": "batch"}).status_code == 200
    assert gateway.post(chat("gpt-4o-mini"), {"Authorization": "Bearer sk-batch"}).status_code == 200


def test_keys_are_limited_to_their_backends(gateway: RunningGateway) -> None:
    # overflow-team may not use vllm-customer: the customer route skips it for the Azure fallback...
    skipped = gateway.post(chat(), {"Authorization": "Bearer sk-no-customer-path"})
    assert skipped.headers["x-llm-backend"] == "azure-openai"
    # ...and a route left with no allowed backend is refused.
    refused = gateway.post(chat("gpt-4o-mini"), {"Authorization": "Bearer sk-customer-only"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "backend_not_allowed"
    allowed = gateway.post(chat(), {"Authorization": "Bearer sk-batch", "x-llm-class": "batch"})
    assert allowed.headers["x-llm-backend"] == "vllm-batch"
    # api-key is accepted as well as Authorization.
    assert httpx.post(gateway.url + CHAT, json=chat(), headers={"api-key": DEMO_KEY}).status_code == 200


def test_azure_deployments_api_mode(stubs: dict[str, FaultyUpstream], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOAI_API_KEY", "aoai-test-key")
    config = config_for(stubs)
    config["backends"]["azure-openai"].update(apiMode="deployments", apiVersion="2024-10-21", deployment="mini-prod")
    with RunningGateway(config) as running:
        response = running.post(chat("gpt-4o-mini"))
        assert response.status_code == 200 and response.json()["model"] == "gpt-4o-mini"
    seen = stubs["azure-openai"].seen[-1]
    assert seen.path == "/openai/deployments/mini-prod/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == "aoai-test-key"


def test_lora_adapter_is_served_under_its_own_name(stubs: dict[str, FaultyUpstream], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOAI_API_KEY", "aoai-test-key")
    config = config_for(stubs)
    config["models"]["support-tone"] = {"vllmModel": "support-tone"}
    with RunningGateway(config) as running:
        response = running.post(chat("support-tone"))
        assert response.status_code == 200 and response.json()["model"] == "support-tone"
        assert stubs["vllm-customer"].seen[-1].body["model"] == "support-tone"
        # Falling back to Azure OpenAI sends the deployment, not the adapter name.
        pinned = running.post(chat("support-tone"), {**AUTH, "x-llm-backend": "azure-openai"})
        assert pinned.status_code == 200
        assert stubs["azure-openai"].seen[-1].body["model"] == "gpt-4o-mini"


def test_a_deleted_lora_adapter_falls_back(stubs: dict[str, FaultyUpstream], monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 4: vLLM's 404 for an adapter it no longer has reached callers as their mistake."""
    monkeypatch.setenv("AOAI_API_KEY", "aoai-test-key")
    config = config_for(stubs)
    config["models"]["support-tone"] = {"vllmModel": "support-tone"}
    with RunningGateway(config) as running:
        response = running.post({**chat("support-tone"), "fault": {"vllm-customer": {"status": 404}}})
        assert response.status_code == 200 and response.headers["x-llm-backend"] == "azure-openai"
        assert running.fallbacks("not_found") == 1
