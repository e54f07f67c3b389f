"""KEDA autoscaling of the batch path (from zero only where KAITO provisions nodes), and the
gateway's policy while batch is away."""

from __future__ import annotations

import re

import yaml

from conftest import Render
from gateway.config import GatewayConfig
from hybridllm.crds import CrdCatalog

SCALE = {"batchAutoscaling": {"enabled": True}, "gateway": {"batchQueueSeconds": 120},
         "monitoring": {"serviceMonitor": True}}


def test_scaled_object_targets_the_batch_inferenceset(render: Render, crd_catalog: CrdCatalog) -> None:
    rendering = render("hybrid", SCALE)
    (scaled,) = rendering.of_kind("ScaledObject")
    assert crd_catalog.problems(scaled) == []
    assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "kaito.sh/v1beta1", "kind": "InferenceSet",
                                                "name": "hybrid-llm-batch"}
    assert scaled["spec"]["minReplicaCount"] == 1 and scaled["spec"]["maxReplicaCount"] == 2
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
    assert config["routes"]["batch"] == {"primary": "vllm-batch", "fallbacks": ["azure-gpt-5-4-mini"], "queueSeconds": 120}
    assert "queueSeconds" not in config["routes"]["customer"]


def test_autoscaling_is_off_by_default(render: Render) -> None:
    assert not render("hybrid").of_kind("ScaledObject")


def test_the_apply_serving_job_waits_for_kedas_floor(render: Render) -> None:
    """With KEDA on, the Job brings up a node for KEDA's minimum, the replicas it will ask for."""
    plan = render("hybrid", SCALE).find("ConfigMap", "hybrid-llm-serving")["data"]["plan.tsv"]
    batch = next(line.split("\t") for line in plan.splitlines() if line.startswith("batch\t"))
    assert batch[2] == "1"


def test_scale_from_zero_is_allowed_where_kaito_provisions_nodes(render: Render) -> None:
    """In kaito mode KAITO's own provisioner brings the node for each new replica, so no node
    has to exist before KEDA scales the InferenceSet up from zero."""
    rendering = render("on-demand-kaito", {"batchAutoscaling": {"enabled": True, "minReplicas": 0},
                                          "monitoring": {"serviceMonitor": True}})
    (scaled,) = rendering.of_kind("ScaledObject")
    assert scaled["spec"]["minReplicaCount"] == 0
