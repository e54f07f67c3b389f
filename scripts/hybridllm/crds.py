"""Validating custom resources against the openAPIV3Schema of their real CRDs.

Each CRD schema is made strict (an unknown field is an error, as with kubectl's strict field
validation) and compiled once; validators are reused for every object of that kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import yaml

from .errors import UserError
from .layout import display_path

GroupVersionKind = tuple[str, str, str]


@dataclass(frozen=True)
class SchemaProblem:
    path: str  # JSON path inside the object, e.g. spec.template.resource.instanceType
    message: str


def _strict(schema: Any) -> Any:
    """Copy of an OpenAPI v3 schema in which objects with declared properties reject others.

    Kubernetes prunes unknown fields of a structural schema silently; a misspelled field in a
    chart must fail instead."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    if strict.get("x-kubernetes-int-or-string"):
        strict.pop("type", None)
        strict.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if strict.get("nullable") and "type" in strict:
        strict["type"] = [strict["type"], "null"]
    return strict


def _metadata_schema() -> dict[str, Any]:
    # CRDs leave metadata to the API server; check the parts a chart writes.
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
            "namespace": {"type": "string"},
            "labels": string_map,
            "annotations": string_map,
        },
    }


class CrdCatalog:
    """The CRDs in one directory, indexed by (group, version, kind)."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise UserError(display_path(directory), "CRD directory not found",
                            "pass --crds DIR, or place the upstream CRDs in ../shared/crds")
        self.directory = directory
        self._schemas: dict[GroupVersionKind, dict[str, Any]] = {}
        self._validators: dict[GroupVersionKind, jsonschema.protocols.Validator] = {}
        for path in sorted(directory.glob("*.yaml")):
            for crd in self._load(path):
                self._index(crd)

    @staticmethod
    def _load(path: Path) -> Iterator[dict[str, Any]]:
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            raise UserError(display_path(path), f"not valid YAML: {exc}") from None
        for document in documents:
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                yield document

    def _index(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            schema = version.get("schema", {}).get("openAPIV3Schema")
            if schema:
                self._schemas[(spec["group"], version["name"], spec["names"]["kind"])] = schema

    def kinds(self) -> set[GroupVersionKind]:
        return set(self._schemas)

    def knows(self, api_version: str, kind: str) -> bool:
        return _gvk(api_version, kind) in self._schemas

    def validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator:
        key = _gvk(api_version, kind)
        if key not in self._validators:
            if key not in self._schemas:
                raise KeyError(f"no CRD for {api_version} {kind} in {display_path(self.directory)}")
            schema = _strict(self._schemas[key])
            schema.setdefault("properties", {})["metadata"] = _metadata_schema()
            self._validators[key] = jsonschema.Draft7Validator(schema)
        return self._validators[key]

    def problems(self, obj: dict[str, Any]) -> list[SchemaProblem]:
        validator = self.validator(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        found = []
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
            path = ".".join(str(part) for part in error.absolute_path) or "(top level)"
            found.append(SchemaProblem(path, error.message))
        return found


def _gvk(api_version: str, kind: str) -> GroupVersionKind:
    group, _, version = api_version.rpartition("/")
    return (group, version, kind)
