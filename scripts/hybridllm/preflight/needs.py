"""What a values profile needs from the cluster, read from its render rather than from its values,
so the preflight follows whatever the chart renders: the KAITO install the chart declares (the
ConfigMap `<release>-kaito-install`), the API kinds it creates, and per serving path the
InferenceSet's node labels and model-access Secret. InferenceSets are top-level objects in kaito
mode and embedded in a ConfigMap for the apply-serving Job in the byo modes; both count."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ..embedded import embedded_documents
from ..errors import UserError
from ..layout import display_path
from ..rendering import Rendering

KAITO_INSTALL_COMPONENT = "kaito-install"


@dataclass(frozen=True)
class ApiKind:
    """A kind the release creates, as its apiVersion and kind."""

    api_version: str
    kind: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def built_in(self) -> bool:
        """Served by every API server: the core group, dotless groups (apps, batch, policy...)
        and *.k8s.io. Everything else comes from a CRD (or an aggregated API) someone installs."""
        group = self.group
        return group == "" or "." not in group or group.endswith(".k8s.io")

    def __str__(self) -> str:
        return f"{self.api_version} {self.kind}"


@dataclass(frozen=True)
class ServingPath:
    """One KAITO InferenceSet of the release."""

    inference_set: str
    node_labels: dict[str, str]  # spec.labelSelector.matchLabels: what KAITO's byo mode selects
    model_access_secret: str | None  # presetOptions.modelAccessSecret
    carried_by: str | None  # "ConfigMap/<name> data.<key>" when embedded for the apply-serving Job

    @property
    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.node_labels.items()))


@dataclass(frozen=True)
class DeclaredKaito:
    """The KAITO install the chart declares: values of KAITO's own chart (kaito/workspace)."""

    config_map: str
    minimum_version: str
    values: dict[str, Any]

    @property
    def node_provisioner(self) -> str | None:
        value = self.values.get("nodeProvisioner")
        return str(value) if value is not None else None

    @property
    def feature_gates(self) -> dict[str, bool]:
        gates = self.values.get("featureGates") or {}
        return {str(k): bool(v) for k, v in gates.items()} if isinstance(gates, dict) else {}

    @property
    def spot_instance(self) -> bool:
        spot = self.values.get("spotInstance") or {}
        return isinstance(spot, dict) and bool(spot.get("enabled"))

    @property
    def gfd_tolerations(self) -> list[dict[str, Any]] | None:
        """None when the install does not declare GPU feature discovery (KAITO provisions nodes)."""
        gfd = self.values.get("gpu-feature-discovery")
        if not isinstance(gfd, dict) or "tolerations" not in gfd:
            return None
        return list(gfd.get("tolerations") or [])

    @property
    def nfd_worker_tolerations(self) -> list[dict[str, Any]] | None:
        gfd = self.values.get("gpu-feature-discovery")
        worker = ((gfd or {}).get("nfd") or {}).get("worker") if isinstance(gfd, dict) else None
        if not isinstance(worker, dict) or "tolerations" not in worker:
            return None
        return list(worker.get("tolerations") or [])


@dataclass(frozen=True)
class ProfileNeeds:
    profile: str  # the values file as the user typed it
    release: str
    namespace: str
    node_pool_mode: str | None  # "nap", "aks" or "kaito"; None when no path is served
    kaito: DeclaredKaito | None
    kinds: tuple[ApiKind, ...]
    paths: tuple[ServingPath, ...]
    # Secret name -> the SecretProviderClass that syncs it from Key Vault (modelAccess.source keyVault).
    synced_secrets: dict[str, str] = field(default_factory=dict)

    @property
    def model_access_secrets(self) -> list[str]:
        return sorted({p.model_access_secret for p in self.paths if p.model_access_secret})

    @property
    def secrets_to_create(self) -> list[str]:
        """The model-access Secrets the user creates: those the chart does not sync from Key Vault."""
        return [name for name in self.model_access_secrets if name not in self.synced_secrets]

    def kinds_of_group(self, group: str) -> list[ApiKind]:
        return [k for k in self.kinds if k.group == group]


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _release_objects(rendering: Rendering) -> list[tuple[dict[str, Any], str | None]]:
    """Every object of the release with where it is carried: top-level objects, and the documents
    of ConfigMaps annotated as carrying manifests (whether or not the render already lists them)."""
    found: dict[tuple[str, str, str], tuple[dict[str, Any], str | None]] = {}

    def add(obj: Any, carried_by: str | None) -> None:
        if not isinstance(obj, dict) or not obj.get("kind"):
            return
        meta = _metadata(obj)
        key = (str(obj.get("kind")), str(meta.get("namespace", "")), str(meta.get("name", "")))
        found.setdefault(key, (obj, carried_by))

    for rendered in rendering.objects:
        add(rendered.obj, rendered.embedded_in)
        carrier = _metadata(rendered.obj).get("name", "?")
        for document in embedded_documents(rendered.obj):
            if document.error:
                raise UserError(f"ConfigMap/{carrier}", document.error)
            add(document.obj, document.origin(carrier))
    return list(found.values())


def _declared_kaito(rendering: Rendering, release: str, where: str) -> DeclaredKaito | None:
    for obj in rendering.of_kind("ConfigMap"):
        labels = _metadata(obj).get("labels") or {}
        if labels.get("app.kubernetes.io/component") != KAITO_INSTALL_COMPONENT:
            continue
        name = _metadata(obj).get("name", f"{release}-kaito-install")
        data = obj.get("data") or {}
        minimum = data.get("minimumVersion")
        if not minimum:
            raise UserError(where, f"ConfigMap {name} has no data.minimumVersion",
                            "the chart must declare the oldest KAITO it supports")
        try:
            values = yaml.safe_load(data.get("values.yaml") or "") or {}
        except yaml.YAMLError as exc:
            raise UserError(where, f"ConfigMap {name} data.\"values.yaml\" is not valid YAML: {exc}") from None
        if not isinstance(values, dict):
            raise UserError(where, f"ConfigMap {name} data.\"values.yaml\" is not a mapping of KAITO chart values")
        return DeclaredKaito(config_map=name, minimum_version=str(minimum), values=values)
    return None


def _serving_path(obj: dict[str, Any], carried_by: str | None) -> ServingPath:
    spec = obj.get("spec") or {}
    labels = ((spec.get("labelSelector") or {}).get("matchLabels")) or {}
    preset = ((((spec.get("template") or {}).get("inference") or {}).get("preset")) or {})
    secret = (preset.get("presetOptions") or {}).get("modelAccessSecret")
    return ServingPath(
        inference_set=str(_metadata(obj).get("name", "?")),
        node_labels={str(k): str(v) for k, v in labels.items()},
        model_access_secret=str(secret) if secret else None,
        carried_by=carried_by,
    )


def _node_pool_mode(kinds: set[str], kaito: DeclaredKaito | None, paths: list[ServingPath]) -> str | None:
    if not paths:
        return None
    if "NodePool" in kinds:
        return "nap"
    # No Karpenter NodePool: byo nodes come from AKS agent pools, otherwise KAITO brings its own.
    if kaito is not None and kaito.node_provisioner == "byo":
        return "aks"
    return "kaito"


def profile_needs(rendering: Rendering, release: str, namespace: str) -> ProfileNeeds:
    where = display_path(rendering.profile.path)
    objects = _release_objects(rendering)
    kaito = _declared_kaito(rendering, release, where)
    paths = [_serving_path(obj, carried) for obj, carried in objects if obj.get("kind") == "InferenceSet"]
    paths.sort(key=lambda p: p.inference_set)
    if paths and kaito is None:
        raise UserError(where, f"the render has InferenceSets but no ConfigMap {release}-kaito-install "
                        "declaring the KAITO install", "render with the chart in this checkout")
    kinds = sorted({ApiKind(str(o.get("apiVersion", "")), str(o["kind"])) for o, _ in objects},
                   key=lambda k: (k.group, k.kind, k.version))
    synced = {}
    for obj, _ in objects:
        if obj.get("kind") == "SecretProviderClass":
            for secret_object in (obj.get("spec") or {}).get("secretObjects") or []:
                synced[str(secret_object.get("secretName"))] = str(_metadata(obj).get("name"))
    return ProfileNeeds(
        profile=where,
        release=release,
        namespace=namespace,
        node_pool_mode=_node_pool_mode({k.kind for k in kinds}, kaito, paths),
        kaito=kaito,
        kinds=tuple(kinds),
        paths=tuple(paths),
        synced_secrets=synced,
    )
