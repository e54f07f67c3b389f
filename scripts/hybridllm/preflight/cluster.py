"""Connecting to a cluster through a kubeconfig and reading, with GETs only, what the checks
compare: discovery, KAITO's Deployments and DaemonSets, nodes, the release namespace and the
model-access Secrets. Responses stay plain JSON (the API's own field names); a Secret's values are
dropped as soon as it is read, only its key names are kept."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from .needs import ProfileNeeds

# (connect, read) seconds per request: a preflight should fail fast on a cluster it cannot reach.
REQUEST_TIMEOUT = (5.0, 30.0)
GET_CREDENTIALS = "az aks get-credentials -g <resource-group> -n <cluster>"


class ClusterError(Exception):
    """The cluster cannot be used at all (no kubeconfig, unknown context, unreachable, rejected
    credentials): reported as one line, exit code 2."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} (fix: {fix})")


class Denied(Exception):
    """The API server refused one read (HTTP 403); the check that needed it reports it."""


@dataclass(frozen=True)
class Connection:
    api: client.ApiClient
    context: str | None  # None in-cluster
    server: str


def _kubeconfig_path(explicit: Path | None) -> str | None:
    """The kubeconfig to load, or None to use the in-cluster service account."""
    if explicit is not None:
        if not explicit.is_file():
            raise ClusterError(f"kubeconfig {explicit} does not exist", f"pass an existing file to --kubeconfig, or {GET_CREDENTIALS}")
        return str(explicit)
    env = os.environ.get("KUBECONFIG")
    if env:
        present = [p for p in env.split(os.pathsep) if p and Path(p).expanduser().is_file()]
        if not present:
            raise ClusterError(f"KUBECONFIG={env} names no existing file", f"{GET_CREDENTIALS}, or pass --kubeconfig PATH")
        return env
    default = Path("~/.kube/config").expanduser()
    if default.is_file():
        return str(default)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    raise ClusterError("no kubeconfig: ~/.kube/config does not exist and KUBECONFIG is not set",
                       f"{GET_CREDENTIALS}, or pass --kubeconfig PATH")


def connect(kubeconfig: Path | None, context: str | None) -> Connection:
    # urllib3 logs every retry as a warning; the one line ClusterError prints says it all.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    path = _kubeconfig_path(kubeconfig)
    configuration = client.Configuration()
    try:
        if path is None:
            if context:
                raise ClusterError(f"--context {context} given but there is no kubeconfig (running in-cluster)",
                                   "pass --kubeconfig PATH, or drop --context")
            config.load_incluster_config(client_configuration=configuration)
            chosen = None
        else:
            contexts, active = config.list_kube_config_contexts(config_file=path)
            names = [c["name"] for c in contexts or []]
            if context and context not in names:
                raise ClusterError(f"kubeconfig {path} has no context {context!r}",
                                   f"use one of: {', '.join(names) or '(none)'} (kubectl config get-contexts)")
            chosen = context or (active or {}).get("name")
            if not chosen:
                raise ClusterError(f"kubeconfig {path} has no current context", "pass --context NAME (kubectl config get-contexts)")
            config.load_kube_config(config_file=path, context=chosen, client_configuration=configuration,
                                    persist_config=False)
    except ConfigException as exc:
        raise ClusterError(f"cannot use kubeconfig {path or '(in-cluster)'}: {exc}",
                           f"{GET_CREDENTIALS}, or pass --kubeconfig PATH / --context NAME") from None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot read kubeconfig {path}: {exc}", f"{GET_CREDENTIALS}, or pass --kubeconfig PATH") from None
    configuration.retries = 1
    return Connection(api=client.ApiClient(configuration), context=chosen, server=configuration.host)


NOT_FOUND = object()


@dataclass
class ClusterSnapshot:
    """What the checks read; None where a read was denied (see `denied`)."""

    server: str
    context: str | None
    kubernetes_version: str
    api_versions: dict[str, list[str]]  # group ("" for core) -> versions it serves
    kinds: dict[tuple[str, str], set[str]]  # (group, version) -> kinds served, for what the profile uses
    deployments: list[dict[str, Any]] | None
    daemonsets: list[dict[str, Any]] | None
    nodes: list[dict[str, Any]] | None
    namespace_exists: bool | None
    # Secret name -> {key: value is non-empty}; None when the Secret does not exist.
    secret_keys: dict[str, dict[str, bool] | None] = field(default_factory=dict)
    denied: dict[str, str] = field(default_factory=dict)  # what could not be read -> the API's reason
    kaito_namespace: str | None = None  # where KAITO was looked for (None: every namespace)

    def served(self, group: str, version: str, kind: str) -> bool:
        return kind in self.kinds.get((group, version), set())


class ClusterReader:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._core = client.CoreV1Api(connection.api)
        self._apps = client.AppsV1Api(connection.api)
        self._custom = client.CustomObjectsApi(connection.api)

    def _unreachable(self, reason: object) -> ClusterError:
        where = f"context {self._connection.context}" if self._connection.context else "in-cluster"
        return ClusterError(
            f"cannot reach the API server {self._connection.server} ({where}): {reason}",
            "check that the cluster is running and reachable from here "
            f"(kubectl{' --context ' + self._connection.context if self._connection.context else ''} get --raw /version)")

    def get(self, call: Callable[..., Any], what: str, *args: Any) -> Any:
        """One GET as parsed JSON; NOT_FOUND on 404; Denied on 403."""
        try:
            response = call(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return NOT_FOUND
            if exc.status == 403:
                raise Denied(f"forbidden to read {what}") from None
            if exc.status == 401:
                raise ClusterError(f"the API server {self._connection.server} rejected the credentials (401)",
                                   f"refresh them: {GET_CREDENTIALS} (and kubelogin convert-kubeconfig for Entra ID)") from None
            if not exc.status:
                raise self._unreachable(str(exc.reason).strip().splitlines()[0]) from None
            raise ClusterError(f"reading {what} failed: HTTP {exc.status} {exc.reason}",
                               "check the API server's health (kubectl get --raw /readyz)") from None
        except urllib3.exceptions.MaxRetryError as exc:
            raise self._unreachable(_root_cause(exc.reason)) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(_root_cause(exc)) from None
        try:
            body = json.loads(response.data)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ClusterError(f"reading {what}: {self._connection.server} did not answer with a Kubernetes API object",
                               "check that the kubeconfig points at a Kubernetes API server")
        return body

    def _optional(self, call: Callable[..., Any], what: str, denied: dict[str, str], *args: Any) -> Any:
        try:
            return self.get(call, what, *args)
        except Denied as exc:
            denied[what] = str(exc)
            return None

    def read(self, needs: ProfileNeeds, kaito_namespace: str | None) -> ClusterSnapshot:
        server_version = self.get(client.VersionApi(self._connection.api).get_code, "the server version")
        denied: dict[str, str] = {}
        api_versions: dict[str, list[str]] = {}
        core = self.get(client.CoreApi(self._connection.api).get_api_versions, "discovery /api")
        api_versions[""] = list(core.get("versions") or []) if core is not NOT_FOUND else []
        groups = self.get(client.ApisApi(self._connection.api).get_api_versions, "discovery /apis")
        for group in (groups.get("groups") or []) if groups is not NOT_FOUND else []:
            api_versions[group["name"]] = [v["version"] for v in group.get("versions") or []]

        kinds: dict[tuple[str, str], set[str]] = {}
        for group, version in sorted({(k.group, k.version) for k in needs.kinds}):
            if version not in api_versions.get(group, []):
                continue
            if group == "":
                listing = self.get(self._core.get_api_resources, "discovery /api/v1")
            else:
                listing = self.get(self._custom.get_api_resources, f"discovery /apis/{group}/{version}", group, version)
            resources = (listing.get("resources") or []) if listing is not NOT_FOUND else []
            kinds[(group, version)] = {r["kind"] for r in resources if "/" not in r.get("name", "")}

        if kaito_namespace:
            deployments = self._optional(self._apps.list_namespaced_deployment, f"deployments in {kaito_namespace}", denied, kaito_namespace)
            daemonsets = self._optional(self._apps.list_namespaced_daemon_set, f"daemonsets in {kaito_namespace}", denied, kaito_namespace)
        else:
            deployments = self._optional(self._apps.list_deployment_for_all_namespaces, "deployments", denied)
            daemonsets = self._optional(self._apps.list_daemon_set_for_all_namespaces, "daemonsets", denied)
        nodes = self._optional(self._core.list_node, "nodes", denied)
        namespace = self._optional(self._core.read_namespace, f"namespace {needs.namespace}", denied, needs.namespace)

        secret_keys: dict[str, dict[str, bool] | None] = {}
        for name in needs.secrets_to_create:
            secret = self._optional(self._core.read_namespaced_secret, f"secret {needs.namespace}/{name}", denied, name, needs.namespace)
            if secret is None:
                continue
            # Keep only which keys exist and whether each is empty; the values go out of scope here.
            secret_keys[name] = None if secret is NOT_FOUND else {k: bool(v) for k, v in (secret.get("data") or {}).items()}
            del secret

        return ClusterSnapshot(
            server=self._connection.server,
            context=self._connection.context,
            kubernetes_version=str(server_version.get("gitVersion", "?")) if server_version is not NOT_FOUND else "?",
            api_versions=api_versions,
            kinds=kinds,
            deployments=_items(deployments),
            daemonsets=_items(daemonsets),
            nodes=_items(nodes),
            namespace_exists=None if namespace is None else namespace is not NOT_FOUND,
            secret_keys=secret_keys,
            denied=denied,
            kaito_namespace=kaito_namespace,
        )


def _items(listing: Any) -> list[dict[str, Any]] | None:
    if listing is None:
        return None
    if listing is NOT_FOUND:
        return []
    return list(listing.get("items") or [])


def _root_cause(error: object) -> str:
    """The innermost reason of a urllib3 error, without urllib3's object reprs."""
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                   "Temporary failure in name resolution", "certificate verify failed", "Connection reset"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(error).__name__
