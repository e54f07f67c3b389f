"""The HTTP face of the simulated cluster: the parts of the Kubernetes API that the serving applier
(applier/, `python -m applier --api-server http://127.0.0.1:<port>`) calls, served on 127.0.0.1 over
plain HTTP. Discovery, OpenAPI and Tables are only for pointing kubectl at it by hand
(SimulatedCluster.write_kubeconfig) while debugging a scene; no test needs kubectl.

- Discovery, legacy form (/api, /apis, /api/v1, /apis/<group>/<version>). Newer kubectl asks for
  aggregated discovery first and falls back to this when the answer is a plain APIGroupList.
- OpenAPI v3 (/openapi/v3 and one document per group-version) with just enough for kubectl's
  field-validation probe: each PATCH operation names its kind and takes `fieldValidation`, so
  kubectl 1.32 and 1.35 send fieldValidation=Strict and need no schemas. /openapi/v2, which
  kubectl 1.20 reads for client-side validation, is an empty protobuf Document: no schema for a
  kind means nothing to check.
- get, list (labelSelector, fieldSelector), create, delete (an object with finalizers is only
  marked, metadata.deletionTimestamp, until they are removed), and server-side apply (PATCH with
  application/apply-patch+yaml, creating the object when it is absent). Lists asked for as a
  Table (kubectl's human-readable output) come back as a Table for pods and events.
- Admission: every create and update goes through the `admit` callback, which returns the
  message of a refusal or None; a refusal is answered as the API server answers a webhook's
  denial (k8s.io/apiserver pkg/admission/plugin/webhook/errors/statuserror.go ToStatusErr: code
  400 unless the webhook set one, status Failure, "admission webhook ... denied the request").
- Faults: `fail(method, path, times)` answers the next requests for exactly that path as an
  overloaded API server does (503 ServiceUnavailable), so a test can check that a client retries
  rather than taking the failure as an answer.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import yaml
from aiohttp import web

from kube_sim_store import (
    RESOURCE_TYPES,
    FieldSelector,
    LabelSelector,
    Obj,
    ObjectStore,
    ResourceType,
    SelectorError,
)

# (type, operation "CREATE"/"UPDATE", new object, old object or None) -> refusal message or None
Admit = Callable[[ResourceType, str, Obj, Obj | None], str | None]
SERVER_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.3", "platform": "linux/amd64"}


@dataclass
class Request:
    """One request as the server saw it, kept so a test can show what kubectl asked for."""

    method: str
    path: str
    query: str
    status: int = 0


@dataclass
class Fault:
    """The next `times` requests of `method` on exactly `path` get `status`; `served` counts them."""

    method: str
    path: str
    times: int
    status: int = 503
    served: int = 0


@dataclass
class ApiServer:
    store: ObjectStore
    admit: Admit
    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # (object UID, field manager) -> the object that manager last applied: what server-side apply
    # compares a new apply with to drop the fields the manager no longer sets.
    last_applied: dict[tuple[str, str], Obj] = field(default_factory=dict)

    def fail(self, method: str, path: str, times: int, status: int = 503) -> Fault:
        fault = Fault(method, path, times, status)
        self.faults.append(fault)
        return fault

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = Request(request.method, request.path, request.query_string)
        self.requests.append(seen)
        fault = next((f for f in self.faults if f.method == request.method and f.path == request.path and f.served < f.times), None)
        try:
            if fault:
                fault.served += 1
                self.store.record("api-fault", f"{request.method} {request.path}", f"HTTP {fault.status}")
                response = status_response(fault.status, "ServiceUnavailable", "the server is currently unable to handle the request")
            else:
                response = await self._route(request)
        except SelectorError as exc:
            response = status_response(400, "BadRequest", str(exc))
        seen.status = response.status
        return response

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path == "/version":
            return web.json_response(SERVER_VERSION)
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        if path == "/apis":
            return web.json_response(api_group_list())
        if path == "/openapi/v2":
            return web.Response(body=b"", content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
        if path == "/openapi/v3":
            return web.json_response(openapi_v3_root())
        if path.startswith("/openapi/v3/"):
            document = openapi_v3_document(path.removeprefix("/openapi/v3/"))
            return web.json_response(document) if document else not_found_response(path)
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return not_found_response(path)
        types = [rt for rt in RESOURCE_TYPES if rt.group == group and rt.version == version]
        if not types:
            return not_found_response(path)
        if not rest:
            return web.json_response(api_resource_list(types))
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 2:
            return not_found_response(path)
        rt = next((t for t in types if t.plural == rest[0]), None)
        name = rest[1] if len(rest) == 2 else None
        listing_everywhere = name is None and request.method == "GET"
        if rt is None or (namespace and not rt.namespaced) or (rt.namespaced and not namespace and not listing_everywhere):
            return not_found_response(path)
        if request.method == "GET":
            return self._get(request, rt, namespace, name)
        if request.method == "PATCH" and name:
            return await self._patch(request, rt, namespace, name)
        if request.method == "POST" and not name:
            return await self._create(request, rt, namespace)
        if request.method == "DELETE" and name:
            return self._delete(rt, namespace, name)
        return status_response(405, "MethodNotAllowed", f"the server does not allow this method on {rt.qualified}")

    # -- reads
    def _get(self, request: web.Request, rt: ResourceType, namespace: str, name: str | None) -> web.Response:
        if name:
            obj = self.store.get(rt, namespace, name)
            return web.json_response(obj) if obj else object_not_found(rt, name)
        if request.query.get("watch") in ("true", "1"):
            # Nothing here watches; an empty, finished stream makes a client list again.
            return web.Response(body=b"", content_type="application/json")
        items = self.store.list(
            rt,
            namespace or None,
            LabelSelector(request.query.get("labelSelector", "")),
            FieldSelector(request.query.get("fieldSelector", "")),
        )
        version = self.store.resource_version
        if "as=Table" in request.headers.get("Accept", "") and rt.kind in TABLE_COLUMNS:
            return web.json_response(as_table(rt, items, version))
        return web.json_response({
            "kind": f"{rt.kind}List",
            "apiVersion": rt.group_version,
            "metadata": {"resourceVersion": version},
            "items": items,
        })

    # -- writes
    async def _patch(self, request: web.Request, rt: ResourceType, namespace: str, name: str) -> web.Response:
        if request.content_type != "application/apply-patch+yaml":
            return status_response(415, "UnsupportedMediaType", f"only server-side apply is simulated, not {request.content_type}")
        if not request.query.get("fieldManager"):
            return status_response(400, "BadRequest", "PATCH requests of type apply must provide a fieldManager")
        try:
            applied = yaml.safe_load(await request.text())
        except yaml.YAMLError as exc:
            return status_response(400, "BadRequest", f"error decoding YAML: {exc}")
        if problem := self._mismatch(applied, rt, namespace, name):
            return status_response(400, "BadRequest", problem)
        with self.store.lock:
            existing = self.store.get(rt, namespace, name)
            if existing is None:
                response = self._admit_and_create(rt, namespace, applied)
                if response.status == 201:
                    self.last_applied[(json.loads(response.body)["metadata"]["uid"], request.query["fieldManager"])] = applied
                return response
            manager = request.query["fieldManager"]
            merged = merge_applied(existing, applied, self.last_applied.get((existing["metadata"]["uid"], manager)))
            if refusal := self.admit(rt, "UPDATE", merged, existing):
                return self._refused(rt, name, refusal)
            stored = self.store.replace(rt, merged)
            self.last_applied[(stored["metadata"]["uid"], manager)] = applied
            self.store.record("updated", f"{rt.kind}/{name}", f"by {manager}")
            return web.json_response(stored)

    async def _create(self, request: web.Request, rt: ResourceType, namespace: str) -> web.Response:
        try:
            obj = json.loads(await request.text())
        except json.JSONDecodeError as exc:
            return status_response(400, "BadRequest", f"error decoding JSON: {exc}")
        name = (obj.get("metadata") or {}).get("name", "")
        if problem := self._mismatch(obj, rt, namespace, name):
            return status_response(400, "BadRequest", problem)
        with self.store.lock:
            if self.store.get(rt, namespace, name):
                return status_response(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists')
            return self._admit_and_create(rt, namespace, obj)

    def _admit_and_create(self, rt: ResourceType, namespace: str, obj: Obj) -> web.Response:
        obj = copy.deepcopy(obj)
        if rt.namespaced:
            obj["metadata"]["namespace"] = namespace
        name = obj["metadata"]["name"]
        if refusal := self.admit(rt, "CREATE", obj, None):
            return self._refused(rt, name, refusal)
        created = self.store.create(rt, obj)
        self.store.record("created", f"{rt.kind}/{name}")
        return web.json_response(created, status=201)

    def _refused(self, rt: ResourceType, name: str, message: str) -> web.Response:
        self.store.record("admission-refused", f"{rt.kind}/{name}", message)
        return status_response(400, "BadRequest", message)

    def _delete(self, rt: ResourceType, namespace: str, name: str) -> web.Response:
        with self.store.lock:
            deleted = self.store.delete(rt, namespace, name)
            if deleted is None:
                return object_not_found(rt, name)
            if deleted["metadata"].get("deletionTimestamp"):
                # Held by its finalizers: the API server answers 200 with the object as it now is.
                self.store.record("terminating", f"{rt.kind}/{name}", f"finalizers {deleted['metadata']['finalizers']}")
            else:
                self.store.record("deleted", f"{rt.kind}/{name}")
            return web.json_response(deleted)

    @staticmethod
    def _mismatch(obj: Any, rt: ResourceType, namespace: str, name: str) -> str | None:
        if not isinstance(obj, dict):
            return "the body is not an object"
        meta = obj.get("metadata") or {}
        if obj.get("apiVersion") != rt.group_version or obj.get("kind") != rt.kind:
            return f"the body is {obj.get('apiVersion')}/{obj.get('kind')}, the URL is for {rt.group_version}/{rt.kind}"
        if meta.get("name") != name:
            return f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
        if rt.namespaced and meta.get("namespace", namespace) != namespace:
            return "the namespace of the provided object does not match the namespace sent on the request"
        return None


# ---- server-side apply ------------------------------------------------------------------------


def merge_applied(existing: Obj, applied: Obj, last: Obj | None = None) -> Obj:
    """The object after a forced server-side apply: the applied fields win, maps merge, lists are
    replaced whole, and a field the same manager applied last time (`last`) but no longer sets is
    removed, as when that manager was its only owner (k8s.io/apimachinery pkg/util/managedfields;
    per-field ownership among several managers is not modelled). Server-owned metadata stays."""

    def drop_unset(old: Any, previous: Any, new: Any) -> Any:
        if not (isinstance(old, dict) and isinstance(previous, dict)):
            return old
        out = dict(old)
        for key, value in previous.items():
            if not isinstance(new, dict) or key not in new:
                out.pop(key, None)
            elif key in out:
                out[key] = drop_unset(out[key], value, new[key])
        return out

    def merge(old: Any, new: Any) -> Any:
        if isinstance(old, dict) and isinstance(new, dict):
            out = dict(old)
            for key, value in new.items():
                out[key] = merge(old.get(key), value)
            return out
        return copy.deepcopy(new)

    if last is not None:
        kept_metadata = {k: existing["metadata"][k] for k in ("name", "namespace") if k in existing["metadata"]}
        existing = drop_unset(existing, {k: v for k, v in last.items() if k not in ("apiVersion", "kind")}, applied)
        existing["metadata"] = {**existing.get("metadata", {}), **kept_metadata}
    merged = merge(existing, applied)
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation"):
        merged["metadata"][key] = existing["metadata"][key]
    return merged


# ---- discovery and OpenAPI --------------------------------------------------------------------


def api_group_list() -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for rt in RESOURCE_TYPES:
        if rt.group:
            groups.setdefault(rt.group, [])
            if rt.version not in groups[rt.group]:
                groups[rt.group].append(rt.version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
            }
            for group, versions in groups.items()
        ],
    }


def api_resource_list(types: list[ResourceType]) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": types[0].group_version,
        "resources": [
            {
                "name": rt.plural,
                "singularName": rt.kind.lower(),
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                **({"shortNames": list(rt.short_names)} if rt.short_names else {}),
            }
            for rt in types
        ],
    }


def _openapi_key(rt: ResourceType) -> str:
    return f"apis/{rt.group}/{rt.version}" if rt.group else f"api/{rt.version}"


def openapi_v3_root() -> dict[str, Any]:
    keys = sorted({_openapi_key(rt) for rt in RESOURCE_TYPES})
    return {"paths": {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash=SIM"} for key in keys}}


def openapi_v3_document(key: str) -> dict[str, Any] | None:
    """The group-version's PATCH operations, each tagged with its kind and taking fieldValidation:
    what kubectl's probe for server-side field validation reads (k8s.io/cli-runtime
    pkg/resource/query_param_verifier_v3.go). No schemas: the server does not check fields."""
    types = [rt for rt in RESOURCE_TYPES if _openapi_key(rt) == key]
    if not types:
        return None
    paths = {}
    for rt in types:
        prefix = f"/{key}" + ("/namespaces/{namespace}" if rt.namespaced else "")
        paths[f"{prefix}/{rt.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                ],
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            }
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]}, "paths": paths, "components": {"schemas": {}}}


# ---- responses --------------------------------------------------------------------------------


def status_response(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return web.json_response(body, status=code)


def not_found_response(path: str) -> web.Response:
    return status_response(404, "NotFound", "the server could not find the requested resource", {"causes": [{"message": path}]})


def object_not_found(rt: ResourceType, name: str) -> web.Response:
    return status_response(
        404, "NotFound", f'{rt.qualified} "{name}" not found', {"name": name, "group": rt.group, "kind": rt.plural}
    )


# ---- tables (kubectl's human-readable output) -------------------------------------------------


def _age(timestamp: str | None) -> str:
    """How long ago, as kubectl shows it (k8s.io/apimachinery pkg/util/duration HumanDuration)."""
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    seconds = max(0, int((datetime.now(timezone.utc) - then).total_seconds()))
    return f"{seconds}s" if seconds < 120 else f"{seconds // 60}m"


def _pod_row(pod: Obj) -> list[Any]:
    phase = pod.get("status", {}).get("phase", "Pending")
    ready = "1/1" if phase == "Running" else "0/1"
    age = _age(pod["metadata"].get("creationTimestamp"))
    return [pod["metadata"]["name"], ready, phase, 0, age, pod["spec"].get("nodeName") or "<none>"]


def _event_row(event: Obj) -> list[Any]:
    involved = event.get("involvedObject", {})
    return [
        _age(event.get("lastTimestamp")),
        event.get("type", ""),
        event.get("reason", ""),
        f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
        event.get("message", ""),
    ]


# kind -> ([(column name, type, priority)], row function); priority 1 columns show with -o wide.
TABLE_COLUMNS: dict[str, tuple[list[tuple[str, str, int]], Callable[[Obj], list[Any]]]] = {
    "Pod": (
        [("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "integer", 0),
         ("Age", "string", 0), ("Node", "string", 1)],
        _pod_row,
    ),
    "Event": (
        [("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0), ("Object", "string", 0),
         ("Message", "string", 0)],
        _event_row,
    ),
}


def as_table(rt: ResourceType, items: list[Obj], version: str) -> dict[str, Any]:
    columns, row = TABLE_COLUMNS[rt.kind]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": version},
        "columnDefinitions": [
            {"name": name, "type": kind, "format": "name" if name == "Name" else "", "description": "", "priority": priority}
            for name, kind, priority in columns
        ],
        "rows": [
            {
                "cells": row(item),
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item["metadata"]},
            }
            for item in items
        ],
    }
