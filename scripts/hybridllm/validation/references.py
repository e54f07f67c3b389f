"""Cross-object references: Services select pods in the render, ConfigMap/Secret/ServiceAccount
references resolve (or are declared external), and the gateway's backends name real Services."""

from __future__ import annotations

from typing import Any, Iterator
from urllib.parse import urlparse

import yaml

from .findings import Document, Finding
from .policy import Rule, selects
from .workloads import KAITO_KINDS, as_dict, as_list, containers, dig, pod_templates

# Objects list what they expect to exist outside the render, e.g. "Secret/hf-token,Secret/keys".
# The chart writes it from values such as modelAccess.existingSecret and gateway.auth.keysSecret.
EXTERNAL_REFS = "hybrid-llm.io/external-refs"

RULES = {rule.id: rule for rule in [
    Rule("service-selects-nothing", "the Service's selector matches no pods in the render, so it has no endpoints",
         "fix the selector or the pod labels"),
    Rule("missing-reference", "the object names a ConfigMap, Secret, ServiceAccount or SecretProviderClass that is not in the render",
         f"add the object, fix the name, or declare it external in the {EXTERNAL_REFS} annotation"),
    Rule("gateway-backend-missing", "a gateway backend URL names a Service that is not in the render",
         "point the backend at a rendered Service, or enable the path"),
]}


def _finding(document: Document, rule: str, message: str, path: str) -> Finding:
    return Finding.about(document, rule, message, RULES[rule].fix, path)


def _names(documents: list[Document], kind: str) -> set[tuple[str, str]]:
    return {(d.namespace, d.name) for d in documents if d.kind == kind}


def _external(document: Document) -> set[str]:
    declared = document.annotations.get(EXTERNAL_REFS, "")
    return {item.strip() for item in str(declared).split(",") if item.strip()}


def _pod_refs(spec: dict[str, Any], base: str) -> Iterator[tuple[str, str, str]]:
    """(kind, name, path) of everything a pod spec refers to."""
    account = spec.get("serviceAccountName")
    if account:
        yield "ServiceAccount", str(account), f"{base}.serviceAccountName"
    for index, volume in enumerate(as_list(spec.get("volumes"))):
        if not isinstance(volume, dict):
            continue
        at = f"{base}.volumes[{index}]"
        if isinstance(volume.get("configMap"), dict) and not volume["configMap"].get("optional"):
            yield "ConfigMap", str(volume["configMap"].get("name")), at
        if isinstance(volume.get("secret"), dict) and not volume["secret"].get("optional"):
            yield "Secret", str(volume["secret"].get("secretName")), at
        csi = volume.get("csi")
        if isinstance(csi, dict) and csi.get("driver") == "secrets-store.csi.k8s.io":
            yield "SecretProviderClass", str(dig(csi, "volumeAttributes", "secretProviderClass")), at
    for where, container in containers(spec):
        for index, source in enumerate(as_list(container.get("envFrom"))):
            for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                ref = source.get(field) if isinstance(source, dict) else None
                if isinstance(ref, dict) and not ref.get("optional"):
                    yield kind, str(ref.get("name")), f"{base}.{where}.envFrom[{index}]"
        for index, env in enumerate(as_list(container.get("env"))):
            value_from = env.get("valueFrom") if isinstance(env, dict) else None
            for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                ref = value_from.get(field) if isinstance(value_from, dict) else None
                if isinstance(ref, dict) and not ref.get("optional"):
                    yield kind, str(ref.get("name")), f"{base}.{where}.env[{index}]"


def _kaito_refs(document: Document) -> Iterator[tuple[str, str, str]]:
    obj = document.obj
    inference = dig(obj, "spec", "template", "inference") if document.kind == "InferenceSet" else obj.get("inference")
    base = "spec.template.inference" if document.kind == "InferenceSet" else "inference"
    if not isinstance(inference, dict):
        return
    if inference.get("config"):
        yield "ConfigMap", str(inference["config"]), f"{base}.config"
    secret = dig(inference, "preset", "presetOptions", "modelAccessSecret")
    if secret:
        yield "Secret", str(secret), f"{base}.preset.presetOptions.modelAccessSecret"


def _pod_labels(documents: list[Document]) -> list[tuple[str, dict[str, str]]]:
    """(namespace, labels) of every pod the render makes, KAITO's included."""
    pods = [(t.document.namespace, t.labels) for t in pod_templates(documents)]
    for document in documents:
        if document.kind == "InferenceSet":
            pods.append((document.namespace, {"inferenceset.kaito.sh/created-by": document.name}))
        elif document.kind == "Workspace":
            pods.append((document.namespace, {"kaito.sh/workspace": document.name}))
    return pods


def check(documents: list[Document]) -> Iterator[Finding]:
    present = {kind: _names(documents, kind) for kind in ("ConfigMap", "Secret", "ServiceAccount", "SecretProviderClass", "Service")}
    # Secrets that the CSI driver creates from a SecretProviderClass.
    for document in documents:
        if document.kind == "SecretProviderClass" and isinstance(document.obj, dict):
            for synced in as_list(dig(document.obj, "spec", "secretObjects")):
                if isinstance(synced, dict):
                    present["Secret"].add((document.namespace, str(synced.get("secretName"))))

    def missing(document: Document, refs: Iterator[tuple[str, str, str]]) -> Iterator[Finding]:
        external = _external(document)
        for kind, name, path in refs:
            if kind == "ServiceAccount" and name == "default":
                continue
            if (document.namespace, name) not in present[kind] and f"{kind}/{name}" not in external:
                yield _finding(document, "missing-reference", f"{kind} {name!r} is not in the render", path)

    for template in pod_templates(documents):
        yield from missing(template.document, _pod_refs(template.spec, template.path))
    for document in documents:
        if document.kind in KAITO_KINDS and isinstance(document.obj, dict):
            yield from missing(document, _kaito_refs(document))

    pods = _pod_labels(documents)
    for document in documents:
        if document.kind != "Service" or not isinstance(document.obj, dict):
            continue
        selector = dig(document.obj, "spec", "selector")
        if not isinstance(selector, dict) or not selector:
            continue  # headless or external endpoints
        if not any(ns == document.namespace and selects({"matchLabels": selector}, labels) for ns, labels in pods):
            yield _finding(document, "service-selects-nothing",
                           f"selector {selector} matches no pod template in the render", "spec.selector")

    for document in documents:
        if document.kind != "ConfigMap" or not isinstance(document.obj, dict):
            continue
        text = as_dict(document.obj.get("data")).get("gateway.yaml")
        if not isinstance(text, str):
            continue
        try:
            config = as_dict(yaml.safe_load(text))
        except yaml.YAMLError as exc:
            yield _finding(document, "gateway-backend-missing", f"gateway.yaml is not valid YAML: {exc}", "data.gateway.yaml")
            continue
        for name, backend in as_dict(config.get("backends")).items():
            if not isinstance(backend, dict) or backend.get("kind") != "vllm":
                continue
            host = urlparse(str(backend.get("baseURL", ""))).hostname or ""
            parts = host.split(".")
            if len(parts) >= 2 and host.endswith(".svc.cluster.local"):
                if (parts[1], parts[0]) not in present["Service"]:
                    yield _finding(document, "gateway-backend-missing",
                                   f"backend {name!r} points at Service {parts[0]!r} in {parts[1]!r}, which is not in the render",
                                   f"data.gateway.yaml.backends.{name}.baseURL")
