"""Checking that values.schema.json refuses values without depending on the Helm version's wording.

Helm 3 (gojsonschema, before 3.18) and Helm 4 (santhosh-tekuri/jsonschema) word schema errors
differently ("Additional property replica is not allowed" against "additional properties 'replica'
not allowed"). So the location is checked with Python's jsonschema against the same schema, and of
Helm's refusal only what every version says: that the schema refused, and the offending key's name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft7Validator

from conftest import Render
from hybridllm.errors import UserError
from hybridllm.layout import CHART_DIR
from hybridllm.profiles import load_profile
from hybridllm.rendering import effective_values
from hybridllm.yamlfiles import merge_values

_VALIDATOR = Draft7Validator(json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8")))


def schema_error_pointers(profile: str, overrides: dict[str, Any]) -> list[str]:
    """JSON pointers of the values the schema refuses, for a profile with overrides."""
    values = effective_values(merge_values(load_profile(profile).values, overrides))
    pointers = []
    for error in _VALIDATOR.iter_errors(values):
        for leaf in ([error] + list(error.context or [])):
            pointers.append("/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in leaf.absolute_path))
    return pointers


def assert_schema_rejects(render: Render, profile: str, overrides: dict[str, Any], pointer: str, key: str) -> None:
    """The schema refuses the value at `pointer` (for an unknown key: the object holding it), and the
    real Helm engine stops the render with a schema error that names `key`."""
    pointers = schema_error_pointers(profile, overrides)
    assert pointer in pointers, f"the schema does not refuse {pointer}: it refuses {pointers or 'nothing'}"
    with pytest.raises(UserError) as raised:
        render(profile, overrides)
    message = str(raised.value)
    assert "values.schema.json rejects" in message, message
    assert key in message, message
