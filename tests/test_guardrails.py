"""Every guardrail stops the render with a message that says what, why and how to fix it."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Render
from hybridllm.errors import UserError

KEY_VAULT_EMPTY = {"modelAccess": {"source": "keyVault"}}

# (id, profile, overrides, phrases the message must contain)
GUARDRAILS: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("customer-on-spot-needs-acknowledgement", "hybrid",
     {"paths": {"customer": {"capacityType": "spot"}}},
     ["paths.customer.capacityType is spot", "30 s notice", "acknowledgeSpotEviction=true"]),
    ("customer-keeps-a-replica", "hybrid",
     {"paths": {"customer": {"replicas": 0}}},
     ["paths.customer.replicas is 0", "cold start takes minutes", "paths.customer.enabled=false"]),
    ("tp-equals-gpu-count", "hybrid",
     {"paths": {"batch": {"vllm": {"tensorParallelSize": 2}}}},
     ["paths.batch.vllm.tensorParallelSize is 2", "has 4 GPUs", "tensorParallelSize=4"]),
    ("tp-equals-gpu-count-other-sku", "hybrid",
     {"paths": {"batch": {"instanceType": "Standard_NC48ads_A100_v4"}}},
     ["tensorParallelSize is 4 but Standard_NC48ads_A100_v4 has 2 GPUs"]),
    ("unknown-sku", "hybrid",
     {"paths": {"customer": {"instanceType": "Standard_ND96isr_H100_v5"}}},
     ["\"Standard_ND96isr_H100_v5\" is not in the SKU table", "Standard_NC96ads_A100_v4", "data/figures.yaml"]),
    ("spot-impossible-in-kaito-mode", "on-demand-kaito",
     {"paths": {"batch": {"capacityType": "spot"}}, "kaito": {"spotInstanceEnabled": True}},
     ["paths.batch.capacityType is spot, but nodePools.mode is kaito", "nodePools.mode=nap"]),
    ("spot-needs-kaito-device-plugin-toleration", "hybrid",
     {"kaito": {"spotInstanceEnabled": False}},
     ["kaito.spotInstanceEnabled is false", "spotInstance.enabled=true", "nvidia.com/gpu"]),
    ("byo-modes-need-byo-kaito", "hybrid",
     {"kaito": {"nodeProvisioner": "karpenter"}},
     ["nodePools.mode is nap", "kaito.nodeProvisioner is karpenter", "nodeProvisioner=byo"]),
    ("kaito-mode-needs-a-provisioner", "on-demand-kaito",
     {"kaito": {"nodeProvisioner": "byo"}},
     ["nodePools.mode is kaito but kaito.nodeProvisioner is byo", "stay Pending"]),
    ("replicas-fit-the-pool", "hybrid",
     {"paths": {"batch": {"replicas": 3}}},
     ["paths.batch.replicas is 3 but paths.batch.nodePool.maxNodes is 2", "maxNodes to at least 3"]),
    ("pool-bounds-ordered", "spot-batch-aks",
     {"paths": {"batch": {"nodePool": {"minNodes": 4}}}},
     ["paths.batch.nodePool.minNodes (4) is above maxNodes (3)"]),
    ("customer-pool-never-empties-in-aks-mode", "spot-batch-aks",
     {"paths": {"customer": {"nodePool": {"minNodes": 0}}}},
     ["paths.customer.nodePool.minNodes is 0 in aks mode", "minNodes>=1"]),
    ("removed-vllm-flag", "hybrid",
     {"paths": {"customer": {"vllm": {"extraArgs": {"swap-space": 4}}}}},
     ["paths.customer.vllm.extraArgs.swap-space", "no longer has --swap-space"]),
    ("flag-owned-by-a-value", "hybrid",
     {"paths": {"batch": {"vllm": {"extraArgs": {"max-model-len": 8192}}}}},
     ["paths.batch.vllm.extraArgs.max-model-len", "dedicated value"]),
    # issue 9, item 4: KAITO passes `--key str(value)`, vLLM's boolean flags take no value
    ("false-boolean-flag", "hybrid",
     {"paths": {"batch": {"vllm": {"extraArgs": {"enforce-eager": False}}}}},
     ["extraArgs.enforce-eager is a boolean", "`--enforce-eager False`", "model_tag", "unrecognized arguments"]),
    ("string-boolean-flag", "hybrid",
     {"paths": {"batch": {"vllm": {"extraArgs": {"enforce-eager": "true"}}}}},
     ["extraArgs.enforce-eager is \"true\", a boolean written as a string", "`--enforce-eager true`"]),
    # issue 9, item 7: KEDA sees batch demand only if Prometheus scrapes the gateway
    ("keda-needs-the-gateway-scraped", "hybrid",
     {"batchAutoscaling": {"enabled": True}},
     ["batchAutoscaling.enabled is true but monitoring.serviceMonitor is false", "stays at minReplicas",
      "batchAutoscaling.gatewayScrapedOtherwise=true"]),
    ("true-boolean-flag", "hybrid",
     {"paths": {"batch": {"vllm": {"extraArgs": {"enforce-eager": True}}}}},
     ["extraArgs.enforce-eager is a boolean", "`--enforce-eager True`", "inference_api.py"]),
    ("prefix-caching-cannot-be-switched-off", "hybrid",
     {"paths": {"batch": {"vllm": {"enablePrefixCaching": False}}}},
     ["paths.batch.vllm.enablePrefixCaching is false", "--no-enable-prefix-caching, takes no value"]),
    # issue 9, item 6: KAITO's derived names must fit 63-character label values
    ("inferenceset-name-fits-kaitos-labels", "hybrid",
     {"fullnameOverride": "a-rather-long-release-name-for-llama-70b"},
     ["the InferenceSet name \"a-rather-long-release-name-for-llama-70b-customer\" is 49 characters",
      "at most 46", "controller-revision-hash"]),
    ("inferenceset-name-fits-kaitos-vm-names", "on-demand-kaito",
     {"fullnameOverride": "a" * 35},
     ["is 44 characters", "at most 43", "in namespace llm", "hostname label"]),
    ("inferenceset-name-starts-with-a-letter", "hybrid",
     {"fullnameOverride": "70b"},
     ["the InferenceSet name \"70b-batch\" must start with a letter", "DNS-1035"]),
    # issue 9, item 2: GPU feature discovery must run on every GPU node
    ("gfd-tolerates-the-gpu-taints", "hybrid",
     {"kaito": {"gpuFeatureDiscovery": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}}},
     ["paths.batch: its GPU nodes carry the taint sku=gpu:NoSchedule", "GetGPUConfigFromNodeLabels",
      "gpu-feature-discovery.nfd.worker.tolerations"]),
    ("gfd-tolerates-the-spot-taint", "hybrid",
     {"kaito": {"gpuFeatureDiscovery": {"tolerations": [{"key": "sku", "operator": "Equal", "value": "gpu"}]}}},
     ["paths.batch: its GPU nodes carry the taint kubernetes.azure.com/scalesetpriority=spot:NoSchedule"]),
    # issue 9, item 5: byo weights live on the OS disk
    ("os-disk-holds-the-weights-in-nap-mode", "hybrid",
     {"nodePools": {"nap": {"osDiskSizeGB": 128}}},
     ["nodePools.nap.osDiskSizeGB is 128", "the 142 GB of llama-3.3-70b-instruct weights", "common_preset.go",
      "at least 213 GB"]),
    # 150 GB holds the weights alone, but not the system and the kubelet's eviction headroom
    ("os-disk-leaves-room-for-the-system", "spot-batch-aks",
     {"nodePools": {"aks": {"osDiskSizeGB": 150}}},
     ["nodePools.aks.osDiskSizeGB is 150", "set nodePools.aks.osDiskSizeGB to 213 or more"]),
    # issue 9, item 3: no scale-from-zero where nothing would bring a node back
    ("keda-cannot-scale-byo-from-zero", "hybrid",
     {"batchAutoscaling": {"enabled": True, "minReplicas": 0}, "monitoring": {"serviceMonitor": True}},
     ["batchAutoscaling.minReplicas is 0 with nodePools.mode=nap", "validateCreateWithInference",
      "byo_provisioner.go", "paths.batch.replicas=0"]),
    ("key-vault-needs-its-coordinates", "hybrid", KEY_VAULT_EMPTY,
     ["modelAccess.keyVault.vaultName is empty", "modelAccess.source=existingSecret"]),
    ("nothing-to-serve", "aoai-only",
     {"azureOpenAI": {"enabled": False}},
     ["nothing to serve", "azureOpenAI.enabled=true"]),
    ("aoai-needs-a-deployment", "aoai-only",
     {"azureOpenAI": {"deployments": None}},
     ["azureOpenAI.deployments is empty"]),
    ("aoai-fallback-is-a-deployment", "hybrid",
     {"azureOpenAI": {"fallbackModel": "gpt-5"}},
     ["azureOpenAI.fallbackModel \"gpt-5\" is not a key of azureOpenAI.deployments (gpt-5.4-mini)"]),
    ("aoai-deployment-needs-a-price", "hybrid",
     {"azureOpenAI": {"deployments": {"gpt-5": {"deployment": "gpt-5"}}}},
     ["azureOpenAI.deployments.gpt-5: priceModel \"\" has no prices in data/figures.yaml", "gpt-4o, gpt-4o-mini"]),
    ("gateway-names-do-not-collide", "hybrid",
     {"gateway": {"codeAliases": ["gpt-5.4-mini"]}},
     ["gateway model name \"gpt-5.4-mini\" is also an Azure OpenAI deployment name"]),
    ("batch-autoscaling-needs-the-batch-path", "hybrid",
     {"batchAutoscaling": {"enabled": True}, "paths": {"batch": {"enabled": False}}},
     ["batchAutoscaling.enabled is true but paths.batch.enabled is false"]),
    ("batch-autoscaling-fits-the-pool", "hybrid",
     {"batchAutoscaling": {"enabled": True, "maxReplicas": 4}, "monitoring": {"serviceMonitor": True}},
     ["batchAutoscaling.maxReplicas (4) is above paths.batch.nodePool.maxNodes (2)"]),
    ("batch-autoscaling-needs-the-gateway", "hybrid",
     {"batchAutoscaling": {"enabled": True, "gatewayScrapedOtherwise": True}, "gateway": {"enabled": False}},
     ["batchAutoscaling scales on the gateway's batch demand", "gateway.enabled is false"]),
    ("incident-switch-needs-azure", "hybrid",
     {"gateway": {"forceAzureOpenAI": True}, "azureOpenAI": {"enabled": False}},
     ["gateway.forceAzureOpenAI is true but azureOpenAI.enabled is false"]),
    ("dashboard-region-has-prices", "hybrid",
     {"monitoring": {"dashboard": {"enabled": True, "region": "westeurope"}}},
     ["monitoring.dashboard.region \"westeurope\" has no spot price for Standard_NC96ads_A100_v4", "eastus"]),
    ("adapter-names-are-distinct", "hybrid",
     {"kaito": {"adapters": [{"name": "code", "image": "myacr.azurecr.io/a:1"}]}},
     ["gateway model names repeat", "llama-3.3-70b, code, code"]),
    ("gateway-autoscaling-bounds", "hybrid",
     {"gateway": {"autoscaling": {"minReplicas": 5, "maxReplicas": 3}}},
     ["gateway.autoscaling.minReplicas (5) is above maxReplicas (3)"]),
    ("split-needs-its-path", "hybrid",
     {"gateway": {"splits": {"batch": {"enabled": True, "azureOpenAIWeight": 10}}}, "paths": {"batch": {"enabled": False}}},
     ["gateway.splits.batch.enabled is true but paths.batch.enabled is false", "vllm-batch arm does not exist",
      "gateway.splits.batch.enabled=false"]),
    ("split-needs-azure-openai", "on-demand",
     {"gateway": {"splits": {"customer": {"enabled": True, "azureOpenAIWeight": 10}}}, "azureOpenAI": {"enabled": False}},
     ["gateway.splits.customer.enabled is true but azureOpenAI.enabled is false", "enable azureOpenAI"]),
    ("split-weights-not-all-zero", "hybrid",
     {"gateway": {"splits": {"customer": {"enabled": True, "vllmWeight": 0, "azureOpenAIWeight": 0}}}},
     ["gateway.splits.customer.vllmWeight and gateway.splits.customer.azureOpenAIWeight are both 0",
      "an arm at 0 is drained"]),
    ("split-sticky-by-key-needs-auth", "hybrid",
     {"gateway": {"splits": {"batch": {"enabled": True, "azureOpenAIWeight": 5, "stickyBy": "key"}},
                  "auth": {"enabled": False}}},
     ["gateway.splits.batch.stickyBy is key but gateway.auth.enabled is false", "stickyBy=header:<name>"]),
    # issue 11: gateway knobs and image pins
    ("extra-env-cannot-replace-the-charts-own", "hybrid",
     {"gateway": {"extraEnv": [{"name": "PYTHONUNBUFFERED", "value": "0"}]}},
     ["gateway.extraEnv sets PYTHONUNBUFFERED, which the chart sets itself", "remove that entry from gateway.extraEnv"]),
    ("extra-env-names-are-distinct", "hybrid",
     {"gateway": {"extraEnv": [{"name": "AZURE_LOG_LEVEL", "value": "info"}, {"name": "AZURE_LOG_LEVEL", "value": "debug"}]}},
     ["gateway.extraEnv sets AZURE_LOG_LEVEL twice", "keep one entry for AZURE_LOG_LEVEL"]),
    ("gateway-image-needs-a-tag-or-digest", "hybrid",
     {"gateway": {"image": {"tag": ""}}},
     ["gateway.image has neither a tag nor a digest", "ghcr.io/hybrid-llm/gateway alone would pull whatever `latest` is",
      "set gateway.image.tag to a version, or gateway.image.digest"]),
    ("anchor-image-needs-a-tag-or-digest", "hybrid",
     {"serving": {"nodeAnchor": {"image": {"tag": "", "digest": ""}}}},
     ["serving.nodeAnchor.image has neither a tag nor a digest", "registry.k8s.io/pause alone"]),
]


@pytest.mark.parametrize("profile,overrides,phrases", [g[1:] for g in GUARDRAILS], ids=[g[0] for g in GUARDRAILS])
def test_guardrail_fires(render: Render, profile: str, overrides: dict[str, Any], phrases: list[str]) -> None:
    with pytest.raises(UserError) as raised:
        render(profile, overrides)
    message = str(raised.value)
    assert message.startswith(f"values/{profile}.yaml with overrides: ")
    assert "execution error" not in message, "the Helm location prefix should be stripped"
    for phrase in phrases:
        assert phrase in message


def test_acknowledged_customer_spot_renders_with_the_spot_taint(render: Render) -> None:
    rendering = render("hybrid", {"paths": {"customer": {"capacityType": "spot", "acknowledgeSpotEviction": True}}})
    pool = rendering.find("NodePool", "hybrid-llm-customer")
    assert {"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"} in pool["spec"]["template"]["spec"]["taints"]


def test_batch_may_park_at_zero_replicas(render: Render) -> None:
    rendering = render("hybrid", {"paths": {"batch": {"replicas": 0}}})
    assert rendering.find("InferenceSet", "hybrid-llm-batch")["spec"]["replicas"] == 0
    # The Job brings up no node for a parked path (and leaves its InferenceSet alone while no node exists).
    plan = rendering.find("ConfigMap", "hybrid-llm-serving")["data"]["plan.tsv"]
    assert "batch\thybrid-llm-batch\t0\t" in plan


def test_longest_allowed_inferenceset_name_renders(render: Render) -> None:
    # 37 + len("-customer") = 46, KAITO's limit: the guardrail must not refuse it.
    name = "a" * 37
    rendering = render("hybrid", {"fullnameOverride": name})
    assert {i["metadata"]["name"] for i in rendering.of_kind("InferenceSet")} == {f"{name}-customer", f"{name}-batch"}


def test_either_path_can_be_switched_off(render: Render) -> None:
    only_customer = render("hybrid", {"paths": {"batch": {"enabled": False}}})
    assert [i["metadata"]["name"] for i in only_customer.of_kind("InferenceSet")] == ["hybrid-llm-customer"]
    assert [p["metadata"]["name"] for p in only_customer.of_kind("NodePool")] == ["hybrid-llm-customer"]
    only_batch = render("hybrid", {"paths": {"customer": {"enabled": False}}})
    assert [i["metadata"]["name"] for i in only_batch.of_kind("InferenceSet")] == ["hybrid-llm-batch"]
