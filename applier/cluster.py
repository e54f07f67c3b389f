"""What the applier reads and writes in the cluster, in its own terms: whether a path has a node
KAITO will admit, where a path's vLLM pods run, the node anchors and the InferenceSets.

Every call may raise kube.ApiError; the convergence loop decides what an error means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from applier.kube import CONFIG_MAPS, DEPLOYMENTS, EVENTS, INFERENCE_SETS, NODES, PODS, KubeClient, Resource

# The labels GPU feature discovery writes and KAITO's byo path reads (kaito pkg/sku/helpers.go
# GetGPUConfigFromNodeLabels); a matching node without any of them makes the webhook refuse.
GPU_LABELS = ("nvidia.com/gpu.product", "nvidia.com/gpu.count", "nvidia.com/gpu.memory")
# How KAITO labels the pods of an InferenceSet's Workspaces (kaito pkg/utils/consts/consts.go).
CREATED_BY_LABEL = "inferenceset.kaito.sh/created-by"


@dataclass(frozen=True)
class NodeCheck:
    """The nodes matching a path's label selector, as KAITO's webhook and byo provisioner see them."""

    matching: int
    gpu_labelled: int
    ready_and_gpu_labelled: int

    @property
    def admissible(self) -> bool:
        """KAITO's webhook refuses while no node matches or any matching node lacks the GPU labels
        (kaito api/v1beta1/workspace_validation.go validateCreateWithInference); its byo
        provisioner needs a Ready, not deleting one (pkg/utils/nodes/nodes.go
        NodeIsReadyAndNotDeleting)."""
        return self.matching > 0 and self.gpu_labelled == self.matching and self.ready_and_gpu_labelled >= 1


@dataclass(frozen=True)
class Placement:
    """Where an InferenceSet's vLLM pods are bound: on nodes matching its selector, or on others
    (replicas from before a change of the selector: KAITO does not move running replicas,
    kaito website/docs/inference.md)."""

    on_matching: int
    on_other: int


@dataclass(frozen=True)
class NodeRow:
    name: str
    ready: str
    gpu_product: str


@dataclass(frozen=True)
class PodRow:
    name: str
    phase: str
    node: str


def is_ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ready and not node["metadata"].get("deletionTimestamp")


def has_gpu_labels(node: dict[str, Any]) -> bool:
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(key) for key in GPU_LABELS)


class Cluster:
    def __init__(self, client: KubeClient, namespace: str, field_manager: str) -> None:
        self.client = client
        self.namespace = namespace
        self.field_manager = field_manager

    # -- nodes and pods
    def node_check(self, node_selector: str) -> NodeCheck:
        nodes = self.client.list(NODES, label_selector=node_selector)
        labelled = [n for n in nodes if has_gpu_labels(n)]
        return NodeCheck(len(nodes), len(labelled), sum(1 for n in labelled if is_ready(n)))

    def placement(self, inference_set: str, node_selector: str) -> Placement:
        matching = {n["metadata"]["name"] for n in self.client.list(NODES, label_selector=node_selector)}
        pods = self.client.list(PODS, self.namespace, label_selector=f"{CREATED_BY_LABEL}={inference_set}")
        bound = [p["spec"]["nodeName"] for p in pods if (p.get("spec") or {}).get("nodeName")]
        on_matching = sum(1 for node in bound if node in matching)
        return Placement(on_matching, len(bound) - on_matching)

    def node_rows(self, node_selector: str) -> list[NodeRow]:
        rows = []
        for node in self.client.list(NODES, label_selector=node_selector):
            ready = next((c.get("status", "") for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), "")
            labels = node["metadata"].get("labels") or {}
            rows.append(NodeRow(node["metadata"]["name"], ready or "<none>", labels.get(GPU_LABELS[0]) or "<none>"))
        return rows

    def pod_rows(self, label_selector: str) -> list[PodRow]:
        return [
            PodRow(p["metadata"]["name"], (p.get("status") or {}).get("phase", "") or "<none>", (p.get("spec") or {}).get("nodeName") or "<none>")
            for p in self.client.list(PODS, self.namespace, label_selector=label_selector)
        ]

    def scheduling_failures(self, pod_name_prefix: str) -> list[str]:
        """The FailedScheduling events of pods whose names start with the prefix (a Deployment's pods)."""
        events = self.client.list(EVENTS, self.namespace, field_selector="reason=FailedScheduling")
        return [
            f"{(e.get('involvedObject') or {}).get('name', '')}: {e.get('message', '')}"
            for e in events
            if str((e.get("involvedObject") or {}).get("name", "")).startswith(pod_name_prefix)
        ]

    # -- what the applier writes
    def apply(self, resource: Resource, obj: dict[str, Any]) -> None:
        obj = {**obj, "metadata": {**obj["metadata"], "namespace": self.namespace}}
        self.client.apply(resource, obj, self.field_manager)

    def deployment_exists(self, name: str) -> bool:
        return self.client.get(DEPLOYMENTS, name, self.namespace) is not None

    def delete_deployment(self, name: str) -> bool:
        return self.client.delete(DEPLOYMENTS, name, self.namespace)

    def deployments(self, label_selector: str) -> list[str]:
        return [d["metadata"]["name"] for d in self.client.list(DEPLOYMENTS, self.namespace, label_selector=label_selector)]

    def inference_sets(self, label_selector: str) -> list[str]:
        return [i["metadata"]["name"] for i in self.client.list(INFERENCE_SETS, self.namespace, label_selector=label_selector)]

    def delete_inference_set(self, name: str) -> bool:
        return self.client.delete(INFERENCE_SETS, name, self.namespace)

    def config_map_uid(self, name: str) -> str | None:
        config_map = self.client.get(CONFIG_MAPS, name, self.namespace)
        return None if config_map is None else config_map["metadata"]["uid"]
