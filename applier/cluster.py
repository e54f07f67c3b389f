"""What the applier reads and writes in the cluster, in its own terms: whether a path has a node
KAITO will admit, where a path's vLLM pods run, the node anchors and the InferenceSets.

Every call may raise kube.ApiError; the convergence loop decides what an error means.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from applier.kube import CONFIG_MAPS, DEPLOYMENTS, EVENTS, INFERENCE_SETS, NODES, PODS, KubeClient, Resource

# The labels GPU feature discovery writes and KAITO's byo path reads (kaito pkg/sku/helpers.go
# GetGPUConfigFromNodeLabels); a matching node without any of them makes the webhook refuse.
GPU_LABELS = ("nvidia.com/gpu.product", "nvidia.com/gpu.count", "nvidia.com/gpu.memory")
# How KAITO labels the pods of an InferenceSet's Workspaces (kaito pkg/utils/consts/consts.go).
CREATED_BY_LABEL = "inferenceset.kaito.sh/created-by"
# KAITO's refusals that a node matching the selector can cure, word for word as
# api/v1beta1/workspace_validation.go validateCreateWithInference writes them (the GPU ones read
# the labels of pkg/sku/helpers.go GetGPUConfigFromNodeLabels). Any other refusal (an instanceType
# in byo mode, a selector with only reserved labels, "Failed to list nodes", an unknown preset)
# stays whatever nodes come.
NODE_REFUSALS = (
    "No nodes found matching the specified label selector",
    "Failed to get GPU config from nvidia labels on node",
    "Non-uniform GPU ",
    "Failed to determine GPU configuration from existing nodes",
)
# knative's prefix to the errors of a webhook's refusal (webhook/resourcesemantics/validation/validation_admit.go).
_VALIDATION_FAILED = "validation failed: "
EVENT_SOURCE = "hybrid-llm-applier"


def node_can_cure(message: str) -> bool:
    """Whether every error of a webhook refusal is one a node can cure. knative writes one error
    per line, an error's details on the next line (apis/field_error.go Error), so a line that is
    not one of KAITO's node texts is another error, or the details of one: no node helps then."""
    errors = message.split(_VALIDATION_FAILED, 1)[-1]
    lines = [line for line in errors.splitlines() if line.strip()]
    return bool(lines) and all(any(text in line for text in NODE_REFUSALS) for line in lines)


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

    def inference_set(self, name: str) -> dict[str, Any] | None:
        return self.client.get(INFERENCE_SETS, name, self.namespace)

    def inference_sets(self, label_selector: str) -> list[dict[str, Any]]:
        return self.client.list(INFERENCE_SETS, self.namespace, label_selector=label_selector)

    def delete_inference_set(self, name: str) -> bool:
        return self.client.delete(INFERENCE_SETS, name, self.namespace)

    def touch_inference_set(self, name: str, note: str) -> None:
        """An annotation written under a field manager of its own (so none of the applied fields
        change hands): an update event that makes KAITO's controller reconcile the object now,
        not after the backoff its refused writes have built up."""
        self.client.apply(INFERENCE_SETS, {
            "apiVersion": "kaito.sh/v1beta1",
            "kind": "InferenceSet",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": {"hybrid-llm.io/teardown": note}},
        }, f"{self.field_manager}-teardown")

    def warn_on(self, inference_set: dict[str, Any], reason: str, message: str) -> None:
        """A Warning Event about the InferenceSet: `kubectl describe inferenceset` lists the Events
        whose involvedObject is it (name, namespace, kind and UID), after the Job's log is gone."""
        meta = inference_set["metadata"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.client.create(EVENTS, {
            "apiVersion": "v1",
            "kind": "Event",
            # client-go's recorder names an Event <object>.<unix nanoseconds in hex>.
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": self.namespace},
            "involvedObject": {"apiVersion": inference_set.get("apiVersion", "kaito.sh/v1beta1"), "kind": "InferenceSet",
                               "name": meta["name"], "namespace": self.namespace, "uid": meta.get("uid", "")},
            "reason": reason,
            "message": message[:1024],
            "type": "Warning",
            "source": {"component": EVENT_SOURCE},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        })

    def config_map_uid(self, name: str) -> str | None:
        config_map = self.client.get(CONFIG_MAPS, name, self.namespace)
        return None if config_map is None else config_map["metadata"]["uid"]
