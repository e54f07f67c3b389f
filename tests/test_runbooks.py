"""The runbooks stay true: every helm command in them renders (and passes the guardrails) with the
values it sets, and every script and file they name exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import helm_python
import pytest

from conftest import Render
from hybridllm.layout import REPO_ROOT

RUNBOOKS = sorted((REPO_ROOT / "docs" / "runbooks").glob("*.md"))
EXPECTED = {"switch-spot-on-demand.md", "incident-force-azure-openai.md", "swap-model.md", "spot-eviction-storm.md"}


def helm_commands(text: str) -> list[list[str]]:
    joined = re.sub(r"\\\n\s*", " ", text)
    return [shlex.split(line.strip()) for line in joined.splitlines() if line.strip().startswith("helm upgrade")]


def test_all_runbooks_exist() -> None:
    assert {p.name for p in RUNBOOKS} == EXPECTED


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda p: p.name)
def test_helm_commands_render(render: Render, runbook: Path) -> None:
    commands = helm_commands(runbook.read_text(encoding="utf-8"))
    for words in commands:
        profile = words[words.index("-f") + 1].removeprefix("values/").removesuffix(".yaml")
        # Helm parses every --set into one map, so list indices from separate flags combine.
        sets = [words[index + 1] for index, word in enumerate(words) if word == "--set"]
        overrides = helm_python.parse_set_string(",".join(sets)) if sets else None
        rendering = render(profile, overrides)
        assert rendering.objects, " ".join(words)


def test_at_least_the_switches_are_exercised() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in RUNBOOKS)
    for setting in ("gateway.forceAzureOpenAI=true", "paths.batch.capacityType=on-demand", "kaito.preset=",
                    "kaito.adapters[0].image=", "gateway.batchQueueSeconds="):
        assert setting in text


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda p: p.name)
def test_named_files_exist(runbook: Path) -> None:
    text = runbook.read_text(encoding="utf-8")
    for path in set(re.findall(r"\b((?:scripts|values|data|tests|docs/runbooks)/[\w./-]+\.(?:py|yaml|md))", text)):
        assert (REPO_ROOT / path).exists(), f"{runbook.name} names {path}"
    for name in re.findall(r"`([\w-]+\.md)`", text):
        assert (runbook.parent / name).exists(), f"{runbook.name} names {name}"
