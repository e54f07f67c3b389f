"""Convergence rules: objects that each validate, but together would never come up on a real
cluster. They encode how KAITO, Karpenter or the cluster autoscaler, and GPU feature discovery
interact; every rule names the upstream code it relies on (kaito-project/kaito at 056b828 unless
another repository is named)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

import yaml

from .findings import Document, Finding
from .placement import Pool, nodepools, tolerates
from .policy import Rule
from .workloads import PodTemplate, as_dict, as_list, dig, pod_templates, required_node_labels

RULES = {rule.id: rule for rule in [
    Rule("converge-byo-node-source",
         "with nodeProvisioner=byo KAITO never creates a Pending pod and its webhook refuses the InferenceSet until "
         "a node matching its label selector exists (pkg/nodeprovision/byo-provisioner/byo_provisioner.go "
         "EnsureNodesReady; api/v1beta1/workspace_validation.go validateCreateWithInference), so something else "
         "must bring that node up",
         "add a node anchor (a pod Pending on exactly the selector's labels, tolerating the pool's taints) and a "
         "node pool that puts those labels on its nodes (a Karpenter NodePool, or an AKS agent pool declared in "
         "the anchor's hybrid-llm.io/external-node-pool annotation)"),
    Rule("converge-byo-apply-order",
         "KAITO's webhook refuses a byo InferenceSet, on create and on every update, while no matching node "
         "carries the GPU labels (api/v1beta1/inferenceset_validation.go Validate -> "
         "pkg/utils/inferenceset/inferenceset.go ValidateWorkspaceForInferenceSet); applied together with what "
         "brings its node up, it is refused and the install fails",
         "let the chart's apply-serving Job apply it (embed it in a ConfigMap annotated "
         "hybrid-llm.io/embedded-manifests), or apply it only after its node is up (GitOps: a later sync wave or "
         "dependsOn, with retries)"),
    Rule("converge-gfd-tolerations",
         "KAITO reads the GPU model, count and memory from the nvidia.com/gpu.* node labels GPU feature discovery "
         "and its NFD worker write (pkg/sku/helpers.go GetGPUConfigFromNodeLabels); the gpu-feature-discovery "
         "0.17.4 subchart KAITO bundles (charts/kaito/workspace/charts/, its values.yaml) tolerates neither "
         "sku=gpu nor the spot taint by default, so on a tainted pool the labels never come",
         "install KAITO with gpu-feature-discovery.tolerations and gpu-feature-discovery.nfd.worker.tolerations "
         "that cover the pool's taints, and declare them in the chart's kaito.gpuFeatureDiscovery.tolerations"),
    Rule("converge-pod-tolerations",
         "a pod that needs a pool's nodes but does not tolerate the pool's taints stays Pending; KAITO's vLLM pods "
         "tolerate only nvidia.com/gpu, sku=gpu and, on Azure, the spot taint "
         "(pkg/workspace/inference/preset_inferences.go defaultTolerations)",
         "add the missing tolerations to the pod, or drop the taint from the pool"),
    Rule("converge-byo-scale-from-zero",
         "at zero replicas a byo path has no node, KAITO's Workspace webhook refuses every new child Workspace "
         "until one exists (api/v1beta1/workspace_validation.go Validate -> validateCreateWithInference) and "
         "KAITO never creates a Pending pod that would bring one (byo_provisioner.go), so an autoscaler that "
         "scales the InferenceSet up from zero starts nothing",
         "keep the autoscaler's minimum at 1 or more (KEDA's minReplicaCount defaults to 0); park a path by "
         "setting its replicas to 0 instead"),
    Rule("converge-weights-disk",
         "in byo mode KAITO treats the node's SKU as unknown and keeps the model weights in an emptyDir on the OS "
         "disk (pkg/utils/common_preset.go, pkg/sku/helpers.go), so an OS disk smaller than the weights fills up "
         "and the download fails",
         "raise the pool's OS disk (AKSNodeClass spec.osDiskSizeGB, or az aks nodepool add --node-osdisk-size) "
         "well above the weights; the chart uses 300 GB for Llama 3.3 70B"),
    Rule("converge-vllm-boolean",
         "KAITO appends each vllm: entry of inference_config.yaml as `--key str(value)` "
         "(presets/workspace/inference/vllm/inference_api.py KAITOArgumentParser.parse_args); vLLM's boolean "
         "flags take no value, so True/False lands in its optional positional model_tag or stops vLLM with "
         "\"unrecognized arguments\"",
         "remove the entry (most boolean flags have vLLM's default anyway), or use a flag that takes a value"),
    Rule("converge-kaito-name-length",
         "KAITO names a child Workspace <inferenceset>-<5 random> (pkg/utils/inferenceset/inferenceset.go "
         "NewWorkspaceForInferenceSet) and its StatefulSet after it; the pods' controller-revision-hash label "
         "<statefulset>-<hash of up to 10> must fit 63 characters (kubernetes/kubernetes#64023), so longer "
         "names never get pods",
         "shorten the name (the chart's fullnameOverride or a shorter release name)"),
]}

DECLARED_INSTALL_COMPONENT = "kaito-install"
EXTERNAL_POOL_ANNOTATION = "hybrid-llm.io/external-node-pool"
GPU_LABELS = ("nvidia.com/gpu.product", "nvidia.com/gpu.count", "nvidia.com/gpu.memory")
# KAITO's vLLM pod tolerations with CLOUD_PROVIDER=azure (defaultTolerations).
KAITO_POD_TOLERATIONS = [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
    {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot", "effect": "NoSchedule"},
]
# The generated Workspace name adds "-" and 5 characters; a controller-revision-hash label value
# adds "-" and up to 10 to the StatefulSet (= Workspace) name: 63 - 11 - 6.
# A string KAITO's str() passes on as a stray word after a valueless vLLM flag, like True itself.
_BOOLEAN_WORDS = {"true", "false", "yes", "no", "on", "off"}
MAX_INFERENCESET_NAME = 46
MAX_WORKSPACE_NAME = 52


@dataclass(frozen=True)
class KaitoWorkload:
    """An InferenceSet or Workspace and the node labels its pods require."""

    document: Document
    selector: dict[str, str]
    byo: bool  # no instanceType: KAITO schedules onto existing nodes (nodeProvisioner=byo)


def _kaito_workloads(documents: list[Document]) -> Iterator[KaitoWorkload]:
    for document in documents:
        if document.kind == "InferenceSet":
            selector = dig(document.obj, "spec", "labelSelector", "matchLabels")
            instance_type = dig(document.obj, "spec", "template", "resource", "instanceType")
        elif document.kind == "Workspace":
            selector = dig(document.obj, "resource", "labelSelector", "matchLabels")
            instance_type = dig(document.obj, "resource", "instanceType")
        else:
            continue
        labels = {str(k): str(v) for k, v in as_dict(selector).items()}
        # KAITO's webhook requires an instanceType when it provisions nodes and refuses one in byo
        # mode (api/v1beta1/inferenceset_validation.go validateInstanceType), so its absence says byo.
        yield KaitoWorkload(document, labels, not instance_type)


def _external_pools(templates: list[PodTemplate]) -> list[Pool]:
    """Pools outside the render (AKS agent pools) that a node anchor declares it is served by."""
    pools = []
    for template in templates:
        declared = template.document.annotations.get(EXTERNAL_POOL_ANNOTATION)
        if not declared:
            continue
        try:
            pool = json.loads(declared)
        except json.JSONDecodeError:
            continue
        labels = {str(k): frozenset([str(v)]) for k, v in as_dict(as_dict(pool).get("labels")).items()}
        taints = {(t.get("key"), t.get("value"), t.get("effect")) for t in as_list(as_dict(pool).get("taints"))
                  if isinstance(t, dict)}
        disk = as_dict(pool).get("osDiskSizeGB")
        pools.append(Pool(template.document, labels, taints, name=f"{as_dict(pool).get('name', '?')} (external)",
                          os_disk_gb=disk if isinstance(disk, int) else None))
    return pools


def _declared_install(documents: list[Document]) -> dict[str, Any] | None:
    """The KAITO chart values the render declares (ConfigMap labelled app.kubernetes.io/component=
    kaito-install, key values.yaml), or None when the render declares no KAITO install."""
    for document in documents:
        if document.kind != "ConfigMap" or document.labels.get("app.kubernetes.io/component") != DECLARED_INSTALL_COMPONENT:
            continue
        try:
            return as_dict(yaml.safe_load(str(as_dict(document.obj.get("data")).get("values.yaml", ""))))
        except yaml.YAMLError:
            return {}
    return None


def _declared_gfd_tolerations(declared: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]] | None:
    """GFD's and the NFD worker's tolerations as the declared KAITO install sets them."""
    if declared is None:
        return None
    gfd = as_dict(declared.get("gpu-feature-discovery"))
    return {
        "gpu-feature-discovery.tolerations": as_list(gfd.get("tolerations")),
        "gpu-feature-discovery.nfd.worker.tolerations": as_list(dig(gfd, "nfd", "worker", "tolerations")),
    }


def _finding(document: Document, rule: str, message: str, path: str) -> Finding:
    return Finding.about(document, rule, message, RULES[rule].fix, path)


def _satisfies(pool: Pool, labels: dict[str, str]) -> bool:
    return all(key in pool.labels and value in pool.labels[key] for key, value in labels.items())


def _show(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _taint(taint: tuple[str, str | None, str]) -> str:
    key, value, effect = taint
    return f"{key}={value}:{effect}" if value else f"{key}:{effect}"


def _byo_workload_findings(workload: KaitoWorkload, pools: list[Pool], templates: list[PodTemplate],
                           gfd: dict[str, list[dict[str, Any]]] | None) -> Iterator[Finding]:
    document, selector = workload.document, workload.selector
    if document.embedded_in is None:
        yield _finding(document, "converge-byo-apply-order",
                       f"byo {document.kind} {document.name} is applied with the rest of the release; KAITO's webhook "
                       f"refuses it until a node labelled {_show(selector)} carries {', '.join(GPU_LABELS)}",
                       "metadata")
    serving = [pool for pool in pools if _satisfies(pool, selector)]
    anchors = [t for t in templates if selector and selector.items() <= required_node_labels(t).items()]
    if not serving:
        yield _finding(document, "converge-byo-node-source",
                       f"no node pool puts {_show(selector)} on its nodes: neither a Karpenter NodePool in the "
                       f"render nor an external pool a node anchor declares", "spec.labelSelector")
    elif not anchors:
        yield _finding(document, "converge-byo-node-source",
                       f"nothing Pending asks for a node labelled {_show(selector)}, and KAITO in byo mode never "
                       f"does: pool {serving[0].name} would stay at its minimum", "spec.labelSelector")
    for pool in serving:
        for taint in sorted(pool.taints, key=str):
            if not tolerates(KAITO_POD_TOLERATIONS, taint):
                yield _finding(document, "converge-pod-tolerations",
                               f"pool {pool.name} taints its nodes {_taint(taint)}, which KAITO's vLLM pods do not "
                               f"tolerate", "spec.labelSelector")
            if gfd is None:
                continue
            for value_path, tolerations in gfd.items():
                if not tolerates(tolerations, taint):
                    yield _finding(document, "converge-gfd-tolerations",
                                   f"pool {pool.name} taints its nodes {_taint(taint)}, which KAITO's declared "
                                   f"{value_path} do not tolerate: the nodes never get {GPU_LABELS[0]}",
                                   "spec.labelSelector")
    if serving and gfd is None:
        yield _finding(document, "converge-gfd-tolerations",
                       "the render declares no KAITO install (a ConfigMap labelled app.kubernetes.io/component="
                       f"{DECLARED_INSTALL_COMPONENT}), so nothing shows GPU feature discovery runs on the GPU nodes",
                       "spec.labelSelector")


def _pod_findings(templates: list[PodTemplate], pools: list[Pool]) -> Iterator[Finding]:
    """Pods that require GPU-pool labels must tolerate the taints of every pool that could serve them."""
    for template in templates:
        required = required_node_labels(template)
        if not required:
            continue
        landing = [pool for pool in pools if _satisfies(pool, required)]
        tolerations = as_list(template.spec.get("tolerations"))
        for pool in landing:
            missing = [t for t in sorted(pool.taints, key=str) if not tolerates(tolerations, t)]
            if missing:
                yield _finding(template.document, "converge-pod-tolerations",
                               f"needs nodes of pool {pool.name} but does not tolerate "
                               f"{', '.join(_taint(t) for t in missing)}", f"{template.path}.tolerations")


def _inference_config_findings(documents: list[Document]) -> Iterator[Finding]:
    for document in documents:
        if document.kind != "ConfigMap":
            continue
        text = as_dict(document.obj.get("data")).get("inference_config.yaml")
        if not isinstance(text, str):
            continue
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError:
            continue  # not this rule's business: KAITO's webhook reports unreadable configs
        for flag, value in as_dict(as_dict(config).get("vllm")).items():
            spelled_boolean = isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS
            if isinstance(value, bool) or spelled_boolean or value is None or isinstance(value, (dict, list)):
                shown = ("a boolean" if isinstance(value, bool) else f"{value!r}, a boolean written as a string"
                         if spelled_boolean else "null" if value is None else "a YAML map or list")
                yield _finding(document, "converge-vllm-boolean",
                               f"vllm.{flag} is {shown}: KAITO would pass `--{flag} {value!s}`",
                               f"data.inference_config.yaml.vllm.{flag}")


def _name_findings(workloads: list[KaitoWorkload], declared: dict[str, Any] | None) -> Iterator[Finding]:
    # With KAITO's own Karpenter provisioner the node's VM is aks-<namespace>-<workspace>-<5> and its
    # hostname label must fit too (kaito pkg/nodeprovision/karpenter/nodepool.go NodePoolName;
    # karpenter-provider-azure pkg/providers/instance/vminstance.go GenerateResourceName).
    karpenter = (declared or {}).get("nodeProvisioner") == "karpenter"
    for workload in workloads:
        document = workload.document
        limit = MAX_INFERENCESET_NAME if document.kind == "InferenceSet" else MAX_WORKSPACE_NAME
        why = "KAITO's derived names"
        if karpenter and not workload.byo:
            limit, why = limit - len(document.namespace), f"KAITO's derived names and, in namespace {document.namespace}, its Karpenter nodes' VM names"
        if len(document.name) > limit:
            yield _finding(document, "converge-kaito-name-length",
                           f"{document.kind} name {document.name!r} has {len(document.name)} characters; at most "
                           f"{limit} fit {why}", "metadata.name")
        elif document.name and not document.name[0].isalpha():
            yield _finding(document, "converge-kaito-name-length",
                           f"{document.kind} name {document.name!r} must start with a letter: KAITO names a Service "
                           "after each child Workspace, and Service names are DNS-1035 labels", "metadata.name")


def _scale_from_zero_findings(documents: list[Document], workloads: list[KaitoWorkload]) -> Iterator[Finding]:
    byo = {(w.document.namespace, w.document.name) for w in workloads if w.byo and w.document.kind == "InferenceSet"}
    for document in documents:
        if document.kind == "ScaledObject":
            target, floor = dig(document.obj, "spec", "scaleTargetRef"), dig(document.obj, "spec", "minReplicaCount")
            floor = 0 if floor is None else floor  # KEDA's default
            where = "spec.minReplicaCount"
        elif document.kind == "HorizontalPodAutoscaler":
            target, floor, where = dig(document.obj, "spec", "scaleTargetRef"), dig(document.obj, "spec", "minReplicas"), "spec.minReplicas"
        else:
            continue
        target = as_dict(target)
        if target.get("kind") == "InferenceSet" and (document.namespace, str(target.get("name"))) in byo and floor == 0:
            yield _finding(document, "converge-byo-scale-from-zero",
                           f"scales byo InferenceSet {target.get('name')} down to 0, and nothing would bring it back",
                           where)


def _weights_disk_findings(workloads: list[KaitoWorkload], pools: list[Pool], documents: list[Document],
                           disk_floors: dict[str, tuple[float, int]]) -> Iterator[Finding]:
    node_classes = {d.name: d for d in documents if d.kind == "AKSNodeClass"}
    for workload in workloads:
        if not workload.byo:
            continue
        preset = str(dig(workload.document.obj, "spec", "template", "inference", "preset", "name")
                     or dig(workload.document.obj, "inference", "preset", "name") or "")
        if preset.lower() not in disk_floors:
            continue
        weights, floor = disk_floors[preset.lower()]
        for pool in pools:
            if not _satisfies(pool, workload.selector) or pool.os_disk_gb is None:
                continue
            if pool.os_disk_gb < floor:
                culprit = node_classes.get(pool.node_class or "", pool.document)
                yield _finding(culprit, "converge-weights-disk",
                               f"pool {pool.name} gives its nodes a {pool.os_disk_gb} GB OS disk, but "
                               f"{workload.document.kind} {workload.document.name} keeps {weights:.0f} GB of {preset} "
                               f"weights there: with the system and the kubelet's eviction headroom it needs at "
                               f"least {floor} GB (data/figures.yaml nodeDisk)", "spec.osDiskSizeGB")


def check(documents: list[Document], disk_floors: dict[str, tuple[float, int]] | None = None) -> Iterator[Finding]:
    templates = list(pod_templates(documents))
    pools = nodepools(documents) + _external_pools(templates)
    workloads = list(_kaito_workloads(documents))
    declared = _declared_install(documents)
    gfd = _declared_gfd_tolerations(declared)
    for workload in workloads:
        if workload.byo:
            yield from _byo_workload_findings(workload, pools, templates, gfd)
    yield from _pod_findings(templates, pools)
    yield from _scale_from_zero_findings(documents, workloads)
    yield from _weights_disk_findings(workloads, pools, documents, disk_floors or {})
    yield from _inference_config_findings(documents)
    yield from _name_findings(workloads, declared)
