"""KEDA scale-from-zero for the batch path, and the gateway's policy while batch is away."""

from __future__ import annotations

import re

import yaml

from conftest import Render
from gateway.config import GatewayConfig
from hybridllm.crds import CrdCatalog

SCALE = {"batchAutoscaling": {"enabled": True}, "gateway": {"batchQueueSeconds": 120}}


def test_scaled_object_targets_the_batch_inferenceset(render: Render, crd_catalog: CrdCatalog) -> None:
    rendering = render("hybrid", SCALE)
    (scaled,) = rendering.of_kind("ScaledObject")
    assert crd_catalog.problems(scaled) == []
    assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "kaito.sh/v1beta1", "kind": "InferenceSet",
                                                "name": "hybrid-llm-batch"}
    assert scaled["spec"]["minReplicaCount"] == 0 and scaled["spec"]["maxReplicaCount"] == 2
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert 'route="batch"' in trigger["metadata"]["query"] and "llm_gateway_requests_total" in trigger["metadata"]["query"]
    assert re.fullmatch(r"[0-9.]+", trigger["metadata"]["threshold"])
    # KEDA owns the batch replica count; the customer path keeps its fixed one.
    assert "replicas" not in rendering.find("InferenceSet", "hybrid-llm-batch")["spec"]
    assert rendering.find("InferenceSet", "hybrid-llm-customer")["spec"]["replicas"] == 1


def test_gateway_queues_batch_requests_before_spilling(render: Render) -> None:
    config = yaml.safe_load(render("hybrid", SCALE).find("ConfigMap", "hybrid-llm-gateway")["data"]["gateway.yaml"])
    GatewayConfig.model_validate(config)
    assert config["routes"]["batch"] == {"primary": "vllm-batch", "fallbacks": ["azure-gpt-4o-mini"], "queueSeconds": 120}
    assert "queueSeconds" not in config["routes"]["customer"]


def test_autoscaling_is_off_by_default(render: Render) -> None:
    assert not render("hybrid").of_kind("ScaledObject")
