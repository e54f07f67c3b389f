"""values.schema.json is strict: typos, wrong types and out-of-range values fail at template time."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Render
from hybridllm.errors import UserError

REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("typo-top-level", {"nodePool": {"mode": "nap"}}, "additional properties 'nodePool' not allowed"),
    ("typo-in-path", {"paths": {"customer": {"replica": 2}}}, "additional properties 'replica' not allowed"),
    ("typo-in-vllm", {"paths": {"batch": {"vllm": {"maxModelLength": 8192}}}}, "'maxModelLength' not allowed"),
    ("unknown-path", {"paths": {"interactive": {"enabled": True}}}, "'interactive' not allowed"),
    ("wrong-type", {"paths": {"customer": {"replicas": "two"}}}, "/paths/customer/replicas"),
    ("capacity-enum", {"paths": {"batch": {"capacityType": "preemptible"}}}, "/paths/batch/capacityType"),
    ("mode-enum", {"nodePools": {"mode": "karpenter"}}, "/nodePools/mode"),
    ("model-len-over-limit", {"paths": {"customer": {"vllm": {"maxModelLen": 262144}}}}, "/paths/customer/vllm/maxModelLen"),
    ("gpu-memory-over-one", {"paths": {"customer": {"vllm": {"gpuMemoryUtilization": 1.2}}}}, "gpuMemoryUtilization"),
    ("token-in-values", {"modelAccess": {"hfToken": "hf_abc"}}, "additional properties 'hfToken' not allowed"),
    ("latest-tag", {"modelAccess": {"keyVault": {"syncer": {"image": {"tag": "latest"}}}}}, "/modelAccess/keyVault/syncer/image/tag"),
    ("aks-pool-name", {"paths": {"batch": {"nodePool": {"aksPoolName": "LLM-Batch-Pool"}}}}, "aksPoolName"),
    ("bad-duration", {"paths": {"batch": {"nodePool": {"consolidateAfter": "ten minutes"}}}}, "consolidateAfter"),
    ("http-endpoint", {"azureOpenAI": {"endpoint": "http://insecure.example.com"}}, "/azureOpenAI/endpoint"),
]


@pytest.mark.parametrize("overrides,phrase", [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_schema_rejects(render: Render, overrides: dict[str, Any], phrase: str) -> None:
    with pytest.raises(UserError) as raised:
        render("hybrid", overrides)
    message = str(raised.value)
    assert "values.schema.json rejects" in message
    assert phrase in message


def test_every_default_value_is_documented_with_a_comment_above_it() -> None:
    """helm-docs convention: `# --` documents a whole value (its nested keys included); a plain
    comment heads a section whose keys each need their own comment."""
    from hybridllm.layout import CHART_DIR

    lines = (CHART_DIR / "values.yaml").read_text(encoding="utf-8").splitlines()
    undocumented = []
    inside_value_at: int | None = None  # indentation of the `# --` key we are inside
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("-") or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if inside_value_at is not None and indent > inside_value_at:
            continue
        inside_value_at = None
        above = lines[number - 1].strip() if number else ""
        if not above.startswith("#"):
            undocumented.append(f"values.yaml:{number + 1}: {stripped}")
        # The comment block above may span lines; its first line carries the marker.
        first = number - 1
        while first > 0 and lines[first - 1].strip().startswith("#"):
            first -= 1
        if lines[first].strip().startswith("# --"):
            inside_value_at = indent
    assert undocumented == []


def test_schema_covers_every_default_value() -> None:
    import json

    from hybridllm.layout import CHART_DIR
    from hybridllm.rendering import chart_defaults

    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        return schema["definitions"][ref.rsplit("/", 1)[1]] if ref else node

    def walk(values: Any, node: dict[str, Any], at: str) -> list[str]:
        node = resolve(node)
        missing = []
        if isinstance(values, dict) and node.get("additionalProperties") is False:
            for key, value in values.items():
                if key not in node.get("properties", {}):
                    missing.append(f"{at}.{key}")
                else:
                    missing += walk(value, node["properties"][key], f"{at}.{key}")
        return missing

    assert walk(chart_defaults(), schema, "") == []
