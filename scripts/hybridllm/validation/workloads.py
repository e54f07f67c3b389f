"""Finding the pod specs in a render, and the node selection of every workload (pods and KAITO
InferenceSets/Workspaces, whose pods KAITO creates from the label selector)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .findings import Document

POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
KAITO_KINDS = {"InferenceSet", "Workspace"}


@dataclass(frozen=True)
class PodTemplate:
    document: Document
    spec: dict[str, Any]
    labels: dict[str, str]
    annotations: dict[str, str]
    path: str  # JSON path of the pod spec inside the object


def pod_templates(documents: list[Document]) -> Iterator[PodTemplate]:
    for document in documents:
        obj = document.obj
        if not isinstance(obj, dict):
            continue
        template, path = None, ""
        if document.kind in POD_TEMPLATE_KINDS:
            template, path = dig(obj, "spec", "template"), "spec.template"
        elif document.kind == "CronJob":
            template, path = dig(obj, "spec", "jobTemplate", "spec", "template"), "spec.jobTemplate.spec.template"
        elif document.kind == "Pod":
            template, path = {"metadata": obj.get("metadata", {}), "spec": obj.get("spec")}, ""
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            metadata = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
            yield PodTemplate(document, template["spec"], _str_map(metadata.get("labels")),
                              _str_map(metadata.get("annotations")), f"{path}.spec" if path else "spec")


def containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, container) for init and regular containers."""
    for field in ("initContainers", "containers"):
        for index, container in enumerate(as_list(spec.get(field))):
            if isinstance(container, dict):
                yield f"{field}[{index}]", container


@dataclass(frozen=True)
class NodeSelection:
    """Node labels a workload requires: exact values, or sets of allowed values."""

    document: Document
    required: dict[str, frozenset[str]]
    tolerations: list[dict[str, Any]] | None  # None: KAITO adds its own
    path_name: str | None  # the serving path (customer, batch) when the workload belongs to one


def dig(obj: Any, *keys: str) -> Any:
    """obj[k1][k2]... or None where any step is missing or not a mapping: input may be anything."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def serving_path(labels: dict[str, str]) -> str | None:
    component = labels.get("app.kubernetes.io/component", "")
    if component.startswith("vllm-"):
        return component.removeprefix("vllm-")
    return labels.get("hybrid-llm.io/path")


def node_selections(documents: list[Document]) -> Iterator[NodeSelection]:
    for template in pod_templates(documents):
        spec = template.spec
        required = {k: frozenset([v]) for k, v in _str_map(spec.get("nodeSelector")).items()}
        terms = dig(spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                     "nodeSelectorTerms")
        if isinstance(terms, list) and len(terms) == 1 and isinstance(terms[0], dict):
            for expression in as_list(terms[0].get("matchExpressions")):
                if isinstance(expression, dict) and expression.get("operator") == "In":
                    required[str(expression.get("key"))] = frozenset(map(str, as_list(expression.get("values"))))
        if required:
            tolerations = spec.get("tolerations") if isinstance(spec.get("tolerations"), list) else []
            yield NodeSelection(template.document, required, tolerations,
                                serving_path({**template.document.labels, **template.labels}))
    for document in documents:
        if document.kind not in KAITO_KINDS or not isinstance(document.obj, dict):
            continue
        selector = (dig(document.obj, "spec", "labelSelector", "matchLabels") if document.kind == "InferenceSet"
                    else dig(document.obj, "resource", "labelSelector", "matchLabels"))
        required = {k: frozenset([v]) for k, v in _str_map(selector).items()}
        yield NodeSelection(document, required, None, serving_path(document.labels))


def required_node_labels(template: PodTemplate) -> dict[str, str]:
    """The node labels a pod must have, where each has exactly one allowed value: its nodeSelector
    and single-valued In expressions of a single required node selector term."""
    spec = template.spec
    required = _str_map(spec.get("nodeSelector"))
    terms = dig(spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
    if isinstance(terms, list) and len(terms) == 1 and isinstance(terms[0], dict):
        for expression in as_list(terms[0].get("matchExpressions")):
            if (isinstance(expression, dict) and expression.get("operator") == "In"
                    and len(as_list(expression.get("values"))) == 1):
                required[str(expression.get("key"))] = str(as_list(expression.get("values"))[0])
    return required
