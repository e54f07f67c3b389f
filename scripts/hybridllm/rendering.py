"""Rendering a values profile through the chart, and what the render contains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


from . import helm
from .errors import UserError
from .layout import CHART_DIR, DEFAULT_NAMESPACE, DEFAULT_RELEASE, display_path
from .profiles import Profile
from .yamlfiles import dump, load_mapping, merge_values


@dataclass(frozen=True)
class Rendering:
    profile: Profile
    values: dict[str, Any]  # the values passed to Helm: the profile plus any overrides
    objects: list[helm.RenderedObject]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o.obj for o in self.objects if o.kind == kind]

    def find(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.of_kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{kind}/{name} is not in the render of {self.profile.name}")

    def to_yaml(self) -> str:
        """All objects as one multi-document YAML file, each headed by its template."""
        parts = []
        for rendered in self.objects:
            body = dump(rendered.obj)
            parts.append(f"---\n# Source: {rendered.template}\n{body}")
        return "".join(parts)


def chart_defaults() -> dict[str, Any]:
    return load_mapping(CHART_DIR / "values.yaml")


def effective_values(values: dict[str, Any]) -> dict[str, Any]:
    """What the templates see: chart defaults with the given values on top."""
    return merge_values(chart_defaults(), values)


def render_profile(
    profile: Profile,
    overrides: dict[str, Any] | None = None,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
) -> Rendering:
    values = merge_values(profile.values, overrides or {})
    try:
        rendered = helm.engine().render(CHART_DIR, values, release, namespace)
    except UserError as exc:
        where = display_path(profile.path) + (" with overrides" if overrides else "")
        raise UserError(where, exc.problem, exc.fix) from None
    return Rendering(profile, values, helm.parse_objects(rendered))


def lint_profile(profile: Profile) -> list[helm.LintMessage]:
    return helm.engine().lint(CHART_DIR, profile.values)
