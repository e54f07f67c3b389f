"""Running every check over a set of documents, for each Kubernetes version, and applying waivers.

A rule is waived for one object by the annotation `waive.hybrid-llm.io/<rule-id>: "<reason>"` on
the object (or on its pod template). A waiver without a reason is itself a finding.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .. import figures
from ..crds import CrdCatalog
from ..errors import UserError
from . import convergence, placement, policy, reachability, references
from .findings import Document, Finding
from .kubernetes_schemas import KubernetesSchemas
from .policy import Rule
from .workloads import pod_templates

WAIVER_PREFIX = "waive.hybrid-llm.io/"

RULES: dict[str, Rule] = {
    **{rule.id: rule for rule in [
        Rule("yaml-syntax", "the file is not valid YAML", "fix the YAML at the line shown"),
        Rule("empty-file", "a manifest file with nothing in it is usually a mistake", "delete it or fill it"),
        Rule("not-an-object", "a document without apiVersion, kind and metadata.name is not a Kubernetes object",
             "add apiVersion, kind and metadata.name"),
        Rule("duplicate-object", "two documents define the same object; one silently overwrites the other",
             "remove or rename one of them"),
        Rule("kubernetes-schema", "the object does not match its Kubernetes schema (strict: unknown fields are errors)",
             "fix the field named in the path"),
        Rule("api-not-served", "this Kubernetes version no longer (or does not yet) serve the object's apiVersion",
             "move to an apiVersion every listed Kubernetes version serves"),
        Rule("crd-schema", "the custom resource does not match the openAPIV3Schema of its CRD",
             "fix the field named in the path"),
        Rule("unknown-kind", "no Kubernetes or CRD schema is known for this kind, so nothing checks it",
             "pass the CRD directory with --crds, or allow the kind with --allow-kind"),
        Rule("waiver-without-reason", "a waiver must say why", f"write the reason as the value of the {WAIVER_PREFIX}<rule> annotation"),
        Rule("helm-lint", "helm lint reported a problem with the chart", "fix what helm lint names"),
        Rule("helm-render", "the profile does not render (schema or guardrail)", "fix the values as the message says"),
        Rule("not-text", "the file is not UTF-8 text", "give a YAML manifest"),
    ]},
    **policy.RULES, **placement.RULES, **references.RULES, **convergence.RULES, **reachability.RULES,
}


@dataclass
class Report:
    documents: int = 0
    findings: list[Finding] = field(default_factory=list)
    # Per release, what the reachability check judged: one text block each (reachability.py).
    reachability: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def active(self) -> list[Finding]:
        return [f for f in self.findings if not f.waived]

    def by_rule(self) -> dict[str, int]:
        return dict(sorted(Counter(f.rule for f in self.active).items()))


def _structure(documents: list[Document]) -> tuple[list[Document], list[Finding]]:
    objects, findings, seen = [], [], {}
    for document in documents:
        obj = document.obj
        if isinstance(obj, dict) and str(obj.get("apiVersion", "")).startswith("kustomize.config.k8s.io/"):
            continue  # kustomize's own build file, not a cluster object
        if not (isinstance(obj, dict) and isinstance(obj.get("apiVersion"), str) and isinstance(obj.get("kind"), str)
                and obj.get("kind") and document.name):
            what = type(obj).__name__ if not isinstance(obj, dict) else "a mapping without apiVersion, kind or metadata.name"
            findings.append(Finding.about(document, "not-an-object", f"the document is {what}",
                                          RULES["not-an-object"].fix))
            continue
        key = (document.api_version.split("/")[0] if "/" in document.api_version else "", document.kind,
               document.namespace, document.name)
        if key in seen:
            first = seen[key]
            findings.append(Finding.about(document, "duplicate-object",
                                          f"{document.ref} is also defined at {first.source.file}"
                                          + (f":{first.source.line}" if first.source.line else ""),
                                          RULES["duplicate-object"].fix))
            continue
        seen[key] = document
        objects.append(document)
    return objects, findings


def _schemas(documents: list[Document], kubernetes: KubernetesSchemas, crds: CrdCatalog | None,
             allow_kinds: set[str]) -> list[Finding]:
    findings = []
    for document in documents:
        obj = document.obj
        if crds is not None and crds.knows(document.api_version, document.kind):
            for problem in crds.problems(obj):
                findings.append(Finding.about(document, "crd-schema", problem.message, RULES["crd-schema"].fix,
                                              problem.path))
            continue
        if not kubernetes.is_builtin(document.kind):
            if document.kind not in allow_kinds:
                where = "a CRD directory was not given" if crds is None else f"not in {crds.directory}"
                findings.append(Finding.about(document, "unknown-kind",
                                              f"no schema for {document.api_version} {document.kind} ({where})",
                                              RULES["unknown-kind"].fix))
            continue
        for version in kubernetes.versions:
            problems = kubernetes.problems(version, obj)
            if problems is None:
                findings.append(Finding.about(document, "api-not-served",
                                              f"Kubernetes {version} does not serve {document.api_version} {document.kind}",
                                              RULES["api-not-served"].fix, "apiVersion", version))
                continue
            for path, message in problems:
                findings.append(Finding.about(document, "kubernetes-schema", message, RULES["kubernetes-schema"].fix,
                                              path, version))
    return _merge_versions(findings)


def _merge_versions(findings: list[Finding]) -> list[Finding]:
    """One finding per problem, naming every Kubernetes version it applies to."""
    merged: dict[tuple, Finding] = {}
    for finding in findings:
        key = (finding.file, finding.line, finding.kind, finding.name, finding.rule, finding.path, finding.message)
        if key in merged and finding.kubernetes_version:
            merged[key].kubernetes_version += f",{finding.kubernetes_version}"
        else:
            merged[key] = finding
    return list(merged.values())


def _apply_waivers(documents: list[Document], findings: list[Finding]) -> list[Finding]:
    annotations: dict[tuple, dict[str, str]] = {}
    for document in documents:
        annotations[(document.kind, document.namespace, document.name)] = dict(document.annotations)
    for template in pod_templates(documents):
        key = (template.document.kind, template.document.namespace, template.document.name)
        annotations[key] = {**template.annotations, **annotations.get(key, {})}
    extra = []
    for document in documents:
        for key, reason in annotations.get((document.kind, document.namespace, document.name), {}).items():
            if key.startswith(WAIVER_PREFIX) and not str(reason).strip():
                extra.append(Finding.about(document, "waiver-without-reason", f"{key} has no reason",
                                           RULES["waiver-without-reason"].fix, f"metadata.annotations.{key}"))
    for finding in findings:
        reason = annotations.get((finding.kind, finding.namespace, finding.name), {}).get(WAIVER_PREFIX + finding.rule)
        if reason and str(reason).strip():
            finding.waived, finding.waiver_reason = True, str(reason).strip()
    return findings + extra


def model_disk_floors() -> dict[str, tuple[float, int]]:
    """Preset -> (weights in GB, smallest OS disk in GB) from data/figures.yaml; nothing when the
    file cannot be read."""
    try:
        weights, floors = figures.model_weights_gb(), figures.min_os_disk_gb()
    except UserError:
        return {}
    return {name: (weights[name], floors[name]) for name in weights}


def validate(documents: list[Document], kubernetes: KubernetesSchemas, crds: CrdCatalog | None,
             allow_kinds: set[str] | None = None, earlier: list[Finding] | None = None) -> Report:
    objects, findings = _structure(documents)
    findings = list(earlier or []) + findings
    findings += _schemas(objects, kubernetes, crds, allow_kinds or set())
    findings += policy.check(objects)
    findings += placement.check(objects)
    findings += references.check(objects)
    findings += convergence.check(objects, model_disk_floors())
    return Report(documents=len(documents), findings=_apply_waivers(objects, findings))
