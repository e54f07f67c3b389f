"""A finding: one problem with one object, with where it is, the rule, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Source:
    """Where an object came from: a file (and line) or a chart template."""

    file: str
    line: int | None = None


@dataclass
class Document:
    """One parsed YAML document with its origin."""

    source: Source
    obj: Any
    # Set when the object is carried in a ConfigMap for a later apply instead of being applied
    # with the rest (hybridllm/embedded.py), e.g. "ConfigMap/x data.customer.inferenceset.yaml".
    embedded_in: str | None = None

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", "")) if isinstance(self.obj, dict) else ""

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", "")) if isinstance(self.obj, dict) else ""

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.obj.get("metadata") if isinstance(self.obj, dict) else None
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "") or "")

    @property
    def annotations(self) -> dict[str, str]:
        annotations = self.metadata.get("annotations")
        return annotations if isinstance(annotations, dict) else {}

    @property
    def labels(self) -> dict[str, str]:
        labels = self.metadata.get("labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def ref(self) -> str:
        return f"{self.kind or '?'}/{self.name or '?'}"


@dataclass
class Finding:
    rule: str
    message: str
    fix: str
    file: str
    line: int | None = None
    kind: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""
    kubernetes_version: str | None = None
    waived: bool = False
    waiver_reason: str | None = None

    @classmethod
    def about(cls, document: Document, rule: str, message: str, fix: str, path: str = "",
              kubernetes_version: str | None = None) -> "Finding":
        return cls(rule=rule, message=message, fix=fix, file=document.source.file, line=document.source.line,
                   kind=document.kind, name=document.name, namespace=document.namespace, path=path,
                   kubernetes_version=kubernetes_version)

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "message": self.message, "fix": self.fix, "file": self.file, "line": self.line,
            "object": {"kind": self.kind, "name": self.name, "namespace": self.namespace},
            "path": self.path, "kubernetesVersion": self.kubernetes_version,
            "waived": self.waived, "waiverReason": self.waiver_reason,
        }
