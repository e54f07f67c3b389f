"""Reading YAML files with errors that name the file, line and column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .layout import display_path


def load_mapping(path: Path) -> dict[str, Any]:
    """Load a YAML file whose top level must be a mapping (an empty file is an empty mapping)."""
    where = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(where, "file not found", "check the path or the profile name") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(where, f"cannot read the file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise UserError(
            f"{where}{line}", f"YAML syntax error: {exc.problem}", "fix the YAML at that line"
        ) from None
    except yaml.YAMLError as exc:
        raise UserError(where, f"YAML error: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(
            where,
            f"the top level is a {type(data).__name__}, not a mapping of values",
            "start the file with keys such as `paths:` or `nodePools:`",
        )
    return data


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge values the way Helm merges -f files: maps merge key by key and anything else
    replaces. A null is kept, so that Helm still deletes the chart default it overrides."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


class _BlockStyleDumper(yaml.SafeDumper):
    """Writes multi-line strings (embedded config files) as readable `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def dump(data: Any) -> str:
    """YAML for people to read: keys in their original order, embedded files as blocks."""
    return yaml.dump(data, Dumper=_BlockStyleDumper, sort_keys=False, default_flow_style=False)
