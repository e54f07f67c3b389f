"""Reading manifests: files, directories or in-memory renders, into documents with their origin.
Broken input becomes findings, never an exception."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import yaml

from ..embedded import embedded_documents
from .findings import Document, Finding, Source

_SEPARATOR = re.compile(r"^---\s*(#.*)?$", re.MULTILINE)
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def _chunks(text: str) -> Iterable[tuple[int, str]]:
    """(first line number, text) of each `---`-separated document."""
    start, line = 0, 1
    for match in _SEPARATOR.finditer(text):
        yield line, text[start:match.start()]
        line += text.count("\n", start, match.end()) + 1
        start = match.end() + 1
    yield line, text[start:]


def parse_text(text: str, file: str) -> tuple[list[Document], list[Finding]]:
    documents: list[Document] = []
    findings: list[Finding] = []
    if not text.strip():
        findings.append(Finding("empty-file", "the file holds no YAML documents",
                                "delete the file or put the manifest in it", file))
        return documents, findings
    for first_line, chunk in _chunks(text):
        if all(l.strip().startswith("#") or not l.strip() for l in chunk.splitlines()):
            continue
        lines = chunk.splitlines()
        # Report the object's first line, not the comments and blank lines above it.
        lead = next((i for i, l in enumerate(lines) if l.strip() and not l.strip().startswith("#")), 0)
        try:
            obj = yaml.safe_load(chunk)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line = first_line + mark.line if mark is not None else first_line
            findings.append(Finding("yaml-syntax", f"YAML syntax error: {exc.problem}",
                                    "fix the YAML at this line", file, line))
            continue
        except yaml.YAMLError as exc:
            findings.append(Finding("yaml-syntax", f"YAML error: {exc}", "fix the YAML", file, first_line))
            continue
        if obj is None:
            continue
        document = Document(Source(file, first_line + lead), obj)
        documents.append(document)
        for carried in embedded_documents(obj):
            origin = carried.origin(document.name)
            if carried.error is not None:
                findings.append(Finding("yaml-syntax", f"{origin}: {carried.error}",
                                        "fix the embedded manifest or the annotation that lists it", file,
                                        document.source.line))
                continue
            documents.append(Document(Source(f"{file} -> {origin}", document.source.line), carried.obj, origin))
    return documents, findings


def load_paths(paths: Iterable[Path]) -> tuple[list[Document], list[Finding]]:
    """Every manifest under the given files and directories (directories recursively)."""
    documents: list[Document] = []
    findings: list[Finding] = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES) if path.is_dir() else [path]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                findings.append(Finding("not-text", "the file is not UTF-8 text", "give a YAML manifest", str(file)))
                continue
            parsed, problems = parse_text(text, str(file))
            documents += parsed
            findings += problems
    return documents, findings
