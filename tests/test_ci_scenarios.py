"""The chart's ci/ scenarios (one values file per realistic variant, as ingress-nginx and
kube-prometheus-stack keep them): each renders with the real Helm engine, validates with no finding,
exercises what it is named for, and, with every profile, passes checkov's Kubernetes checks with
each skip annotated in the chart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import PROFILES, Render
from hybridllm import checkov_scan
from hybridllm.layout import CHART_DIR, REPO_ROOT
from hybridllm.validation.run import ValidationRequest, run
from test_validate import CHART_WAIVERS

CI_DIR = CHART_DIR / "ci"
SCENARIOS = sorted(str(p.relative_to(REPO_ROOT)) for p in CI_DIR.glob("*.yaml"))


def scenario(name: str) -> str:
    return str((CI_DIR / f"{name}-values.yaml").relative_to(REPO_ROOT))


def test_the_scenarios_the_chart_promises_exist() -> None:
    names = {Path(s).name.removesuffix("-values.yaml") for s in SCENARIOS}
    assert {"keyvault", "apikey", "monitoring-and-alerts", "keda", "adapters", "splits",
            "keep-on-uninstall-false", "gateway-scheduling"} <= names
    for path in CI_DIR.glob("*.yaml"):
        assert path.name.endswith("-values.yaml"), path.name
        assert path.read_text(encoding="utf-8").startswith("# "), f"{path.name} starts with a comment saying what it is"


@pytest.mark.parametrize("values_file", SCENARIOS)
def test_scenario_renders_and_validates_with_no_finding(values_file: str) -> None:
    """scripts/validate.py's whole rule set (Kubernetes and CRD schemas, policy, placement,
    references, convergence, reachability) and helm lint, on the scenario as one release."""
    text, clean = run(ValidationRequest(profiles=[values_file], output_format="json"))
    report = json.loads(text)
    assert clean and report["summary"]["findings"] == 0, [f for f in report["findings"] if not f["waived"]]
    assert report["summary"]["documents"] > 5
    # Only the chart's own reasoned waivers, the prune and teardown Jobs (serving.keepOnUninstall=false)
    # sharing the apply-serving Job's.
    waivers = CHART_WAIVERS | {(rule, "Job", f"hybrid-llm-serving-{job}") for rule in ("probes", "service-account-token")
                               for job in ("prune", "teardown")}
    for finding in report["findings"]:
        assert finding["waived"] and (finding["rule"], finding["object"]["kind"], finding["object"]["name"]) in waivers, finding


def test_each_scenario_exercises_what_it_is_named_for(render: Render) -> None:
    keyvault = render(scenario("keyvault"))
    assert keyvault.of_kind("SecretProviderClass") and keyvault.find("Deployment", "hybrid-llm-hf-token-sync")

    apikey = render(scenario("apikey")).find("Deployment", "hybrid-llm-gateway")["spec"]["template"]["spec"]
    assert any(v["name"] == "azure-openai-key" for v in apikey["volumes"])

    monitoring = render(scenario("monitoring-and-alerts"))
    assert len(monitoring.of_kind("ServiceMonitor")) == 3 and monitoring.of_kind("PrometheusRule")
    assert any("grafana_dashboard" in (c["metadata"].get("labels") or {}) for c in monitoring.of_kind("ConfigMap"))

    keda = render(scenario("keda")).find("ScaledObject", "hybrid-llm-batch")
    assert (keda["spec"]["minReplicaCount"], keda["spec"]["maxReplicaCount"]) == (1, 3)

    adapters = render(scenario("adapters")).find("InferenceSet", "hybrid-llm-customer")
    assert [a["source"]["name"] for a in adapters["spec"]["template"]["inference"]["adapters"]] == ["support-tone", "sql-writer"]

    splits = yaml.safe_load(render(scenario("splits")).find("ConfigMap", "hybrid-llm-gateway")["data"]["gateway.yaml"])
    assert "split" in splits["routes"]["customer"] and "split" in splits["routes"]["batch"]

    disposable = render(scenario("keep-on-uninstall-false"))
    assert {"hybrid-llm-serving-prune", "hybrid-llm-serving-teardown"} <= {j["metadata"]["name"] for j in disposable.of_kind("Job")}

    scheduled = render(scenario("gateway-scheduling"))
    pod = scheduled.find("Deployment", "hybrid-llm-gateway")["spec"]["template"]["spec"]
    assert "@sha256:" in pod["containers"][0]["image"] and pod["imagePullSecrets"] == [
        {"name": "registry-mirror"}, {"name": "contosoacr-pull"}]
    assert pod["nodeSelector"] and pod["tolerations"] and pod["affinity"] and pod["securityContext"]["runAsUser"] == 10001


SKIP_VALUE = re.compile(r"^CKV_K8S_\d+=[^=]{20,}$")


@pytest.mark.parametrize("values_file", PROFILES + SCENARIOS)
def test_checkov_skips_are_well_formed(render: Render, values_file: str) -> None:
    """checkov splits a skip on "=" into check id and reason: exactly one "=", a known id, a reason."""
    for rendered in render(values_file).objects:
        annotations = rendered.obj.get("metadata", {}).get("annotations") or {}
        skips = {k: v for k, v in annotations.items() if k.startswith("checkov.io/skip")}
        assert sorted(skips) == [f"checkov.io/skip{n}" for n in range(1, len(skips) + 1)], rendered.name
        for value in skips.values():
            assert SKIP_VALUE.match(value), f"{rendered.kind}/{rendered.name}: {value!r}"


def test_checkov_passes_every_profile_and_scenario(tmp_path: Path) -> None:
    """The real checkov, pinned, from its own virtualenv (created on the first run): no failed check
    on any render, and nothing skipped but the chart's annotated skips."""
    binary = checkov_scan.ensure_checkov()
    files = checkov_scan.render_inputs(tmp_path)
    assert len(files) == len(PROFILES) + len(SCENARIOS)
    result = checkov_scan.scan(binary, files)
    assert result.clean, checkov_scan.summary(result, files)
    assert result.passed > 1000
    assert set(result.skipped_by_check()) <= {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_15", "CKV_K8S_38", "CKV_K8S_43"}
    assert all(check.reason for check in result.skipped)


def test_checkov_fails_a_real_finding(tmp_path: Path) -> None:
    """The scan is not vacuous: an own gateway build without a digest, pulled IfNotPresent, fails
    CKV_K8S_43 and CKV_K8S_15 on the gateway Deployment and the apply-serving Job."""
    values = tmp_path / "own-build.yaml"
    values.write_text(yaml.safe_dump({"gateway": {"image": {"repository": "contoso.azurecr.io/gateway",
                                                            "pullPolicy": "IfNotPresent"}}}), encoding="utf-8")
    result = checkov_scan.scan(checkov_scan.ensure_checkov(), checkov_scan.render_inputs(tmp_path / "out", [str(values)]))
    failed = {(c.check_id, c.resource.split(".")[0]) for c in result.failed}
    assert failed == {("CKV_K8S_43", "Deployment"), ("CKV_K8S_15", "Deployment"), ("CKV_K8S_43", "Job"), ("CKV_K8S_15", "Job")}
