"""Finding KAITO's parts among a cluster's Deployments and DaemonSets, and reading back the flags
KAITO's Helm chart (kaito-project/kaito charts/kaito/workspace) turned into them:

- the workspace controller Deployment: image `<repo>/kaito/workspace:<tag>` (image.tag, defaults
  to the chart's appVersion), args `--feature-gates=k=v,...` (featureGates, templates/deployment.yaml
  utils.joinKeyValuePairs) and `--node-provisioner=<nodeProvisioner>`;
- the NVIDIA device plugin DaemonSet (templates/nvidia-device-plugin-ds.yaml; pods labelled
  name=nvidia-device-plugin-ds), which tolerates kubernetes.azure.com/scalesetpriority=spot only
  with spotInstance.enabled;
- the gpu-feature-discovery subchart (installed when featureGates.disableNodeAutoProvisioning):
  the GFD DaemonSet (container `gpu-feature-discovery-ctr`, command gpu-feature-discovery) and its
  Node Feature Discovery worker (command nfd-worker), with the tolerations of
  `gpu-feature-discovery.tolerations` and `gpu-feature-discovery.nfd.worker.tolerations`.

Parts are found by what their templates fix (container names, commands, pod labels), not by object
names, which depend on the Helm release name."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

from .needs import DeclaredKaito

KAITO_HELM_REPO = "https://kaito-project.github.io/kaito/charts/kaito"
KAITO_CHART = "kaito/workspace"
# The release and namespace of KAITO's installation guide (website/docs/installation.md).
DEFAULT_RELEASE = "kaito-workspace"
DEFAULT_NAMESPACE = "kaito-workspace"
# What the controller does when a flag is absent: cmd/workspace/main.go (--node-provisioner) and
# pkg/featuregates/featuregates.go (feature gate defaults).
DEFAULT_NODE_PROVISIONER = "azure-gpu-provisioner"
DEFAULT_FEATURE_GATES = {"disableNodeAutoProvisioning": False, "enableInferenceSetController": True}

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(.*)$")
_RELEASE_VERSION = re.compile(r"v?\d+\.\d+\.\d+")


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    match = _VERSION.match(text or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def image_tag(image: str) -> str | None:
    """The tag of an image reference, ignoring a registry port and a digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_pod_spec(workload).get("containers") or [])


def workload_ref(workload: dict[str, Any]) -> str:
    return f"{_meta(workload).get('namespace', '?')}/{_meta(workload).get('name', '?')}"


def tolerations_of(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_pod_spec(workload).get("tolerations") or [])


@dataclass(frozen=True)
class KaitoController:
    deployment: dict[str, Any]
    container: dict[str, Any]

    @property
    def namespace(self) -> str:
        return str(_meta(self.deployment).get("namespace", DEFAULT_NAMESPACE))

    @property
    def ref(self) -> str:
        return workload_ref(self.deployment)

    @property
    def release(self) -> str:
        """The Helm release KAITO was installed as (Helm's ownership annotation, then the chart's
        instance label)."""
        meta = _meta(self.deployment)
        return str((meta.get("annotations") or {}).get("meta.helm.sh/release-name")
                   or (meta.get("labels") or {}).get("app.kubernetes.io/instance") or DEFAULT_RELEASE)

    @property
    def image(self) -> str:
        return str(self.container.get("image", ""))

    @property
    def version_text(self) -> str | None:
        """The version as written: the image tag, else the chart's app.kubernetes.io/version label."""
        tag = image_tag(self.image)
        if parse_version(tag):
            return tag
        label = (_meta(self.deployment).get("labels") or {}).get("app.kubernetes.io/version")
        return str(label) if parse_version(str(label or "")) else tag

    @property
    def version(self) -> tuple[int, int, int] | None:
        return parse_version(self.version_text)

    def flag(self, name: str) -> str | None:
        args = [str(a) for a in (self.container.get("command") or [])[1:] + (self.container.get("args") or [])]
        for index, arg in enumerate(args):
            if arg.startswith(f"--{name}="):
                return arg.split("=", 1)[1]
            if arg == f"--{name}" and index + 1 < len(args):
                return args[index + 1]
        return None

    @property
    def node_provisioner(self) -> str:
        return self.flag("node-provisioner") or DEFAULT_NODE_PROVISIONER

    @property
    def feature_gates(self) -> dict[str, bool]:
        gates = dict(DEFAULT_FEATURE_GATES)
        for pair in (self.flag("feature-gates") or "").split(","):
            key, _, value = pair.partition("=")
            if key.strip():
                gates[key.strip()] = value.strip().lower() == "true"
        return gates

    @property
    def available(self) -> bool:
        return int((self.deployment.get("status") or {}).get("availableReplicas") or 0) > 0


def _is_controller_container(container: dict[str, Any]) -> bool:
    repository = str(container.get("image", "")).split("@", 1)[0].rsplit(":", 1)[0]
    if repository.endswith("/kaito/workspace"):
        return True
    return any(str(a).startswith("--node-provisioner") for a in container.get("args") or [])


def find_controllers(deployments: list[dict[str, Any]]) -> list[KaitoController]:
    found = []
    for deployment in deployments:
        for container in _containers(deployment):
            if _is_controller_container(container):
                found.append(KaitoController(deployment, container))
                break
    return found


def _runs(container: dict[str, Any], program: str) -> bool:
    return bool(container.get("command")) and str(container["command"][0]).rsplit("/", 1)[-1] == program


def find_device_plugins(daemonsets: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    return [ds for ds in daemonsets if _meta(ds).get("namespace") == namespace and (
        ((_meta((ds.get("spec") or {}).get("template") or {}).get("labels") or {}).get("name") == "nvidia-device-plugin-ds")
        or any(c.get("name") == "nvidia-device-plugin-ctr" for c in _containers(ds)))]


def _prefer_namespace(found: list[dict[str, Any]], namespace: str | None) -> list[dict[str, Any]]:
    """KAITO's own copy when there is one; GFD may also come from elsewhere (the GPU Operator)."""
    own = [ds for ds in found if _meta(ds).get("namespace") == namespace]
    return own or found


def find_gfd(daemonsets: list[dict[str, Any]], namespace: str | None) -> list[dict[str, Any]]:
    found = [ds for ds in daemonsets if any(
        c.get("name") == "gpu-feature-discovery-ctr" or _runs(c, "gpu-feature-discovery") for c in _containers(ds))]
    return _prefer_namespace(found, namespace)


def find_nfd_workers(daemonsets: list[dict[str, Any]], namespace: str | None) -> list[dict[str, Any]]:
    found = [ds for ds in daemonsets if any(_runs(c, "nfd-worker") for c in _containers(ds))]
    return _prefer_namespace(found, namespace)


def set_flags(values: dict[str, Any], prefix: str = "") -> list[str]:
    """`helm --set` / `--set-json` flags that set exactly these values (lists as JSON)."""
    flags = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flags += set_flags(value, f"{path}.")
        elif isinstance(value, list):
            flags.append("--set-json " + shlex.quote(f"{path}={json.dumps(value, separators=(',', ':'))}"))
        elif isinstance(value, bool):
            flags.append(f"--set {path}={'true' if value else 'false'}")
        else:
            flags.append(f"--set {shlex.quote(f'{path}={value}')}")
    return flags


def install_command(declared: DeclaredKaito, namespace: str | None) -> str:
    """KAITO's install with every value the chart declares."""
    namespace = namespace or DEFAULT_NAMESPACE
    return (f"helm repo add kaito {KAITO_HELM_REPO} && helm upgrade --install {DEFAULT_RELEASE} {KAITO_CHART} "
            f"-n {namespace} --create-namespace --version {declared.minimum_version} "
            + " ".join(set_flags(declared.values)))


def upgrade_command(controller: KaitoController, flags: list[str], version: str | None = None) -> str:
    """Change flags of the installed KAITO, keeping its other values and (unless asked) its version."""
    pinned = version or controller.version_text
    # Pin the chart to the running version (KAITO's chart and app versions are the same), so that
    # changing a flag does not also upgrade KAITO; nightly or digest-only images cannot be pinned.
    pin = [f"--version {pinned.lstrip('v')}"] if pinned and _RELEASE_VERSION.fullmatch(pinned) else []
    return " ".join([f"helm upgrade {controller.release} {KAITO_CHART} -n {controller.namespace} --reuse-values"]
                    + pin + flags)
