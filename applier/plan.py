"""What the chart asks the applier to do: the files of the serving ConfigMap, mounted as a directory.

plan.tsv has one line per enabled path: path name, InferenceSet name, replicas, the node label
selector (k=v,k=v) and the node anchor Deployment's name. Beside it, per enabled path,
<path>.inferenceset.yaml holds the object to apply, and per known path, enabled or not,
<path>.node-anchor.yaml its node anchor: deleting a disabled path's InferenceSet needs a node too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from applier.kube import APPLIED_KINDS, Resource

PLAN_FILE = "plan.tsv"
PLAN_FIELDS = ("path", "InferenceSet", "replicas", "node label selector", "anchor Deployment")
# The serving paths the chart knows (values.schema.json `paths`). A path missing from the plan may
# still have an anchor from an earlier revision, so the applier looks for those of every known path.
KNOWN_PATHS = ("customer", "batch")


class PlanError(Exception):
    """The manifests directory is not what the chart renders; the message names the file."""


@dataclass(frozen=True)
class Manifest:
    """An object to apply, as read from its file."""

    file: Path
    resource: Resource
    obj: dict[str, Any]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    def owned_by(self, placeholder: str, uid: str) -> dict[str, Any]:
        """The object with the owner UID placeholder the chart writes replaced by the real UID."""
        obj = copy.deepcopy(self.obj)
        for owner in obj["metadata"].get("ownerReferences") or []:
            if placeholder and owner.get("uid") == placeholder:
                owner["uid"] = uid
        return obj

    def has_owner_placeholder(self, placeholder: str) -> bool:
        return bool(placeholder) and any(
            owner.get("uid") == placeholder for owner in self.obj["metadata"].get("ownerReferences") or [])


@dataclass(frozen=True)
class PathPlan:
    name: str
    inference_set: str
    replicas: int
    node_selector: str
    anchor: str
    inference_set_manifest: Manifest
    anchor_manifest: Manifest

    @property
    def wants_replicas(self) -> bool:
        return self.replicas > 0


def read_plan(directory: Path) -> list[PathPlan]:
    plan_file = directory / PLAN_FILE
    try:
        lines = plan_file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PlanError(f"{plan_file}: cannot read it ({exc.strerror}); --manifests must be the mounted serving ConfigMap") from None
    paths: list[PathPlan] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        where = f"{plan_file} line {number}"
        if len(fields) != len(PLAN_FIELDS):
            raise PlanError(f"{where}: expected {len(PLAN_FIELDS)} tab-separated fields ({', '.join(PLAN_FIELDS)}), found {len(fields)}")
        name, inference_set, replicas_text, node_selector, anchor = (f.strip() for f in fields)
        if name not in KNOWN_PATHS:
            raise PlanError(f"{where}: unknown path {name!r}; the chart's paths are {', '.join(KNOWN_PATHS)}")
        if any(p.name == name for p in paths):
            raise PlanError(f"{where}: path {name!r} is listed twice")
        if not replicas_text.isdigit():
            raise PlanError(f"{where}: replicas {replicas_text!r} is not a whole number >= 0")
        if not node_selector:
            raise PlanError(f"{where}: the node label selector is empty; KAITO would match every node")
        paths.append(PathPlan(
            name=name,
            inference_set=inference_set,
            replicas=int(replicas_text),
            node_selector=node_selector,
            anchor=anchor,
            inference_set_manifest=_read_manifest(directory / f"{name}.inferenceset.yaml", "InferenceSet", inference_set),
            anchor_manifest=_read_manifest(directory / f"{name}.node-anchor.yaml", "Deployment", anchor),
        ))
    return paths


def read_anchors(directory: Path) -> dict[str, Manifest]:
    """The node anchors the serving ConfigMap carries, by path name. A mount of a ConfigMap that
    does not exist (an optional volume) is an empty directory: no anchors."""
    anchors = {}
    for name in KNOWN_PATHS:
        file = directory / f"{name}.node-anchor.yaml"
        if file.is_file():
            anchors[name] = _read_manifest(file, "Deployment", None)
    return anchors


def require_owner(plan: list[PathPlan], placeholder: str, owner_config_map: str) -> None:
    """An ownerReference left with the placeholder UID would name no object, and the garbage
    collector deletes an object whose owners are all gone: refuse before applying any."""
    if owner_config_map:
        return
    for path in plan:
        for manifest in (path.inference_set_manifest, path.anchor_manifest):
            if manifest.has_owner_placeholder(placeholder):
                raise PlanError(
                    f"{manifest.file}: its ownerReferences carry the placeholder UID {placeholder}, "
                    "but --owner-configmap is not set, so the real UID is unknown")


def _read_manifest(file: Path, kind: str, name: str | None) -> Manifest:
    try:
        obj = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"{file}: cannot read it ({exc.strerror}); {PLAN_FILE} lists the path, so the ConfigMap must carry it") from None
    except yaml.YAMLError as exc:
        raise PlanError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        raise PlanError(f"{file}: expected one Kubernetes object with metadata")
    resource = APPLIED_KINDS.get((obj.get("apiVersion"), obj.get("kind")))
    if resource is None or obj.get("kind") != kind:
        raise PlanError(f"{file}: expected a {kind}, found {obj.get('apiVersion')}/{obj.get('kind')}")
    if not obj["metadata"].get("name"):
        raise PlanError(f"{file}: the {kind} has no metadata.name")
    if name is not None and obj["metadata"].get("name") != name:
        raise PlanError(f"{file}: the {kind} is named {obj['metadata'].get('name')!r}, but {PLAN_FILE} says {name!r}")
    return Manifest(file, resource, obj)
