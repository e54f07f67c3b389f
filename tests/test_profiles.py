"""Every profile in values/ renders, lints clean, validates against the real CRDs, and its
generated files are up to date."""

from __future__ import annotations

import pytest

from conftest import PROFILES, Render
from hybridllm import figures, kaito_export
from hybridllm.crds import CrdCatalog
from hybridllm.layout import CHART_FIGURES_FILE, KAITO_EXPORT_DIR
from hybridllm.profiles import load_profile
from hybridllm.rendering import lint_profile

EXPECTED_PROFILES = {"hybrid", "on-demand", "spot-batch-aks", "aoai-only", "on-demand-kaito"}
CUSTOM_API_GROUPS = ("kaito.sh/", "karpenter.sh/", "karpenter.azure.com/", "secrets-store.csi.x-k8s.io/")


def test_the_documented_profiles_exist() -> None:
    assert EXPECTED_PROFILES <= set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_renders(render: Render, profile: str) -> None:
    rendering = render(profile)
    assert rendering.objects, f"{profile} rendered nothing"
    for rendered in rendering.objects:
        assert rendered.obj.get("apiVersion") and rendered.kind and rendered.name, rendered.template


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_lints_clean(profile: str) -> None:
    problems = [m for m in lint_profile(load_profile(profile)) if m.severity in ("warning", "error")]
    assert problems == []


@pytest.mark.parametrize("profile", PROFILES)
def test_custom_resources_match_the_real_crds(render: Render, crd_catalog: CrdCatalog, profile: str) -> None:
    checked = 0
    for rendered in render(profile).objects:
        api_version = rendered.obj["apiVersion"]
        if not api_version.startswith(CUSTOM_API_GROUPS):
            continue
        assert crd_catalog.knows(api_version, rendered.kind), f"no CRD for {api_version} {rendered.kind}"
        assert crd_catalog.problems(rendered.obj) == [], f"{rendered.kind}/{rendered.name}"
        checked += 1
    if profile != "aoai-only":
        assert checked >= 2


def test_crd_validation_catches_a_misspelled_field(render: Render, crd_catalog: CrdCatalog) -> None:
    import copy

    iset = copy.deepcopy(render("hybrid").find("InferenceSet", "hybrid-llm-customer"))
    iset["spec"]["replica"] = iset["spec"].pop("replicas")
    iset["spec"]["template"]["inference"]["preset"]["name"] = 7
    problems = crd_catalog.problems(iset)
    assert {p.path for p in problems} == {"spec", "spec.template.inference.preset.name"}
    assert any("'replica'" in p.message for p in problems)


def test_crd_validation_catches_a_bad_nodepool(render: Render, crd_catalog: CrdCatalog) -> None:
    import copy

    pool = copy.deepcopy(render("hybrid").find("NodePool", "hybrid-llm-customer"))
    pool["spec"]["disruption"]["consolidationPolicy"] = "WhenIdle"
    problems = crd_catalog.problems(pool)
    assert [p.path for p in problems] == ["spec.disruption.consolidationPolicy"]


@pytest.mark.parametrize("profile", sorted(EXPECTED_PROFILES))
def test_kaito_export_is_up_to_date(render: Render, profile: str) -> None:
    folder = KAITO_EXPORT_DIR / profile
    expected = kaito_export.export_files(render(profile))
    on_disk = {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8") for p in folder.rglob("*.yaml")}
    assert on_disk == expected, f"kaito/{profile}/ is stale: run `make render` and commit kaito/"


def test_kaito_export_holds_only_kaito_objects(render: Render) -> None:
    files = kaito_export.export_files(render("hybrid"))
    assert sorted(files) == [
        "configmap-hybrid-llm-batch-vllm-config.yaml",
        "configmap-hybrid-llm-customer-vllm-config.yaml",
        "configmap-hybrid-llm-kaito-install.yaml",
        "inferenceset-hybrid-llm-batch.yaml",
        "inferenceset-hybrid-llm-customer.yaml",
        "kustomization.yaml",
        "node-anchors/deployment-hybrid-llm-batch-node-anchor.yaml",
        "node-anchors/deployment-hybrid-llm-customer-node-anchor.yaml",
        "node-anchors/kustomization.yaml",
        "node-anchors/networkpolicy-hybrid-llm-node-anchors.yaml",
    ]
    assert "helm.sh/" not in "".join(files.values())
    # Standalone: owned by nothing a GitOps apply creates, so the garbage collector leaves them be.
    assert "ownerReferences" not in files["node-anchors/deployment-hybrid-llm-batch-node-anchor.yaml"]
    assert kaito_export.export_files(render("on-demand-kaito")).keys() == {
        "configmap-hybrid-llm-batch-vllm-config.yaml", "configmap-hybrid-llm-customer-vllm-config.yaml",
        "configmap-hybrid-llm-kaito-install.yaml", "inferenceset-hybrid-llm-batch.yaml",
        "inferenceset-hybrid-llm-customer.yaml", "kustomization.yaml"}
    assert kaito_export.export_files(render("aoai-only")).keys() == {"kustomization.yaml"}


def test_chart_figures_are_generated_from_the_data_file() -> None:
    assert CHART_FIGURES_FILE.read_text(encoding="utf-8") == figures.chart_figures(), (
        "charts/hybrid-llm/files/figures.yaml is stale: run `make render`"
    )


@pytest.mark.parametrize("profile", ["hybrid", "on-demand", "spot-batch-aks", "on-demand-kaito"])
def test_serving_objects_are_kept_on_uninstall(render: Render, profile: str) -> None:
    serving_kinds = {"InferenceSet", "NodePool", "AKSNodeClass"}
    rendering = render(profile)
    helm_objects = [o for o in rendering.objects if not o.embedded_in]
    kept = [o for o in helm_objects if o.kind in serving_kinds]
    kept += [o for o in helm_objects if o.kind == "ConfigMap" and o.name.endswith("-vllm-config")]
    assert kept
    for rendered in kept:
        annotations = rendered.obj["metadata"].get("annotations", {})
        assert annotations.get("helm.sh/resource-policy") == "keep", f"{rendered.kind}/{rendered.name}"
    # In the byo modes the applier Job creates the InferenceSets: Helm never deletes them, and
    # with keepOnUninstall nothing owns them either. Its node anchors are never kept: the serving
    # ConfigMap owns them, so `helm uninstall` removes any a failed run left.
    for rendered in rendering.objects:
        if rendered.embedded_in and rendered.kind == "InferenceSet":
            assert "ownerReferences" not in rendered.obj["metadata"], rendered.name
        if rendered.embedded_in and rendered.kind == "Deployment":
            assert rendered.obj["metadata"]["ownerReferences"] == [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "hybrid-llm-serving", "uid": "SERVING-CONFIGMAP-UID"}]
    if any(o.embedded_in for o in rendering.objects):
        args = rendering.find("Job", "hybrid-llm-serving-applier")["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--owner-configmap=hybrid-llm-serving" in args and not any(a.startswith("--prune-selector") for a in args)
        # Nothing deletes a kept InferenceSet: no prune or teardown Job.
        assert [j["metadata"]["name"] for j in rendering.of_kind("Job") if "serving" in j["metadata"]["name"]] == ["hybrid-llm-serving-applier"]


def test_keep_policy_can_be_switched_off(render: Render) -> None:
    rendering = render("hybrid", {"serving": {"keepOnUninstall": False}})
    assert not any(
        "helm.sh/resource-policy" in (o.obj["metadata"].get("annotations") or {}) for o in rendering.objects
    )
    # The Job-applied InferenceSets are owned by the Helm-managed serving ConfigMap (the Job puts in
    # its UID), so `helm uninstall` removes them through garbage collection.
    for iset in rendering.of_kind("InferenceSet"):
        assert iset["metadata"]["ownerReferences"] == [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "hybrid-llm-serving", "uid": "SERVING-CONFIGMAP-UID"}]
    # The release's InferenceSets go before `helm uninstall` (pre-delete) and before an upgrade
    # that disables their path (pre-upgrade), each once a node KAITO needs for the deletion is up.
    for job, hook in (("hybrid-llm-serving-prune", "pre-upgrade,pre-rollback"), ("hybrid-llm-serving-teardown", "pre-delete")):
        rendered = rendering.find("Job", job)
        assert rendered["metadata"]["annotations"]["helm.sh/hook"] == hook
        args = rendered["spec"]["template"]["spec"]["containers"][0]["args"]
        options = dict(arg.removeprefix("--").split("=", 1) for arg in args if "=" in arg)
        assert "--teardown" in args
        assert options["owner-configmap"] == "hybrid-llm-serving" and options["owner-uid-placeholder"] == "SERVING-CONFIGMAP-UID"
        assert options["prune-selector"] == "app.kubernetes.io/instance=hybrid-llm,app.kubernetes.io/part-of=hybrid-llm"


@pytest.mark.parametrize("profile", sorted(EXPECTED_PROFILES))
def test_each_kaito_export_validates_clean(profile: str) -> None:
    """kaito/<profile>/ as one unit, the way a GitOps pipeline would lint it: the byo ordering
    findings are waived with the reason kaito/README.md explains, nothing else is found."""
    import json

    from hybridllm.validation.run import ValidationRequest, run

    text, clean = run(ValidationRequest(paths=[KAITO_EXPORT_DIR / profile], output_format="json"))
    assert clean, text
    waived = {f["rule"] for f in json.loads(text)["findings"]}
    assert waived <= {"converge-byo-apply-order", "converge-byo-node-source", "probes"}
