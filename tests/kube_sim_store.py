"""The state of the simulated cluster: API objects by resource type, label and field selectors, and a
timeline of what happened, in order, for tests to assert on.

Only the resource types the serving applier and the simulated controllers touch are known; a
request for any other type gets the API server's 404, as a cluster without that CRD would give.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How the API server names the type in its messages: `inferencesets.kaito.sh`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "Namespace", "namespaces", False, ("ns",)),
    ResourceType("", "v1", "Node", "nodes", False, ("no",)),
    ResourceType("", "v1", "Pod", "pods", True, ("po",)),
    ResourceType("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    ResourceType("", "v1", "Event", "events", True, ("ev",)),
    ResourceType("apps", "v1", "Deployment", "deployments", True, ("deploy",)),
    ResourceType("kaito.sh", "v1beta1", "InferenceSet", "inferencesets", True),
    ResourceType("karpenter.sh", "v1", "NodePool", "nodepools", False),
)
BY_KIND = {rt.kind: rt for rt in RESOURCE_TYPES}


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- selectors --------------------------------------------------------------------------------

_SET_TERM = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split a selector at the commas that are not inside `in (...)` value lists."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


class SelectorError(ValueError):
    pass


class LabelSelector:
    """The label selector grammar of the API server's `labelSelector` parameter (k8s.io/apimachinery
    pkg/labels/selector.go Parse): `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`."""

    def __init__(self, text: str = "") -> None:
        self.text = text
        self._tests = [self._parse(term) for term in _split_terms(text)]

    @classmethod
    def from_match_labels(cls, match_labels: dict[str, str]) -> "LabelSelector":
        return cls(",".join(f"{k}={v}" for k, v in match_labels.items()))

    @staticmethod
    def _parse(term: str):
        if m := _SET_TERM.match(term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                return lambda labels: labels.get(key) in values
            return lambda labels: labels.get(key) not in values
        for op in ("!=", "==", "="):
            if op in term:
                key, value = (part.strip() for part in term.split(op, 1))
                if not key:
                    raise SelectorError(f"invalid label selector term {term!r}")
                if op == "!=":
                    return lambda labels: labels.get(key) != value
                return lambda labels: labels.get(key) == value
        if term.startswith("!"):
            key = term[1:].strip()
            return lambda labels: key not in labels
        return lambda labels: term in labels

    def matches(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(test(labels) for test in self._tests)


class FieldSelector:
    """`fieldSelector`: `path=value`, `path==value`, `path!=value` on dotted object paths, e.g.
    `metadata.name=x` (kubectl delete's wait) or `reason=FailedScheduling` (events)."""

    def __init__(self, text: str = "") -> None:
        self._terms: list[tuple[list[str], bool, str]] = []
        for term in _split_terms(text):
            for op in ("!=", "==", "="):
                if op in term:
                    path, value = (part.strip() for part in term.split(op, 1))
                    self._terms.append((path.split("."), op != "!=", value))
                    break
            else:
                raise SelectorError(f"invalid field selector term {term!r}")

    def matches(self, obj: Obj) -> bool:
        for path, equal, value in self._terms:
            current: Any = obj
            for part in path:
                current = current.get(part) if isinstance(current, dict) else None
            if ((current if current is not None else "") == value) != equal:
                return False
        return True


# ---- the store --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Happening:
    """One line of the timeline: `at` seconds since the cluster started."""

    at: float
    what: str
    subject: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.at:7.2f}s {self.what:<22} {self.subject} {self.detail}".rstrip()


class ObjectStore:
    """Objects by (type, namespace, name). All access holds one lock: the API handlers and
    controllers run on the server's event loop, tests call in from their own thread."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._objects: dict[tuple[ResourceType, str, str], Obj] = {}
        self._versions = itertools.count(1)
        self._started = time.monotonic()
        self.timeline: list[Happening] = []

    # -- the timeline
    def record(self, what: str, subject: str, detail: str = "") -> None:
        with self.lock:
            self.timeline.append(Happening(round(time.monotonic() - self._started, 3), what, subject, detail))

    def happenings(self, what: str | None = None, subject: str | None = None) -> list[Happening]:
        with self.lock:
            return [
                h for h in self.timeline
                if (what is None or h.what == what) and (subject is None or h.subject.startswith(subject))
            ]

    # -- objects
    @property
    def resource_version(self) -> str:
        with self.lock:
            return str(next(self._versions))

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects.get((rt, namespace if rt.namespaced else "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
    ) -> list[Obj]:
        with self.lock:
            found = []
            for (kind, ns, _), obj in sorted(self._objects.items(), key=lambda item: item[0][1:]):
                if kind != rt or (namespace is not None and rt.namespaced and ns != namespace):
                    continue
                if labels and not labels.matches(obj["metadata"].get("labels")):
                    continue
                if fields and not fields.matches(obj):
                    continue
                found.append(copy.deepcopy(obj))
            return found

    def create(self, rt: ResourceType, obj: Obj) -> Obj:
        """Store a new object as the API server would: with a UID, a resourceVersion, a generation."""
        with self.lock:
            obj = copy.deepcopy(obj)
            obj["apiVersion"], obj["kind"] = rt.group_version, rt.kind
            meta = obj.setdefault("metadata", {})
            if not rt.namespaced:
                meta.pop("namespace", None)
            key = (rt, meta.get("namespace", "") if rt.namespaced else "", meta["name"])
            if key in self._objects:
                raise KeyError(f'{rt.qualified} "{meta["name"]}" already exists')
            meta.update(
                uid=str(uuid.uuid4()),
                resourceVersion=self.resource_version,
                creationTimestamp=now_rfc3339(),
                generation=1,
            )
            self._objects[key] = obj
            return copy.deepcopy(obj)

    def replace(self, rt: ResourceType, obj: Obj) -> Obj:
        """Store a new version of an existing object (bumping resourceVersion, and generation when
        the spec changed). An object marked for deletion whose last finalizer this removes is gone
        (apiserver registry/generic/registry/store.go Update: deleteWithoutFinalizers)."""
        with self.lock:
            meta = obj["metadata"]
            key = (rt, meta.get("namespace", "") if rt.namespaced else "", meta["name"])
            old = self._objects[key]
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = self.resource_version
            if old["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
                if not obj["metadata"].get("finalizers"):
                    del self._objects[key]
                    self.record("finalized", f"{rt.kind}/{meta['name']}", "its last finalizer was removed")
                    return copy.deepcopy(obj)
            if obj.get("spec") != old.get("spec"):
                obj["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            self._objects[key] = obj
            return copy.deepcopy(obj)

    def delete(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        """Deletes the object; one with finalizers is only marked (metadata.deletionTimestamp) and
        stays until its controllers remove them (apiserver registry/generic/registry/store.go
        Delete, updateForGracefulDeletionAndFinalizers). Returns the object as it now is, or None
        when there was none."""
        with self.lock:
            key = (rt, namespace if rt.namespaced else "", name)
            obj = self._objects.get(key)
            if obj is None:
                return None
            if not obj["metadata"].get("finalizers"):
                return self._objects.pop(key)
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                obj["metadata"]["resourceVersion"] = self.resource_version
            return copy.deepcopy(obj)
