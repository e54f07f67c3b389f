"""Kubernetes' own schemas, strict (unknown fields are errors), for each listed version.

kubernetes_validate.validate() reads two schema files and builds a new validator for every
document: about 20 ms each. Here each (version, apiVersion, kind) validator is built once and
reused, with the same schema files and the same jsonschema draft, so the verdicts are the same.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv
import yaml
from referencing import Registry, Resource

from ..layout import REPO_ROOT, display_path
from ..errors import UserError

VERSIONS_FILE = REPO_ROOT / "data" / "kubernetes-versions.yaml"
_SCHEMA_ROOT = Path(kv.__file__).parent / "kubernetes-json-schema"


def default_versions() -> list[str]:
    data = yaml.safe_load(VERSIONS_FILE.read_text(encoding="utf-8"))
    versions = data.get("versions") if isinstance(data, dict) else None
    if not versions or not all(isinstance(v, str) and re.fullmatch(r"\d+\.\d+", v) for v in versions):
        raise UserError(display_path(VERSIONS_FILE), "`versions:` must be a list of minors such as \"1.34\"")
    return versions


def supported_versions() -> list[str]:
    return [kv.major_minor(v) for v in kv.all_versions()]


def _schema_file(version: str, api_version: str, kind: str) -> Path:
    # Same naming as kubernetes_validate: rbac.authorization.k8s.io/v1 -> rbac-v1
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return _SCHEMA_ROOT / f"v{version}.0-local-strict" / f"{kind.lower()}-{api}.json"


@lru_cache(maxsize=None)
def _definitions_document(version: str) -> dict[str, Any]:
    path = _SCHEMA_ROOT / f"v{version}.0-local-strict" / "_definitions.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _inline(node: Any, definitions: dict[str, Any], trail: tuple[str, ...] = ()) -> Any:
    """Replace references to the shared definitions (`/api/_definitions.json#/$defs/X` in a kind's
    schema, `#/$defs/X` inside the definitions) by the definitions themselves, once, so validating
    does no reference lookups. A recursive type keeps its reference."""
    if isinstance(node, list):
        return [_inline(item, definitions, trail) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and "#/$defs/" in ref and ref.split("#", 1)[0] in ("", "/api/_definitions.json"):
        name = ref.split("#/$defs/", 1)[1]
        if name not in trail and name in definitions:
            rest = {k: v for k, v in node.items() if k != "$ref"}
            inlined = _inline(definitions[name], definitions, trail + (name,))
            return {**inlined, **rest} if rest else inlined
        # Kept (recursive): point it at the definitions document so it resolves from any schema.
        return {**node, "$ref": f"/api/_definitions.json#/$defs/{name}"}
    return {key: _inline(value, definitions, trail) for key, value in node.items()}


class KubernetesSchemas:
    """Strict validators for built-in kinds, one per (version, apiVersion, kind), built on first use."""

    def __init__(self, versions: list[str]) -> None:
        unsupported = sorted(set(versions) - set(supported_versions()))
        if unsupported:
            raise UserError("kubernetes versions", f"no schemas for {', '.join(unsupported)} in kubernetes-validate "
                            f"{kv.__version__}", f"use versions from {supported_versions()[0]} to {supported_versions()[-1]}")
        self.versions = versions
        self._validators: dict[tuple[str, str, str], jsonschema.protocols.Validator | None] = {}

    def is_builtin(self, kind: str) -> bool:
        """Some Kubernetes version kubernetes-validate knows has this kind (at any apiVersion)."""
        return any(self._kind_known(v, kind) for v in supported_versions())

    @staticmethod
    @lru_cache(maxsize=None)
    def _kind_known(version: str, kind: str) -> bool:
        folder = _SCHEMA_ROOT / f"v{version}.0-local-strict"
        return any(folder.glob(f"{kind.lower()}-*.json"))

    def validator(self, version: str, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
        key = (version, api_version, kind)
        if key not in self._validators:
            path = _schema_file(version, api_version, kind)
            if not path.exists():
                self._validators[key] = None
            else:
                document = _definitions_document(version)
                schema = _inline(json.loads(path.read_text(encoding="utf-8")), document["$defs"])
                # References left by recursive types still resolve through the registry.
                registry = Resource.from_contents(schema) @ Registry()
                registry = Resource.from_contents(document) @ registry
                self._validators[key] = jsonschema.validators.Draft202012Validator(schema, registry=registry)
        return self._validators[key]

    def problems(self, version: str, obj: dict[str, Any]) -> list[tuple[str, str]] | None:
        """(path, message) for each violation; None when this version does not serve the kind."""
        validator = self.validator(version, str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if validator is None:
            return None
        errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
        return [(".".join(str(p) for p in e.absolute_path) or "(top level)", e.message) for e in errors]
