"""The scripts, run as a user runs them: clear errors naming the file and the fix, never a
traceback, and exit codes CI can rely on (0 clean, 1 findings, 2 usage or input error)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hybridllm.layout import REPO_ROOT


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / script), *args],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False,
    )


def test_render_one_values_file(tmp_path: Path) -> None:
    values = tmp_path / "mine.yaml"
    values.write_text("paths:\n  batch:\n    replicas: 2\n", encoding="utf-8")
    done = run("render.py", str(values))
    assert done.returncode == 0, done.stderr
    assert "path batch: spot, 2 replica(s) x Standard_NC96ads_A100_v4 (4 GPUs per node)" in done.stdout
    assert "GPUs at the configured replicas: 12" in done.stdout
    assert "helm lint: clean" in done.stdout
    assert (REPO_ROOT / "build" / "rendered" / "mine.yaml").exists()


def test_render_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    values = tmp_path / "broken.yaml"
    values.write_text("paths:\n  batch:\n    replicas: [1\n", encoding="utf-8")
    done = run("render.py", str(values))
    assert done.returncode == 2
    assert f"{values}:4:1: YAML syntax error" in done.stderr
    assert "Traceback" not in done.stderr


def test_render_schema_violation_is_a_finding(tmp_path: Path) -> None:
    values = tmp_path / "typo.yaml"
    values.write_text("paths:\n  customer:\n    capacitytype: spot\n", encoding="utf-8")
    done = run("render.py", str(values))
    assert done.returncode == 1
    assert f"FAILED {values}: values.schema.json rejects" in done.stderr
    assert "capacitytype" in done.stderr  # the key is named, whatever Helm's wording around it
    assert "Traceback" not in done.stderr


def test_render_guardrail_is_a_finding(tmp_path: Path) -> None:
    values = tmp_path / "risky.yaml"
    values.write_text("paths:\n  customer:\n    capacityType: spot\n", encoding="utf-8")
    done = run("render.py", str(values))
    assert done.returncode == 1
    assert "acknowledgeSpotEviction=true" in done.stderr


def test_render_unknown_profile_lists_the_known_ones() -> None:
    done = run("render.py", "hybird")
    assert done.returncode == 2
    assert "no profile named 'hybird'" in done.stderr
    assert "hybrid" in done.stderr and "aoai-only" in done.stderr


def test_render_top_level_list_is_refused(tmp_path: Path) -> None:
    values = tmp_path / "list.yaml"
    values.write_text("- paths\n", encoding="utf-8")
    done = run("render.py", str(values))
    assert done.returncode == 2
    assert "not a mapping of values" in done.stderr


def test_nodepools_prints_runnable_commands() -> None:
    done = run("nodepools.py", "spot-batch-aks")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("az aks nodepool add") == 2
    assert "--priority Spot" in done.stdout


def test_nodepools_refuses_a_nap_profile() -> None:
    done = run("nodepools.py", "hybrid")
    assert done.returncode == 2
    assert "values/hybrid.yaml: nodePools.mode is nap" in done.stderr
    assert "values/spot-batch-aks.yaml" in done.stderr
    assert "Traceback" not in done.stderr
