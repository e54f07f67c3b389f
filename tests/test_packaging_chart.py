"""`make package` / hybrid-llm-package: the chart as a .tgz from the real Helm engine, and, for a
release, with its version and the image it built, so the packaged chart runs that image by digest
(the release workflow pushes exactly this archive to ghcr.io/<owner>/charts)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from hybridllm import helm
from hybridllm.chart_package import Release, package_chart, set_scalars
from hybridllm.errors import UserError
from hybridllm.layout import CHART_DIR, REPO_ROOT

DIGEST = "sha256:" + "0123456789abcdef" * 4
RELEASE = Release(version="1.2.3", image_repository="ghcr.io/acme/gateway", image_digest=DIGEST)
PACKAGE_CLI = Path(sys.executable).with_name("hybrid-llm-package")


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as handle:
        return {member.name: handle.extractfile(member).read() for member in handle.getmembers() if member.isfile()}


def test_the_package_is_the_chart_as_it_is(tmp_path: Path) -> None:
    package = package_chart(tmp_path)
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
    assert package.path == tmp_path / f"hybrid-llm-{chart['version']}.tgz"
    files = members(package.path)
    assert files["hybrid-llm/values.yaml"] == (CHART_DIR / "values.yaml").read_bytes()
    assert "hybrid-llm/values.schema.json" in files and "hybrid-llm/templates/gateway/deployment.yaml" in files
    assert package.chart["version"] == chart["version"] and package.chart["appVersion"] == chart["appVersion"]


def test_a_release_package_runs_its_image_by_digest(tmp_path: Path) -> None:
    package = package_chart(tmp_path, RELEASE)
    assert package.path.name == "hybrid-llm-1.2.3.tgz"
    assert (package.chart["version"], package.chart["appVersion"]) == ("1.2.3", "1.2.3")
    # Only the three image lines change; every comment (the chart README's source) stays.
    original = (CHART_DIR / "values.yaml").read_text(encoding="utf-8").splitlines()
    packaged = members(package.path)["hybrid-llm/values.yaml"].decode().splitlines()
    changed = [(old.strip(), new.strip()) for old, new in zip(original, packaged) if old != new]
    assert len(original) == len(packaged)
    assert [new for _, new in changed] == ['repository: "ghcr.io/acme/gateway"', 'tag: "1.2.3"', f'digest: "{DIGEST}"']
    # Rendered from the archive by the real Helm engine: the gateway and the applier Job (which runs
    # from the gateway image) both pull it by digest.
    objects = helm.parse_objects(helm.engine().render(package.path, {}, "hybrid-llm", "llm"))
    images = {(o.kind, o.name): [c["image"] for c in o.obj["spec"]["template"]["spec"]["containers"]]
              for o in objects if o.kind in ("Deployment", "Job")}
    expected = [f"ghcr.io/acme/gateway:1.2.3@{DIGEST}"]
    assert images[("Deployment", "hybrid-llm-gateway")] == expected
    assert images[("Job", "hybrid-llm-serving-applier")] == expected
    assert package.gateway_image == expected[0]
    # The packaged docs describe the release, not the checkout: `helm show readme` and Artifact Hub.
    files = members(package.path)
    packaged_chart = yaml.safe_load(files["hybrid-llm/Chart.yaml"])
    assert f"ghcr.io/acme/gateway:1.2.3@{DIGEST}" in packaged_chart["annotations"]["artifacthub.io/images"]
    assert "ghcr.io/hybrid-llm/gateway" not in packaged_chart["annotations"]["artifacthub.io/images"]
    assert "ghcr.io/acme/gateway" in files["hybrid-llm/README.md"].decode()


@pytest.mark.parametrize("release, flag", [
    (Release(version="v1.2.3"), "--version"),
    (Release(image_repository="GHCR.io/Acme/Gateway"), "--image-repository"),
    (Release(image_repository="ghcr.io/acme/gateway:1.2.3"), "--image-repository"),
    (Release(image_digest="sha256:abc"), "--image-digest"),
])
def test_bad_release_input_names_the_flag(release: Release, flag: str, tmp_path: Path) -> None:
    with pytest.raises(UserError) as raised:
        package_chart(tmp_path, release)
    assert raised.value.where == flag and raised.value.fix
    assert not list(tmp_path.iterdir()), "nothing is written for bad input"


def test_values_edits_keep_the_file_and_refuse_what_they_cannot_place() -> None:
    text = "# -- top\ngateway:\n  # -- the image\n  image:\n    repository: a/b  # why\n    tag: \"1\"\nother:\n  image:\n    tag: x\n"
    edited = set_scalars(text, {("gateway", "image", "tag"): "2", ("gateway", "image", "repository"): "c/d"}, "v.yaml")
    assert edited == text.replace('tag: "1"', 'tag: "2"').replace("repository: a/b  # why", 'repository: "c/d"  # why')
    with pytest.raises(UserError, match="no line for gateway.image.digest"):
        set_scalars(text, {("gateway", "image", "digest"): DIGEST}, "v.yaml")
    with pytest.raises(UserError, match="no line for gateway.image.tag"):
        set_scalars("gateway:\n  image: {repository: a/b, tag: '1'}\n", {("gateway", "image", "tag"): "2"}, "v.yaml")


def test_the_cli_and_make_package(tmp_path: Path) -> None:
    done = subprocess.run([str(PACKAGE_CLI), "--destination", str(tmp_path), "--version", "1.2.3", "--image-repository",
                           "ghcr.io/acme/gateway", "--image-digest", DIGEST], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert f"gateway image: ghcr.io/acme/gateway:1.2.3@{DIGEST}" in done.stdout and "hybrid-llm-1.2.3.tgz" in done.stdout
    bad = subprocess.run([str(PACKAGE_CLI), "--destination", str(tmp_path), "--image-digest", "latest"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --image-digest: 'latest' is not an image digest")
    # What the release workflow runs: make passes each variable on as its flag.
    dry = subprocess.run(["make", "-n", "package", "VERSION=1.2.3", "IMAGE_REPOSITORY=ghcr.io/acme/gateway",
                          f"IMAGE_DIGEST={DIGEST}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True)
    command = dry.stdout.replace("\\\n", " ").split()
    assert command[command.index("--version") + 1] == "1.2.3"
    assert command[command.index("--image-repository") + 1] == "ghcr.io/acme/gateway"
    assert command[command.index("--image-digest") + 1] == DIGEST
