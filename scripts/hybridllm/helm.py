"""The real Helm engine: a `helm` binary when one is on PATH, otherwise Helm v4's Go SDK through
the PyPI package helm-python-sdk. Both render the chart exactly as `helm install` would."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from .embedded import embedded_documents
from .errors import UserError
from .layout import display_path

_SOURCE_COMMENT = re.compile(r"^# Source: (\S+)", re.MULTILINE)
# "execution error at (hybrid-llm/templates/validate.yaml:2:4): <message>" -> the message.
_FAIL_MESSAGE = re.compile(r"execution error at \([^)]*\): (.*)", re.DOTALL)


@dataclass(frozen=True)
class RenderedObject:
    """One Kubernetes object from a render, with the template that produced it."""

    template: str
    obj: dict[str, Any]
    # Where the object is carried when the chart embeds it for a later apply (see embedded.py),
    # for example "ConfigMap/hybrid-llm-serving data.customer.inferenceset.yaml"; None otherwise.
    embedded_in: str | None = None

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name", ""))


@dataclass(frozen=True)
class LintMessage:
    severity: str  # "info", "warning" or "error"
    path: str
    text: str


class HelmEngine(Protocol):
    name: str

    def render(
        self, chart: Path, values: dict[str, Any], release: str, namespace: str
    ) -> dict[str, str]:
        """Template path -> rendered text. Raises UserError when the chart refuses the values."""

    def lint(self, chart: Path, values: dict[str, Any]) -> list[LintMessage]: ...


def explain_helm_error(message: str) -> str:
    """Keep what a user needs from a Helm error: the chart's own `fail` text or the schema's
    list of offending keys."""
    message = message.strip().removeprefix("Error: ").strip()
    failed = _FAIL_MESSAGE.search(message)
    if failed:
        return failed.group(1).strip()
    if "don't meet the specifications of the schema" in message:
        problems = [line.strip()[2:] for line in message.splitlines() if line.strip().startswith("- ")]
        if problems:
            return "values.schema.json rejects: " + "; ".join(problems)
    return message


class SdkHelm:
    """Helm v4's Go SDK in a shared library (helm-python-sdk)."""

    name = "helm-python-sdk"

    def __init__(self) -> None:
        import helm_python  # imported here: only needed when no helm binary is on PATH

        self._helm = helm_python
        self.name = f"helm-python-sdk (Helm {helm_python.helm_sdk_version()})"

    def render(
        self, chart: Path, values: dict[str, Any], release: str, namespace: str
    ) -> dict[str, str]:
        try:
            loaded = self._helm.Chart.load(str(chart))
            rendered = loaded.render(values, name=release, namespace=namespace, is_install=True)
        except self._helm.HelmError as exc:
            raise UserError(display_path(chart), explain_helm_error(str(exc))) from None
        return {path: text for path, text in rendered.items() if not path.endswith("NOTES.txt")}

    def lint(self, chart: Path, values: dict[str, Any]) -> list[LintMessage]:
        report = self._helm.lint(str(chart), values, strict=True)
        severities = {0: "unknown", 1: "info", 2: "warning", 3: "error"}
        messages = [
            LintMessage(severities.get(m["severity"], "error"), m["path"], m["error"])
            for m in report.get("messages", [])
        ]
        messages += [LintMessage("error", display_path(chart), e) for e in report.get("errors", [])]
        return messages


class BinaryHelm:
    """A `helm` binary on PATH (Helm 3.14+ or Helm 4)."""

    def __init__(self, binary: str) -> None:
        self._binary = binary
        version = subprocess.run(
            [binary, "version", "--short"], capture_output=True, text=True, check=False
        ).stdout.strip()
        self.name = f"helm binary {binary} ({version or 'unknown version'})"

    def _run(self, args: list[str], values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(values, handle)
        try:
            return subprocess.run(
                [self._binary, *args, "--values", handle.name],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            os.unlink(handle.name)

    def render(
        self, chart: Path, values: dict[str, Any], release: str, namespace: str
    ) -> dict[str, str]:
        done = self._run(["template", release, str(chart), "--namespace", namespace], values)
        if done.returncode != 0:
            raise UserError(display_path(chart), explain_helm_error(done.stderr))
        rendered: dict[str, str] = {}
        for document in done.stdout.split("\n---"):
            source = _SOURCE_COMMENT.search(document)
            if source:
                rendered[source.group(1)] = rendered.get(source.group(1), "") + "\n---\n" + document
        return rendered

    def lint(self, chart: Path, values: dict[str, Any]) -> list[LintMessage]:
        done = self._run(["lint", str(chart), "--strict"], values)
        messages = []
        for line in done.stdout.splitlines():
            match = re.match(r"\[(INFO|WARNING|ERROR)\] ([^:]+): (.*)", line.strip())
            if match:
                messages.append(LintMessage(match.group(1).lower(), match.group(2), match.group(3)))
        if done.returncode != 0 and not any(m.severity == "error" for m in messages):
            messages.append(LintMessage("error", display_path(chart), done.stderr.strip()))
        return messages


_ENGINE: HelmEngine | None = None


def engine() -> HelmEngine:
    """The Helm engine for this machine, chosen once per process."""
    global _ENGINE
    if _ENGINE is None:
        binary = shutil.which("helm")
        # The chart is tested with Helm 4 only (Chart.yaml); an older helm on PATH gives way to the SDK.
        _ENGINE = BinaryHelm(binary) if binary and _major_version(binary) >= 4 else SdkHelm()
    return _ENGINE


def _major_version(binary: str) -> int:
    """The major version a helm binary reports (`v4.2.3+g...` -> 4), 0 when it cannot tell."""
    try:
        done = subprocess.run([binary, "version", "--short"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    match = re.match(r"v(\d+)\.", done.stdout.strip())
    return int(match.group(1)) if match else 0


def parse_objects(rendered: dict[str, str]) -> list[RenderedObject]:
    """Split rendered templates into objects, in a stable order (template path, then position)."""
    objects: list[RenderedObject] = []
    for template in sorted(rendered):
        try:
            documents = list(yaml.safe_load_all(rendered[template]))
        except yaml.YAMLError as exc:
            raise UserError(template, f"the chart rendered invalid YAML: {exc}",
                            "this is a chart bug; render with the same values and read that template") from None
        for document in documents:
            if not (isinstance(document, dict) and document):
                continue
            objects.append(RenderedObject(template, document))
            for carried in embedded_documents(document):
                origin = carried.origin(str(document.get("metadata", {}).get("name", "")))
                if carried.error or not isinstance(carried.obj, dict):
                    raise UserError(template, f"{origin}: {carried.error or 'not an object'}",
                                    "this is a chart bug; render with the same values and read that template")
                objects.append(RenderedObject(template, carried.obj, origin))
    return objects
