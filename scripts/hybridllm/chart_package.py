"""The chart as a .tgz, made by the real Helm engine exactly as `helm package` makes it; for a release,
with the release's version and the gateway image it built (gateway.image.repository, tag and digest).
This is what the release workflow pushes to an OCI registry and `make package` builds."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import chart_docs
from .errors import UserError
from .layout import CHART_DIR, display_path

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Helm's chart versions are SemVer 2 (a leading "v" is refused here: the release tag's is stripped).
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
# registry[:port]/path, lower case: the reference grammar of the OCI distribution spec, without tag or digest.
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+$")
_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<value>[^#]*?)(?P<comment>\s+#.*)?$")
GATEWAY_IMAGE = ("gateway", "image")


@dataclass(frozen=True)
class Release:
    """What a release sets. Each field is optional: with none, the package is the chart as it is."""

    version: str | None = None  # chart version and appVersion, and the gateway image's tag
    image_repository: str | None = None
    image_digest: str | None = None

    def check(self) -> None:
        if self.version is not None and not _SEMVER.match(self.version):
            raise UserError("--version", f"{self.version!r} is not a SemVer version",
                            "give MAJOR.MINOR.PATCH, for example 1.2.3 (a tag v1.2.3 without its v)")
        if self.image_repository is not None and not _REPOSITORY.match(self.image_repository):
            raise UserError("--image-repository", f"{self.image_repository!r} is not an image repository",
                            "give registry/path in lower case without a tag or digest, for example ghcr.io/acme/gateway")
        if self.image_digest is not None and not _DIGEST.match(self.image_digest):
            raise UserError("--image-digest", f"{self.image_digest!r} is not an image digest",
                            "give sha256: and 64 lower-case hex digits, as `docker buildx build` reports")

    def value_edits(self) -> dict[tuple[str, ...], str]:
        edits: dict[tuple[str, ...], str] = {}
        if self.image_repository is not None:
            edits[(*GATEWAY_IMAGE, "repository")] = self.image_repository
        if self.version is not None:
            edits[(*GATEWAY_IMAGE, "tag")] = self.version
        if self.image_digest is not None:
            edits[(*GATEWAY_IMAGE, "digest")] = self.image_digest
        return edits


@dataclass(frozen=True)
class Package:
    path: Path
    engine: str
    chart: dict[str, Any]  # Chart.yaml inside the archive
    values: dict[str, Any]  # values.yaml inside the archive
    sha256: str  # of the archive

    @property
    def gateway_image(self) -> str:
        image = self.values[GATEWAY_IMAGE[0]][GATEWAY_IMAGE[1]]
        reference = f"{image['repository']}:{image['tag']}"
        return f"{reference}@{image['digest']}" if image.get("digest") else reference


def set_scalars(text: str, edits: dict[tuple[str, ...], str], where: str) -> str:
    """values.yaml with scalars replaced on their own lines, so every comment stays (the chart's
    README is generated from them). The result is parsed again and must differ from the original
    in exactly the edited keys."""
    lines = text.splitlines(keepends=True)
    found: set[tuple[str, ...]] = set()
    parents: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = _KEY_LINE.match(line.rstrip("\n"))
        if not match or line.lstrip().startswith("#"):
            continue
        indent = len(match["indent"])
        while parents and parents[-1][0] >= indent:
            parents.pop()
        parents.append((indent, match["key"]))
        path = tuple(key for _, key in parents)
        if path in edits:
            lines[number] = f"{match['indent']}{match['key']}: {json.dumps(edits[path])}{match['comment'] or ''}\n"
            found.add(path)
    missing = [".".join(path) for path in edits if path not in found]
    if missing:
        raise UserError(where, f"no line for {', '.join(missing)}",
                        "the chart's values.yaml must keep these keys, each on a line of its own")
    edited = "".join(lines)
    expected = yaml.safe_load(text)
    for path, value in edits.items():
        node = expected
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    if yaml.safe_load(edited) != expected:
        raise UserError(where, "setting " + ", ".join(".".join(path) for path in edits) + " changed other values",
                        "this is a bug in hybridllm/chart_package.py; package without the image flags and set them with --set")
    return edited


def _helm_package(chart: Path, destination: Path, version: str | None) -> tuple[Path, str]:
    """The archive's path and the engine that made it: `helm package` when a helm binary is on PATH
    (as hybridllm.helm chooses), else the same action in Helm v4's Go SDK."""
    binary = shutil.which("helm")
    if binary:
        command = [binary, "package", str(chart), "--destination", str(destination)]
        if version:
            command += ["--version", version, "--app-version", version]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise UserError(display_path(CHART_DIR), f"helm package failed: {done.stderr.strip()}")
        # "Successfully packaged chart and saved it to: <path>"
        return Path(done.stdout.strip().rsplit(": ", 1)[-1]), f"helm binary {binary}"
    import helm_python  # only without a helm binary

    try:
        path = helm_python.package(str(chart), destination=str(destination), version=version, app_version=version)
    except helm_python.HelmError as exc:
        raise UserError(display_path(CHART_DIR), f"helm package failed: {exc}") from None
    return Path(path), f"helm-python-sdk (Helm {helm_python.helm_sdk_version()})"


def read_package(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Chart.yaml and values.yaml from a chart archive."""
    with tarfile.open(path, "r:gz") as archive:
        def member(name: str) -> dict[str, Any]:
            handle = archive.extractfile(f"{CHART_DIR.name}/{name}")
            if handle is None:
                raise UserError(display_path(path), f"the archive has no {CHART_DIR.name}/{name}")
            return yaml.safe_load(handle.read())

        return member("Chart.yaml"), member("values.yaml")


def package_chart(destination: Path, release: Release = Release()) -> Package:
    release.check()
    destination.mkdir(parents=True, exist_ok=True)
    edits = release.value_edits()
    with tempfile.TemporaryDirectory() as folder:
        staged = Path(folder) / CHART_DIR.name
        shutil.copytree(CHART_DIR, staged, ignore=shutil.ignore_patterns("__pycache__"))
        if edits:
            values = staged / "values.yaml"
            values.write_text(set_scalars(values.read_text(encoding="utf-8"), edits,
                                          display_path(CHART_DIR / "values.yaml")), encoding="utf-8")
        if release.version:
            chart_file = staged / "Chart.yaml"
            chart_file.write_text(set_scalars(chart_file.read_text(encoding="utf-8"),
                                              {("version",): release.version, ("appVersion",): release.version},
                                              display_path(CHART_DIR / "Chart.yaml")), encoding="utf-8")
        if edits or release.version:
            # The packaged README and the artifacthub.io/images annotation describe this release's
            # versions and images, not the checkout's.
            chart_docs.write(staged)
        path, engine = _helm_package(staged, destination.resolve(), release.version)
    chart, values = read_package(path)
    if release.version and (chart.get("version"), chart.get("appVersion")) != (release.version, release.version):
        raise UserError(display_path(path), f"packaged as version {chart.get('version')}, appVersion "
                        f"{chart.get('appVersion')} instead of {release.version}")
    return Package(path, engine, chart, values, hashlib.sha256(path.read_bytes()).hexdigest())
