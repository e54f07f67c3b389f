"""A small Kubernetes API client on urllib: JSON over HTTPS with the Pod's ServiceAccount token and
the cluster's CA, found where client-go's in-cluster config finds them (k8s.io/client-go
rest/config.go InClusterConfig: KUBERNETES_SERVICE_HOST/PORT, and token and ca.crt under
/var/run/secrets/kubernetes.io/serviceaccount). It makes only the calls the applier needs: get,
list, create (Events), server-side apply and delete.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
REQUEST_TIMEOUT_SECONDS = 30.0
# Plain HTTP is only for a test API server on this host; anything else must be HTTPS.
PLAIN_HTTP_HOST = "127.0.0.1"
# Answers worth asking again: none at all (0), a timeout, a conflict with a concurrent writer,
# throttling; 5xx (the API server, or a webhook behind it, failing) is added in ApiError.transient.
_TRANSIENT_STATUSES = frozenset({0, 408, 409, 425, 429})


class ConfigError(Exception):
    """The client cannot be set up; the message says what is missing and how to fix it."""


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How the API server names the type: `inferencesets.kaito.sh`, `nodes`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        path = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            path += f"/namespaces/{urllib.parse.quote(namespace, safe='')}"
        path += f"/{self.plural}"
        return path + (f"/{urllib.parse.quote(name, safe='')}" if name else "")


NODES = Resource("", "v1", "nodes", False)
PODS = Resource("", "v1", "pods", True)
EVENTS = Resource("", "v1", "events", True)
CONFIG_MAPS = Resource("", "v1", "configmaps", True)
DEPLOYMENTS = Resource("apps", "v1", "deployments", True)
INFERENCE_SETS = Resource("kaito.sh", "v1beta1", "inferencesets", True)
# The kinds the applier applies, by (apiVersion, kind) as written in a manifest.
APPLIED_KINDS: dict[tuple[str, str], Resource] = {
    ("apps/v1", "Deployment"): DEPLOYMENTS,
    ("kaito.sh/v1beta1", "InferenceSet"): INFERENCE_SETS,
}


class ApiError(Exception):
    """A request the API server refused (status >= 400) or never answered (status 0)."""

    def __init__(self, method: str, path: str, status: int, reason: str, message: str) -> None:
        self.method, self.path, self.status, self.reason, self.message = method, path, status, reason, message
        answer = f"HTTP {status}{' ' + reason if reason else ''}: " if status else ""
        super().__init__(f"{method} {path}: {answer}{message}")

    @property
    def transient(self) -> bool:
        return self.status in _TRANSIENT_STATUSES or self.status >= 500


class KubeClient:
    def __init__(
        self,
        server: str,
        token_file: Path | None = None,
        ca_file: Path | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self.server = server.rstrip("/")
        self.token_file = token_file
        self.timeout = timeout
        handlers: list[urllib.request.BaseHandler] = [
            # The API server is reached directly: a proxy from the environment has no business in
            # the middle of a bearer-token conversation (and the Job's NetworkPolicy would block it).
            urllib.request.ProxyHandler({}),
        ]
        if ca_file is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(ca_file))))
        self._opener = urllib.request.build_opener(*handlers)

    # -- construction
    @classmethod
    def in_cluster(cls, environ: Mapping[str, str] = os.environ, account_dir: Path = SERVICE_ACCOUNT_DIR) -> "KubeClient":
        """The API server as a Pod sees it: the kubernetes Service's address from the environment,
        the Pod's ServiceAccount token and the cluster CA."""
        host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise ConfigError(
                "KUBERNETES_SERVICE_HOST is not set, so this is not running in a Pod: "
                "run it as the chart's Job, or pass --api-server URL")
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        return cls(f"https://{host}:{port}", *_service_account(account_dir))

    @classmethod
    def for_server(cls, url: str, account_dir: Path = SERVICE_ACCOUNT_DIR) -> "KubeClient":
        """An explicit API server. https:// uses the Pod's ServiceAccount credentials, as in a Pod;
        http:// (no credentials at all) is accepted only for a test server on 127.0.0.1."""
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme == "http":
            if parsed.hostname != PLAIN_HTTP_HOST or parsed.port is None:
                raise ConfigError(
                    f"--api-server {url}: plain http is accepted only for a test API server at "
                    f"http://{PLAIN_HTTP_HOST}:<port>; use https:// for a real cluster")
            return cls(url)
        if parsed.scheme == "https" and parsed.hostname:
            return cls(url, *_service_account(account_dir))
        raise ConfigError(f"--api-server {url}: expected https://<host>[:<port>] (or http://{PLAIN_HTTP_HOST}:<port> for tests)")

    # -- the calls
    def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self._request("GET", resource.path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, resource: Resource, namespace: str | None = None, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        query = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        return list(self._request("GET", resource.path(namespace), query).get("items") or [])

    def apply(self, resource: Resource, obj: Mapping[str, Any], field_manager: str) -> dict[str, Any]:
        """Server-side apply, taking over fields other managers own (kubectl apply --server-side
        --force-conflicts): creates the object when it is absent."""
        meta = obj["metadata"]
        path = resource.path(meta.get("namespace"), meta["name"])
        query = {"fieldManager": field_manager, "force": "true"}
        # JSON is YAML, so the apply-patch+yaml body can be sent as JSON.
        return self._request("PATCH", path, query, json.dumps(obj), "application/apply-patch+yaml")

    def create(self, resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        return self._request("POST", resource.path(obj["metadata"].get("namespace")), None, json.dumps(obj))

    def delete(self, resource: Resource, name: str, namespace: str | None = None) -> bool:
        """Deletes the object and, in the background, what it owns (a Deployment's pods). False
        when it was already gone."""
        try:
            self._request("DELETE", resource.path(namespace, name), {"propagationPolicy": "Background"})
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- the wire
    def _request(
        self, method: str, path: str, query: Mapping[str, str] | None = None, body: str | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        url = self.server + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": "application/json", "User-Agent": "hybrid-llm-applier"}
        if body is not None:
            headers["Content-Type"] = content_type
        if self.token_file is not None:
            # Read on every request: the kubelet rotates a projected token in place.
            headers["Authorization"] = f"Bearer {_read_token(self.token_file)}"
        request = urllib.request.Request(url, data=None if body is None else body.encode(), method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raise _api_error(method, path, exc.code, exc.read()) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, ssl.SSLCertVerificationError):
                # Asking again cannot help: the server is not the one the CA vouches for.
                raise ConfigError(f"{self.server}: its TLS certificate does not verify against the cluster CA "
                                  f"({reason.verify_message}); is this the cluster's API server?") from None
            raise ApiError(method, path, 0, "", f"no answer from {self.server}: {reason}") from None
        if not payload:
            return {}
        try:
            decoded = json.loads(payload)
        except ValueError:
            raise ApiError(method, path, status, "", f"the answer is not JSON: {payload[:200]!r}") from None
        return decoded if isinstance(decoded, dict) else {}


def _service_account(account_dir: Path) -> tuple[Path, Path]:
    token, ca = account_dir / "token", account_dir / "ca.crt"
    for path, what in ((token, "ServiceAccount token"), (ca, "cluster CA certificate")):
        if not path.is_file():
            raise ConfigError(
                f"no {what} at {path}: the Pod must mount its ServiceAccount token "
                "(automountServiceAccountToken must not be false for the applier's Job)")
    return token, ca


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the ServiceAccount token {path}: {exc.strerror}") from None


def _api_error(method: str, path: str, status: int, payload: bytes) -> ApiError:
    """The API server's Status object (message, reason) when the body is one, else the body."""
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return ApiError(method, path, status, str(body.get("reason") or ""), str(body.get("message") or ""))
    text = payload.decode("utf-8", "replace").strip()
    return ApiError(method, path, status, "", text[:500] or "(empty answer)")
