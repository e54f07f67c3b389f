"""scripts/validate.py: every bad fixture gives its own finding, the profiles are clean for
every listed Kubernetes version, waivers work, output is stable, and nothing crashes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridllm.crds import CrdCatalog
from hybridllm.layout import REPO_ROOT, SHARED_CRDS_DIR
from hybridllm.validation.engine import RULES, validate
from hybridllm.validation.findings import Document, Source
from hybridllm.validation.kubernetes_schemas import KubernetesSchemas, default_versions
from hybridllm.validation.loader import parse_text
from hybridllm.validation.run import ValidationRequest, run

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = {
    "misspelled-field.yaml": "kubernetes-schema",
    "wrong-type.yaml": "kubernetes-schema",
    "crd-misspelled-field.yaml": "crd-schema",
    "customer-on-spot.yaml": "customer-on-spot",
    "missing-probe.yaml": "probes",
    "latest-tag.yaml": "image-pinned",
    "unknown-kind.yaml": "unknown-kind",
    "yaml-syntax.yaml": "yaml-syntax",
    "duplicate-object.yaml": "duplicate-object",
    "empty.yaml": "empty-file",
    "service-selects-nothing.yaml": "service-selects-nothing",
    "nodepool-unselected.yaml": "nodepool-unselected",
    "removed-api.yaml": "api-not-served",
    "secret-in-configmap.yaml": "secret-in-config",
    # The convergence family (issue 9): each a byo path that validates object by object but would
    # never come up, built on one coherent base that would.
    "byo-same-apply.yaml": "converge-byo-apply-order",
    "byo-nothing-brings-nodes.yaml": "converge-byo-node-source",
    "gfd-not-tolerating-taints.yaml": "converge-gfd-tolerations",
    "pod-missing-toleration.yaml": "converge-pod-tolerations",
    "byo-scale-from-zero.yaml": "converge-byo-scale-from-zero",
    "vllm-boolean-flag.yaml": "converge-vllm-boolean",
    "weights-disk-too-small.yaml": "converge-weights-disk",
    "kaito-name-too-long.yaml": "converge-kaito-name-length",
}


@pytest.fixture(scope="module")
def schemas() -> KubernetesSchemas:
    return KubernetesSchemas(default_versions())


def report_for(path: Path, **options) -> dict:
    text, _ = run(ValidationRequest(paths=[path], output_format="json", **options))
    return json.loads(text)


def validate_docs(docs: list[dict], schemas: KubernetesSchemas, crd_catalog: CrdCatalog):
    return validate([Document(Source("inline.yaml", i + 1), d) for i, d in enumerate(docs)], schemas, crd_catalog)


def test_every_bad_fixture_is_covered() -> None:
    assert {p.name for p in (FIXTURES / "bad").glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name,rule", sorted(EXPECTED.items()))
def test_bad_fixture_gives_its_own_finding(name: str, rule: str) -> None:
    report = report_for(FIXTURES / "bad" / name)
    active = [f for f in report["findings"] if not f["waived"]]
    assert {f["rule"] for f in active} == {rule}
    for finding in active:
        assert name in finding["file"] and finding["message"] and finding["fix"]
    # The only waiver the fixtures carry: the node anchor's pause container has nothing to probe.
    assert {(f["rule"], f["object"]["kind"]) for f in report["findings"] if f["waived"]} <= {("probes", "Deployment")}


def test_every_convergence_rule_has_a_fixture_and_cites_upstream() -> None:
    from hybridllm.validation import convergence

    assert set(convergence.RULES) <= set(EXPECTED.values())
    for rule in convergence.RULES.values():
        # the reason names the upstream code the rule encodes (a file, or an upstream issue)
        assert any(marker in rule.reason for marker in (".go", ".py", ".yaml", "#")), rule.id


def test_the_good_fixture_is_clean() -> None:
    assert report_for(FIXTURES / "good")["findings"] == []


def test_findings_name_file_line_path_and_fix() -> None:
    (syntax,) = report_for(FIXTURES / "bad" / "yaml-syntax.yaml")["findings"]
    assert syntax["line"] == 9  # the unclosed `[a, b` is reported where the parser gives up
    findings = report_for(FIXTURES / "bad" / "misspelled-field.yaml")["findings"]
    (typo,) = findings
    assert typo["object"] == {"kind": "Deployment", "name": "web", "namespace": "llm"}
    assert typo["path"] == "spec" and "'replica' was unexpected" in typo["message"]
    assert typo["line"] == 2 and typo["kubernetesVersion"] == ",".join(default_versions())


def test_every_profile_is_clean_for_every_kubernetes_version() -> None:
    text, clean = run(ValidationRequest(all_profiles=True, output_format="json"))
    report = json.loads(text)
    assert clean and report["summary"]["findings"] == 0
    assert report["summary"]["documents"] > 50
    assert_only_test_pod_waivers(report)


def test_profile_variants_are_clean(tmp_path: Path) -> None:
    """The Key Vault sync, api-key auth and ServiceMonitors pass the same rules."""
    values = tmp_path / "variant.yaml"
    values.write_text(yaml.safe_dump({
        "modelAccess": {"source": "keyVault", "keyVault": {
            "vaultName": "llm-secrets", "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "clientId": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}},
        "azureOpenAI": {"auth": {"mode": "apiKey"}},
        "monitoring": {"serviceMonitor": True},
        "gateway": {"batchFallbacks": ["customer", "azureOpenAI"]},
    }), encoding="utf-8")
    text, clean = run(ValidationRequest(profiles=[str(values)], output_format="json"))
    assert clean
    assert_only_test_pod_waivers(json.loads(text))


# The waivers the chart writes, each with its reason in the template: run-to-completion pods (the
# `helm test` pod, the apply-serving Job) and the pause-container node anchors have nothing to
# probe, and the Job reads nodes and applies InferenceSets through the API.
CHART_WAIVERS = {
    ("probes", "Pod", "hybrid-llm-gateway-test"),
    ("probes", "Job", "hybrid-llm-serving-applier"),
    ("service-account-token", "Job", "hybrid-llm-serving-applier"),
    ("probes", "Deployment", "hybrid-llm-customer-node-anchor"),
    ("probes", "Deployment", "hybrid-llm-batch-node-anchor"),
}


def assert_only_test_pod_waivers(report: dict) -> None:
    """Only the chart's own, reasoned waivers; nothing else found."""
    for finding in report["findings"]:
        assert finding["waived"], finding
        assert (finding["rule"], finding["object"]["kind"], finding["object"]["name"]) in CHART_WAIVERS, finding


def test_text_output_groups_by_object() -> None:
    text, clean = run(ValidationRequest(paths=[FIXTURES / "bad" / "missing-probe.yaml"]))
    assert not clean
    lines = text.splitlines()
    assert lines[0].endswith("missing-probe.yaml:2  Deployment/web")
    assert lines[1].startswith("  probes at spec.template.spec.containers[0]: container 'web' has no livenessProbe")
    assert lines[2].startswith("    fix: ")
    assert lines[-1].endswith("1 findings")


def test_waiver_annotation_with_reason(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((FIXTURES / "bad" / "missing-probe.yaml").read_text()))
    docs[0]["metadata"]["annotations"] = {"waive.hybrid-llm.io/probes": "batch worker; restarts are handled by the queue"}
    path = tmp_path / "waived.yaml"
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    report = report_for(path)
    assert report["summary"]["findings"] == 0 and report["summary"]["waived"] == 1
    assert report["findings"][0]["waiverReason"] == "batch worker; restarts are handled by the queue"
    docs[0]["metadata"]["annotations"] = {"waive.hybrid-llm.io/probes": " "}
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    assert {f["rule"] for f in report_for(path)["findings"]} == {"probes", "waiver-without-reason"}


def test_pods_must_tolerate_the_taints_of_the_pools_they_need(schemas: KubernetesSchemas, crd_catalog: CrdCatalog) -> None:
    docs = list(yaml.safe_load_all((FIXTURES / "good" / "web.yaml").read_text()))
    pool = next(d for d in yaml.safe_load_all((FIXTURES / "bad" / "nodepool-unselected.yaml").read_text())
                if d["kind"] == "NodePool" and d["metadata"]["name"] == "batch")
    pod = docs[0]["spec"]["template"]["spec"]
    pod["nodeSelector"] = {"hybrid-llm.io/path": "batch"}
    findings = [f for f in validate_docs(docs + [pool], schemas, None).active if f.rule == "converge-pod-tolerations"]
    assert len(findings) == 1 and "sku=gpu:NoSchedule" in findings[0].message
    assert "kubernetes.azure.com/scalesetpriority=spot:NoSchedule" in findings[0].message
    pod["tolerations"] = [{"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot",
                           "effect": "NoSchedule"}, {"key": "sku", "operator": "Exists"}]
    assert "converge-pod-tolerations" not in {f.rule for f in validate_docs(docs + [pool], schemas, None).active}


def test_references_resolve_or_are_declared_external(schemas: KubernetesSchemas, crd_catalog: CrdCatalog) -> None:
    docs = list(yaml.safe_load_all((FIXTURES / "good" / "web.yaml").read_text()))
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"] = [{"secretRef": {"name": "web-credentials"}}]
    findings = validate_docs(docs, schemas, crd_catalog).active
    assert [(f.rule, f.message) for f in findings] == [("missing-reference", "Secret 'web-credentials' is not in the render")]
    docs[0]["metadata"]["annotations"] = {"hybrid-llm.io/external-refs": "Secret/web-credentials"}
    assert validate_docs(docs, schemas, crd_catalog).active == []


def test_gateway_backend_must_name_a_rendered_service(schemas: KubernetesSchemas, crd_catalog: CrdCatalog) -> None:
    from hybridllm.profiles import load_profile
    from hybridllm.rendering import render_profile

    documents = [Document(Source("render.yaml", i + 1), copy.deepcopy(o.obj), o.embedded_in)
                 for i, o in enumerate(render_profile(load_profile("hybrid")).objects)
                 if o.kind != "Service" or o.name != "hybrid-llm-batch-vllm"]
    rules = {f.rule for f in validate(documents, schemas, crd_catalog).active}
    assert rules == {"gateway-backend-missing"}


def test_cached_validators_agree_with_kubernetes_validate(schemas: KubernetesSchemas) -> None:
    documents = []
    for path in sorted((FIXTURES).rglob("*.yaml")):
        parsed, _ = parse_text(path.read_text(encoding="utf-8"), str(path))
        documents += [d.obj for d in parsed if isinstance(d.obj, dict) and schemas.is_builtin(str(d.obj.get("kind")))]
    assert len(documents) > 15
    for version in default_versions():
        for document in documents:
            ours = schemas.problems(version, document)
            try:
                kubernetes_validate.validate(document, version, strict=True)
                theirs = True
            except kubernetes_validate.ValidationError:
                theirs = False
            except kubernetes_validate.SchemaNotFoundError:
                theirs = None
            assert (None if ours is None else not ours) == theirs, (version, document["kind"])


def test_every_rule_is_documented_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    undocumented = [rule for rule in RULES if f"`{rule}`" not in readme]
    assert undocumented == []


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "validate.py"), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, check=False)


def test_exit_codes() -> None:
    assert run_cli(str(FIXTURES / "good")).returncode == 0
    assert run_cli(str(FIXTURES / "bad" / "latest-tag.yaml")).returncode == 1
    missing = run_cli("no/such/file.yaml")
    assert missing.returncode == 2 and "no/such/file.yaml: no such file or directory" in missing.stderr
    assert run_cli().returncode == 2
    bad_crds = run_cli("--crds", "/nonexistent", str(FIXTURES / "good"))
    assert bad_crds.returncode == 2 and "CRD directory not found" in bad_crds.stderr
    assert "Traceback" not in missing.stderr + bad_crds.stderr


def test_a_profile_that_does_not_render_is_a_finding(tmp_path: Path) -> None:
    values = tmp_path / "risky.yaml"
    values.write_text("paths:\n  customer:\n    capacityType: spot\n", encoding="utf-8")
    done = run_cli("--profile", str(values), "--format", "json")
    assert done.returncode == 1
    (finding,) = json.loads(done.stdout)["findings"]
    assert finding["rule"] == "helm-render" and "acknowledgeSpotEviction" in finding["message"]


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
_kinds = st.sampled_from(["Deployment", "Service", "ConfigMap", "NetworkPolicy", "InferenceSet", "NodePool", "Pod",
                          "CronJob", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Nonsense"])
_api = st.sampled_from(["v1", "apps/v1", "kaito.sh/v1beta1", "karpenter.sh/v1", "batch/v1", "policy/v1", "x/y", ""])
_trees = st.recursive(_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=5)), max_leaves=25)
_objects = st.fixed_dictionaries({"apiVersion": _api, "kind": _kinds, "metadata": st.one_of(
    _trees, st.fixed_dictionaries({"name": st.text(max_size=10), "labels": _trees, "annotations": _trees}))},
    optional={"spec": _trees, "data": _trees})


_FUZZ_SCHEMAS = KubernetesSchemas(default_versions()[:1])
_FUZZ_CRDS = CrdCatalog(SHARED_CRDS_DIR) if SHARED_CRDS_DIR.is_dir() else None


@settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_objects, _trees), max_size=6))
def test_random_documents_never_crash_the_validator(docs: list) -> None:
    report = validate([Document(Source("fuzz.yaml", i + 1), d) for i, d in enumerate(docs)], _FUZZ_SCHEMAS, _FUZZ_CRDS)
    assert all(f.rule in RULES for f in report.findings)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_crashes_the_loader(text: str) -> None:
    documents, findings = parse_text(text, "fuzz.yaml")
    assert all(f.rule in ("yaml-syntax", "empty-file") for f in findings)


def test_boolean_words_under_vllm_are_booleans_too(schemas: KubernetesSchemas) -> None:
    """KAITO's str() passes "true" on exactly like True: a stray word after a valueless flag."""
    docs = [d for d in yaml.safe_load_all((FIXTURES / "bad" / "vllm-boolean-flag.yaml").read_text()) if d]
    config = next(d for d in docs if d["metadata"]["name"] == "cust-config")
    config["data"]["inference_config.yaml"] = config["data"]["inference_config.yaml"].replace(
        "enable-prefix-caching: true", "enforce-eager: \"True\"")
    findings = [f for f in validate_docs(docs, schemas, None).active if f.rule == "converge-vllm-boolean"]
    assert [f.message for f in findings] == ["vllm.enforce-eager is 'True', a boolean written as a string: "
                                             "KAITO would pass `--enforce-eager True`"]


def test_name_limit_follows_the_declared_kaito_provisioner(schemas: KubernetesSchemas) -> None:
    """With KAITO's own Karpenter provisioner the namespace eats into the name (its nodes' VM names),
    as the chart's guardrail says; names must start with a letter (a Service is named after them)."""
    from hybridllm.profiles import load_profile
    from hybridllm.rendering import render_profile

    def findings(overrides: dict) -> list[str]:
        objects = render_profile(load_profile("on-demand-kaito"), overrides).objects
        documents = [Document(Source("render.yaml", i + 1), copy.deepcopy(o.obj), o.embedded_in) for i, o in enumerate(objects)]
        for document in documents:  # longer than the chart allows in namespace llm (43), within 46
            if document.kind == "InferenceSet":
                document.obj["metadata"]["name"] = "a" * 44
        return [f.message for f in validate(documents, schemas, None).active if f.rule == "converge-kaito-name-length"]

    assert findings({}) == [f"InferenceSet name '{'a' * 44}' has 44 characters; at most 43 fit KAITO's derived names "
                            "and, in namespace llm, its Karpenter nodes' VM names"]  # the two are now one object
    assert findings({"kaito": {"nodeProvisioner": "azure-gpu-provisioner"}}) == []
