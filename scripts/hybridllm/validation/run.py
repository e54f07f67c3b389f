"""One validation run: gather documents from files and rendered profiles, validate, format."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..crds import CrdCatalog
from ..errors import UserError
from ..layout import BUILD_DIR, SHARED_CRDS_DIR, display_path
from ..profiles import Profile, load_profile, profile_names
from ..rendering import Rendering, effective_values, lint_profile, render_profile
from . import output
from .engine import Report, validate
from .findings import Document, Finding, Source
from .kubernetes_schemas import KubernetesSchemas, default_versions
from .loader import load_paths
from .reachability import DEFAULT_PROMETHEUS_LABELS, check as check_reachability

CRD_CACHE = BUILD_DIR / "crds"


@dataclass
class ValidationRequest:
    paths: list[Path] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    all_profiles: bool = False
    kube_versions: list[str] | None = None
    crds: Path | None = None
    allow_kinds: set[str] = field(default_factory=set)
    output_format: str = "text"
    show_waived: bool = False
    lint: bool = True


def crd_directory(requested: Path | None) -> Path:
    if requested is not None:
        return requested
    if SHARED_CRDS_DIR.is_dir():
        return SHARED_CRDS_DIR
    if CRD_CACHE.is_dir():
        return CRD_CACHE
    raise UserError("CRDs", f"neither {SHARED_CRDS_DIR} nor {display_path(CRD_CACHE)} exists",
                    "run `make crds` to fetch the pinned CRDs, or pass --crds DIR")


# The reachability check judges each profile as it runs with monitoring on: the question is
# whether Prometheus reaches what the ServiceMonitors point it at.
MONITORING_ON = {"monitoring": {"serviceMonitor": True}}


@dataclass
class Unit:
    """One release: its documents, findings found before validation, and its reachability block."""

    documents: list[Document]
    findings: list[Finding]
    reachability: tuple[str, list[str]] | None = None


def _documents(rendering: Rendering, where: str) -> list[Document]:
    return [Document(Source(f"{where} -> {o.template}" + (f" -> {o.embedded_in}" if o.embedded_in else "")),
                     o.obj, o.embedded_in) for o in rendering.objects]


def _reachability(profile: Profile, where: str) -> tuple[list[Finding], tuple[str, list[str]]]:
    monitored = render_profile(profile, MONITORING_ON)
    prometheus = effective_values(monitored.values)["monitoring"]["prometheus"]
    report = check_reachability(_documents(monitored, f"{where} (monitoring on)"),
                                prometheus_namespace=prometheus["namespace"],
                                prometheus_labels={**DEFAULT_PROMETHEUS_LABELS, **(prometheus.get("podLabels") or {})})
    return report.findings, (f"{where} (monitoring on)", report.summary_lines())


def _units(request: ValidationRequest) -> list[Unit]:
    """One unit per path argument and per profile: duplicates and references are judged within
    a unit, since each is one release."""
    units = [Unit(*load_paths([path])) for path in request.paths]
    names = list(request.profiles) + (profile_names() if request.all_profiles else [])
    for name in names:
        profile = load_profile(name)
        where = display_path(profile.path)
        findings: list[Finding] = []
        try:
            rendering = render_profile(profile)
            reachable, summary = _reachability(profile, where)
        except UserError as exc:
            units.append(Unit([], [Finding("helm-render", exc.problem, exc.fix or "fix the values", where)]))
            continue
        if request.lint:
            for message in lint_profile(profile):
                if message.severity in ("warning", "error"):
                    findings.append(Finding("helm-lint", f"{message.severity}: {message.text}",
                                            "fix what helm lint names", f"{where} -> {message.path}"))
        units.append(Unit(_documents(rendering, where), findings + reachable, summary))
    return units


def run(request: ValidationRequest) -> tuple[str, bool]:
    for path in request.paths:
        if not path.exists():
            raise UserError(str(path), "no such file or directory")
    kubernetes = KubernetesSchemas(request.kube_versions or default_versions())
    crds = CrdCatalog(crd_directory(request.crds))
    report = Report()
    for unit in _units(request):
        judged = validate(unit.documents, kubernetes, crds, request.allow_kinds, unit.findings)
        report.documents += judged.documents
        report.findings += judged.findings
        if unit.reachability:
            report.reachability.append(unit.reachability)
    text = output.as_json(report) if request.output_format == "json" else output.as_text(report, request.show_waived)
    return text, not report.active
