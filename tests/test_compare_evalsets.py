"""The evaluation sets and their scoring: the shipped schema-strict set is sound, a broken set is
refused with the file and task named, and code in every answer shape a chat model uses is found."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from compare_stubs import right_at, schema_answer, tokens_of
from hybridllm.compare.evalsets import humaneval, schema_request, schema_tasks
from hybridllm.compare.progress import Progress
from hybridllm.compare.scoring import check_schema_answer, completion_for, extract_code
from hybridllm.errors import UserError


def test_the_shipped_schema_set() -> None:
    tasks = schema_tasks()
    assert len(tasks) >= 50
    with_format = [t for t in tasks if t.response_format]
    assert 0.25 <= len(with_format) / len(tasks) <= 0.5
    for task in tasks:
        Draft202012Validator.check_schema(task.schema)
        assert check_schema_answer(task, json.dumps(task.example)).ok, task.id
    body = schema_request(with_format[0])
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["schema"] == with_format[0].schema
    assert "response_format" not in schema_request(next(t for t in tasks if not t.response_format))


def test_humaneval_comes_from_the_package() -> None:
    problems = humaneval()
    assert len(problems) == 164 and problems[0].id == "HumanEval/0"
    assert all(p.entry_point in p.prompt and "def check" in p.test for p in problems)


def test_schema_answers_are_strict() -> None:
    """Only the JSON document itself passes: not fenced, not after prose, not cut short, nor
    missing a required property (the four ways the wrong stub answers)."""
    task = schema_tasks()[0]
    assert check_schema_answer(task, "  " + json.dumps(task.example) + "\n").ok
    for index in range(4):
        verdict = check_schema_answer(task, schema_answer(task, index, right=False))
        assert not verdict.ok and verdict.problem
    missing = check_schema_answer(task, schema_answer(task, 0, right=False))
    assert "required property" in missing.problem


BROKEN = {
    "unknown field": ({"id": "a", "prompt": "p", "schema": {"type": "object", "required": ["x"]}, "example": {"x": 1},
                       "colour": "red"}, "unknown field(s) colour"),
    "bad id": ({"id": "Has Spaces", "prompt": "p", "schema": {"type": "object", "required": ["x"]}, "example": {"x": 1}},
               "(Has Spaces).id is 'Has Spaces'"),
    "no required": ({"id": "a", "prompt": "p", "schema": {"type": "object"}, "example": {}},
                    "must be an object schema with `required`"),
    "invalid schema": ({"id": "a", "prompt": "p", "schema": {"type": "object", "required": ["x"], "minProperties": -1},
                        "example": {"x": 1}}, "is not a valid JSON Schema"),
    "example does not match": ({"id": "a", "prompt": "p", "schema": {"type": "object", "required": ["x"],
                                "properties": {"x": {"type": "integer"}}}, "example": {"x": "one"}},
                               "example does not match its schema at x"),
    "not strict": ({"id": "a", "prompt": "p", "responseFormat": True, "schema": {"type": "object", "required": ["x"],
                    "properties": {"x": {"type": "string", "format": "date"}, "y": {"type": "string"}}},
                    "example": {"x": "2026-01-01"}}, "leaves the strict subset"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_schema_set_is_refused(case: str, tmp_path: Path) -> None:
    entry, message = BROKEN[case]
    path = tmp_path / "set.yaml"
    path.write_text(yaml.safe_dump({"tasks": [entry]}), encoding="utf-8")
    with pytest.raises(UserError) as caught:
        schema_tasks(path)
    assert str(path) in caught.value.where and message in caught.value.problem


def test_a_repeated_id_is_refused(tmp_path: Path) -> None:
    entry = {"id": "a", "prompt": "p", "schema": {"type": "object", "required": ["x"]}, "example": {"x": 1}}
    path = tmp_path / "set.yaml"
    path.write_text(yaml.safe_dump({"tasks": [entry, entry]}), encoding="utf-8")
    with pytest.raises(UserError, match="repeats 'a'"):
        schema_tasks(path)


def test_code_in_every_answer_shape() -> None:
    problem = humaneval()[2]  # truncate_number: its prompt imports nothing, its body is one line
    body = problem.canonical_solution
    whole = f"Sure.\n```python\n{problem.prompt}{body}```\nThat should work."
    assert extract_code(whole, problem.entry_point).lstrip().startswith("def truncate_number(")
    assert completion_for(problem, whole).lstrip().startswith(problem.prompt.lstrip().splitlines()[0])
    dedented = "```python\n" + "\n".join(line[4:] for line in body.splitlines()) + "\n```"
    for reply in (body, dedented, body.strip()):
        assert completion_for(problem, reply) == "    " + body.strip() + "\n"
    # The block that defines the entry point wins over an earlier example block.
    two = f"```python\nprint('usage')\n```\n```python\ndef {problem.entry_point}(x):\n    return 1\n```"
    assert f"def {problem.entry_point}" in extract_code(two, problem.entry_point)


def test_the_stubs_rates_are_exact_on_any_prefix() -> None:
    for rate in (0.0, 0.25, 0.75, 0.8, 1.0):
        for n in (1, 4, 8, 61, 164):
            assert sum(right_at(i, rate) for i in range(n)) == int(n * rate + 1e-9)
    assert "".join(tokens_of("  def f():\n    return 1\n")) == "  def f():\n    return 1\n"


def test_the_progress_bar_draws_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, drawn in ((Terminal(), True), (io.StringIO(), False)):
        progress = Progress(3, "requests", stream=stream)
        for _ in range(3):
            progress.advance()
        progress.close()
        assert ("requests [" in stream.getvalue() and "3/3" in stream.getvalue()) is drawn
        assert (stream.getvalue() == "") is not drawn
