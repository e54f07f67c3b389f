"""The preflight checks: what the profile needs (needs.py) against what the cluster has
(cluster.py). Each check gives one result with what was checked, what was found and, when it
fails or warns, the command or flag that fixes it. Pure functions of their inputs: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from . import kaito
from .cluster import ClusterSnapshot
from .needs import ApiKind, DeclaredKaito, ProfileNeeds, ServingPath
from .tolerations import describe, describe_taint, tolerates_taint, uncovered

# The node labels KAITO's byo mode reads at admission and when it builds the pod
# (kaito-project/kaito pkg/sku/helpers.go GetGPUConfigFromNodeLabels); GPU feature discovery writes them.
GPU_LABELS = ("nvidia.com/gpu.product", "nvidia.com/gpu.count", "nvidia.com/gpu.memory")
GPU_RESOURCE = "nvidia.com/gpu"
SPOT_TAINT = {"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"}
HF_TOKEN_KEY = "HF_TOKEN"  # the key KAITO reads from presetOptions.modelAccessSecret
NAP_GROUPS = ("karpenter.sh", "karpenter.azure.com")
AZ = "-g <resource-group> -n <cluster>"
ENABLE_NAP = f"az aks update {AZ} --node-provisioning-mode Auto"

# Who installs the CRDs of a group, for the fix of a missing kind. The kinds checked come from the
# render; this only words the fix.
CRD_SOURCES = {
    "monitoring.coreos.com": "install the Prometheus Operator (helm upgrade --install kube-prometheus-stack "
                             "prometheus-community/kube-prometheus-stack -n monitoring --create-namespace)",
    "keda.sh": f"enable KEDA (az aks update {AZ} --enable-keda)",
    "secrets-store.csi.x-k8s.io": f"enable the Secrets Store CSI driver (az aks enable-addons {AZ} "
                                  "--addons azure-keyvault-secrets-provider)",
    "kaito.sh": "install KAITO as the KAITO lines say",
    "karpenter.sh": f"enable node auto-provisioning ({ENABLE_NAP})",
    "karpenter.azure.com": f"enable node auto-provisioning ({ENABLE_NAP})",
}
# The chart value that stops rendering a kind, when the profile can do without it.
TURNED_OFF_BY = {
    "ServiceMonitor": "monitoring.serviceMonitor=false",
    "PrometheusRule": "monitoring.alerts.enabled=false",
    "ScaledObject": "batchAutoscaling.enabled=false",
    "SecretProviderClass": "modelAccess.source=existingSecret",
    "NodePool": "nodePools.mode=aks",
    "AKSNodeClass": "nodePools.mode=aks",
}


class Status(str, Enum):
    OK = "ok"
    FAIL = "FAIL"
    WARN = "warn"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: Status
    subject: str  # what was checked
    detail: str  # what was found
    fix: str | None = None


def _ok(id_: str, subject: str, detail: str) -> CheckResult:
    return CheckResult(id_, Status.OK, subject, detail)


def _skip(id_: str, subject: str, detail: str) -> CheckResult:
    return CheckResult(id_, Status.SKIP, subject, detail)


def _denied(id_: str, subject: str, snapshot: ClusterSnapshot, what: str) -> CheckResult:
    return CheckResult(id_, Status.WARN, subject, f"not checked: {snapshot.denied.get(what, 'forbidden')}",
                       f"run as a user who may read {what} (check with kubectl auth can-i)")


@dataclass(frozen=True)
class _Kaito:
    """KAITO's parts as found in the cluster."""

    controller: kaito.KaitoController | None
    others: list[kaito.KaitoController]

    @property
    def namespace(self) -> str | None:
        return self.controller.namespace if self.controller else None


def _find_kaito(snapshot: ClusterSnapshot) -> _Kaito:
    controllers = kaito.find_controllers(snapshot.deployments or [])
    return _Kaito(controllers[0] if controllers else None, controllers[1:])


def _where(snapshot: ClusterSnapshot) -> str:
    return f"namespace {snapshot.kaito_namespace}" if snapshot.kaito_namespace else "any namespace"


def check_namespace(needs: ProfileNeeds, snapshot: ClusterSnapshot) -> CheckResult:
    subject = f"namespace {needs.namespace}"
    if snapshot.namespace_exists is None:
        return _denied("namespace", subject, snapshot, f"namespace {needs.namespace}")
    if snapshot.namespace_exists:
        return _ok("namespace", subject, "exists")
    return CheckResult("namespace", Status.WARN, subject, "does not exist yet",
                       f"helm upgrade --install {needs.release} charts/hybrid-llm -n {needs.namespace} "
                       f"--create-namespace -f {needs.profile} creates it (or kubectl create namespace {needs.namespace})")


def check_kaito(needs: ProfileNeeds, snapshot: ClusterSnapshot, found: _Kaito) -> list[CheckResult]:
    declared = needs.kaito
    if declared is None:
        return [_skip("kaito", "KAITO", "the profile serves no path through KAITO")]
    if snapshot.deployments is None:
        what = f"deployments in {snapshot.kaito_namespace}" if snapshot.kaito_namespace else "deployments"
        return [_denied("kaito-installed", "KAITO installed", snapshot, what)]
    controller = found.controller
    if controller is None:
        results = [CheckResult(
            "kaito-installed", Status.FAIL, "KAITO installed",
            f"no KAITO workspace controller Deployment in {_where(snapshot)}",
            kaito.install_command(declared, snapshot.kaito_namespace))]
        skipped = "KAITO is not installed"
        for id_, subject in (("kaito-version", "KAITO version"), ("kaito-node-provisioner", "KAITO nodeProvisioner"),
                             ("kaito-feature-gates", "KAITO featureGates"), ("kaito-spot", "KAITO spotInstance"),
                             ("gpu-feature-discovery", "GPU feature discovery"), ("nfd-worker", "NFD worker")):
            results.append(_skip(id_, subject, skipped))
        return results
    results = [_check_controller_available(controller, found)]
    results.append(_check_version(declared.minimum_version, declared.config_map, controller))
    results.append(_check_node_provisioner(declared.node_provisioner, controller))
    results.append(_check_feature_gates(declared.feature_gates, controller))
    results.append(_check_spot(declared.spot_instance, controller, snapshot))
    results += _check_gpu_labelling(declared, controller, snapshot)
    return results


def _check_controller_available(controller: kaito.KaitoController, found: _Kaito) -> CheckResult:
    subject = "KAITO installed"
    also = f" (also found: {', '.join(c.ref for c in found.others)})" if found.others else ""
    if not controller.available:
        return CheckResult("kaito-installed", Status.FAIL, subject,
                           f"controller {controller.ref} has no available replica{also}; its webhook admits no InferenceSet",
                           f"kubectl -n {controller.namespace} describe deployment {controller.ref.split('/')[1]}; "
                           f"kubectl -n {controller.namespace} logs deployment/{controller.ref.split('/')[1]}")
    return _ok("kaito-installed", subject, f"controller {controller.ref} is available{also}")


def _check_version(minimum_text: str, config_map: str, controller: kaito.KaitoController) -> CheckResult:
    subject = f"KAITO version >= {minimum_text}"
    minimum = kaito.parse_version(minimum_text)
    running = controller.version
    if running is None or minimum is None:
        return CheckResult("kaito-version", Status.WARN, subject,
                           f"cannot tell the version from image {controller.image}",
                           f"check it is >= {minimum_text}: kubectl -n {controller.namespace} get deployment "
                           f"{controller.ref.split('/')[1]} -o jsonpath='{{..image}}'")
    if running < minimum:
        return CheckResult("kaito-version", Status.FAIL, subject,
                           f"{controller.ref} runs {controller.version_text}; the chart needs >= {minimum_text} "
                           f"(ConfigMap {config_map} data.minimumVersion)",
                           kaito.upgrade_command(controller, [], version=minimum_text))
    return _ok("kaito-version", subject, f"{controller.ref} runs {controller.version_text}")


def _check_node_provisioner(declared: str | None, controller: kaito.KaitoController) -> CheckResult:
    subject = "KAITO nodeProvisioner"
    running = controller.node_provisioner
    if declared is None:
        return _skip("kaito-node-provisioner", subject, f"the chart declares none (KAITO runs {running})")
    if running != declared:
        return CheckResult("kaito-node-provisioner", Status.FAIL, subject,
                           f"KAITO runs --node-provisioner={running}; the profile needs {declared}",
                           kaito.upgrade_command(controller, [f"--set nodeProvisioner={declared}"]))
    return _ok("kaito-node-provisioner", subject, f"--node-provisioner={running}")


def _check_feature_gates(declared: dict[str, bool], controller: kaito.KaitoController) -> CheckResult:
    subject = "KAITO featureGates"
    running = controller.feature_gates
    wrong = {gate: want for gate, want in sorted(declared.items()) if running.get(gate, False) != want}
    shown = ", ".join(f"{gate}={str(running.get(gate, False)).lower()}" for gate in sorted(declared))
    if wrong:
        mismatches = ", ".join(f"{gate}={str(running.get(gate, False)).lower()} (needs {str(want).lower()})"
                               for gate, want in wrong.items())
        return CheckResult("kaito-feature-gates", Status.FAIL, subject, f"KAITO runs {mismatches}",
                           kaito.upgrade_command(controller, kaito.set_flags({"featureGates": wrong})))
    return _ok("kaito-feature-gates", subject, shown or "none declared")


def _check_spot(declared_spot: bool, controller: kaito.KaitoController, snapshot: ClusterSnapshot) -> CheckResult:
    subject = "KAITO spotInstance (device plugin tolerates spot)"
    if not declared_spot:
        return _skip("kaito-spot", subject, "no path of the profile runs on spot")
    if snapshot.daemonsets is None:
        return _denied("kaito-spot", subject, snapshot, "daemonsets")
    plugins = kaito.find_device_plugins(snapshot.daemonsets, controller.namespace)
    fix = kaito.upgrade_command(controller, ["--set nvidiaDevicePlugin.enabled=true", "--set spotInstance.enabled=true"])
    if not plugins:
        return CheckResult("kaito-spot", Status.FAIL, subject,
                           f"no KAITO NVIDIA device plugin DaemonSet in namespace {controller.namespace}; "
                           "GPU nodes would report no nvidia.com/gpu", fix)
    blind = [kaito.workload_ref(ds) for ds in plugins if not tolerates_taint(kaito.tolerations_of(ds), SPOT_TAINT)]
    if blind:
        return CheckResult("kaito-spot", Status.FAIL, subject,
                           f"{', '.join(blind)} does not tolerate {describe_taint(SPOT_TAINT)}, so spot nodes report "
                           "no nvidia.com/gpu (KAITO was installed without spotInstance.enabled=true)",
                           kaito.upgrade_command(controller, ["--set spotInstance.enabled=true"]))
    return _ok("kaito-spot", subject, f"{', '.join(kaito.workload_ref(ds) for ds in plugins)} tolerates {describe_taint(SPOT_TAINT)}")


def _gfd_fix(controller: kaito.KaitoController, subtree: dict[str, Any]) -> str:
    return kaito.upgrade_command(controller, kaito.set_flags({"gpu-feature-discovery": subtree}))


def _check_gpu_labelling(declared: DeclaredKaito, controller: kaito.KaitoController, snapshot: ClusterSnapshot) -> list[CheckResult]:
    gfd_declared = declared.gfd_tolerations
    nfd_declared = declared.nfd_worker_tolerations
    if gfd_declared is None:
        reason = f"the declared install (nodeProvisioner {declared.node_provisioner}) has KAITO bring nodes of known SKUs"
        return [_skip("gpu-feature-discovery", "GPU feature discovery", reason), _skip("nfd-worker", "NFD worker", reason)]
    if snapshot.daemonsets is None:
        return [_denied("gpu-feature-discovery", "GPU feature discovery", snapshot, "daemonsets"),
                _denied("nfd-worker", "NFD worker", snapshot, "daemonsets")]
    gfd_values = declared.values.get("gpu-feature-discovery") or {}
    results = [_check_labeller(
        "gpu-feature-discovery", "GPU feature discovery tolerations", kaito.find_gfd(snapshot.daemonsets, controller.namespace),
        gfd_declared, controller, {"tolerations": gfd_declared},
        missing_fix=kaito.upgrade_command(controller, ["--set featureGates.disableNodeAutoProvisioning=true"]
                                          + kaito.set_flags({"gpu-feature-discovery": gfd_values})),
        config_map=declared.config_map, values_path="gpu-feature-discovery.tolerations")]
    if nfd_declared is not None:
        results.append(_check_labeller(
            "nfd-worker", "NFD worker tolerations", kaito.find_nfd_workers(snapshot.daemonsets, controller.namespace),
            nfd_declared, controller, {"nfd": {"worker": {"tolerations": nfd_declared}}},
            missing_fix=kaito.upgrade_command(controller, ["--set gpu-feature-discovery.nfd.enabled=true"]
                                              + kaito.set_flags({"gpu-feature-discovery": {"nfd": {"worker": {"tolerations": nfd_declared}}}})),
            config_map=declared.config_map, values_path="gpu-feature-discovery.nfd.worker.tolerations"))
    return results


def _check_labeller(id_: str, subject: str, daemonsets: list[dict[str, Any]], declared: list[dict[str, Any]],
                    controller: kaito.KaitoController, subtree: dict[str, Any], missing_fix: str,
                    config_map: str, values_path: str) -> CheckResult:
    if not daemonsets:
        return CheckResult(id_, Status.FAIL, subject,
                           "no such DaemonSet; nothing writes the nvidia.com/gpu.* node labels KAITO's byo mode reads",
                           missing_fix)
    gaps = []
    for ds in daemonsets:
        missing = uncovered(kaito.tolerations_of(ds), declared)
        if missing:
            gaps.append(f"{kaito.workload_ref(ds)} does not tolerate {', '.join(describe(t) for t in missing)}")
    if gaps:
        return CheckResult(id_, Status.FAIL, subject,
                           "; ".join(gaps) + f" (declared in ConfigMap {config_map} as {values_path}): GPU nodes with "
                           "those taints get no nvidia.com/gpu.* labels and KAITO refuses the InferenceSets",
                           _gfd_fix(controller, subtree))
    names = ", ".join(kaito.workload_ref(ds) for ds in daemonsets)
    return _ok(id_, subject, f"{names} tolerates {', '.join(describe(t) for t in declared)}")


def _not_served(kind: ApiKind, snapshot: ClusterSnapshot) -> str | None:
    """Why the API server does not serve a kind, or None when it does."""
    if kind.group not in snapshot.api_versions:
        return f"API group {kind.group or 'core'} is not served (no CRD)"
    versions = snapshot.api_versions[kind.group]
    if kind.version not in versions:
        return f"{kind.group} serves {', '.join(versions)}, not {kind.version}"
    if not snapshot.served(kind.group, kind.version, kind.kind):
        return f"{kind.api_version} has no kind {kind.kind}"
    return None


def check_node_provisioning(needs: ProfileNeeds, snapshot: ClusterSnapshot) -> CheckResult:
    subject = "node auto-provisioning (NAP)"
    if needs.node_pool_mode != "nap":
        mode = needs.node_pool_mode or "none: no serving path"
        return _skip("node-auto-provisioning", subject, f"node pool mode {mode}")
    nap_kinds = [k for k in needs.kinds if k.group in NAP_GROUPS]
    problems = [f"{k}: {why}" for k in nap_kinds if (why := _not_served(k, snapshot))]
    if problems:
        return CheckResult("node-auto-provisioning", Status.FAIL, subject, "; ".join(problems),
                           f"{ENABLE_NAP} (or use nodePools.mode=aks with AKS agent pools)")
    return _ok("node-auto-provisioning", subject, f"{', '.join(str(k) for k in nap_kinds)} served")


def check_kinds(needs: ProfileNeeds, snapshot: ClusterSnapshot) -> list[CheckResult]:
    """Every kind the render creates is served: one line per CRD-backed kind, one for the built-ins.
    The NAP kinds have their own line in nap mode."""
    results = []
    built_in = [k for k in needs.kinds if k.built_in]
    missing_built_in = [f"{k}: {why}" for k in built_in if (why := _not_served(k, snapshot))]
    if missing_built_in:
        results.append(CheckResult("api-built-in", Status.FAIL, f"{len(built_in)} built-in kinds served",
                                   "; ".join(missing_built_in),
                                   f"upgrade the cluster to a supported Kubernetes version (az aks upgrade {AZ})"))
    else:
        results.append(_ok("api-built-in", f"{len(built_in)} built-in kinds served",
                           f"Kubernetes {snapshot.kubernetes_version}"))
    skip_groups = NAP_GROUPS if needs.node_pool_mode == "nap" else ()
    for kind in needs.kinds:
        if kind.built_in or kind.group in skip_groups:
            continue
        subject = f"CRD for {kind}"
        why = _not_served(kind, snapshot)
        if why is None:
            results.append(_ok(f"crd/{kind.kind}", subject, "served"))
            continue
        fix = CRD_SOURCES.get(kind.group, f"install the operator that provides the {kind.group} CRDs")
        if kind.kind in TURNED_OFF_BY:
            fix += f"; or set {TURNED_OFF_BY[kind.kind]} in the values"
        results.append(CheckResult(f"crd/{kind.kind}", Status.FAIL, subject, why, fix))
    return results


def check_model_access(needs: ProfileNeeds, snapshot: ClusterSnapshot) -> list[CheckResult]:
    if not needs.paths:
        return [_skip("hf-token", "model-access Secret", "the profile serves no path")]
    results = []
    for name in needs.model_access_secrets:
        subject = f"Secret {needs.namespace}/{name} with key {HF_TOKEN_KEY}"
        if name in needs.synced_secrets:
            results.append(_skip("hf-token", subject,
                                 f"synced from Azure Key Vault by SecretProviderClass {needs.synced_secrets[name]} "
                                 "(modelAccess.source keyVault)"))
            continue
        if name not in snapshot.secret_keys:
            results.append(_denied("hf-token", subject, snapshot, f"secret {needs.namespace}/{name}"))
            continue
        keys = snapshot.secret_keys[name]
        create = (f"kubectl -n {needs.namespace} create secret generic {name} "
                  f"--from-literal={HF_TOKEN_KEY}=<Hugging Face token with access to the model>")
        if keys is None:
            prefix = f"kubectl create namespace {needs.namespace} && " if snapshot.namespace_exists is False else ""
            results.append(CheckResult("hf-token", Status.FAIL, subject, "the Secret does not exist", prefix + create))
            continue
        replace = f"{create} --dry-run=client -o yaml | kubectl apply -f -"
        if HF_TOKEN_KEY not in keys:
            shown = ", ".join(sorted(keys)) or "none"
            results.append(CheckResult("hf-token", Status.FAIL, subject,
                                       f"the Secret has no key {HF_TOKEN_KEY} (its keys: {shown}); KAITO reads {HF_TOKEN_KEY}",
                                       replace))
        elif not keys[HF_TOKEN_KEY]:
            results.append(CheckResult("hf-token", Status.FAIL, subject, f"key {HF_TOKEN_KEY} is empty", replace))
        else:
            results.append(_ok("hf-token", subject, f"present (keys: {', '.join(sorted(keys))}; values not shown)"))
    return results


def _labels(node: dict[str, Any]) -> dict[str, str]:
    return (node.get("metadata") or {}).get("labels") or {}


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def _untolerated_taints(node: dict[str, Any], daemonsets: list[dict[str, Any]]) -> list[str]:
    """Per DaemonSet that would keep off the node, the node's taints it does not tolerate."""
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
    gaps = []
    for ds in daemonsets:
        missed = [describe_taint(t) for t in taints if not tolerates_taint(kaito.tolerations_of(ds), t)]
        if missed:
            gaps.append(f"{kaito.workload_ref(ds)} does not tolerate {', '.join(missed)}")
    return gaps


def check_path_nodes(needs: ProfileNeeds, snapshot: ClusterSnapshot, found: _Kaito) -> list[CheckResult]:
    results = []
    for path in needs.paths:
        results.append(_check_path_nodes(needs, snapshot, found, path))
    return results


def _check_path_nodes(needs: ProfileNeeds, snapshot: ClusterSnapshot, found: _Kaito, path: ServingPath) -> CheckResult:
    id_ = f"gpu-nodes/{path.inference_set}"
    subject = f"GPU nodes of {path.inference_set} ({path.selector})"
    if needs.node_pool_mode == "kaito":
        return _skip(id_, subject, "KAITO creates this path's nodes and knows their GPUs from the instance type")
    if snapshot.nodes is None:
        return _denied(id_, subject, snapshot, "nodes")
    matching = [n for n in snapshot.nodes if all(_labels(n).get(k) == v for k, v in path.node_labels.items())]
    if not matching:
        if needs.node_pool_mode == "aks":
            return CheckResult(id_, Status.WARN, subject, "no node carries these labels yet",
                               f"create the path's AKS pool with the commands of `python scripts/nodepools.py {needs.profile}`; "
                               "a pool already at --min-count 0 is scaled up by the path's node anchor on install")
        return CheckResult(id_, Status.WARN, subject,
                           "no node yet: the path's node anchor makes its Karpenter NodePool bring one up on install")
    daemonsets = snapshot.daemonsets or []
    labellers = (kaito.find_gfd(daemonsets, found.namespace) + kaito.find_nfd_workers(daemonsets, found.namespace))
    plugins = kaito.find_device_plugins(daemonsets, found.namespace) if found.namespace else []
    problems, fixes, good = [], [], []
    for node in sorted(matching, key=_name):
        labels = _labels(node)
        on_node = f"(kubectl get pods -A -o wide --field-selector spec.nodeName={_name(node)})"
        missing = [label for label in GPU_LABELS if not labels.get(label)]
        if missing:
            problems.append(f"node {_name(node)} lacks {', '.join(missing)}, so KAITO's byo webhook refuses the InferenceSet")
            gaps = _untolerated_taints(node, labellers)
            fixes.append("; ".join(gaps) + ": give them the tolerations of the GPU feature discovery line's fix"
                         if gaps else f"check the GFD and NFD worker pods on it {on_node}")
            continue
        allocatable = ((node.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE)
        if not allocatable or str(allocatable) == "0":
            problems.append(f"node {_name(node)} has no allocatable {GPU_RESOURCE}, so no vLLM pod can start there")
            gaps = _untolerated_taints(node, plugins)
            fixes.append("; ".join(gaps) + ": see the KAITO spotInstance line's fix" if gaps else
                         f"check the NVIDIA driver and device plugin pods on it {on_node}")
            continue
        good.append(f"{_name(node)} ({labels[GPU_LABELS[0]]} x{labels[GPU_LABELS[1]]}, {labels[GPU_LABELS[2]]} MiB)")
    if problems:
        return CheckResult(id_, Status.FAIL, subject, "; ".join(problems), "; ".join(dict.fromkeys(fixes)))
    return _ok(id_, subject, ", ".join(good))


def run_checks(needs: ProfileNeeds, snapshot: ClusterSnapshot) -> list[CheckResult]:
    found = _find_kaito(snapshot)
    return [
        check_namespace(needs, snapshot),
        *check_kaito(needs, snapshot, found),
        check_node_provisioning(needs, snapshot),
        *check_kinds(needs, snapshot),
        *check_model_access(needs, snapshot),
        *check_path_nodes(needs, snapshot, found),
    ]


def summary(results: list[CheckResult]) -> dict[str, int]:
    return {status.value: sum(1 for r in results if r.status is status) for status in Status}


def to_json(result: CheckResult) -> dict[str, Any]:
    return {"id": result.id, "status": result.status.value, "subject": result.subject,
            "detail": result.detail, "fix": result.fix}

