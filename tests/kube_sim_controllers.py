"""The controllers of the simulated cluster, each reduced to the behaviour the serving applier
relies on, with the upstream code it stands for. Upstream paths are in kaito-project/kaito at
056b828 (the KAITO the chart targets), kubernetes-sigs/karpenter at 2266468 and kubernetes/kubernetes.

Every controller is a `tick(now)` that looks at the store and acts, called a few dozen times a
second by the cluster's loop; delays are measured from when a controller first saw the condition.
"""

from __future__ import annotations

import copy
import itertools
import random
import string
from dataclasses import dataclass
from typing import Any, Callable

from hybridllm import figures
from kube_sim_store import BY_KIND, RESOURCE_TYPES, LabelSelector, Obj, ObjectStore, ResourceType, now_rfc3339

NODE, POD, EVENT = BY_KIND["Node"], BY_KIND["Pod"], BY_KIND["Event"]
DEPLOYMENT, INFERENCE_SET, NODE_POOL = BY_KIND["Deployment"], BY_KIND["InferenceSet"], BY_KIND["NodePool"]
DEFAULT_INSTANCE_TYPE = "Standard_NC96ads_A100_v4"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


def gfd_labels(instance_type: str) -> dict[str, str]:
    """What GPU feature discovery writes on a node of the SKU, from data/figures.yaml: the NVML
    product name with spaces turned into dashes, the GPU count, and the memory of one GPU in MiB
    (NVIDIA k8s-device-plugin gpu-feature-discovery). Standard_NC96ads_A100_v4 has 4 x NVIDIA A100
    80GB PCIe: NVIDIA-A100-80GB-PCIe, 4, 81920. KAITO's byo path reads these three
    (pkg/sku/helpers.go GetGPUConfigFromNodeLabels)."""
    sku = figures.skus()[instance_type]
    return {
        "nvidia.com/gpu.product": str(sku["gpuModel"]).replace(" ", "-"),
        "nvidia.com/gpu.count": str(sku["gpus"]),
        "nvidia.com/gpu.memory": str(int(sku["gpuMemoryGiB"]) * 1024),
    }


def node_gfd_labels(node: Obj) -> dict[str, str]:
    instance_type = node["metadata"].get("labels", {}).get(INSTANCE_TYPE_LABEL, DEFAULT_INSTANCE_TYPE)
    return gfd_labels(instance_type if instance_type in figures.skus() else DEFAULT_INSTANCE_TYPE)


GPU_LABELS = gfd_labels(DEFAULT_INSTANCE_TYPE)
CREATED_BY = "inferenceset.kaito.sh/created-by"  # pkg/utils/consts/consts.go WorkspaceCreatedByInferenceSetLabel
INFERENCE_SET_FINALIZER = "inferenceset.finalizer.kaito.sh"  # pkg/utils/consts/consts.go InferenceSetFinalizer
# Some of the presets this KAITO knows (presets/workspace/models/supported_models.yaml); the chart's default is among them.
KNOWN_PRESETS = frozenset({"llama-3.3-70b-instruct", "phi-4-mini-instruct", "qwen2.5-coder-7b-instruct"})


@dataclass(frozen=True)
class Timings:
    """Seconds each simulated controller takes; `gpu_labels=None` means GFD never labels a node."""

    node_launch: float = 0.6  # Karpenter: Pending pod seen -> Node Ready
    gpu_labels: float | None = 0.4  # GFD: Node Ready -> nvidia.com labels
    vllm_pod: float = 0.3  # KAITO: admissible node and InferenceSet -> vLLM pod bound
    tick: float = 0.05


def _suffix(length: int = 5) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=length))


# ---- scheduling predicates (kubernetes/kubernetes) ---------------------------------------------


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """k8s.io/api/core/v1/toleration.go ToleratesTaint: an empty effect matches all effects, an
    empty key with Exists matches every taint, Equal (the default operator) compares values."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return True
    return toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get("value", "")


def tolerates_all(tolerations: list[dict[str, Any]], taints: list[dict[str, Any]]) -> bool:
    """Only NoSchedule and NoExecute taints keep a pod off a node (PreferNoSchedule is a hint)."""
    return all(
        any(tolerates(t, taint) for t in tolerations)
        for taint in taints
        if taint.get("effect") in ("NoSchedule", "NoExecute")
    )


def node_ready(node: Obj) -> bool:
    """kaito pkg/utils/nodes/nodes.go NodeIsReadyAndNotDeleting."""
    conditions = node.get("status", {}).get("conditions", [])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ready and not node["metadata"].get("deletionTimestamp")


def pod_fits(pod: Obj, node: Obj) -> bool:
    """kube-scheduler's NodeAffinity (nodeSelector) and TaintToleration filters, on a Ready node."""
    labels = node["metadata"].get("labels", {})
    selector = pod["spec"].get("nodeSelector") or {}
    return (
        node_ready(node)
        and all(labels.get(k) == v for k, v in selector.items())
        and tolerates_all(pod["spec"].get("tolerations") or [], node["spec"].get("taints") or [])
    )


# ---- KAITO's admission webhook ----------------------------------------------------------------


class KaitoWebhook:
    """Admission of InferenceSets, create and update alike (the metadata, the finalizers and the
    /status subresource: knative.dev/pkg webhook/resourcesemantics/validation/reconcile_config.go
    registers `inferencesets` and `inferencesets/status`), with KAITO installed nodeProvisioner=byo
    (feature gate disableNodeAutoProvisioning). Nothing looks at deletionTimestamp, so an
    InferenceSet being deleted is validated like any other.

    api/v1beta1/inferenceset_validation.go (*InferenceSet).Validate: validateCreate / validateUpdate
    refuse an instanceType in byo mode (validateInstanceType), then ValidateInferenceSetWorkspace =
    pkg/utils/inferenceset/inferenceset.go ValidateWorkspaceForInferenceSet runs the child
    Workspace's create checks. There an unknown preset is refused ("Unsupported inference preset
    name") without looking at nodes; for a known one in byo mode,
    api/v1beta1/workspace_validation.go validateCreateWithInference lists the nodes matching
    labelSelector.matchLabels and refuses when there are none or when any of them lacks
    nvidia.com/gpu.{product,count,memory} (pkg/sku/helpers.go GetGPUConfigFromNodeLabels). The
    text is knative's: validation_admit.go prefixes "validation failed: ", apis/field_error.go
    Error() writes each error as "<message>: <paths>" (then "\n<details>" when there are any) and
    joins them with newlines.
    """

    name = "validation.inferenceset.kaito.sh"

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        # Called with the InferenceSet before a client's write is reviewed: lets a test land a
        # spot eviction between a client's look at the nodes and its write.
        self.before_review: Callable[[Obj], None] | None = None

    def __call__(self, rt: ResourceType, operation: str, new: Obj, old: Obj | None) -> str | None:
        """The API server's admission of a client's write."""
        if rt is INFERENCE_SET and self.before_review:
            self.before_review(new)
        return self.review(rt, operation, new, old)

    def review(self, rt: ResourceType, operation: str, new: Obj, old: Obj | None) -> str | None:
        if rt is not INFERENCE_SET:
            return None
        problems = [p for p in (self.instance_type_problem(new), self.preset_problem(new) or self.node_problem(new)) if p]
        if not problems:
            return None
        return f'admission webhook "{self.name}" denied the request: validation failed: ' + "\n".join(problems)

    @staticmethod
    def instance_type_problem(inference_set: Obj) -> str | None:
        """validateInstanceType in byo mode: apis.ErrInvalidValue(instanceType, path, details)."""
        resource = (inference_set.get("spec", {}).get("template") or {}).get("resource") or {}
        instance_type = resource.get("instanceType")
        if not instance_type:
            return None
        return (f"invalid value: {instance_type}: spec.template.resource.instanceType\n"
                "instanceType must be empty when nodeProvisioner is byo")

    @staticmethod
    def preset_problem(inference_set: Obj) -> str | None:
        preset = ((inference_set.get("spec", {}).get("template") or {}).get("inference") or {}).get("preset") or {}
        name = preset.get("name")
        if name and name.lower() not in KNOWN_PRESETS:
            return f"invalid value: Unsupported inference preset name {name}: spec.template.inference.presetName"
        return None

    def node_problem(self, inference_set: Obj) -> str | None:
        match_labels = (inference_set.get("spec", {}).get("labelSelector") or {}).get("matchLabels") or {}
        nodes = self.store.list(NODE, labels=LabelSelector.from_match_labels(match_labels))
        if not nodes:
            return "No nodes found matching the specified label selector: "
        first: dict[str, str] | None = None
        for node in nodes:
            labels = node["metadata"].get("labels", {})
            name = node["metadata"]["name"]
            if any(key not in labels for key in GPU_LABELS):
                return f"Failed to get GPU config from nvidia labels on node {name}: missing required nvidia.com labels on node {name}: "
            if first is None:
                first = labels
            elif labels["nvidia.com/gpu.product"] != first["nvidia.com/gpu.product"]:
                return (f"Non-uniform GPU product: node {name} has {labels['nvidia.com/gpu.product']} GPUs, but previous node has "
                        f"{first['nvidia.com/gpu.product']} GPUs, all nodes must have the same GPU product for homogeneous placement: ")
        return None


# ---- workload controllers (kubernetes/kubernetes) ---------------------------------------------


class GarbageCollector:
    """pkg/controller/garbagecollector, reduced: a namespaced object all of whose owners are gone is
    deleted (background propagation: a deleted Deployment's pods, or what a deleted ConfigMap
    owns). An owner is gone when no object has its UID, as the collector finds when it looks the
    owner up (garbagecollector.go attemptToDeleteItem, isDangling): so an ownerReference whose UID
    was never filled in gets its object deleted at once, as on a real cluster."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def tick(self, now: float) -> None:
        types = [rt for rt in RESOURCE_TYPES if rt.namespaced]
        everything = [(rt, obj) for rt in types for obj in self.store.list(rt)]
        live = {obj["metadata"]["uid"] for rt in RESOURCE_TYPES for obj in self.store.list(rt)}
        for rt, obj in everything:
            owners = obj["metadata"].get("ownerReferences") or []
            if owners and not obj["metadata"].get("deletionTimestamp") and not any(o.get("uid") in live for o in owners):
                meta = obj["metadata"]
                deleted = self.store.delete(rt, meta["namespace"], meta["name"])
                gone = ", ".join(f"{o.get('kind')}/{o.get('name')}" for o in owners)
                held = " (held by its finalizers)" if deleted and deleted["metadata"].get("deletionTimestamp") else ""
                self.store.record("garbage-collected", f"{rt.kind}/{meta['name']}", f"its owner {gone} is gone{held}")


class DeploymentController:
    """pkg/controller/deployment, reduced: a Deployment has spec.replicas pods made from its
    template (the ReplicaSet in between is left out). Pods whose Deployment is gone are the
    GarbageCollector's."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def tick(self, now: float) -> None:
        deployments = {d["metadata"]["uid"]: d for d in self.store.list(DEPLOYMENT)}
        pods_by_owner: dict[str, list[Obj]] = {}
        for pod in self.store.list(POD):
            owner = next((o for o in pod["metadata"].get("ownerReferences", []) if o.get("kind") == "Deployment"), None)
            if owner is not None and owner["uid"] in deployments:
                pods_by_owner.setdefault(owner["uid"], []).append(pod)
        for uid, deployment in deployments.items():
            for _ in range(deployment["spec"].get("replicas", 1) - len(pods_by_owner.get(uid, []))):
                self._create_pod(deployment)

    def _create_pod(self, deployment: Obj) -> None:
        meta, template = deployment["metadata"], deployment["spec"]["template"]
        name = f"{meta['name']}-{_suffix(10)}-{_suffix()}"
        self.store.create(POD, {
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": dict(template.get("metadata", {}).get("labels", {})),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"], "uid": meta["uid"]}],
            },
            "spec": dict(template["spec"]),
            "status": {"phase": "Pending"},
        })
        self.store.record("pod-created", f"Pod/{name}", f"for Deployment/{meta['name']}")


class Scheduler:
    """kube-scheduler, reduced: binds a Pending pod to a Ready node it fits (pod_fits); when none
    fits, marks it PodScheduled=False/Unschedulable (what Karpenter waits for:
    karpenter pkg/utils/pod/scheduling.go FailedToSchedule) and records a FailedScheduling event."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def tick(self, now: float) -> None:
        nodes = self.store.list(NODE)
        for pod in self.store.list(POD):
            if pod["spec"].get("nodeName"):
                continue
            target = next((n for n in nodes if pod_fits(pod, n)), None)
            if target:
                pod["spec"]["nodeName"] = target["metadata"]["name"]
                pod["status"] = {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}]}
                self.store.replace(POD, pod)
                self.store.record("pod-bound", f"Pod/{pod['metadata']['name']}", f"to Node/{target['metadata']['name']}")
            elif not self._unschedulable(pod):
                pod["status"] = {
                    "phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
                }
                self.store.replace(POD, pod)
                self._event(pod, len(nodes))

    @staticmethod
    def _unschedulable(pod: Obj) -> bool:
        return any(c.get("reason") == "Unschedulable" for c in pod.get("status", {}).get("conditions", []))

    def _event(self, pod: Obj, node_count: int) -> None:
        meta = pod["metadata"]
        message = f"0/{node_count} nodes are available: {node_count} node(s) didn't match Pod's node affinity/selector."
        self.store.create(EVENT, {
            "metadata": {"name": f"{meta['name']}.{_suffix(16)}", "namespace": meta["namespace"]},
            "involvedObject": {"kind": "Pod", "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "reason": "FailedScheduling",
            "type": "Warning",
            "message": message,
            "firstTimestamp": now_rfc3339(),
            "lastTimestamp": now_rfc3339(),
            "count": 1,
        })


# ---- node provisioning ------------------------------------------------------------------------


def pool_node_labels(pool: Obj) -> dict[str, str]:
    """The labels a NodePool puts on its nodes: the template's labels, each requirement with a
    single In value, and karpenter.sh/nodepool (karpenter pkg/controllers/provisioning/scheduling
    nodeclaimtemplate.go NewNodeClaimTemplate; the provider adds the instance type's labels)."""
    template = pool["spec"]["template"]
    labels = dict(template.get("metadata", {}).get("labels", {}))
    for requirement in template["spec"].get("requirements", []):
        if requirement.get("operator") == "In" and len(requirement.get("values", [])) == 1:
            labels[requirement["key"]] = requirement["values"][0]
    labels["karpenter.sh/nodepool"] = pool["metadata"]["name"]
    return labels


def pool_can_host(pool: Obj, pod: Obj) -> bool:
    """karpenter pkg/controllers/provisioning/scheduling/scheduler.go: the pod must tolerate the
    NodePool template's taints (pkg/scheduling/taints.go ToleratesPod) and its node selector must
    be compatible with the pool's labels and requirements (pkg/scheduling/requirements.go
    Compatible); a label the pool does not set cannot be satisfied."""
    template = pool["spec"]["template"]
    if not tolerates_all(pod["spec"].get("tolerations") or [], template["spec"].get("taints") or []):
        return False
    labels = pool_node_labels(pool)
    requirements = {r["key"]: r for r in template["spec"].get("requirements", [])}
    for key, value in (pod["spec"].get("nodeSelector") or {}).items():
        if key in labels:
            if labels[key] != value:
                return False
        elif key not in requirements or requirements[key].get("operator") != "In" or value not in requirements[key]["values"]:
            return False
    return True


class Karpenter:
    """Node auto-provisioning (AKS NAP is Karpenter): a provisionable pod (karpenter
    pkg/utils/pod/scheduling.go IsProvisionable: unschedulable, not bound) that a NodePool can host
    gets a node after `delay` seconds, Ready, with the pool's labels and taints. Each pod is
    nominated once, so a pod does not get a second node while its first is on the way."""

    def __init__(self, store: ObjectStore, delay: float) -> None:
        self.store, self.delay = store, delay
        self._nominated: dict[str, tuple[float, Obj]] = {}  # pod uid -> (due, pool)
        self._numbers = itertools.count(1)
        # NodePools whose instance type has no capacity now (spot capacity gone): Karpenter's
        # launch fails with InsufficientCapacity and it tries again later.
        self.insufficient_capacity: set[str] = set()
        self._told: set[str] = set()

    def tick(self, now: float) -> None:
        pools = self.store.list(NODE_POOL)
        pods = self.store.list(POD)
        # A pod deleted before its node came no longer needs one (karpenter launches for the
        # pods of a scheduling round that are still pending).
        alive = {pod["metadata"]["uid"] for pod in pods}
        for uid in [uid for uid, (due, _) in self._nominated.items() if due is not None and uid not in alive]:
            del self._nominated[uid]
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if uid in self._nominated or pod["spec"].get("nodeName") or not Scheduler._unschedulable(pod):
                continue
            pool = next((p for p in pools if pool_can_host(p, pod)), None)
            if pool:
                self._nominated[uid] = (now + self.delay, pool)
                self.store.record("node-nominated", f"Pod/{pod['metadata']['name']}", f"NodePool/{pool['metadata']['name']}")
        for uid, (due, pool) in list(self._nominated.items()):
            if due is not None and now >= due:
                if pool["metadata"]["name"] in self.insufficient_capacity:
                    if uid not in self._told:
                        self._told.add(uid)
                        self.store.record("launch-failed", f"NodePool/{pool['metadata']['name']}", "InsufficientCapacityError")
                    continue
                self._nominated[uid] = (None, pool)  # launched: the scheduler binds the pod
                self.launch(pool)

    def launch(self, pool: Obj) -> Obj:
        name = f"{pool['metadata']['name']}-{next(self._numbers):05d}"
        node = self.store.create(NODE, {
            "metadata": {"name": name, "labels": {**pool_node_labels(pool), "kubernetes.io/hostname": name}},
            "spec": {"taints": list(pool["spec"]["template"]["spec"].get("taints", []))},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
        })
        self.store.record("node-ready", f"Node/{name}", f"NodePool/{pool['metadata']['name']}")
        return node


class GpuFeatureDiscovery:
    """NVIDIA gpu-feature-discovery with its node-feature-discovery worker, as KAITO's chart
    installs them: DaemonSets, so they run only on nodes whose NoSchedule/NoExecute taints both
    tolerate, and there they write the nvidia.com labels `delay` seconds after the node is Ready.
    KAITO's defaults tolerate only CriticalAddonsOnly, nvidia.com/gpu and master taints (the
    issue's item 2; kaito .github/workflows/mig-e2e-test.yaml widens them for its GPU nodes)."""

    def __init__(self, store: ObjectStore, delay: float | None, gfd_tolerations: list[dict], nfd_worker_tolerations: list[dict]) -> None:
        self.store, self.delay = store, delay
        self.tolerations = (gfd_tolerations, nfd_worker_tolerations)
        self._first_seen: dict[str, float] = {}

    def tick(self, now: float) -> None:
        if self.delay is None:
            return
        for node in self.store.list(NODE):
            labels = node["metadata"].get("labels", {})
            name = node["metadata"]["name"]
            if all(k in labels for k in GPU_LABELS) or not node_ready(node):
                continue
            taints = node["spec"].get("taints") or []
            if not all(tolerates_all(t, taints) for t in self.tolerations):
                continue
            seen = self._first_seen.setdefault(name, now)
            if now - seen >= self.delay:
                node["metadata"]["labels"] = {**labels, **node_gfd_labels(node)}
                self.store.replace(NODE, node)
                self.store.record("node-gpu-labelled", f"Node/{name}")


class KaitoServing:
    """KAITO's InferenceSet and Workspace controllers with the byo provisioner, reduced to their
    effect: each replica of an InferenceSet becomes a vLLM pod labelled
    inferenceset.kaito.sh/created-by=<InferenceSet>, bound to a node, once a Ready, not deleting
    node matching spec.labelSelector exists (pkg/nodeprovision/byo-provisioner/byo_provisioner.go
    EnsureNodesReady) that carries the GPU labels the pod spec is built from (pkg/sku/helpers.go).
    With no such node nothing is created at all, so no pod is ever Pending and no autoscaler is
    woken: the deadlock the node anchors exist for (pkg/inferenceset/inferenceset_controller.go,
    pkg/workspace/controllers/workspace_controller.go). One node per replica."""

    def __init__(self, store: ObjectStore, delay: float) -> None:
        self.store, self.delay = store, delay
        self._first_seen: dict[tuple[str, str], float] = {}

    def tick(self, now: float) -> None:
        nodes = self.store.list(NODE)
        for inference_set in self.store.list(INFERENCE_SET):
            meta, spec = inference_set["metadata"], inference_set["spec"]
            if meta.get("deletionTimestamp"):
                continue
            replicas = spec.get("replicas", 1)  # the CRD's default
            selector = LabelSelector.from_match_labels((spec.get("labelSelector") or {}).get("matchLabels") or {})
            pods = self.store.list(POD, meta["namespace"], LabelSelector(f"{CREATED_BY}={meta['name']}"))
            used = {p["spec"].get("nodeName") for p in pods}
            if len(pods) >= replicas:
                continue
            for node in nodes:
                labels = node["metadata"].get("labels", {})
                if node["metadata"]["name"] in used or not node_ready(node) or not selector.matches(labels):
                    continue
                if not all(k in labels for k in GPU_LABELS):
                    continue
                key = (meta["uid"], node["metadata"]["name"])
                if now - self._first_seen.setdefault(key, now) >= self.delay:
                    self._create_pod(inference_set, node)
                break

    def _create_pod(self, inference_set: Obj, node: Obj) -> None:
        meta = inference_set["metadata"]
        workspace = f"{meta['name']}-{_suffix()}"
        name = f"{workspace}-0"
        self.store.create(POD, {
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {CREATED_BY: meta["name"], "kaito.sh/workspace": workspace},
            },
            "spec": {"nodeName": node["metadata"]["name"], "containers": [{"name": workspace, "ports": [{"containerPort": 5000}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}]},
        })
        self.store.record("vllm-pod-bound", f"Pod/{name}", f"InferenceSet/{meta['name']} on Node/{node['metadata']['name']}")


class KaitoInferenceSetLifecycle:
    """KAITO's InferenceSet controller, its finalizer and its deletion
    (pkg/inferenceset/inferenceset_controller.go): Reconcile adds inferenceset.finalizer.kaito.sh
    with a patch (ensureFinalizer); once the InferenceSet is being deleted, deleteInferenceSet first
    sets the Deleting condition through the /status subresource
    (pkg/utils/inferenceset/inferenceset.go UpdateStatusConditionIfNotMatch ->
    UpdateInferenceSetStatus -> Status().Update), then garbageCollectInferenceSet deletes the child
    Workspaces (here: their vLLM pods) and removes the finalizer with an update. Every one of those
    writes goes through KAITO's own webhook, which in byo mode refuses while no admissible node
    matches the selector: the InferenceSet then stays Terminating until a node is back. A refused
    write is retried at the next tick (controller-runtime requeues it) and recorded once."""

    def __init__(self, store: ObjectStore, webhook: KaitoWebhook) -> None:
        self.store, self.webhook = store, webhook
        self._refused: set[tuple[str, str]] = set()

    def tick(self, now: float) -> None:
        for inference_set in self.store.list(INFERENCE_SET):
            meta = inference_set["metadata"]
            if not meta.get("deletionTimestamp"):
                if INFERENCE_SET_FINALIZER not in meta.get("finalizers", []):
                    updated = copy.deepcopy(inference_set)
                    updated["metadata"]["finalizers"] = [*meta.get("finalizers", []), INFERENCE_SET_FINALIZER]
                    self._write(inference_set, updated, "add the finalizer")
                continue
            if INFERENCE_SET_FINALIZER not in meta.get("finalizers", []):
                continue
            if not self._deleting(inference_set):
                updated = copy.deepcopy(inference_set)
                conditions = [c for c in updated.setdefault("status", {}).get("conditions", []) if c.get("type") != "Deleting"]
                updated["status"]["conditions"] = [*conditions, {
                    "type": "Deleting", "status": "True", "reason": "inferencesetDeleted", "message": "inferenceset is being deleted"}]
                if not self._write(inference_set, updated, "status: condition Deleting"):
                    continue
                inference_set = updated
            for pod in self.store.list(POD, meta["namespace"], LabelSelector(f"{CREATED_BY}={meta['name']}")):
                self.store.delete(POD, pod["metadata"]["namespace"], pod["metadata"]["name"])
                self.store.record("pod-deleted", f"Pod/{pod['metadata']['name']}", f"its InferenceSet/{meta['name']} is being deleted")
            current = self.store.get(INFERENCE_SET, meta["namespace"], meta["name"])
            if current is None:
                continue
            updated = copy.deepcopy(current)
            updated["metadata"]["finalizers"] = [f for f in current["metadata"]["finalizers"] if f != INFERENCE_SET_FINALIZER]
            self._write(current, updated, "remove the finalizer")

    @staticmethod
    def _deleting(inference_set: Obj) -> bool:
        conditions = (inference_set.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Deleting" and c.get("status") == "True" for c in conditions)

    def _write(self, old: Obj, new: Obj, what: str) -> bool:
        name = old["metadata"]["name"]
        refusal = self.webhook.review(INFERENCE_SET, "UPDATE", new, old)
        if refusal:
            key = (old["metadata"]["uid"], what)
            if key not in self._refused:
                self._refused.add(key)
                self.store.record("kaito-write-refused", f"InferenceSet/{name}", f"{what}: {refusal}")
            return False
        self.store.record("kaito-wrote", f"InferenceSet/{name}", what)
        self.store.replace(INFERENCE_SET, new)
        return True
