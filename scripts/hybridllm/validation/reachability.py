"""Reachability: what one release's NetworkPolicies let through, as network-config-analyzer (np-guard)
evaluates them, against what the release needs and what it must keep out.

Needed (rule reachability-required):
  - with ServiceMonitors/PodMonitors in the render: Prometheus reaches the gateway's port and each
    vLLM path's port 5000 (the alerts, the spend figures and KEDA's batch query read those scrapes);
  - the gateway reaches each vLLM path on 5000, cluster DNS, and HTTPS outside the cluster when it
    has an Azure OpenAI backend (the endpoint, and Entra ID for workload identity);
  - each vLLM path reaches cluster DNS and HTTPS outside the cluster (the weights download).
Kept out (rule reachability-forbidden):
  - a pod of another namespace reaches neither the gateway's port nor vLLM, unless the
    NetworkPolicy guarding that destination names the namespace (gateway.networkPolicy.
    ingressNamespaces, serving.networkPolicy.ingressNamespaces): every namespace the policies name
    gets a pod of its own and is judged against each destination;
  - with a gateway, no pod of the release namespace but the gateway reaches vLLM: vLLM has no
    authentication, the gateway does it and counts every request.

KAITO's vLLM pods and the peers outside the release are not in the render; pod_population.py
describes them to the analyser. The verdicts, and which policy blocks or admits, are the
analyser's (nca_connectivity.py); nothing here evaluates a NetworkPolicy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from .findings import Document, Finding
from .nca_connectivity import Analysis, Query, Verdict, analyse, policy_key
from .pod_population import Endpoint, Population, build, expanded
from .policy import Rule
from .workloads import as_dict, as_list

RULES = {rule.id: rule for rule in [
    Rule("reachability-required",
         "a connection the release needs (Prometheus scrapes, gateway to vLLM, HTTPS to Azure OpenAI and Entra ID, "
         "DNS, the weights download) is blocked by a NetworkPolicy, as network-config-analyzer evaluates them",
         "admit the source in the NetworkPolicy the message names (for Prometheus: monitoring.prometheus.namespace "
         "and podLabels)"),
    Rule("reachability-forbidden",
         "a pod that must be kept out (another namespace, or a pod of the release namespace other than the "
         "gateway calling vLLM) can reach the gateway or vLLM, as network-config-analyzer evaluates the NetworkPolicies",
         "narrow the rule the message names; admit other namespaces by name only, through "
         "gateway.networkPolicy.ingressNamespaces or serving.networkPolicy.ingressNamespaces"),
    Rule("reachability-unanalysable",
         "network-config-analyzer cannot read this NetworkPolicy, so no reachability verdict about the release holds",
         "fix the NetworkPolicy where the analyser's message points"),
]}

MONITORING_KINDS = {"ServiceMonitor", "PodMonitor"}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DEFAULT_PROMETHEUS_LABELS = {"app.kubernetes.io/name": "prometheus"}
# An address outside the cluster and outside the private ranges: stands for Azure OpenAI, Entra ID
# and Hugging Face, whose addresses are not fixed.
DEFAULT_EXTERNAL_ADDRESS = "20.0.0.1"
DNS_PORT = 53
HTTPS_PORT = 443


@dataclass(frozen=True)
class Expectation:
    source: Endpoint
    destination: Endpoint
    port: int
    protocol: str
    must_reach: bool
    why: str

    @property
    def query(self) -> Query:
        return Query(self.source.key, self.destination.key, self.port, self.protocol)

    @property
    def connection(self) -> str:
        suffix = "" if self.protocol == "TCP" else f"/{self.protocol}"
        return f"{self.source.title} -> {self.destination.title} :{self.port}{suffix}"


@dataclass(frozen=True)
class Outcome:
    expectation: Expectation
    verdict: Verdict | None  # None when the analysis could not run
    named_by: tuple[str, ...] = ()  # policies guarding the destination that name the source's namespace
    finding: Finding | None = None

    @property
    def state(self) -> str:
        if self.verdict is None:
            return "not analysed"
        if self.verdict.allowed:
            return "allowed"
        return "partly allowed" if self.verdict.any_allowed else "blocked"


@dataclass
class ReachabilityReport:
    namespace: str
    analyser: str
    outcomes: list[Outcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: tuple[str, ...] = ()
    pods: int = 0
    policies: int = 0
    seconds: float = 0.0
    cached: bool = False
    population: Population | None = None  # what the analyser was given, for tests and debugging
    policies_given: list[dict[str, Any]] = field(default_factory=list)

    def outcome(self, source_title: str, destination_title: str, port: int) -> Outcome:
        """The outcome for one connection, by the titles the summary shows (tests use this)."""
        for outcome in self.outcomes:
            e = outcome.expectation
            if (e.source.title, e.destination.title, e.port) == (source_title, destination_title, port):
                return outcome
        raise KeyError(f"no connection {source_title} -> {destination_title} :{port} was judged")

    def summary_lines(self) -> list[str]:
        head = (f"reachability of namespace {self.namespace} ({self.analyser}; {self.pods} pods, "
                f"{self.policies} NetworkPolicies; {self.seconds * 1000:.0f} ms{', cached' if self.cached else ''})")
        width = max((len(o.expectation.connection) for o in self.outcomes), default=0)
        lines = [head]
        for outcome in self.outcomes:
            e = outcome.expectation
            if e.must_reach:
                expected = "required"
            elif outcome.named_by:
                expected = f"its namespace is named by {', '.join(outcome.named_by)}"
            else:
                expected = "must be blocked"
            mark = f"  <- {outcome.finding.rule}" if outcome.finding else ""
            lines.append(f"  {e.connection:<{width}}  {outcome.state:<14} {expected}{mark}")
        lines += [f"  analyser note: {note}" for note in self.notes]
        return lines

    def summary(self) -> str:
        return "\n".join(self.summary_lines())


def check(documents: list[Document], *, prometheus_namespace: str = "monitoring",
          prometheus_labels: dict[str, str] | None = None, other_namespace: str = "other-team",
          external_address: str = DEFAULT_EXTERNAL_ADDRESS) -> ReachabilityReport:
    """Judge one release (the documents the validator gets for it). `prometheus_namespace` and
    `prometheus_labels` describe the Prometheus that scrapes it (values monitoring.prometheus)."""
    started = time.perf_counter()
    objects = expanded(documents)
    policies = [d for d in objects if d.kind == "NetworkPolicy" and isinstance(d.obj, dict)
                and d.api_version.startswith("networking.k8s.io/")]
    monitored = any(d.kind in MONITORING_KINDS for d in objects)
    prometheus = (prometheus_namespace, dict(prometheus_labels or DEFAULT_PROMETHEUS_LABELS)) if monitored else None
    names_by_policy = {policy_key(d.obj): named_namespaces(d.obj) for d in policies}
    population = build(objects, prometheus=prometheus, other_namespace=other_namespace,
                       named_namespaces=set().union(set(), *names_by_policy.values()), external_address=external_address)
    expectations = _expectations(population, objects)
    analysis = analyse(population.pods(), population.addresses(), [d.obj for d in policies],
                       [e.query for e in expectations])
    report = ReachabilityReport(population.release_namespace, analysis.analyser, notes=analysis.notes,
                                pods=analysis.pods, policies=analysis.policies, cached=analysis.cached,
                                population=population, policies_given=[d.obj for d in policies])
    by_key = {policy_key(d.obj): d for d in policies}
    if analysis.rejected:
        for key, message in sorted(analysis.rejected.items()):
            report.findings.append(Finding.about(
                by_key[key], "reachability-unanalysable",
                f"{analysis.analyser} cannot read NetworkPolicy {key}: {message}; no reachability verdict "
                "was made",
                RULES["reachability-unanalysable"].fix, "spec"))
        report.outcomes = [Outcome(e, None) for e in expectations]
    else:
        for expectation in expectations:
            outcome = _judge(expectation, analysis, by_key, names_by_policy)
            report.outcomes.append(outcome)
            if outcome.finding:
                report.findings.append(outcome.finding)
    report.seconds = time.perf_counter() - started
    return report


def named_namespaces(policy: dict[str, Any]) -> set[str]:
    """Namespaces a NetworkPolicy's ingress peers name by kubernetes.io/metadata.name."""
    names: set[str] = set()
    for rule in as_list(as_dict(policy.get("spec")).get("ingress")):
        for peer in as_list(as_dict(rule).get("from")):
            selector = as_dict(as_dict(peer).get("namespaceSelector"))
            value = as_dict(selector.get("matchLabels")).get(NAMESPACE_NAME_LABEL)
            if value:
                names.add(str(value))
            for expression in as_list(selector.get("matchExpressions")):
                expression = as_dict(expression)
                if expression.get("key") == NAMESPACE_NAME_LABEL and expression.get("operator") == "In":
                    names.update(str(v) for v in as_list(expression.get("values")))
    return names


def _gateway_calls_outside(objects: list[Document]) -> bool:
    """Whether the gateway has an Azure OpenAI backend, read from its config (ConfigMap key
    gateway.yaml, gateway/config.py). Without a readable config, assume it does."""
    configs = [d for d in objects
               if d.kind == "ConfigMap" and isinstance(as_dict(as_dict(d.obj).get("data")).get("gateway.yaml"), str)]
    if not configs:
        return True
    for document in configs:
        try:
            config = yaml.safe_load(document.obj["data"]["gateway.yaml"])
        except yaml.YAMLError:
            return True
        backends = as_dict(as_dict(config).get("backends"))
        if any(as_dict(b).get("kind") == "azure-openai" for b in backends.values()):
            return True
    return False


def _expectations(population: Population, objects: list[Document]) -> list[Expectation]:
    gateway, paths, prometheus = population.gateway, population.vllm, population.prometheus
    dns, internet = population.dns, population.internet
    result: list[Expectation] = []

    def need(source: Endpoint, destination: Endpoint, port: int, why: str, protocol: str = "TCP") -> None:
        result.append(Expectation(source, destination, port, protocol, True, why))

    def forbid(source: Endpoint, destination: Endpoint, port: int, why: str) -> None:
        result.append(Expectation(source, destination, port, "TCP", False, why))

    if prometheus is not None:
        if gateway is not None:
            need(prometheus, gateway, gateway.port, "Prometheus scrapes the gateway's /metrics there (spend "
                 "figures and alerts, and KEDA's batch query, read that scrape)")
        for path in paths:
            need(prometheus, path, path.port, "Prometheus scrapes vLLM's /metrics there (the path-down alert "
                 "and the dashboards read it)")
    if gateway is not None:
        for path in paths:
            need(gateway, path, path.port, "the gateway sends the path's requests there")
        need(gateway, dns, DNS_PORT, "the gateway resolves the vLLM Services and Azure OpenAI", "UDP")
        if _gateway_calls_outside(objects):
            need(gateway, internet, HTTPS_PORT, "the gateway calls Azure OpenAI, and Entra ID for workload "
                 "identity, over HTTPS outside the cluster")
    for path in paths:
        need(path, dns, DNS_PORT, "vLLM resolves the Hugging Face endpoint", "UDP")
        need(path, internet, HTTPS_PORT, "vLLM downloads the model weights from Hugging Face over HTTPS")
    destinations = ([gateway] if gateway is not None else []) + paths
    for destination in destinations:
        for outsider in population.outsiders:
            forbid(outsider, destination, destination.port, "pods of other namespaces are kept out unless a "
                   "value names their namespace")
    if gateway is not None:
        for path in paths:
            forbid(population.neighbour, path, path.port, "only the gateway may call vLLM: vLLM has no "
                   "authentication, the gateway authenticates and counts every request")
    return result


def _judge(expectation: Expectation, analysis: Analysis, policies: dict[str, Document],
           names_by_policy: dict[str, set[str]]) -> Outcome:
    verdict = analysis.verdicts[expectation.query]
    e = expectation
    where = f"{e.destination.title} ({e.destination.detail})" if e.destination.detail else e.destination.title
    if e.must_reach:
        if verdict.allowed:
            return Outcome(e, verdict)
        blocking: list[tuple[str, str]] = []  # (policy, side)
        if not verdict.egress_allowed:
            blocking += [(p, "egress") for p in verdict.egress_policies]
        if not verdict.ingress_allowed:
            blocking += [(p, "ingress") for p in verdict.ingress_policies]
        by = "; ".join(f"the {side} rules of NetworkPolicy {p} admit nothing that matches" for p, side in blocking)
        message = (f"{e.source.title} cannot reach {where} on {e.protocol} {e.port}"
                   + (f": {by}" if by else "") + f". Needed because {e.why}. ({analysis.analyser})")
        anchor, path = _anchor(blocking, policies, e)
        return Outcome(e, verdict, finding=Finding.about(anchor, "reachability-required", message,
                                                         RULES["reachability-required"].fix, path))
    source_namespace = e.source.namespace or ""
    named_by = tuple(p for p in verdict.ingress_policies if source_namespace in names_by_policy.get(p, set()))
    if named_by or not verdict.any_allowed:
        return Outcome(e, verdict, named_by)
    if verdict.ingress_admitting:
        how = "; ".join(f"NetworkPolicy {p} admits it" for p in verdict.ingress_admitting)
        anchor, path = policies[verdict.ingress_admitting[0]], "spec.ingress"
    else:
        how = f"no NetworkPolicy selects {e.destination.title} for ingress"
        anchor, path = _anchor([], policies, e)
    message = (f"{e.source.title} can reach {where} on TCP {e.port}: {how}. It must not: {e.why}. "
               f"({analysis.analyser})")
    return Outcome(e, verdict, named_by, Finding.about(anchor, "reachability-forbidden", message,
                                                       RULES["reachability-forbidden"].fix, path))


def _anchor(blocking: list[tuple[str, str]], policies: dict[str, Document], e: Expectation) -> tuple[Document, str]:
    """The object a finding belongs to: the blocking policy, else the destination or source workload."""
    for key, side in blocking:
        if key in policies:
            return policies[key], f"spec.{side}"
    # Every judged connection has the gateway or a vLLM path at one end, and both come from objects.
    document = e.destination.document or e.source.document
    assert document is not None
    return document, ""
