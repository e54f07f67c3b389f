"""Scoring answers: HumanEval code (extracted, assembled into a test program for the sandbox)
and schema-strict JSON (checked with jsonschema).

Chat models answer a HumanEval prompt either with the whole function in a fenced block, or with
the body alone (fenced or not, indented or not); both are taken. Schema-strict answers are
strict: the reply must be the JSON document itself, with nothing around it but whitespace, as a
program parsing the reply would need it.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from .evalsets import CodeProblem, SchemaTask

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(reply: str, entry_point: str) -> str:
    """The code in a reply: the fenced block that defines the entry point, else the first Python
    (or unlabelled) fenced block, else the reply itself."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(reply)]
    defining = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
    for _, body in blocks:
        if defining.search(body):
            return body
    for lang, body in blocks:
        if lang in ("", "python", "py", "python3"):
            return body
    return reply


def completion_for(problem: CodeProblem, reply: str) -> str:
    """What follows the problem's prompt in the test program: the model's whole function (placed
    after the prompt, whose docstring-only function it then replaces, keeping the prompt's imports
    and helpers), or its body indented under the prompt's signature."""
    code = extract_code(reply, problem.entry_point).rstrip()
    if re.search(rf"^(?:async\s+)?def\s+{re.escape(problem.entry_point)}\s*\(", textwrap.dedent(code), re.MULTILINE):
        return "\n" + textwrap.dedent(code) + "\n"
    body = textwrap.dedent(code.strip("\n"))
    return textwrap.indent(body, "    ") + "\n"


def check_program(problem: CodeProblem, reply: str) -> str:
    """HumanEval's check program: prompt + completion + the problem's tests + check(entry point)."""
    return f"{problem.prompt}{completion_for(problem, reply)}\n{problem.test}\ncheck({problem.entry_point})\n"


@dataclass(frozen=True)
class SchemaVerdict:
    ok: bool
    problem: str  # why not, for the JSON output


_VALIDATORS: dict[str, Draft202012Validator] = {}


def check_schema_answer(task: SchemaTask, reply: str) -> SchemaVerdict:
    try:
        document: Any = json.loads(reply)
    except ValueError as exc:
        return SchemaVerdict(False, f"not JSON: {exc.msg} at char {exc.pos}")
    validator = _VALIDATORS.get(task.id)
    if validator is None:
        validator = _VALIDATORS[task.id] = Draft202012Validator(task.schema, format_checker=FormatChecker())
    error = next(iter(sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return SchemaVerdict(False, f"{where}: {error.message[:200]}")
    return SchemaVerdict(True, "")
