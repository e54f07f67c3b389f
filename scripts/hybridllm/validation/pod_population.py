"""The endpoints a reachability analysis of one release needs: the release's own pods, the vLLM pods
KAITO creates from its InferenceSets (the render does not contain them), and the peers outside the
release that it must reach or be kept from (a Prometheus, pods of other namespaces, cluster DNS,
an address on the internet)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..embedded import embedded_documents
from .findings import Document, Source
from .nca_connectivity import AddressPeer, PodPeer
from .workloads import as_dict, as_list, containers, pod_templates, serving_path

# KAITO's preset StatefulSets label their pods with exactly these two labels and nothing from the
# InferenceSet's template (kaito-project/kaito pkg/workspace/manifests/manifests.go
# GenerateStatefulSetManifest; the created-by label comes from pkg/utils/inferenceset/inferenceset.go).
# The child Workspace is named <InferenceSet>-<5 random characters>.
CREATED_BY = "inferenceset.kaito.sh/created-by"
WORKSPACE = "kaito.sh/workspace"
# vLLM listens on consts.PortInferenceServer, container port "http" (pkg/utils/consts/consts.go,
# pkg/workspace/inference/preset_inferences.go containerPorts).
VLLM_PORT = 5000
GATEWAY_COMPONENT = "gateway"
DEFAULT_GATEWAY_PORT = 8080
DNS_NAMESPACE, DNS_LABELS = "kube-system", {"k8s-app": "kube-dns"}  # CoreDNS as AKS runs it


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection the analysis judges."""

    peer: PodPeer | AddressPeer
    title: str  # how the summary and findings name it, e.g. "customer vLLM", "prometheus(monitoring)"
    document: Document | None = None  # the object it comes from, where findings about it attach
    port: int | None = None  # the port it serves that matters (vLLM 5000, gateway 8080)
    detail: str = ""  # what it stands for, for messages: "KAITO pods of InferenceSet llm/x"

    @property
    def key(self) -> str:
        return self.peer.key

    @property
    def namespace(self) -> str | None:
        return self.peer.namespace if isinstance(self.peer, PodPeer) else None


@dataclass
class Population:
    release_namespace: str
    workloads: list[Endpoint]  # every pod template in the render (gateway included)
    gateway: Endpoint | None
    vllm: list[Endpoint]  # one per InferenceSet
    prometheus: Endpoint | None  # None when nothing in the render is scraped
    outsiders: list[Endpoint]  # a pod of a namespace nothing names, and one per namespace the policies name
    neighbour: Endpoint  # a pod of the release namespace that is none of the release's workloads
    dns: Endpoint
    internet: Endpoint

    def endpoints(self) -> list[Endpoint]:
        extra = [self.prometheus] if self.prometheus else []
        return self.workloads + self.vllm + extra + self.outsiders + [self.neighbour, self.dns, self.internet]

    def pods(self) -> list[PodPeer]:
        seen: dict[str, PodPeer] = {}
        for endpoint in self.endpoints():
            if isinstance(endpoint.peer, PodPeer):
                seen.setdefault(endpoint.key, endpoint.peer)
        return list(seen.values())

    def addresses(self) -> list[AddressPeer]:
        return [e.peer for e in self.endpoints() if isinstance(e.peer, AddressPeer)]


def expanded(documents: list[Document]) -> list[Document]:
    """The documents plus whatever ConfigMaps carry for a later apply (hybridllm/embedded.py), each
    object once: renders and the file loader already add those, hand-built lists may not."""
    seen = {_identity(d) for d in documents}
    already = {d.embedded_in.split(" ", 1)[0] for d in documents if d.embedded_in}
    result = list(documents)
    for document in documents:
        if document.kind != "ConfigMap" or f"ConfigMap/{document.name}" in already:
            continue  # parsing the carried YAML again is most of the cost of a check
        for carried in embedded_documents(document.obj):
            if carried.error or not isinstance(carried.obj, dict):
                continue  # the loader reports unreadable embedded manifests
            origin = carried.origin(document.name)
            candidate = Document(Source(f"{document.source.file} -> {origin}", document.source.line), carried.obj, origin)
            if candidate.namespace == "" and document.namespace:
                candidate = Document(candidate.source, {**carried.obj, "metadata": {
                    **as_dict(carried.obj.get("metadata")), "namespace": document.namespace}}, origin)
            if _identity(candidate) not in seen:
                seen.add(_identity(candidate))
                result.append(candidate)
    return result


def _identity(document: Document) -> tuple[str, str, str]:
    return document.kind, document.namespace, document.name


def _labels(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in as_dict(value).items()))


def _named_ports(spec: dict[str, Any]) -> tuple[tuple[str, int, str], ...]:
    ports: dict[str, tuple[str, int, str]] = {}
    for _, container in containers(spec):
        for port in as_list(container.get("ports")):
            if isinstance(port, dict) and port.get("name") and isinstance(port.get("containerPort"), int):
                ports.setdefault(str(port["name"]), (str(port["name"]), port["containerPort"],
                                                     str(port.get("protocol", "TCP"))))
    return tuple(ports.values())


def _serving_port(spec: dict[str, Any], default: int) -> int:
    """The port named http, else the only port, else the default."""
    numbers = {}
    for _, container in containers(spec):
        for port in as_list(container.get("ports")):
            if isinstance(port, dict) and isinstance(port.get("containerPort"), int):
                numbers.setdefault(str(port.get("name", "")), port["containerPort"])
    if "http" in numbers:
        return numbers["http"]
    return next(iter(numbers.values())) if len(numbers) == 1 else default


def release_namespace(documents: list[Document]) -> str:
    counts = Counter(d.namespace for d in documents if d.namespace)
    return counts.most_common(1)[0][0] if counts else "default"


def _free_namespace(wanted: str, taken: set[str]) -> str:
    if wanted not in taken:
        return wanted
    index = 2
    while f"{wanted}-{index}" in taken:
        index += 1
    return f"{wanted}-{index}"


def build(documents: list[Document], *, prometheus: tuple[str, dict[str, str]] | None, other_namespace: str,
          named_namespaces: set[str], external_address: str) -> Population:
    """Everything the analysis needs. `prometheus` is (namespace, pod labels), or None when nothing
    scrapes the release; `named_namespaces` are namespaces the release's NetworkPolicies name, each
    of which gets a pod of its own. The documents must already be expanded()."""
    namespace = release_namespace(documents)
    workloads, gateway = [], None
    for template in pod_templates(documents):
        doc = template.document
        peer = PodPeer(f"{doc.name}-{doc.kind.lower()}" if doc.kind != "Pod" else doc.name,
                       doc.namespace or "default", _labels(template.labels), _named_ports(template.spec))
        is_gateway = template.labels.get("app.kubernetes.io/component") == GATEWAY_COMPONENT
        endpoint = Endpoint(peer, "gateway" if is_gateway else f"{doc.kind}/{doc.name}", doc,
                            _serving_port(template.spec, DEFAULT_GATEWAY_PORT) if is_gateway else None,
                            f"pods of {doc.kind} {peer.namespace}/{doc.name}")
        workloads.append(endpoint)
        if is_gateway and gateway is None:
            gateway = endpoint
    vllm = []
    for doc in (d for d in documents if d.kind == "InferenceSet" and isinstance(d.obj, dict) and d.name):
        path = serving_path(doc.labels) or doc.name
        peer = PodPeer(f"{doc.name}-abcde-0", doc.namespace or "default",
                       _labels({CREATED_BY: doc.name, WORKSPACE: f"{doc.name}-abcde"}), (("http", VLLM_PORT, "TCP"),))
        vllm.append(Endpoint(peer, f"{path} vLLM", doc, VLLM_PORT,
                             f"the pods KAITO creates for InferenceSet {peer.namespace}/{doc.name}"))

    taken = {e.namespace for e in workloads + vllm if e.namespace} | named_namespaces | {namespace}
    prometheus_endpoint = None
    if prometheus is not None:
        prom_namespace, prom_labels = prometheus
        prometheus_endpoint = Endpoint(PodPeer("prometheus-0", prom_namespace, _labels(prom_labels)),
                                       f"prometheus({prom_namespace})")
        taken.add(prom_namespace)
    client = _labels({"app.kubernetes.io/name": "client"})
    stranger = _free_namespace(other_namespace, taken)
    outsiders = [Endpoint(PodPeer("client", stranger, client), f"pod({stranger})")]
    for named in sorted(named_namespaces - {namespace}):
        # Beside Prometheus, its namespace holds Grafana, exporters and more: "other pod" shows what
        # admitting the namespace rather than the Prometheus pods lets in.
        is_prometheus = prometheus is not None and named == prometheus[0]
        outsiders.append(Endpoint(PodPeer("client", named, client), f"{'other ' if is_prometheus else ''}pod({named})"))
    neighbour = Endpoint(PodPeer("neighbour-client", namespace, _labels({"app.kubernetes.io/name": "neighbour-client"})),
                         f"other pod({namespace})")
    dns = Endpoint(PodPeer("coredns", DNS_NAMESPACE, _labels(DNS_LABELS), (("dns", 53, "UDP"),)),
                   f"kube-dns({DNS_NAMESPACE})")
    internet = Endpoint(AddressPeer(external_address), f"internet {external_address}")
    return Population(namespace, workloads, gateway, vllm, prometheus_endpoint, outsiders, neighbour, dns, internet)
