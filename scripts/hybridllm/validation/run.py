"""One validation run: gather documents from files and rendered profiles, validate, format."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..crds import CrdCatalog
from ..errors import UserError
from ..layout import BUILD_DIR, SHARED_CRDS_DIR, display_path
from ..profiles import load_profile, profile_names
from ..rendering import lint_profile, render_profile
from . import output
from .engine import Report, validate
from .findings import Document, Finding, Source
from .kubernetes_schemas import KubernetesSchemas, default_versions
from .loader import load_paths

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


def _units(request: ValidationRequest) -> list[tuple[list[Document], list[Finding]]]:
    """One unit per path argument and per profile: duplicates and references are judged within
    a unit, since each is one release."""
    units = [load_paths([path]) for path in request.paths]
    names = list(request.profiles) + (profile_names() if request.all_profiles else [])
    for name in names:
        profile = load_profile(name)
        where = display_path(profile.path)
        findings: list[Finding] = []
        try:
            rendering = render_profile(profile)
        except UserError as exc:
            units.append(([], [Finding("helm-render", exc.problem, exc.fix or "fix the values", where)]))
            continue
        documents = [Document(Source(f"{where} -> {o.template}" + (f" -> {o.embedded_in}" if o.embedded_in else "")),
                              o.obj, o.embedded_in) for o in rendering.objects]
        if request.lint:
            for message in lint_profile(profile):
                if message.severity in ("warning", "error"):
                    findings.append(Finding("helm-lint", f"{message.severity}: {message.text}",
                                            "fix what helm lint names", f"{where} -> {message.path}"))
        units.append((documents, findings))
    return units


def run(request: ValidationRequest) -> tuple[str, bool]:
    for path in request.paths:
        if not path.exists():
            raise UserError(str(path), "no such file or directory")
    kubernetes = KubernetesSchemas(request.kube_versions or default_versions())
    crds = CrdCatalog(crd_directory(request.crds))
    report = Report()
    for documents, findings in _units(request):
        unit = validate(documents, kubernetes, crds, request.allow_kinds, findings)
        report.documents += unit.documents
        report.findings += unit.findings
    text = output.as_json(report) if request.output_format == "json" else output.as_text(report, request.show_waived)
    return text, not report.active
