"""checkov's Kubernetes checks on the chart's renders: every profile in values/ and every scenario in
charts/hybrid-llm/ci/. checkov runs from a virtualenv of its own, pinned, because its ~100
dependencies pin versions the project's .venv does not want; the first run creates it."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .layout import CHART_DIR, display_path
from .profiles import load_profile, profile_names
from .rendering import render_profile

# Pinned: a new checkov release adds checks, and the scan must not change under an unchanged chart.
CHECKOV_VERSION = "3.3.30"
DEFAULT_VENV = Path(os.environ.get("HYBRID_LLM_CHECKOV_VENV") or "/tmp/checkov-venv")
CI_DIR = CHART_DIR / "ci"


@dataclass(frozen=True)
class Check:
    check_id: str
    resource: str  # checkov's <Kind>.<namespace>.<name>
    file: str
    reason: str = ""  # a skip's reason


@dataclass
class ScanResult:
    passed: int = 0
    failed: list[Check] = field(default_factory=list)
    skipped: list[Check] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.failed and not self.parsing_errors

    def failed_by_check(self) -> Counter[str]:
        return Counter(c.check_id for c in self.failed)

    def skipped_by_check(self) -> Counter[str]:
        return Counter(c.check_id for c in self.skipped)


def scan_inputs() -> list[str]:
    """What is scanned: the profile names, then the ci/ scenario files."""
    return profile_names() + [display_path(p) for p in sorted(CI_DIR.glob("*.yaml"))]


def render_inputs(out_dir: Path, inputs: list[str] | None = None) -> list[Path]:
    """Render each input with the real Helm engine into out_dir/<name>.yaml (embedded objects such as
    the node anchors included, as the apply-serving Job creates them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in inputs if inputs is not None else scan_inputs():
        rendering = render_profile(load_profile(name))
        path = out_dir / f"{rendering.profile.name}.yaml"
        path.write_text(rendering.to_yaml(), encoding="utf-8")
        written.append(path)
    return written


def _installed_version(binary: Path) -> str | None:
    if not binary.exists():
        return None
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_checkov(venv: Path = DEFAULT_VENV) -> Path:
    """checkov's binary in its own virtualenv, created (or brought to the pinned version) if needed.
    A lock file keeps two runs on one machine from installing into the same venv at once."""
    binary = venv / "bin" / "checkov"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(binary) == CHECKOV_VERSION:
            return binary
        print(f"installing checkov {CHECKOV_VERSION} into {venv} (once; it is large)", file=sys.stderr)
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"checkov=={CHECKOV_VERSION}"]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise UserError(str(venv), f"`{' '.join(step)}` failed: {done.stderr.strip()[-2000:]}",
                                "check that PyPI is reachable, or point HYBRID_LLM_CHECKOV_VENV at a venv with "
                                f"checkov=={CHECKOV_VERSION}")
        if _installed_version(binary) != CHECKOV_VERSION:
            raise UserError(str(binary), f"is not checkov {CHECKOV_VERSION} after the install",
                            f"delete {venv} and run again")
    return binary


def parse_report(text: str) -> ScanResult:
    """checkov's JSON report (one framework: an object; several: a list of them)."""
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError("checkov", f"printed no JSON report ({exc}): {text[:500]}", "run checkov by hand to see why") from None
    result = ScanResult()
    for part in report if isinstance(report, list) else [report]:
        results = part.get("results", {})
        result.passed += len(results.get("passed_checks", []))
        result.failed += [Check(c["check_id"], c["resource"], c["file_path"]) for c in results.get("failed_checks", [])]
        result.skipped += [Check(c["check_id"], c["resource"], c["file_path"],
                                 (c.get("check_result") or {}).get("suppress_comment", ""))
                           for c in results.get("skipped_checks", [])]
        result.parsing_errors += results.get("parsing_errors", [])
    return result


def scan(binary: Path, files: list[Path]) -> ScanResult:
    """checkov's Kubernetes framework on the files; --skip-download keeps it offline."""
    args = [str(binary), "--framework", "kubernetes", "--skip-download", "--output", "json"]
    for path in files:
        args += ["--file", str(path)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):  # 1: some check failed; anything else: checkov itself failed
        raise UserError("checkov", f"exited {done.returncode}: {done.stderr.strip()[-2000:]}",
                        "run the same command by hand to see why")
    if not done.stdout.strip():  # checkov prints nothing when it found nothing to scan
        raise UserError("checkov", "found no Kubernetes objects to scan", "check the rendered files")
    return parse_report(done.stdout)


def summary(result: ScanResult, files: list[Path]) -> str:
    lines = [f"checkov {CHECKOV_VERSION}, Kubernetes checks on {len(files)} renders: {result.passed} passed, "
             f"{len(result.failed)} failed, {len(result.skipped)} skipped (annotated in the chart)"]
    for check in sorted(result.failed, key=lambda c: (c.check_id, c.resource, c.file)):
        lines.append(f"  FAILED {check.check_id} {check.resource} in {check.file}")
    for path in result.parsing_errors:
        lines.append(f"  NOT PARSED {path}")
    for check_id, count in sorted(result.skipped_by_check().items()):
        reasons = sorted({c.reason for c in result.skipped if c.check_id == check_id})
        lines.append(f"  skipped {check_id} x{count}: " + " | ".join(reasons))
    return "\n".join(lines)
