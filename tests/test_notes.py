"""NOTES.txt, as `helm install` prints it from a registry: it says what was deployed, how to reach
it and how long the GPU paths take, and names only commands and URLs, never paths that exist only
in a checkout of this repository."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from hybridllm.layout import CHART_DIR, REPO_ROOT
from hybridllm.profiles import load_profile, profile_names
from hybridllm.yamlfiles import merge_values

SCENARIOS = sorted(str(p.relative_to(REPO_ROOT)) for p in (CHART_DIR / "ci").glob("*.yaml"))
HOME = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))["home"]
URL = re.compile(r"https?://[^\s'\"),]+")
# What only a source checkout has: its folders, its virtualenv, its Makefile targets and module invocations.
MAKE_TARGETS = re.findall(r"(?m)^([a-z][\w-]*):", (REPO_ROOT / "Makefile").read_text(encoding="utf-8"))
CHECKOUT_ONLY = re.compile(r"(?<![\w/.-])(scripts/|docs/|values/|charts/|\.venv|python -m |\w+\.py\b|make (?:%s)\b)"
                           % "|".join(map(re.escape, MAKE_TARGETS)))


@cache
def notes(profile: str, overrides_yaml: str = "{}") -> str:
    """NOTES.txt rendered by Helm's engine, as `helm install` shows it (the SDK: `helm template`
    does not print NOTES)."""
    import helm_python

    values = merge_values(load_profile(profile).values, yaml.safe_load(overrides_yaml))
    rendered = helm_python.Chart.load(str(CHART_DIR)).render(values, name="hybrid-llm", namespace="llm", is_install=True)
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


@pytest.mark.parametrize("profile", profile_names() + SCENARIOS)
def test_notes_name_no_checkout_paths_and_read_cleanly(profile: str) -> None:
    text = notes(profile)
    assert CHECKOUT_ONLY.findall(URL.sub("", text)) == [], text
    for url in URL.findall(text):
        assert url.startswith(HOME) or url.endswith(".svc.cluster.local/v1") or url.startswith(
            "https://contoso-llm.openai.azure.com"), url
    assert "<no value>" not in text and "\n\n\n" not in text
    assert all(line == line.rstrip() for line in text.splitlines()), "trailing whitespace"


def test_notes_links_lead_to_this_repository() -> None:
    """Every link under the chart's home names a path that exists in this repository."""
    text = notes("hybrid")
    links = [url for url in URL.findall(text) if url.startswith(HOME + "/tree/main/")]
    assert links
    for url in links:
        assert (REPO_ROOT / url.removeprefix(HOME + "/tree/main/")).exists(), url


def test_notes_tell_the_installer_what_and_how_long() -> None:
    text = notes("hybrid")
    for phrase in ("http://hybrid-llm-gateway.llm.svc.cluster.local/v1", "helm test hybrid-llm -n llm",
                   "131 GiB of weights", "3-8 min", "kubectl -n llm get inferencesets,workspaces,pods -w",
                   "customer: InferenceSet hybrid-llm-customer, 1 replica(s) on on-demand",
                   "batch: InferenceSet hybrid-llm-batch, 1 replica(s) on spot", "nodeProvisioner=byo",
                   "hybrid-llm-keys new --name <team> --classes customer,batch",
                   "key api-key of the Secret hybrid-llm-gateway-test-key",
                   "kubectl -n llm logs job/hybrid-llm-serving-applier", "kubectl get nodepools,nodeclaims",
                   f"Documentation: {HOME}"):
        assert phrase in text, phrase


def test_aks_mode_names_its_agent_pools() -> None:
    text = notes("spot-batch-aks")
    assert "AKS agent pools llmbatch (batch), llmcustomer (customer)" in text
    assert 'README lists under "aks mode"' in text
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    assert "aks mode" in readme


def test_notes_without_gpu_paths_skip_the_gpu_advice() -> None:
    text = notes("aoai-only")
    assert "customer: disabled" in text and "batch: disabled" in text
    for phrase in ("KAITO must run", "Expect minutes", "inferencesets", "helm uninstall"):
        assert phrase not in text, phrase


def test_notes_without_gateway_auth_send_no_key() -> None:
    text = notes("hybrid", "gateway: {auth: {enabled: false}}")
    assert "Authorization" not in text and "hybrid-llm-keys" not in text
    assert "Check it end to end:\n  helm test hybrid-llm -n llm" in text


def test_notes_show_keda_bounds() -> None:
    text = notes(str(Path("charts/hybrid-llm/ci/keda-values.yaml")))
    assert "batch: InferenceSet hybrid-llm-batch, 1-3 replicas (KEDA) on spot" in text
