"""Human and JSON output of a validation report.

JSON (schemaVersion 1), stable for CI:
  {"schemaVersion": 1,
   "summary": {"documents": int, "findings": int, "waived": int, "byRule": {rule: count}},
   "findings": [{"rule", "message", "fix", "file", "line", "object": {"kind", "name", "namespace"},
                 "path", "kubernetesVersion", "waived", "waiverReason"}],
   "reachability": [{"unit": str, "lines": [str]}]}   (one per rendered profile)
"""

from __future__ import annotations

import json
from itertools import groupby

from .engine import Report

SCHEMA_VERSION = 1


def as_json(report: Report) -> str:
    findings = sorted(report.findings, key=lambda f: (f.file, f.line or 0, f.kind, f.name, f.rule, f.path))
    return json.dumps({
        "schemaVersion": SCHEMA_VERSION,
        "summary": {"documents": report.documents, "findings": len(report.active),
                    "waived": len(report.findings) - len(report.active), "byRule": report.by_rule()},
        "findings": [f.as_json() for f in findings],
        # Additive: what the reachability check judged, per rendered profile.
        "reachability": [{"unit": unit, "lines": lines} for unit, lines in report.reachability],
    }, indent=2)


def as_text(report: Report, show_waived: bool = False) -> str:
    shown = [f for f in report.findings if show_waived or not f.waived]
    shown.sort(key=lambda f: (f.file, f.line or 0, f.kind, f.name, f.rule, f.path))
    lines = []
    for (file, kind, name), group in groupby(shown, key=lambda f: (f.file, f.kind, f.name)):
        group = list(group)
        line = f":{group[0].line}" if group[0].line else ""
        lines.append(f"{file}{line}  {kind or '(document)'}/{name or '?'}")
        for finding in group:
            versions = f" [k8s {finding.kubernetes_version}]" if finding.kubernetes_version else ""
            waived = f" (waived: {finding.waiver_reason})" if finding.waived else ""
            at = f" at {finding.path}" if finding.path else ""
            lines.append(f"  {finding.rule}{at}{versions}: {finding.message}{waived}")
            lines.append(f"    fix: {finding.fix}")
    for unit, summary in report.reachability:
        lines.append(f"{unit}:")
        lines.extend(f"  {line}" for line in summary)
    waived = len(report.findings) - len(report.active)
    lines.append(f"{report.documents} documents, {len(report.active)} findings" + (f", {waived} waived" if waived else ""))
    return "\n".join(lines)
