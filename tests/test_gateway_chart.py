"""The gateway's part of the chart: a hardened Deployment, its companions, and a config the
gateway accepts in every auth mode."""

from __future__ import annotations

import pytest
import yaml

from conftest import Render
from gateway.config import GatewayConfig
from hybridllm.crds import CrdCatalog
from hybridllm.errors import UserError

GATEWAY = "hybrid-llm-gateway"


def config_of(rendering) -> dict:
    return yaml.safe_load(rendering.find("ConfigMap", GATEWAY)["data"]["gateway.yaml"])


def test_gateway_pod_is_locked_down(render: Render) -> None:
    deployment = render("hybrid").find("Deployment", GATEWAY)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"]
    assert context["capabilities"] == {"drop": ["ALL"]} and context["runAsUser"] > 10000
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert not container["image"].endswith(":latest") and ":" in container["image"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["terminationGracePeriodSeconds"] == 45  # shutdownGraceSeconds 30 + 15
    assert len(pod["topologySpreadConstraints"]) == 2


def test_gateway_replicas_pdb_and_hpa(render: Render) -> None:
    rendering = render("hybrid")
    assert "replicas" not in rendering.find("Deployment", GATEWAY)["spec"], "the HPA owns the replica count"
    assert rendering.find("HorizontalPodAutoscaler", GATEWAY)["spec"]["minReplicas"] == 2
    assert rendering.find("PodDisruptionBudget", GATEWAY)["spec"]["minAvailable"] == 1
    fixed = render("hybrid", {"gateway": {"autoscaling": {"enabled": False}, "replicas": 3}})
    assert fixed.find("Deployment", GATEWAY)["spec"]["replicas"] == 3
    assert not fixed.of_kind("HorizontalPodAutoscaler")


def test_config_change_rolls_the_pods(render: Render) -> None:
    def checksum(rendering) -> str:
        return rendering.find("Deployment", GATEWAY)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(render("hybrid")) != checksum(render("hybrid", {"gateway": {"maxBodyBytes": 4096}}))


def test_workload_identity_mode(render: Render) -> None:
    rendering = render("hybrid", {"azureOpenAI": {"auth": {"clientId": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}}})
    account = rendering.find("ServiceAccount", GATEWAY)
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
    pod = rendering.find("Deployment", GATEWAY)["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    auth = config_of(rendering)["backends"]["azure-gpt-5-4-mini"]["auth"]
    assert auth == {"type": "entra", "clientId": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}


def test_api_key_mode_mounts_the_secret_as_a_file(render: Render) -> None:
    rendering = render("hybrid", {"azureOpenAI": {"auth": {"mode": "apiKey"}}})
    config = config_of(rendering)
    GatewayConfig.model_validate(config)
    key_file = config["backends"]["azure-gpt-5-4-mini"]["auth"]["apiKeyFile"]
    pod = rendering.find("Deployment", GATEWAY)["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "azure-openai-key")
    volume = next(v for v in pod["volumes"] if v["name"] == "azure-openai-key")
    assert key_file == f"{mount['mountPath']}/api-key"
    assert volume["secret"]["secretName"] == "azure-openai-api-key"
    assert "env" not in pod["containers"][0] or all("api" not in e["name"].lower() for e in pod["containers"][0]["env"])
    assert "azure.workload.identity/use" not in rendering.find("Deployment", GATEWAY)["spec"]["template"]["metadata"]["labels"]


def test_no_secret_material_in_config_maps(render: Render) -> None:
    rendering = render("hybrid", {"azureOpenAI": {"auth": {"mode": "apiKey"}}})
    for config_map in rendering.of_kind("ConfigMap"):
        text = yaml.safe_dump(config_map["data"])
        assert "hf_" not in text and "sk-" not in text and "api-key:" not in text


def test_auth_off_needs_no_keys_secret(render: Render) -> None:
    rendering = render("hybrid", {"gateway": {"auth": {"enabled": False}}})
    assert config_of(rendering)["auth"] == {"enabled": False}
    pod = rendering.find("Deployment", GATEWAY)["spec"]["template"]["spec"]
    assert all(v["name"] != "keys" for v in pod["volumes"])


def test_batch_can_spill_to_the_customer_path(render: Render) -> None:
    config = config_of(render("hybrid", {"gateway": {"batchFallbacks": ["customer", "azureOpenAI"]}}))
    assert config["routes"]["batch"] == {"primary": "vllm-batch", "fallbacks": ["vllm-customer", "azure-gpt-5-4-mini"]}
    assert config_of(render("hybrid", {"gateway": {"batchFallbacks": []}}))["routes"]["batch"] == {
        "primary": "vllm-batch", "fallbacks": []}


def test_explicit_pricing_overrides_the_figures(render: Render) -> None:
    deployments = {"gpt-5": {"deployment": "gpt-5-prod", "pricing": {"inputPer1M": 1.25, "outputPer1M": 10}}}
    config = config_of(render("hybrid", {"azureOpenAI": {"deployments": deployments, "fallbackModel": "gpt-5"}}))
    assert config["backends"]["azure-gpt-5"]["pricing"] == {"inputPer1M": 1.25, "outputPer1M": 10}
    assert config["backends"]["azure-gpt-5"]["deployment"] == "gpt-5-prod"
    assert config["routes"]["customer"]["fallbacks"] == ["azure-gpt-5"]


def test_network_policies_connect_gateway_and_vllm_only(render: Render) -> None:
    rendering = render("hybrid")
    gateway_labels = rendering.find("Deployment", GATEWAY)["spec"]["selector"]["matchLabels"]
    for name in ("customer", "batch"):
        policy = rendering.find("NetworkPolicy", f"hybrid-llm-{name}-vllm")
        assert policy["spec"]["ingress"][0]["from"] == [{"podSelector": {"matchLabels": gateway_labels}}]
    egress = rendering.find("NetworkPolicy", GATEWAY)["spec"]["egress"]
    targets = [rule.get("to") for rule in egress]
    assert [{"podSelector": {"matchLabels": {"inferenceset.kaito.sh/created-by": "hybrid-llm-batch"}}}] in targets
    assert [{"ipBlock": {"cidr": "0.0.0.0/0"}}] in targets
    assert all(port["port"] in (53, 5000, 443) for rule in egress for port in rule["ports"])


def test_service_monitors_match_the_real_crd(render: Render, crd_catalog: CrdCatalog) -> None:
    rendering = render("hybrid", {"monitoring": {"serviceMonitor": True, "labels": {"release": "prom"}}})
    monitors = rendering.of_kind("ServiceMonitor")
    assert sorted(m["metadata"]["name"] for m in monitors) == [
        "hybrid-llm-batch-vllm", "hybrid-llm-customer-vllm", "hybrid-llm-gateway"]
    services = {s["metadata"]["name"]: s for s in rendering.of_kind("Service")}
    for monitor in monitors:
        assert crd_catalog.problems(monitor) == []
        assert monitor["metadata"]["labels"]["release"] == "prom"
        selected = [n for n, s in services.items()
                    if all(s["metadata"]["labels"].get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())]
        assert selected == [monitor["metadata"]["name"]]


def test_incident_switch_sends_every_route_to_azure(render: Render) -> None:
    config = config_of(render("hybrid", {"gateway": {"forceAzureOpenAI": True, "batchQueueSeconds": 60}}))
    GatewayConfig.model_validate(config)
    for name in ("customer", "batch", "structured"):
        assert config["routes"][name] == {"primary": "azure-gpt-5-4-mini", **({"fallbacks": []} if name != "structured" else {})}
    assert config["models"]["code"] == {"route": "customer"}
    # The paths stay configured, so x-llm-backend can still reach them for checks.
    assert {"vllm-customer", "vllm-batch"} <= set(config["backends"])


def test_adapters_reach_both_inferencesets(render: Render, crd_catalog: CrdCatalog) -> None:
    adapters = [{"name": "support-tone", "image": "myacr.azurecr.io/adapters/support-tone:1.0",
                 "imagePullSecrets": ["acr-pull"]}]
    rendering = render("hybrid", {"kaito": {"adapters": adapters}})
    for iset in rendering.of_kind("InferenceSet"):
        assert iset["spec"]["template"]["inference"]["adapters"] == [
            {"source": {"name": "support-tone", "image": "myacr.azurecr.io/adapters/support-tone:1.0",
                        "imagePullSecrets": ["acr-pull"]}}]
        assert crd_catalog.problems(iset) == []


def test_adapters_become_public_models(render: Render) -> None:
    adapters = [{"name": "support-tone", "image": "myacr.azurecr.io/adapters/support-tone:1.0"}]
    config = config_of(render("hybrid", {"kaito": {"adapters": adapters}}))
    GatewayConfig.model_validate(config)
    assert config["models"]["support-tone"] == {"route": "customer", "vllmModel": "support-tone"}


def test_limits_and_timeouts_reach_the_gateway_config(render: Render) -> None:
    values = {"gateway": {"maxHeaderBytes": 32768, "uploadTimeoutSeconds": 10, "maxUpstreamBodyBytes": 8388608,
                          "connectTimeoutSeconds": 1.5, "streamIdleTimeoutSeconds": 45, "requestTimeoutSeconds": 900,
                          "auth": {"reloadSeconds": 5}}}
    config = config_of(render("hybrid", values))
    parsed = GatewayConfig.model_validate(config)
    assert (parsed.server.max_header_bytes, parsed.server.upload_timeout_seconds,
            parsed.server.max_upstream_body_bytes, parsed.auth.reload_seconds) == (32768, 10, 8388608, 5)
    for name, backend in parsed.backends.items():
        assert (backend.connect_timeout_seconds, backend.stream_idle_timeout_seconds,
                backend.request_timeout_seconds) == (1.5, 45, 900), name
    assert parsed.backends["vllm-customer"].first_byte_timeout_seconds == 30
    assert parsed.backends["azure-gpt-5-4-mini"].first_byte_timeout_seconds == 60


def test_default_limits_are_the_gateway_defaults(render: Render) -> None:
    """The chart states every limit explicitly; its defaults are the gateway's own."""
    from gateway.config import Auth, Server

    config = config_of(render("hybrid"))
    assert GatewayConfig.model_validate(config).server == Server(**config["server"])
    defaults = Server()
    assert config["server"] == {"maxHeaderBytes": defaults.max_header_bytes, "maxBodyBytes": defaults.max_body_bytes,
                                "uploadTimeoutSeconds": defaults.upload_timeout_seconds,
                                "maxUpstreamBodyBytes": defaults.max_upstream_body_bytes,
                                "shutdownGraceSeconds": defaults.shutdown_grace_seconds}
    assert config["auth"]["reloadSeconds"] == Auth.model_fields["reload_seconds"].default


@pytest.mark.parametrize("values,phrase", [
    ({"maxHeaderBytes": 100}, "/gateway/maxHeaderBytes"),
    ({"uploadTimeoutSeconds": 0}, "/gateway/uploadTimeoutSeconds"),
    ({"maxUpstreamBodyBytes": "16Mi"}, "/gateway/maxUpstreamBodyBytes"),
    ({"streamIdleTimeoutSeconds": -1}, "/gateway/streamIdleTimeoutSeconds"),
    ({"auth": {"reloadSeconds": 0}}, "/gateway/auth/reloadSeconds"),
])
def test_schema_rejects_bad_limits(render: Render, values: dict, phrase: str) -> None:
    with pytest.raises(UserError) as raised:
        render("hybrid", {"gateway": values})
    assert "values.schema.json rejects" in str(raised.value) and phrase in str(raised.value)


# ---- A/B splits (gateway.splits.<path>) ------------------------------------------------------------

AZURE = "azure-gpt-5-4-mini"


def split_values(path: str = "customer", **split) -> dict:
    return {"gateway": {"splits": {path: {"enabled": True, **split}}}}


def test_a_split_becomes_the_paths_route(render: Render) -> None:
    config = config_of(render("hybrid", split_values(vllmWeight=65, azureOpenAIWeight=35)))
    GatewayConfig.model_validate(config)
    assert config["routes"]["customer"] == {
        "split": [{"backend": "vllm-customer", "weight": 65}, {"backend": AZURE, "weight": 35}],
        "stickyBy": "header:x-llm-user",
        # Each arm falls back along the path's chain; the gateway skips the arm in its own chain.
        "fallbacks": ["vllm-customer", AZURE]}
    # Everything else keeps its shape: batch, and the routes of the code alias and structured output.
    assert config["routes"]["batch"] == {"primary": "vllm-batch", "fallbacks": [AZURE]}
    assert config["routes"]["structured"] == {"primary": AZURE}
    assert config["models"]["code"] == {"route": "customer"}


def test_a_batch_split_keeps_the_batch_chain_and_queue(render: Render) -> None:
    values = {"gateway": {"splits": {"batch": {"enabled": True, "vllmWeight": 0, "azureOpenAIWeight": 1,
                                               "stickyBy": ""}},
                          "batchFallbacks": ["customer", "azureOpenAI"], "batchQueueSeconds": 60}}
    config = config_of(render("hybrid", values))
    GatewayConfig.model_validate(config)
    assert config["routes"]["batch"] == {
        "split": [{"backend": "vllm-batch", "weight": 0}, {"backend": AZURE, "weight": 1}],
        "fallbacks": ["vllm-batch", "vllm-customer", AZURE], "queueSeconds": 60}


def test_without_a_split_every_render_is_unchanged(render: Render) -> None:
    """Weights and stickiness of a split that is not enabled change nothing at all."""
    dormant = {"gateway": {"splits": {name: {"enabled": False, "vllmWeight": 1, "azureOpenAIWeight": 99, "stickyBy": "key"}
                                      for name in ("customer", "batch")}}}
    for profile in ("hybrid", "aoai-only", "on-demand"):
        assert render(profile).to_yaml() == render(profile, dormant).to_yaml(), profile
    assert config_of(render("hybrid"))["routes"]["customer"] == {"primary": "vllm-customer", "fallbacks": [AZURE]}


def test_the_incident_switch_overrides_a_split(render: Render) -> None:
    values = {"gateway": {"forceAzureOpenAI": True, "splits": {"customer": {"enabled": True, "azureOpenAIWeight": 10}}}}
    assert config_of(render("hybrid", values))["routes"]["customer"] == {"primary": AZURE, "fallbacks": []}


@pytest.mark.parametrize("split,phrase", [
    ({"vllmWeight": -1}, "/gateway/splits/customer/vllmWeight"),
    ({"azureOpenAIWeight": -0.5}, "/gateway/splits/customer/azureOpenAIWeight"),
    ({"azureOpenAIWeight": "35%"}, "/gateway/splits/customer/azureOpenAIWeight"),
    ({"stickyBy": "cookie:session"}, "/gateway/splits/customer/stickyBy"),
    ({"stickyBy": "header:"}, "/gateway/splits/customer/stickyBy"),
    ({"weight": 5}, "additional properties 'weight' not allowed"),
])
def test_schema_rejects_bad_splits(render: Render, split: dict, phrase: str) -> None:
    with pytest.raises(UserError) as raised:
        render("hybrid", split_values(**split))
    assert "values.schema.json rejects" in str(raised.value) and phrase in str(raised.value)


def test_the_rendered_split_routes_users_in_the_real_gateway(render: Render, tmp_path, monkeypatch) -> None:
    """The chart's config, with only the cluster addresses and secrets swapped for local ones,
    splits real traffic by the chart's weights."""
    import httpx

    from gateway_harness import DEMO_KEY, FaultyUpstream, RunningGateway, write_keys

    config = config_of(render("hybrid", split_values(vllmWeight=65, azureOpenAIWeight=35)))
    stubs = {"vllm-customer": FaultyUpstream(name="vllm-customer").start(),
             "vllm-batch": FaultyUpstream(name="vllm-batch").start(),
             AZURE: FaultyUpstream(name=AZURE, azure=True).start()}
    try:
        for name, stub in stubs.items():
            backend = config["backends"][name]
            if backend["kind"] == "vllm":
                backend["baseURL"] = f"http://127.0.0.1:{stub.port}/v1"
            else:
                backend["endpoint"] = f"http://127.0.0.1:{stub.port}"
                backend["auth"] = {"type": "apiKey", "apiKeyEnv": "AOAI_API_KEY"}
        keys = tmp_path / "keys.yaml"
        write_keys(keys, {DEMO_KEY: {"name": "demo"}})
        config["auth"]["keysFile"] = str(keys)
        monkeypatch.setenv("AOAI_API_KEY", "k")
        landed = []
        with RunningGateway(config) as gateway, httpx.Client(base_url=gateway.url) as client:
            for n in range(400):
                response = client.post("/v1/chat/completions", json={"model": "llama-3.3-70b", "messages": [
                    {"role": "user", "content": "hi"}]}, headers={"Authorization": f"Bearer {DEMO_KEY}",
                                                                  "x-llm-user": f"user-{n}"})
                assert response.status_code == 200 and response.headers["x-llm-route"] == "customer"
                landed.append(response.headers["x-llm-backend"])
            again = client.post("/v1/chat/completions", json={"model": "llama-3.3-70b", "messages": [
                {"role": "user", "content": "hi"}]}, headers={"Authorization": f"Bearer {DEMO_KEY}", "x-llm-user": "user-7"})
            assert again.headers["x-llm-backend"] == landed[7]
    finally:
        for stub in stubs.values():
            stub.stop()
    assert set(landed) == {"vllm-customer", AZURE}
    assert abs(100 * landed.count("vllm-customer") / len(landed) - 65) <= 7
