"""Asking network-config-analyzer (np-guard's NetworkPolicy analyser, PyPI network-config-analyzer)
which connections a set of Kubernetes NetworkPolicies allows between given pods and addresses.

The analyser ships as a CLI; its CLI builds a NetworkConfig from finders and a PeerContainer
(nca/nca_cli.py run_args -> nca/NetworkConfig/ResourcesHandler.py get_network_config) and asks it
for allowed connections (NetworkConfig.allowed_connections). This module drives that same layer
with already-parsed objects: no temporary files, no YAML round trip, and one analysis answers every
query at the exact port and protocol. Those classes are the package's internals rather than a
documented API, which is why pyproject.toml pins the version exactly.

The analyser keeps process-wide state (BasePeerSet, NcaLogger are singletons), so analyses run one
at a time under a lock, and each starts by resetting it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

ANALYSER = "network-config-analyzer"


@dataclass(frozen=True)
class PodPeer:
    """A pod as the analyser sees it: a name, a namespace, labels and named container ports."""

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    ports: tuple[tuple[str, int, str], ...] = ()  # (name, number, protocol)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def manifest(self) -> dict[str, Any]:
        ports = [{"name": n, "containerPort": p, "protocol": proto} for n, p, proto in self.ports]
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": self.name, "namespace": self.namespace, "labels": dict(self.labels)},
                "spec": {"containers": [{"name": "main", "ports": ports}]}}


@dataclass(frozen=True)
class AddressPeer:
    """An address outside the cluster (an IP or a CIDR)."""

    address: str

    @property
    def key(self) -> str:
        return self.address


@dataclass(frozen=True)
class Query:
    source: str  # a PodPeer or AddressPeer key
    destination: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Verdict:
    """The analyser's answer for one query, with the policies that decide it."""

    query: Query
    allowed: bool  # every connection the query describes is allowed
    any_allowed: bool  # at least part of it is allowed
    ingress_allowed: bool  # the destination's side admits it
    egress_allowed: bool  # the source's side lets it out
    ingress_policies: tuple[str, ...]  # policies selecting the destination for ingress ("ns/name")
    egress_policies: tuple[str, ...]  # policies selecting the source for egress
    ingress_admitting: tuple[str, ...]  # those of ingress_policies whose rules admit (part of) it
    egress_admitting: tuple[str, ...]


@dataclass(frozen=True)
class Analysis:
    verdicts: dict[Query, Verdict]
    rejected: dict[str, str]  # policy "ns/name" -> why the analyser could not read it
    notes: tuple[str, ...]  # the analyser's warnings, e.g. over-approximations
    analyser: str  # "network-config-analyzer <version>"
    policies: int = 0
    pods: int = 0
    cached: bool = field(default=False, compare=False)


_LOCK = threading.Lock()
_CACHE: dict[str, Analysis] = {}
_CACHE_SIZE = 64


def analyser_version() -> str:
    return f"{ANALYSER} {metadata.version(ANALYSER)}"


def policy_key(obj: dict[str, Any]) -> str:
    """How the analyser names a NetworkPolicy: "<namespace>/<name>", namespace default when unset."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def analyse(pods: list[PodPeer], addresses: list[AddressPeer], policies: list[dict[str, Any]],
            queries: list[Query]) -> Analysis:
    """Verdicts for the queries under the given NetworkPolicy objects. Same inputs, same answer: the
    result is cached by a digest of the inputs."""
    digest = hashlib.sha256(json.dumps(
        [[p.manifest() for p in pods], [a.address for a in addresses], policies,
         [[q.source, q.destination, q.port, q.protocol] for q in queries]],
        sort_keys=True, default=str).encode()).hexdigest()
    with _LOCK:
        if digest in _CACHE:
            hit = _CACHE[digest]
            return Analysis(hit.verdicts, hit.rejected, hit.notes, hit.analyser, hit.policies, hit.pods, cached=True)
        result = _analyse(pods, addresses, policies, queries)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[digest] = result
        return result


def _analyse(pods: list[PodPeer], addresses: list[AddressPeer], policies: list[dict[str, Any]],
             queries: list[Query]) -> Analysis:
    # Imported here: half a second of imports that only an analysis needs.
    from nca.CoreDS.Peer import BasePeerSet
    from nca.Utils.NcaLogger import NcaLogger

    BasePeerSet.reset()
    logger = NcaLogger()
    was_muted = logger.is_mute()
    logger.mute()  # collect its warnings instead of printing them
    printed = io.StringIO()  # other warnings it prints: they become notes too
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            config, peers, rejected = _network_config(pods, addresses, policies)
            verdicts = _verdicts(config, peers, queries)
        warnings = [str(message) for message, _ in logger._collected_messages] + printed.getvalue().splitlines()
        notes = tuple(sorted({w.strip() for w in warnings if "Warning" in w or "over-approximation" in w}))
        return Analysis(verdicts, rejected, notes, analyser_version(), len(config.policies_container.policies),
                        len(config.peer_container.peer_set))
    finally:
        logger.flush_messages(silent=True)
        if not was_muted:
            logger.unmute()
        BasePeerSet.reset()


def _network_config(pods: list[PodPeer], addresses: list[AddressPeer],
                    policies: list[dict[str, Any]]) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """The analyser's NetworkConfig, its peers by key, and the policies it refused (with why)."""
    from nca.CoreDS.Peer import IpBlock
    from nca.NetworkConfig.NetworkConfig import NetworkConfig
    from nca.NetworkConfig.PeerContainer import PeerContainer
    from nca.NetworkConfig.PoliciesFinder import PoliciesFinder
    from nca.NetworkConfig.TopologyObjectsFinder import NamespacesFinder, PodsFinder

    namespaces = NamespacesFinder()
    for name in sorted({p.namespace for p in pods} | {policy_key(p).split("/", 1)[0] for p in policies}):
        namespaces.parse_yaml_code_for_ns({"kind": "Namespace", "metadata": {"name": name}})
    finder = PodsFinder()
    finder.namespaces_finder = namespaces
    for pod in pods:
        finder.add_eps_from_yaml(pod.manifest())
    container = PeerContainer(finder.peer_set, namespaces.namespaces, [], finder.representative_peers,
                              finder.livesim_peer_set)
    peers: dict[str, Any] = {peer.full_name(): peer for peer in container.peer_set}
    peers.update({address.key: IpBlock(address.address) for address in addresses})

    combined = PoliciesFinder()
    combined.set_peer_container(container)
    rejected: dict[str, str] = {}
    for obj in policies:
        # One finder per policy, so a policy the analyser refuses is named and the others still load.
        single = PoliciesFinder()
        single.set_peer_container(container)
        single.parse_yaml_code_for_policy(obj, policy_key(obj))
        try:
            single.parse_policies_in_parse_queue()
        except Exception as exc:  # SyntaxError for what it checks, anything on shapes it does not
            why = exc.msg if isinstance(exc, SyntaxError) else str(exc)
            rejected[policy_key(obj)] = why or type(exc).__name__
            continue
        for parsed in single.policies_container.policies.values():
            combined.policies_container.append_policy(parsed)
    return NetworkConfig("release", container, combined), peers, rejected


def _verdicts(config: Any, peers: dict[str, Any], queries: list[Query]) -> dict[Query, Verdict]:
    from nca.CoreDS.ConnectivityProperties import ConnectivityProperties
    from nca.CoreDS.Peer import IpBlock, PeerSet
    from nca.CoreDS.PortSet import PortSet
    from nca.CoreDS.ProtocolSet import ProtocolSet
    from nca.NetworkConfig.NetworkLayer import NetworkLayerName
    from nca.Resources.PolicyResources.NetworkPolicy import PolicyConnectionsFilter

    everything = PolicyConnectionsFilter.only_all_allowed_connections()
    allowed = config.allowed_connections(res_conns_filter=everything).all_allowed_conns
    # Each side on its own (the layer's per-direction result), only to say which side, and so which
    # policy, blocks a connection; the verdict itself is the config's.
    layer = config.policies_container.layers.get(NetworkLayerName.K8s_Calico)
    container = config.peer_container
    ingress = layer._allowed_xgress_conns(True, container, everything).all_allowed_conns if layer else None
    egress = layer._allowed_xgress_conns(False, container, everything).all_allowed_conns if layer else None
    policies = list(config.policies_container.policies.values())

    verdicts: dict[Query, Verdict] = {}
    for query in queries:
        source, destination = peers[query.source], peers[query.destination]
        wanted = ConnectivityProperties.make_conn_props_from_dict({
            "src_peers": PeerSet({source}), "dst_peers": PeerSet({destination}),
            "protocols": ProtocolSet.get_protocol_set_with_single_protocol(query.protocol),
            "dst_ports": PortSet.make_port_set_with_range(query.port, query.port)})
        selecting_in = [p for p in policies if p.affects_ingress and destination in p.selected_peers]
        selecting_out = [p for p in policies if p.affects_egress and source in p.selected_peers]
        verdicts[query] = Verdict(
            query=query,
            allowed=wanted.contained_in(allowed),
            any_allowed=bool(wanted & allowed),
            # An address outside the cluster has no policies of its own: its side never blocks.
            ingress_allowed=isinstance(destination, IpBlock) or ingress is None or wanted.contained_in(ingress),
            egress_allowed=isinstance(source, IpBlock) or egress is None or wanted.contained_in(egress),
            ingress_policies=_names(selecting_in),
            egress_policies=_names(selecting_out),
            ingress_admitting=_names(p for p in selecting_in if wanted & p.allow_ingress_props()),
            egress_admitting=_names(p for p in selecting_out if wanted & p.allow_egress_props()),
        )
    return verdicts


def _names(policies: Any) -> tuple[str, ...]:
    return tuple(sorted(p.full_name() for p in policies))
