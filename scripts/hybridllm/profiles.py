"""Values profiles: the files in values/ that operators switch between."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .layout import PROFILES_DIR, display_path
from .yamlfiles import load_mapping


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    values: dict[str, Any]


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    """A profile by name (`hybrid`) or by path to any values file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        path = candidate
    else:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise UserError(
                display_path(path),
                f"no profile named {name_or_path!r}",
                f"use one of: {', '.join(profile_names())}, or give a path to a values file",
            )
    return Profile(name=path.stem, path=path, values=load_mapping(path))
