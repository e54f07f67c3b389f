"""The README's install section is what the chart expects: the KAITO install command sets exactly
the values the chart's declared KAITO install (ConfigMap <release>-kaito-install) records, and the
helm timeout covers the apply-serving Job's wait."""

from __future__ import annotations

import json
import re
import shlex

import yaml

from conftest import Render
from hybridllm.layout import REPO_ROOT
from hybridllm.rendering import chart_defaults

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def _command(starting: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", README)
    (line,) = [line.strip() for line in joined.splitlines() if line.strip().startswith(starting)]
    return shlex.split(line)


def _flags(words: list[str], flag: str) -> dict[str, str]:
    return dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == flag)


def test_kaito_install_command_matches_the_declared_install(render: Render) -> None:
    words = _command("helm upgrade --install kaito-workspace")
    sets, json_sets = _flags(words, "--set"), _flags(words, "--set-json")
    declared = yaml.safe_load(render("hybrid").find("ConfigMap", "hybrid-llm-kaito-install")["data"]["values.yaml"])
    assert sets["nodeProvisioner"] == declared["nodeProvisioner"] == "byo"
    assert sets["featureGates.disableNodeAutoProvisioning"] == "true"
    assert declared["featureGates"]["disableNodeAutoProvisioning"] is True
    assert sets["spotInstance.enabled"] == "true" and declared["spotInstance"]["enabled"] is True
    gfd = declared["gpu-feature-discovery"]
    assert json.loads(json_sets["gpu-feature-discovery.tolerations"]) == gfd["tolerations"]
    assert json.loads(json_sets["gpu-feature-discovery.nfd.worker.tolerations"]) == gfd["nfd"]["worker"]["tolerations"]
    # ...and the chart's defaults are what that command installs.
    assert gfd["tolerations"] == chart_defaults()["kaito"]["gpuFeatureDiscovery"]["tolerations"]
    assert "--version" in words and words[words.index("--version") + 1] == "0.12.0"


# Scheduling the Job's pod and pulling the gateway image before the applier starts counting.
JOB_START_MARGIN_SECONDS = 300


def test_the_install_timeout_covers_the_apply_serving_job(render: Render) -> None:
    """Helm must outlast the Job: if its --timeout ends first, the user gets Helm's "timed out
    waiting for the condition" instead of the applier's diagnosis."""
    words = _command("helm upgrade --install hybrid-llm charts/hybrid-llm")
    timeout = words[words.index("--timeout") + 1]
    assert timeout.endswith("m")
    applier = chart_defaults()["serving"]["applier"]
    deadline = render("hybrid").find("Job", "hybrid-llm-serving-applier")["spec"]["activeDeadlineSeconds"]
    assert deadline > applier["nodeTimeoutSeconds"] + applier["podTimeoutSeconds"], "the applier's own waits fit in the Job"
    assert int(timeout[:-1]) * 60 >= deadline + JOB_START_MARGIN_SECONDS


def test_the_readme_no_longer_says_running_replicas_move() -> None:
    """Issue 9, item 8: KAITO does not roll template changes to existing replicas
    (kaito website/docs/inference.md); the README and the runbook say how to roll them."""
    assert "Running replicas move when KAITO recreates" not in README
    assert "**Running replicas do not move:**" in README
    runbook = (REPO_ROOT / "docs" / "runbooks" / "switch-spot-on-demand.md").read_text(encoding="utf-8")
    assert "kubectl -n llm delete workspace <one of them>" in runbook


def test_the_readme_keys_commands_make_a_keys_file_the_gateway_loads(tmp_path) -> None:
    """The two README lines that make the gateway keys Secret's keys.yaml, run as written."""
    import subprocess
    import sys

    from gateway.keys import KeyStore

    readme = README.splitlines()
    (index,) = [i for i, line in enumerate(readme) if line.startswith('{ echo "keys:"')]
    lines = readme[index - 1:index + 1]
    assert lines[0].startswith(".venv/bin/python -m gateway.keys new") and "> team-a.yaml" in lines[0]
    script = "\n".join(lines).replace(".venv/bin/python", sys.executable)
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin"})
    store = KeyStore.load(tmp_path / "keys.yaml", {"vllm-customer", "vllm-batch"})
    assert store is not None and "team-a" in (tmp_path / "keys.yaml").read_text()
