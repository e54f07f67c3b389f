"""Policy rules. Each has an id, a one-line reason and a fix hint (RULES below, documented in the
README). Checks return findings; waivers are applied afterwards by the engine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from .findings import Document, Finding
from .workloads import PodTemplate, as_dict, as_list, containers, dig, pod_templates


@dataclass(frozen=True)
class Rule:
    id: str
    reason: str
    fix: str


RULES = {rule.id: rule for rule in [
    Rule("run-as-non-root", "containers must not run as root", "set securityContext.runAsNonRoot: true and a non-zero runAsUser"),
    Rule("read-only-root-fs", "a writable root filesystem lets a compromise persist", "set readOnlyRootFilesystem: true; mount an emptyDir where the app writes"),
    Rule("drop-all-capabilities", "containers keep Linux capabilities they do not need", "set securityContext.capabilities.drop: [ALL]"),
    Rule("seccomp-runtime-default", "without a seccomp profile every syscall is allowed", "set securityContext.seccompProfile.type: RuntimeDefault"),
    Rule("no-privilege-escalation", "a process could gain more privileges than its parent", "set allowPrivilegeEscalation: false and privileged: false"),
    Rule("no-host-access", "host namespaces and hostPath volumes break isolation from the node", "remove hostNetwork/hostPID/hostIPC and hostPath volumes"),
    Rule("service-account-token", "a mounted API token is a credential the pod may not need", "set automountServiceAccountToken: false, or waive with the reason the pod calls the API"),
    Rule("resource-requests", "without requests and a memory limit the scheduler cannot place the pod safely", "set resources.requests.cpu, requests.memory and limits.memory"),
    Rule("probes", "without distinct readiness and liveness probes broken pods keep traffic or restart wrongly", "add a readinessProbe and a different livenessProbe"),
    Rule("image-pinned", "a floating tag changes what runs without a change to the manifest", "pin a version tag (not latest), ideally with @sha256 digest"),
    Rule("network-policy-coverage", "a pod no NetworkPolicy selects accepts traffic from anywhere", "add a NetworkPolicy whose podSelector matches the pod labels"),
    Rule("pdb-coverage", "a multi-replica Deployment without a PDB can be drained to zero", "add a PodDisruptionBudget selecting its pods"),
    Rule("secret-in-config", "secrets in ConfigMaps or env values end up in logs, diffs and backups", "move the value to a Secret and reference it"),
    Rule("secret-data-in-render", "a Secret with data in rendered manifests puts the secret in the chart's output", "reference an existing Secret or a Key Vault sync instead"),
]}

# Strings that look like credentials (hf_ Hugging Face tokens, sk- API keys, PEM keys, Azure keys).
_SECRET_PATTERNS = [
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"AccountKey=[A-Za-z0-9+/=]{20,}"),
    re.compile(r"(?i)\b(api[-_]?key|password|secret|token)\s*[:=]\s*['\"]?[A-Za-z0-9+/_\-]{24,}"),
]


def _finding(document: Document, rule_id: str, message: str, path: str) -> Finding:
    return Finding.about(document, rule_id, message, RULES[rule_id].fix, path)


def _effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A security setting from the container, else the pod (Kubernetes' own precedence)."""
    own = container.get("securityContext") if isinstance(container.get("securityContext"), dict) else {}
    pod_level = pod.get("securityContext") if isinstance(pod.get("securityContext"), dict) else {}
    return own.get(key, pod_level.get(key))


def _pod_security(template: PodTemplate) -> Iterator[Finding]:
    spec, doc, base = template.spec, template.document, template.path
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag) is True:
            yield _finding(doc, "no-host-access", f"pod sets {flag}: true", f"{base}.{flag}")
    for index, volume in enumerate(as_list(spec.get("volumes"))):
        if isinstance(volume, dict) and "hostPath" in volume:
            yield _finding(doc, "no-host-access", f"volume {volume.get('name')!r} is a hostPath", f"{base}.volumes[{index}]")
    if spec.get("automountServiceAccountToken") is not False:
        yield _finding(doc, "service-account-token", "the service account token is mounted",
                       f"{base}.automountServiceAccountToken")
    for where, container in containers(spec):
        name = container.get("name", where)
        at = f"{base}.{where}.securityContext"
        context = container.get("securityContext") if isinstance(container.get("securityContext"), dict) else {}
        if _effective(spec, container, "runAsNonRoot") is not True or _effective(spec, container, "runAsUser") == 0:
            yield _finding(doc, "run-as-non-root", f"container {name!r} may run as root", f"{at}.runAsNonRoot")
        if context.get("readOnlyRootFilesystem") is not True:
            yield _finding(doc, "read-only-root-fs", f"container {name!r} has a writable root filesystem",
                           f"{at}.readOnlyRootFilesystem")
        drop = dig(context, "capabilities", "drop")
        if not isinstance(drop, list) or "ALL" not in drop:
            yield _finding(doc, "drop-all-capabilities", f"container {name!r} does not drop ALL capabilities",
                           f"{at}.capabilities.drop")
        seccomp = _effective(spec, container, "seccompProfile")
        if not isinstance(seccomp, dict) or seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            yield _finding(doc, "seccomp-runtime-default", f"container {name!r} has no RuntimeDefault seccomp profile",
                           f"{at}.seccompProfile")
        if context.get("allowPrivilegeEscalation") is not False or context.get("privileged") is True:
            yield _finding(doc, "no-privilege-escalation", f"container {name!r} may escalate privileges",
                           f"{at}.allowPrivilegeEscalation")


def _resources_and_probes(template: PodTemplate) -> Iterator[Finding]:
    doc, base = template.document, template.path
    for where, container in containers(template.spec):
        name = container.get("name", where)
        resources = container.get("resources") if isinstance(container.get("resources"), dict) else {}
        requests = resources.get("requests") if isinstance(resources.get("requests"), dict) else {}
        limits = resources.get("limits") if isinstance(resources.get("limits"), dict) else {}
        missing = [f"requests.{r}" for r in ("cpu", "memory") if r not in requests]
        missing += ["limits.memory"] if "memory" not in limits else []
        if missing:
            yield _finding(doc, "resource-requests", f"container {name!r} lacks {', '.join(missing)}",
                           f"{base}.{where}.resources")
        if where.startswith("initContainers"):
            continue
        readiness, liveness = container.get("readinessProbe"), container.get("livenessProbe")
        if not readiness or not liveness:
            lacking = " and ".join(p for p, v in (("readinessProbe", readiness), ("livenessProbe", liveness)) if not v)
            yield _finding(doc, "probes", f"container {name!r} has no {lacking}", f"{base}.{where}")
        elif readiness == liveness:
            yield _finding(doc, "probes", f"container {name!r} has identical readiness and liveness probes",
                           f"{base}.{where}.livenessProbe")


def image_problem(image: Any) -> str | None:
    if not isinstance(image, str) or not image:
        return "has no image"
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag (it means latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses the latest tag"
    return None


def _images(template: PodTemplate) -> Iterator[Finding]:
    for where, container in containers(template.spec):
        problem = image_problem(container.get("image"))
        if problem:
            yield _finding(template.document, "image-pinned", f"container {container.get('name', where)!r} {problem}",
                           f"{template.path}.{where}.image")


def _looks_secret(value: Any) -> bool:
    return isinstance(value, str) and any(p.search(value) for p in _SECRET_PATTERNS)


def _secrets(documents: list[Document]) -> Iterator[Finding]:
    for document in documents:
        if document.kind == "ConfigMap" and isinstance(document.obj, dict):
            for key, value in as_dict(document.obj.get("data")).items():
                if _looks_secret(value) or _looks_secret(f"{key}={value}"):
                    yield _finding(document, "secret-in-config", f"ConfigMap key {key!r} holds a credential-like value",
                                   f"data.{key}")
        if document.kind == "Secret" and isinstance(document.obj, dict):
            if document.obj.get("data") or document.obj.get("stringData"):
                yield _finding(document, "secret-data-in-render", "the render contains Secret data", "data")
    for template in pod_templates(documents):
        for where, container in containers(template.spec):
            for index, env in enumerate(as_list(container.get("env"))):
                if isinstance(env, dict) and _looks_secret(env.get("value")):
                    yield _finding(template.document, "secret-in-config",
                                   f"env {env.get('name')!r} of container {container.get('name')!r} holds a credential-like value",
                                   f"{template.path}.{where}.env[{index}].value")


def selects(selector: Any, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against pod labels."""
    if not isinstance(selector, dict):
        return False
    if not all(labels.get(k) == str(v) for k, v in as_dict(selector.get("matchLabels")).items()):
        return False
    for expression in as_list(selector.get("matchExpressions")):
        if not isinstance(expression, dict):
            return False
        key, operator = expression.get("key"), expression.get("operator")
        values = {str(v) for v in as_list(expression.get("values"))}
        present = key in labels
        if ((operator == "In" and labels.get(key) not in values) or (operator == "NotIn" and labels.get(key) in values)
                or (operator == "Exists" and not present) or (operator == "DoesNotExist" and present)):
            return False
    return True


def _coverage(documents: list[Document]) -> Iterator[Finding]:
    policies = [d for d in documents if d.kind == "NetworkPolicy" and isinstance(d.obj, dict)]
    budgets = [d for d in documents if d.kind == "PodDisruptionBudget" and isinstance(d.obj, dict)]
    scaled = {dig(d.obj, "spec", "scaleTargetRef", "name") for d in documents
              if d.kind == "HorizontalPodAutoscaler" and isinstance(d.obj, dict)}
    for template in pod_templates(documents):
        doc = template.document
        namespace = doc.namespace
        if not any(p.namespace == namespace and selects(dig(p.obj, "spec", "podSelector"), template.labels)
                   for p in policies):
            yield _finding(doc, "network-policy-coverage", "no NetworkPolicy selects these pods", f"{template.path}")
        if doc.kind == "Deployment":
            replicas = as_dict(doc.obj.get("spec")).get("replicas", 1)
            if (doc.name in scaled or (isinstance(replicas, int) and replicas > 1)) and not any(
                    b.namespace == namespace and selects(dig(b.obj, "spec", "selector"), template.labels)
                    for b in budgets):
                yield _finding(doc, "pdb-coverage", "a multi-replica Deployment has no PodDisruptionBudget", "spec.replicas")


POD_CHECKS: list[Callable[[PodTemplate], Iterator[Finding]]] = [_pod_security, _resources_and_probes, _images]


def check(documents: list[Document]) -> list[Finding]:
    findings: list[Finding] = []
    for template in pod_templates(documents):
        for pod_check in POD_CHECKS:
            findings.extend(pod_check(template))
    findings.extend(_secrets(documents))
    findings.extend(_coverage(documents))
    return findings
