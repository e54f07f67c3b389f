"""Reachability (hybridllm/validation/reachability.py): every profile, with monitoring on, lets
through what the release needs and keeps out what it must, as network-config-analyzer judges the
rendered NetworkPolicies; deliberately broken policies make each rule fire; and the in-process
verdicts agree with the analyser's own CLI on the same inputs."""

from __future__ import annotations

import copy
import ipaddress
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from conftest import PROFILES, Render
from hybridllm.validation.engine import RULES as ENGINE_RULES
from hybridllm.validation.findings import Document, Source
from hybridllm.validation.reachability import RULES, ReachabilityReport, check

MONITORING = {"monitoring": {"serviceMonitor": True}}
RELEASE = "hybrid-llm"


def documents(render: Render, profile: str, overrides: dict[str, Any] | None = None) -> list[Document]:
    """The release's documents as the validator gets them (hybridllm/validation/run.py), each a
    private copy to break."""
    rendering = render(profile, {**MONITORING, **(overrides or {})})
    return [Document(Source(f"values/{profile}.yaml -> {o.template}" + (f" -> {o.embedded_in}" if o.embedded_in else "")),
                     copy.deepcopy(o.obj), o.embedded_in)
            for o in rendering.objects]


def policy(docs: list[Document], name: str) -> dict[str, Any]:
    return next(d.obj for d in docs if d.kind == "NetworkPolicy" and d.name == name)


def rules_of(report: ReachabilityReport) -> list[str]:
    return sorted(f.rule for f in report.findings)


def has_paths(profile: str) -> bool:
    return profile != "aoai-only"


# ---------------------------------------------------------------- every profile is clean


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_with_monitoring_has_no_reachability_findings(render: Render, profile: str) -> None:
    report = check(documents(render, profile))
    assert report.findings == [], report.summary()
    assert report.analyser.startswith("network-config-analyzer ")
    # The analyser's own verdicts, not just the absence of findings.
    for outcome in report.outcomes:
        expectation = outcome.expectation
        if expectation.must_reach:
            assert outcome.state == "allowed", expectation.connection
        elif not outcome.named_by:
            assert outcome.state == "blocked", expectation.connection
    assert report.outcome("prometheus(monitoring)", "gateway", 8080).state == "allowed"
    assert report.outcome("gateway", "internet 20.0.0.1", 443).state == "allowed"
    assert report.outcome("pod(other-team)", "gateway", 8080).state == "blocked"
    if has_paths(profile):
        for path in ("customer", "batch"):
            assert report.outcome("prometheus(monitoring)", f"{path} vLLM", 5000).state == "allowed"
            assert report.outcome("gateway", f"{path} vLLM", 5000).state == "allowed"
            assert report.outcome("pod(other-team)", f"{path} vLLM", 5000).state == "blocked"
            assert report.outcome(f"other pod(llm)", f"{path} vLLM", 5000).state == "blocked"
            assert report.outcome(f"{path} vLLM", "internet 20.0.0.1", 443).state == "allowed"
    else:
        assert not [o for o in report.outcomes if "vLLM" in o.expectation.destination.title]


@pytest.mark.parametrize("profile", PROFILES)
def test_without_service_monitors_prometheus_is_not_judged(render: Render, profile: str) -> None:
    report = check(documents(render, profile, {"monitoring": {"serviceMonitor": False}}))
    assert report.findings == []
    assert not [o for o in report.outcomes if o.expectation.source.title.startswith("prometheus(")]


def test_summary_names_each_connection_and_its_verdict(render: Render) -> None:
    summary = check(documents(render, "hybrid")).summary()
    assert summary.startswith("reachability of namespace llm (network-config-analyzer ")
    assert re.search(r"prometheus\(monitoring\) -> customer vLLM :5000 +allowed +required", summary)
    assert re.search(r"pod\(other-team\) -> customer vLLM :5000 +blocked +must be blocked", summary)
    assert re.search(r"gateway -> kube-dns\(kube-system\) :53/UDP +allowed", summary)


# ---------------------------------------------------------------- reachability-required


def test_vllm_policy_without_the_prometheus_peer_blocks_the_scrape(render: Render) -> None:
    docs = documents(render, "hybrid")
    rule = policy(docs, f"{RELEASE}-customer-vllm")["spec"]["ingress"][0]
    rule["from"] = [peer for peer in rule["from"] if "namespaceSelector" not in peer]
    report = check(docs)
    assert rules_of(report) == ["reachability-required"], report.summary()
    [finding] = report.findings
    assert (finding.kind, finding.name, finding.path) == ("NetworkPolicy", f"{RELEASE}-customer-vllm", "spec.ingress")
    assert "prometheus(monitoring) cannot reach customer vLLM" in finding.message
    assert "on TCP 5000" in finding.message
    assert f"ingress rules of NetworkPolicy llm/{RELEASE}-customer-vllm" in finding.message
    outcome = report.outcome("prometheus(monitoring)", "customer vLLM", 5000)
    assert outcome.state == "blocked"
    assert outcome.verdict is not None
    assert not outcome.verdict.ingress_allowed and outcome.verdict.egress_allowed
    assert outcome.verdict.ingress_policies == (f"llm/{RELEASE}-customer-vllm",)
    # The batch path's policy still admits it.
    assert report.outcome("prometheus(monitoring)", "batch vLLM", 5000).state == "allowed"


def test_gateway_policy_without_https_egress_blocks_azure_openai(render: Render) -> None:
    docs = documents(render, "hybrid")
    gateway = policy(docs, f"{RELEASE}-gateway")
    gateway["spec"]["egress"] = [r for r in gateway["spec"]["egress"]
                                 if not any(p.get("port") == 443 for p in r.get("ports", []))]
    report = check(docs)
    assert rules_of(report) == ["reachability-required"], report.summary()
    [finding] = report.findings
    assert (finding.name, finding.path) == (f"{RELEASE}-gateway", "spec.egress")
    assert "gateway cannot reach internet 20.0.0.1 on TCP 443" in finding.message
    assert f"egress rules of NetworkPolicy llm/{RELEASE}-gateway" in finding.message
    verdict = report.outcome("gateway", "internet 20.0.0.1", 443).verdict
    assert verdict is not None and not verdict.egress_allowed and verdict.ingress_allowed


def test_gateway_egress_narrowed_to_another_port_blocks_vllm(render: Render) -> None:
    docs = documents(render, "on-demand-kaito")
    for rule in policy(docs, f"{RELEASE}-gateway")["spec"]["egress"]:
        for port in rule.get("ports", []):
            if port.get("port") == 5000:
                port["port"] = 5001
    report = check(docs)
    messages = [f.message for f in report.findings]
    assert rules_of(report) == ["reachability-required"] * 2, report.summary()
    assert any("gateway cannot reach customer vLLM" in m and "TCP 5000" in m for m in messages)
    assert any("gateway cannot reach batch vLLM" in m for m in messages)


def test_prometheus_elsewhere_than_the_values_say_cannot_scrape(render: Render) -> None:
    """The Prometheus namespace is an argument (values monitoring.prometheus.namespace): the render
    admits the configured one, and one in another namespace is blocked from every target."""
    docs = documents(render, "hybrid", {"monitoring": {"serviceMonitor": True, "prometheus": {"namespace": "observability"}}})
    assert check(docs, prometheus_namespace="observability").findings == []
    report = check(docs)  # the default, monitoring
    assert rules_of(report) == ["reachability-required"] * 3, report.summary()
    assert {f.name for f in report.findings} == {f"{RELEASE}-gateway", f"{RELEASE}-customer-vllm", f"{RELEASE}-batch-vllm"}


def test_prometheus_pod_labels_admit_only_prometheus(render: Render) -> None:
    labels = {"app.kubernetes.io/name": "prometheus"}
    docs = documents(render, "hybrid", {"monitoring": {"serviceMonitor": True, "prometheus": {"podLabels": labels}}})
    report = check(docs, prometheus_labels=labels)
    assert report.findings == [], report.summary()
    # Grafana and the rest of the namespace stay out once the Prometheus pods are named.
    assert report.outcome("other pod(monitoring)", "customer vLLM", 5000).state == "blocked"
    wrong = check(docs, prometheus_labels={"app.kubernetes.io/name": "grafana"})
    assert rules_of(wrong) == ["reachability-required"] * 3


# ---------------------------------------------------------------- reachability-forbidden


def test_allow_all_ingress_on_vllm_lets_every_namespace_in(render: Render) -> None:
    docs = documents(render, "hybrid")
    policy(docs, f"{RELEASE}-customer-vllm")["spec"]["ingress"].append({})
    report = check(docs)
    assert set(rules_of(report)) == {"reachability-forbidden"}, report.summary()
    by_source = {f.message.split(" can reach ")[0]: f for f in report.findings}
    assert set(by_source) == {"pod(other-team)", "other pod(llm)"}
    finding = by_source["pod(other-team)"]
    assert (finding.name, finding.path) == (f"{RELEASE}-customer-vllm", "spec.ingress")
    assert "customer vLLM" in finding.message and "TCP 5000" in finding.message
    assert f"NetworkPolicy llm/{RELEASE}-customer-vllm admits it" in finding.message
    verdict = report.outcome("pod(other-team)", "customer vLLM", 5000).verdict
    assert verdict is not None and verdict.allowed
    assert verdict.ingress_admitting == (f"llm/{RELEASE}-customer-vllm",)


def test_any_namespace_selector_on_the_gateway_lets_other_namespaces_in(render: Render) -> None:
    docs = documents(render, "aoai-only")
    policy(docs, f"{RELEASE}-gateway")["spec"]["ingress"][0]["from"].append({"namespaceSelector": {}})
    report = check(docs)
    assert rules_of(report) == ["reachability-forbidden"], report.summary()
    assert report.findings[0].message.startswith("pod(other-team) can reach gateway")


def test_vllm_without_a_policy_is_open_and_the_finding_names_the_inferenceset(render: Render) -> None:
    docs = [d for d in documents(render, "hybrid")
            if not (d.kind == "NetworkPolicy" and d.name == f"{RELEASE}-customer-vllm")]
    report = check(docs)
    assert set(rules_of(report)) == {"reachability-forbidden"}, report.summary()
    finding = next(f for f in report.findings if f.message.startswith("pod(other-team)"))
    # In nap mode the InferenceSet travels in the serving ConfigMap; the finding points there.
    assert (finding.kind, finding.name) == ("InferenceSet", f"{RELEASE}-customer")
    assert "data.customer.inferenceset.yaml" in finding.file
    assert "no NetworkPolicy selects customer vLLM for ingress" in finding.message


def test_vllm_open_to_the_release_namespace_lets_neighbours_bypass_the_gateway(render: Render) -> None:
    docs = documents(render, "on-demand-kaito")
    policy(docs, f"{RELEASE}-batch-vllm")["spec"]["ingress"][0]["from"].append({"podSelector": {}})
    report = check(docs)
    assert rules_of(report) == ["reachability-forbidden"], report.summary()
    assert report.findings[0].message.startswith("other pod(llm) can reach batch vLLM")
    assert "only the gateway may call vLLM" in report.findings[0].message


# ---------------------------------------------------------------- namespaces the values admit


def test_namespaces_listed_in_values_are_admitted_where_listed_only(render: Render) -> None:
    docs = documents(render, "hybrid", {
        "gateway": {"networkPolicy": {"ingressNamespaces": ["team-a", "other-team"]}},
        "serving": {"networkPolicy": {"ingressNamespaces": ["team-b"]}},
    })
    report = check(docs)
    assert report.findings == [], report.summary()
    gateway_policy, vllm_policy = f"llm/{RELEASE}-gateway", f"llm/{RELEASE}-customer-vllm"
    team_a = report.outcome("pod(team-a)", "gateway", 8080)
    assert (team_a.state, team_a.named_by) == ("allowed", (gateway_policy,))
    assert report.outcome("pod(team-a)", "customer vLLM", 5000).state == "blocked"
    team_b = report.outcome("pod(team-b)", "customer vLLM", 5000)
    assert (team_b.state, team_b.named_by) == ("allowed", (vllm_policy,))
    assert report.outcome("pod(team-b)", "gateway", 8080).state == "blocked"
    # other-team is now a listed namespace, so the stranger moves to a namespace nothing names.
    assert report.outcome("pod(other-team)", "gateway", 8080).state == "allowed"
    assert report.outcome("pod(other-team-2)", "gateway", 8080).state == "blocked"


def test_a_namespace_listed_for_the_gateway_only_may_not_reach_vllm(render: Render) -> None:
    docs = documents(render, "hybrid", {"gateway": {"networkPolicy": {"ingressNamespaces": ["team-a"]}}})
    rule = policy(docs, f"{RELEASE}-customer-vllm")["spec"]["ingress"][0]
    rule["from"].append({"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "Exists"}]}})
    report = check(docs)
    sources = sorted(f.message.split(" can reach ")[0] for f in report.findings)
    assert sources == ["other pod(llm)", "pod(other-team)", "pod(team-a)"], report.summary()
    # The analyser's warnings reach the summary.
    assert any("namespaceSelector" in note for note in report.notes)
    assert "analyser note:" in report.summary()


# ---------------------------------------------------------------- input the analyser cannot read


def test_a_policy_the_analyser_rejects_is_named_and_nothing_else_is_claimed(render: Render) -> None:
    docs = documents(render, "hybrid")
    policy(docs, f"{RELEASE}-batch-vllm")["spec"]["ingress"][0]["ports"][0]["protocol"] = "QUIC"
    report = check(docs)
    assert rules_of(report) == ["reachability-unanalysable"]
    [finding] = report.findings
    assert finding.name == f"{RELEASE}-batch-vllm"
    assert "protocol" in finding.message and "network-config-analyzer" in finding.message
    assert {o.state for o in report.outcomes} == {"not analysed"}


@pytest.mark.parametrize("spec", [
    "not a mapping",
    {"podSelector": None},
    {"podSelector": {}, "ingress": [1]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]},
    {"podSelector": {"matchLabels": {"app": None}}},
    {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "nonsense"}}]}]},
    {"podSelector": {}, "policyTypes": ["Sideways"]},
])
def test_malformed_policies_are_findings_not_exceptions(render: Render, spec: Any) -> None:
    docs = documents(render, "on-demand-kaito")
    docs.append(Document(Source("bad.yaml", 1), {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                                  "metadata": {"name": "bad", "namespace": "llm"}, "spec": spec}))
    report = check(docs)
    assert [(f.rule, f.name, f.file) for f in report.findings] == [("reachability-unanalysable", "bad", "bad.yaml")]
    assert "cannot read NetworkPolicy llm/bad" in report.findings[0].message


def test_what_the_analyser_prints_becomes_a_note(render: Render, capsys: pytest.CaptureFixture[str]) -> None:
    docs = documents(render, "aoai-only")
    policy(docs, f"{RELEASE}-gateway")["spec"]["ingress"][0]["ports"][0]["port"] = "metrics"
    report = check(docs)
    assert any("Named ports {'metrics'} are not defined in any pod" in note for note in report.notes)
    assert capsys.readouterr() == ("", "")
    # The gateway's only ingress rule now names a port no pod has: Prometheus is blocked.
    assert report.outcome("prometheus(monitoring)", "gateway", 8080).state == "blocked"


# ---------------------------------------------------------------- population details


def test_inferencesets_carried_in_a_configmap_are_read_from_it(render: Render) -> None:
    """A hand-built list without the expanded embedded documents still gets KAITO's pods."""
    docs = [d for d in documents(render, "spot-batch-aks") if not d.embedded_in]
    assert not [d for d in docs if d.kind == "InferenceSet"]
    report = check(docs)
    assert report.findings == [], report.summary()
    assert report.outcome("gateway", "customer vLLM", 5000).state == "allowed"
    assert report.outcome("pod(other-team)", "batch vLLM", 5000).state == "blocked"


def test_gateway_without_azure_openai_needs_no_https(render: Render) -> None:
    report = check(documents(render, "on-demand-kaito", {"azureOpenAI": {"enabled": False}}))
    assert report.findings == [], report.summary()
    with pytest.raises(KeyError):
        report.outcome("gateway", "internet 20.0.0.1", 443)


def test_same_release_twice_is_answered_from_the_cache(render: Render) -> None:
    docs = documents(render, "hybrid", {"monitoring": {"serviceMonitor": True, "interval": "15s"}})
    first, second = check(docs), check(docs)
    assert [o.verdict for o in first.outcomes] == [o.verdict for o in second.outcomes]
    assert second.cached


def test_rules_are_registered_with_the_validator() -> None:
    assert set(RULES) == {"reachability-required", "reachability-forbidden", "reachability-unanalysable"}
    for rule in RULES.values():
        assert rule.reason and rule.fix
        assert ENGINE_RULES[rule.id] is rule


def test_validate_reports_reachability_per_profile() -> None:
    """scripts/validate.py judges every profile with monitoring on and prints what it judged."""
    import json

    from hybridllm.validation.run import ValidationRequest, run

    text, clean = run(ValidationRequest(profiles=["hybrid"], output_format="json", lint=False))
    report = json.loads(text)
    assert clean
    (unit,) = report["reachability"]
    assert unit["unit"] == "values/hybrid.yaml (monitoring on)"
    assert any("prometheus(monitoring) -> customer vLLM :5000" in line and "allowed" in line for line in unit["lines"])
    assert any("pod(other-team) -> customer vLLM :5000" in line and "blocked" in line for line in unit["lines"])


# ---------------------------------------------------------------- the analyser's own CLI agrees


def _cli_connections(output: str) -> list[tuple[str, str, str]]:
    """(source, destination, connections) from `nca --connectivity -o txt_no_fw_rules`."""
    lines = []
    for line in output.splitlines():
        match = re.fullmatch(r"(\S+) => (\S+) : (.+)", line.strip())
        if match:
            lines.append((match.group(1), match.group(2), match.group(3)))
    return lines


def _covers(endpoint: str, peer_key: str) -> bool:
    if endpoint == peer_key:
        return True
    try:
        address = ipaddress.ip_address(peer_key)
    except ValueError:
        return False
    for part in endpoint.split(","):
        if "/" in part:
            if address in ipaddress.ip_network(part, strict=False):
                return True
        elif "-" in part and all(p.count(".") == 3 for p in part.split("-")):
            low, high = (ipaddress.ip_address(p) for p in part.split("-"))
            if low <= address <= high:
                return True
    return False


def _cli_allows(connections: str, protocol: str, port: int) -> bool:
    if connections == "All connections":
        return True
    match = re.fullmatch(r"\{(?:protocols:(?P<protocols>[A-Z, ]+?))?,?(?:dst_ports:(?P<ports>[0-9,\-]+))?\}", connections)
    assert match, f"unexpected connections text from the nca CLI: {connections!r}"
    protocols = {p.strip() for p in (match.group("protocols") or "TCP,UDP,SCTP").split(",")}
    ports = match.group("ports")
    in_ports = ports is None or any(
        (int(r.split("-")[0]) <= port <= int(r.split("-")[-1])) for r in ports.split(","))
    return protocol in protocols and in_ports


@pytest.mark.parametrize("profile", ["hybrid", "aoai-only"])
@pytest.mark.parametrize("breakage", ["none", "allow-all-vllm", "no-egress"])
def test_in_process_verdicts_match_the_nca_command_line(render: Render, tmp_path: Path, profile: str,
                                                        breakage: str) -> None:
    """The same pods and policies through the analyser's own CLI (`nca --connectivity`) give the
    same verdict for every connection judged."""
    docs = documents(render, profile)
    breaks: dict[str, Callable[[], object]] = {
        "none": lambda: None,
        "allow-all-vllm": lambda: [d.obj["spec"]["ingress"].append({}) for d in docs
                                   if d.kind == "NetworkPolicy" and d.name.endswith("-vllm")],
        "no-egress": lambda: policy(docs, f"{RELEASE}-gateway")["spec"].__setitem__("egress", []),
    }
    breaks[breakage]()
    report = check(docs)
    assert report.population is not None
    pods_file, policies_file = tmp_path / "pods.yaml", tmp_path / "policies.yaml"
    pods_file.write_text(yaml.safe_dump_all([p.manifest() for p in report.population.pods()]))
    policies_file.write_text(yaml.safe_dump_all(report.policies_given))
    nca = Path(sys.executable).parent / "nca"
    done = subprocess.run([str(nca), "--connectivity", str(policies_file), "--pod_list", str(pods_file),
                           "--ns_list", str(pods_file), "-o", "txt_no_fw_rules", "--output_endpoints", "pods"],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    cli = _cli_connections(done.stdout)
    assert cli, done.stdout
    for outcome in report.outcomes:
        e = outcome.expectation
        by_cli = any(_covers(src, e.source.key) and _covers(dst, e.destination.key)
                     and _cli_allows(conns, e.protocol, e.port) for src, dst, conns in cli)
        assert outcome.verdict is not None
        assert outcome.verdict.allowed == by_cli, f"{e.connection}: in-process {outcome.state}, CLI {by_cli}"
    assert any(not o.verdict.allowed for o in report.outcomes if o.verdict)  # both verdicts were compared
