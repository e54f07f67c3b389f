"""The fields a user relies on: preset, tensor parallelism, SKU, capacity type per path, taints,
and node selectors that match the node pools."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from conftest import PROFILES, Render, inference_config, paths_of
from hybridllm.nodepools import pool_commands
from hybridllm.profiles import load_profile

SKU = "Standard_NC96ads_A100_v4"
PRESET = "llama-3.3-70b-instruct"
# Tolerations KAITO puts on every vLLM pod on Azure (kaito pkg/workspace manifests,
# defaultTolerations, v0.12). A node pool taint outside this set would keep KAITO's pods off it.
KAITO_TOLERATED_TAINTS = {
    ("nvidia.com/gpu", None, "NoSchedule"),
    ("sku", "gpu", "NoSchedule"),
    ("kubernetes.azure.com/scalesetpriority", "spot", "NoSchedule"),
}
GPU_TAINT = ("sku", "gpu", "NoSchedule")
SPOT_TAINT = ("kubernetes.azure.com/scalesetpriority", "spot", "NoSchedule")


def nap_node_labels(pool: dict[str, Any]) -> dict[str, str]:
    """Labels every node of a Karpenter NodePool carries: template labels plus single-valued
    In requirements (Karpenter labels nodes with the value it picked)."""
    labels = dict(pool["spec"]["template"]["metadata"]["labels"])
    for requirement in pool["spec"]["template"]["spec"]["requirements"]:
        if requirement["operator"] == "In" and len(requirement["values"]) == 1:
            labels[requirement["key"]] = requirement["values"][0]
    return labels


def taints(pool: dict[str, Any]) -> set[tuple[str, str | None, str]]:
    return {(t["key"], t.get("value"), t["effect"]) for t in pool["spec"]["template"]["spec"]["taints"]}


def selects(match_labels: dict[str, str], node_labels: dict[str, str]) -> bool:
    return all(node_labels.get(k) == v for k, v in match_labels.items())


@pytest.mark.parametrize("profile", ["hybrid", "on-demand", "spot-batch-aks", "on-demand-kaito"])
def test_both_paths_serve_the_preset_with_tp4(render: Render, profile: str) -> None:
    rendering = render(profile)
    paths = paths_of(rendering)
    assert set(paths) == {"customer", "batch"}
    for name, iset in paths.items():
        assert iset["apiVersion"] == "kaito.sh/v1beta1"
        inference = iset["spec"]["template"]["inference"]
        assert inference["preset"]["name"] == PRESET
        assert inference["preset"]["presetOptions"]["modelAccessSecret"] == "hf-token"
        config = inference_config(rendering, iset)
        assert config["vllm"]["tensor-parallel-size"] == 4
        assert config["kv_cache_cpu_memory_utilization"] == 0, "CPU KV offload must be off by default"
        assert not {"swap-space", "num-scheduler-steps", "max-seq-len-to-capture"} & set(config["vllm"])


def test_customer_is_tuned_for_latency_and_batch_for_throughput(render: Render) -> None:
    rendering = render("hybrid")
    paths = paths_of(rendering)
    customer = inference_config(rendering, paths["customer"])["vllm"]
    batch = inference_config(rendering, paths["batch"])["vllm"]
    assert customer["max-num-seqs"] < batch["max-num-seqs"]
    assert customer["max-num-batched-tokens"] < batch["max-num-batched-tokens"]
    annotations = {n: p["spec"]["template"]["metadata"]["annotations"] for n, p in paths.items()}
    assert annotations["customer"]["kaito.sh/performance-mode"] == "interactivity"
    assert annotations["batch"]["kaito.sh/performance-mode"] == "throughput"


@pytest.mark.parametrize("profile", PROFILES)
def test_no_boolean_reaches_kaitos_vllm_flags(render: Render, profile: str) -> None:
    """KAITO appends each `vllm:` entry as `--key str(value)` (kaito presets/workspace/inference/
    vllm/inference_api.py): a boolean becomes `--flag True`, which vLLM's valueless boolean flags
    cannot take (issue 9, item 4). Prefix caching is vLLM's default, so nothing is written for it."""
    rendering = render(profile)
    for iset in paths_of(rendering).values():
        vllm = inference_config(rendering, iset)["vllm"]
        assert not [k for k, v in vllm.items() if isinstance(v, bool) or v is None], vllm
        assert "enable-prefix-caching" not in vllm and "no-enable-prefix-caching" not in vllm


def test_json_valued_flags_stay_json_strings(render: Render) -> None:
    """vLLM's JSON-valued flags (such as --compilation-config) take a JSON string; the schema allows
    only scalars in extraArgs, so KAITO's str() hands vLLM exactly that string."""
    rendering = render("hybrid", {"paths": {"batch": {"vllm": {"extraArgs": {"compilation-config": '{"level": 3}'}}}}})
    vllm = inference_config(rendering, paths_of(rendering)["batch"])["vllm"]
    assert vllm["compilation-config"] == '{"level": 3}'


def test_cpu_kv_offload_and_extra_args_when_asked_for(render: Render) -> None:
    overrides = {"paths": {"batch": {"vllm": {
        "cpuKvOffload": {"enabled": True, "memoryUtilization": 0.3},
        "extraArgs": {"kv-cache-dtype": "fp8", "max-num-partial-prefills": 2},
    }}}}
    rendering = render("hybrid", overrides)
    config = inference_config(rendering, paths_of(rendering)["batch"])
    assert config["kv_cache_cpu_memory_utilization"] == 0.3
    assert config["vllm"]["kv-cache-dtype"] == "fp8"
    assert config["vllm"]["max-num-partial-prefills"] == 2


def test_nap_pools_pin_the_sku_capacity_and_taints(render: Render) -> None:
    rendering = render("hybrid")
    pools = {p["metadata"]["name"].rsplit("-", 1)[1]: p for p in rendering.of_kind("NodePool")}
    assert set(pools) == {"customer", "batch"}
    expected_capacity = {"customer": "on-demand", "batch": "spot"}
    for name, pool in pools.items():
        labels = nap_node_labels(pool)
        assert labels["node.kubernetes.io/instance-type"] == SKU
        assert labels["karpenter.sh/capacity-type"] == expected_capacity[name]
        assert pool["spec"]["template"]["spec"]["nodeClassRef"]["kind"] == "AKSNodeClass"
        assert pool["spec"]["limits"]["nvidia.com/gpu"] == "8"  # maxNodes 2 x 4 GPUs
        assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"
        assert pool["spec"]["template"]["spec"]["expireAfter"] == "Never"
        assert taints(pool) <= KAITO_TOLERATED_TAINTS
        assert GPU_TAINT in taints(pool)
    assert SPOT_TAINT in taints(pools["batch"])
    assert SPOT_TAINT not in taints(pools["customer"])
    node_class = rendering.of_kind("AKSNodeClass")[0]
    assert node_class["spec"]["gpu"]["mode"] == "Driver"


@pytest.mark.parametrize("profile", ["hybrid", "on-demand"])
def test_each_path_selects_exactly_its_own_nap_pool(render: Render, profile: str) -> None:
    rendering = render(profile)
    pool_labels = {p["metadata"]["name"]: nap_node_labels(p) for p in rendering.of_kind("NodePool")}
    for name, iset in paths_of(rendering).items():
        match = iset["spec"]["labelSelector"]["matchLabels"]
        chosen = [pool for pool, labels in pool_labels.items() if selects(match, labels)]
        assert chosen == [f"hybrid-llm-{name}"], f"{name} selects {chosen}"
        assert "instanceType" not in iset["spec"]["template"].get("resource", {}), "byo mode leaves the SKU to the pool"


def test_customer_can_never_land_on_a_spot_node(render: Render) -> None:
    rendering = render("hybrid")
    customer = paths_of(rendering)["customer"]["spec"]["labelSelector"]["matchLabels"]
    assert customer["karpenter.sh/capacity-type"] == "on-demand"
    for pool in rendering.of_kind("NodePool"):
        if nap_node_labels(pool)["karpenter.sh/capacity-type"] == "spot":
            assert not selects(customer, nap_node_labels(pool))


def test_aks_pools_carry_the_labels_the_paths_select(render: Render) -> None:
    rendering = render("spot-batch-aks")
    commands = {c.path: c for c in pool_commands(load_profile("spot-batch-aks"))}
    paths = paths_of(rendering)
    assert set(commands) == set(paths) == {"customer", "batch"}
    for name, iset in paths.items():
        match = iset["spec"]["labelSelector"]["matchLabels"]
        assert selects(match, commands[name].node_labels()), name
        other = "batch" if name == "customer" else "customer"
        assert not selects(match, commands[other].node_labels()), f"{name} also selects the {other} pool"
    assert paths["batch"]["spec"]["labelSelector"]["matchLabels"]["kubernetes.azure.com/scalesetpriority"] == "spot"
    assert not rendering.of_kind("NodePool") and not rendering.of_kind("AKSNodeClass")


def test_aks_spot_pool_command_has_the_spot_flags() -> None:
    commands = {c.path: c for c in pool_commands(load_profile("spot-batch-aks"))}
    batch, customer = commands["batch"].args, commands["customer"].args
    for flag, value in [("--priority", "Spot"), ("--eviction-policy", "Delete"), ("--spot-max-price", "-1")]:
        assert batch[batch.index(flag) + 1] == value
        assert flag not in customer
    for args in (batch, customer):
        assert args[args.index("--node-vm-size") + 1] == SKU
        assert args[args.index("--node-taints") + 1] == "sku=gpu:NoSchedule"
        assert args[args.index("--gpu-driver") + 1] == "Install"
        assert "--enable-cluster-autoscaler" in args
    assert customer[customer.index("--min-count") + 1] == "1"
    assert batch[batch.index("--min-count") + 1] == "0"
    assert batch[batch.index("--max-count") + 1] == "3"


def test_kaito_mode_sets_the_instance_type_and_renders_no_pools(render: Render) -> None:
    rendering = render("on-demand-kaito")
    for name, iset in paths_of(rendering).items():
        assert iset["spec"]["template"]["resource"]["instanceType"] == SKU
        # KAITO's Karpenter provisioner copies these into its NodePool's template; without the
        # capacity type, Azure's cheapest offering (spot) would do (kaito nodepool.go generateNodePool).
        assert iset["spec"]["labelSelector"]["matchLabels"] == {"hybrid-llm.io/path": name,
                                                                 "karpenter.sh/capacity-type": "on-demand"}
        assert iset["spec"]["nodeCountLimit"] == 2
    assert not rendering.of_kind("NodePool")
    with_gpu_provisioner = render("on-demand-kaito", {"kaito": {"nodeProvisioner": "azure-gpu-provisioner"}})
    for name, iset in paths_of(with_gpu_provisioner).items():
        assert iset["spec"]["labelSelector"]["matchLabels"] == {"hybrid-llm.io/path": name}


def test_stable_service_and_network_policy_select_the_path_pods(render: Render) -> None:
    rendering = render("hybrid")
    for name in ("customer", "batch"):
        selector = {"inferenceset.kaito.sh/created-by": f"hybrid-llm-{name}"}
        service = rendering.find("Service", f"hybrid-llm-{name}-vllm")
        assert service["spec"]["selector"] == selector
        assert service["spec"]["ports"][0]["targetPort"] == 5000
        policy = rendering.find("NetworkPolicy", f"hybrid-llm-{name}-vllm")
        assert policy["spec"]["podSelector"]["matchLabels"] == selector
        assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 5000}]


def gateway_config(rendering) -> dict:
    return yaml.safe_load(rendering.find("ConfigMap", "hybrid-llm-gateway")["data"]["gateway.yaml"])


def test_gateway_backends_point_at_rendered_services(render: Render) -> None:
    from gateway.config import GatewayConfig

    rendering = render("hybrid")
    config = gateway_config(rendering)
    GatewayConfig.model_validate(config)  # the gateway itself accepts what the chart renders
    backends = config["backends"]
    assert set(backends) == {"vllm-customer", "vllm-batch", "azure-gpt-5-4-mini"}
    services = {s["metadata"]["name"] for s in rendering.of_kind("Service")}
    for name in ("customer", "batch"):
        backend = backends[f"vllm-{name}"]
        host = backend["baseURL"].removeprefix("http://").split(".")[0]
        assert host in services
        assert backend["model"] == f"hybrid-llm-{name}"
    # overflow happens before vLLM queues: in-flight limit = max-num-seqs x replicas
    assert backends["vllm-customer"]["maxInFlight"] == 64 and backends["vllm-batch"]["maxInFlight"] == 256
    assert config["routes"]["customer"] == {"primary": "vllm-customer", "fallbacks": ["azure-gpt-5-4-mini"]}
    assert config["routes"]["batch"] == {"primary": "vllm-batch", "fallbacks": ["azure-gpt-5-4-mini"]}
    assert config["routing"]["structuredOutputRoute"] == "structured"
    assert config["models"]["code"] == {"route": "customer"}


def test_gateway_prices_come_from_the_figures_file(render: Render) -> None:
    from hybridllm import figures

    pricing = gateway_config(render("hybrid"))["backends"]["azure-gpt-5-4-mini"]["pricing"]
    source = figures.load()["azureOpenAI"]["gpt-5.4-mini"]
    assert pricing == {k: source[k] for k in ("inputPer1M", "cachedInputPer1M", "outputPer1M")}


def test_aoai_only_renders_no_gpu_objects(render: Render) -> None:
    from gateway.config import GatewayConfig

    rendering = render("aoai-only")
    gpu_kinds = {"InferenceSet", "Workspace", "NodePool", "AKSNodeClass"}
    assert not [o for o in rendering.objects if o.kind in gpu_kinds]
    config = gateway_config(rendering)
    GatewayConfig.model_validate(config)
    assert [b["kind"] for b in config["backends"].values()] == ["azure-openai"]
    assert config["routes"]["customer"]["primary"] == "azure-gpt-5-4-mini"


KEY_VAULT = {"modelAccess": {"source": "keyVault", "keyVault": {
    "vaultName": "llm-secrets", "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "clientId": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}}}


def test_key_vault_sync_feeds_the_secret_kaito_reads(render: Render) -> None:
    rendering = render("hybrid", KEY_VAULT)
    spc = rendering.find("SecretProviderClass", "hybrid-llm-hf-token-sync")
    synced = spc["spec"]["secretObjects"][0]
    assert synced["data"] == [{"objectName": "hf-token", "key": "HF_TOKEN"}]
    for iset in paths_of(rendering).values():
        assert iset["spec"]["template"]["inference"]["preset"]["presetOptions"]["modelAccessSecret"] == synced["secretName"]
    pod = rendering.find("Deployment", "hybrid-llm-hf-token-sync")["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["volumes"][0]["csi"]["volumeAttributes"]["secretProviderClass"] == spc["metadata"]["name"]
    assert rendering.find("NetworkPolicy", "hybrid-llm-hf-token-sync")


def test_key_vault_syncer_runs_locked_down(render: Render) -> None:
    pod = render("hybrid", KEY_VAULT).find("Deployment", "hybrid-llm-hf-token-sync")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
    assert container["readinessProbe"] != container["livenessProbe"]
    assert not container["image"].endswith(":latest")


def test_aks_anchors_declare_the_pools_nodepools_py_creates(render: Render) -> None:
    """In aks mode the pools are outside the render: each node anchor declares the labels and taints
    of the agent pool scripts/nodepools.py creates, so validators can check taints and tolerations."""
    import json

    rendering = render("spot-batch-aks")
    for command in pool_commands(load_profile("spot-batch-aks")):
        anchor = rendering.find("Deployment", f"hybrid-llm-{command.path}-node-anchor")
        declared = json.loads(anchor["metadata"]["annotations"]["hybrid-llm.io/external-node-pool"])
        assert declared["name"] == command.args[command.args.index("--name") + 1]
        assert declared["labels"] == command.node_labels()
        assert declared["osDiskSizeGB"] == int(command.args[command.args.index("--node-osdisk-size") + 1])
        taints = {f"{t['key']}={t['value']}:{t['effect']}" for t in declared["taints"]}
        # --node-taints sets sku=gpu; AKS adds the spot taint to spot pools by itself
        expected = {command.args[command.args.index("--node-taints") + 1]}
        if command.capacity_type == "spot":
            expected.add("kubernetes.azure.com/scalesetpriority=spot:NoSchedule")
        assert taints == expected
        assert anchor["spec"]["template"]["spec"]["nodeSelector"] == command.node_labels()


def test_aks_pools_start_at_their_minimum_with_room_for_the_weights() -> None:
    """Issue 9, item 5: with byo KAITO the 131 GiB of weights go to an emptyDir on the OS disk, so the
    pools get a 300 GB one; a pool starts at its minimum (0 for batch) because the chart's node
    anchor asks for the node at `helm install`, so nothing idles or is scaled away before then."""
    for command in pool_commands(load_profile("spot-batch-aks")):
        args = command.args
        assert int(args[args.index("--node-osdisk-size") + 1]) == 300
        assert args[args.index("--node-count") + 1] == args[args.index("--min-count") + 1]
        if command.path == "batch":
            assert args[args.index("--min-count") + 1] == "0"


def test_gateway_egress_reaches_entra_id_for_workload_identity(render: Render) -> None:
    """Issue 9, item 7: the workload identity token exchange goes to Entra ID, not to the Azure
    OpenAI endpoint, so narrowing azureOpenAICIDRs to a private endpoint must not cut it off."""
    overrides = {"gateway": {"networkPolicy": {"azureOpenAICIDRs": ["10.20.0.0/24"]}}}
    policy = render("hybrid", overrides).find("NetworkPolicy", "hybrid-llm-gateway")
    https = [rule for rule in policy["spec"]["egress"] if rule.get("ports") == [{"protocol": "TCP", "port": 443}]]
    assert [[peer["ipBlock"]["cidr"] for peer in rule["to"]] for rule in https] == [["10.20.0.0/24"], ["0.0.0.0/0"]]
    with_key = render("hybrid", {**overrides, "azureOpenAI": {"auth": {"mode": "apiKey"}}}).find("NetworkPolicy", "hybrid-llm-gateway")
    assert [r for r in with_key["spec"]["egress"] if r.get("ports") == [{"protocol": "TCP", "port": 443}]] == https[:1]


def test_prometheus_is_admitted_to_what_it_scrapes(render: Render) -> None:
    """Issue 9, item 7: with ServiceMonitors on, the Prometheus pods of monitoring.prometheus reach
    the gateway's and each vLLM path's metrics port (the reachability tests judge the whole set)."""
    rendering = render("hybrid", {"monitoring": {"serviceMonitor": True}})
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    for name in ("hybrid-llm-gateway", "hybrid-llm-customer-vllm", "hybrid-llm-batch-vllm"):
        assert peer in rendering.find("NetworkPolicy", name)["spec"]["ingress"][0]["from"], name
    assert peer not in render("hybrid").find("NetworkPolicy", "hybrid-llm-customer-vllm")["spec"]["ingress"][0]["from"]
