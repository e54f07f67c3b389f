"""The chart's generated docs (README.md from the `# --` comments, the Artifact Hub images annotation)
never drift from values.yaml, every value is documented, and Chart.yaml carries the metadata a
registry and Artifact Hub show."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import Render
from hybridllm import chart_docs
from hybridllm.errors import UserError
from hybridllm.layout import CHART_DIR, REPO_ROOT

CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
OCI_CHART = "oci://ghcr.io/hybrid-llm/charts/hybrid-llm"


def test_generated_files_are_up_to_date() -> None:
    stale = [str(p.relative_to(REPO_ROOT)) for p in chart_docs.drifted()]
    assert stale == [], f"{stale} drifted from values.yaml / README.md.tmpl: run `make chart-docs`"


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """A copy of the chart the generator works on, so drift can be made and repaired."""
    copy = tmp_path / "hybrid-llm"
    shutil.copytree(CHART_DIR, copy)
    return copy


def test_an_edited_comment_or_digest_is_drift_until_regenerated(chart_copy: Path) -> None:
    import runpy  # scripts/chart_docs.py, the thin command line (scripts/ is not on sys.path)
    main = runpy.run_path(str(REPO_ROOT / "scripts" / "chart_docs.py"))["main"]

    values = chart_copy / "values.yaml"
    text = values.read_text(encoding="utf-8")
    text = text.replace("# -- Deploy the gateway.", "# -- Deploy the OpenAI-compatible gateway.")
    text = text.replace('    digest: ""\n    # -- `Always`', '    digest: "sha256:' + "0f" * 32 + '"\n    # -- `Always`', 1)
    values.write_text(text, encoding="utf-8")
    assert {p.name for p in chart_docs.drifted(chart_copy)} == {"README.md", "Chart.yaml"}
    assert main(["--check", "--chart", str(chart_copy)]) == 1
    assert main(["--chart", str(chart_copy)]) == 0
    assert chart_docs.drifted(chart_copy) == [] and main(["--check", "--chart", str(chart_copy)]) == 0
    assert chart_docs.drifted() == [], "the repository's chart is untouched"
    readme = (chart_copy / "README.md").read_text(encoding="utf-8")
    assert "| `gateway.enabled` | bool | `true` | Deploy the OpenAI-compatible gateway. |" in readme
    images = yaml.safe_load(yaml.safe_load((chart_copy / "Chart.yaml").read_text())["annotations"]["artifacthub.io/images"])
    assert {"name": "gateway", "image": "ghcr.io/hybrid-llm/gateway:0.1.0@sha256:" + "0f" * 32} in images


def test_every_value_is_documented() -> None:
    assert chart_docs.load_values_docs().undocumented == []


@pytest.mark.parametrize("text,undocumented", [
    # a section key without its own `# --` value comment
    ("# The gateway.\ngateway:\n  # -- Deploy it.\n  enabled: true\n  replicas: 2\n", ["gateway.replicas"]),
    # a plain comment is not documentation
    ("# Labels.\ncommonLabels: {}\n", ["commonLabels"]),
    # `# --` with nothing after it
    ("# --\nnameOverride: \"\"\n", ["nameOverride (empty `# --` comment)"]),
    # a documented map covers its keys; a blank line cuts the comment off from the key
    ("# -- Requests and limits.\nresources:\n  requests: {cpu: 1m}\n\n# -- Replicas.\n\nreplicas: 1\n", ["replicas"]),
])
def test_undocumented_values_are_found(text: str, undocumented: list[str]) -> None:
    assert chart_docs.parse_values(text).undocumented == undocumented


def test_an_undocumented_value_stops_the_generator(chart_copy: Path) -> None:
    values = chart_copy / "values.yaml"
    values.write_text(values.read_text(encoding="utf-8").replace(
        "  # -- Deploy the gateway.\n  enabled: true\n", "  enabled: true\n"), encoding="utf-8")
    with pytest.raises(UserError) as raised:
        chart_docs.write(chart_copy)
    assert "gateway.enabled" in str(raised.value) and "`# --` comment" in str(raised.value)


def test_the_values_table_rows_carry_key_type_default_and_description() -> None:
    docs = chart_docs.load_values_docs()
    rows = {row.key: row for row in docs.rows}
    assert (rows["gateway.image.digest"].type, rows["gateway.image.digest"].default) == ("string", "")
    assert (rows["gateway.replicas"].type, rows["gateway.replicas"].default) == ("int", 2)
    assert rows["gateway.tolerations"].type == "list" and rows["gateway.affinity"].type == "object"
    assert rows["paths.customer.vllm.gpuMemoryUtilization"].type == "float"
    assert rows["gateway.podSecurityContext"].default["runAsUser"] == 65532
    assert [s.key for s in docs.sections][:2] == ["kaito", "nodePools"], "sections keep the file's order"
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    assert ("| `gateway.extraEnv` | list | `[]` | Extra environment variables of the gateway container, as "
            "Kubernetes EnvVars ({name, value} or {name, valueFrom}). Secrets belong in mounted files, not here. |") in readme
    # `<name>` outside code spans would be swallowed as an HTML tag by GitHub and Artifact Hub.
    assert "[{name: &lt;Secret&gt;}]" in readme and "`header:<name>`" in readme


def test_the_readme_covers_install_prerequisites_and_helm_versions() -> None:
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    for phrase in (f"helm install hybrid-llm {OCI_CHART} --version {CHART['version']}", "## Prerequisites",
                   "KAITO 0.12 or later", "## Helm versions", "**Helm 3 is not claimed**",
                   f"--version {CHART['version']} --kube-version 1.34", "helm/helm#31508", "### aks mode",
                   "`make checkov`", "CKV_K8S_43", "## Values"):
        assert phrase in readme, phrase
    for scenario in (CHART_DIR / "ci").glob("*.yaml"):
        assert f"`ci/{scenario.name}`" in readme


def test_chart_metadata_for_registries_and_artifact_hub() -> None:
    home = CHART["home"]
    assert home.startswith("https://github.com/") and CHART["sources"] and all(s.startswith(home) for s in CHART["sources"])
    assert CHART["maintainers"] and all(m.get("name") for m in CHART["maintainers"])
    # The icon is a file of this repository, served from its default branch.
    icon_prefix = home.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    assert CHART["icon"].startswith(icon_prefix) and (REPO_ROOT / CHART["icon"].removeprefix(icon_prefix)).is_file()
    annotations = CHART["annotations"]
    assert annotations["hybrid-llm.io/requires"].startswith("KAITO >= 0.12.0")
    # A license is declared only once the repository carries one (it has no LICENSE file yet).
    assert ("artifacthub.io/license" in annotations) == (REPO_ROOT / "LICENSE").is_file()
    assert annotations["artifacthub.io/category"] == "ai-machine-learning"
    links = yaml.safe_load(annotations["artifacthub.io/links"])
    assert all(set(link) == {"name", "url"} and link["url"].startswith("https://") for link in links)
    changes = yaml.safe_load(annotations["artifacthub.io/changes"])
    assert changes and all(c["kind"] in {"added", "changed", "deprecated", "removed", "fixed", "security"}
                           and c["description"] for c in changes)


def test_the_images_annotation_lists_exactly_what_the_chart_runs(render: Render) -> None:
    """Artifact Hub's image list is every container image of the default render, Key Vault sync on."""
    annotated = {i["image"] for i in yaml.safe_load(CHART["annotations"]["artifacthub.io/images"])}
    rendering = render("hybrid", {"modelAccess": {"source": "keyVault", "keyVault": {
        "vaultName": "llm-secrets", "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "clientId": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}}})
    rendered = set()
    for obj in (o.obj for o in rendering.objects):
        spec = obj.get("spec", {})
        pod = spec if obj["kind"] == "Pod" else spec.get("template", {}).get("spec", {})
        rendered |= {c["image"] for c in pod.get("containers", [])} if isinstance(pod, dict) else set()
    assert annotated == rendered
