"""One preflight: render the profile, learn what it needs, read the cluster, check, format."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..layout import DEFAULT_NAMESPACE, DEFAULT_RELEASE, display_path
from ..profiles import load_profile
from ..rendering import render_profile
from ..yamlfiles import load_mapping, merge_values
from . import output
from .checks import Status, run_checks
from .cluster import ClusterReader, connect
from .needs import profile_needs


@dataclass
class PreflightRequest:
    values_files: list[Path]  # like helm -f: the first is the profile, later ones override it
    context: str | None = None
    kubeconfig: Path | None = None
    namespace: str = DEFAULT_NAMESPACE
    release: str = DEFAULT_RELEASE
    kaito_namespace: str | None = None  # None: look for KAITO in every namespace
    output_format: str = "text"
    overrides: dict = field(default_factory=dict)


def run(request: PreflightRequest) -> tuple[str, bool]:
    """The report and whether every check passed (warnings allowed). Raises UserError for bad
    input and ClusterError when the cluster cannot be used; both before anything is printed."""
    profile = load_profile(str(request.values_files[0]))
    overrides: dict = {}
    for extra in request.values_files[1:]:
        overrides = merge_values(overrides, load_mapping(extra))
    overrides = merge_values(overrides, request.overrides)
    # Render first: a values mistake is reported without touching the cluster.
    rendering = render_profile(profile, overrides or None, request.release, request.namespace)
    needs = profile_needs(rendering, request.release, request.namespace)
    connection = connect(request.kubeconfig, request.context)
    snapshot = ClusterReader(connection).read(needs, request.kaito_namespace)
    results = run_checks(needs, snapshot)
    formatter = output.as_json if request.output_format == "json" else output.as_text
    values = " -f ".join([needs.profile] + [display_path(f) for f in request.values_files[1:]])
    return formatter(needs, snapshot, results, values), not any(r.status is Status.FAIL for r in results)
