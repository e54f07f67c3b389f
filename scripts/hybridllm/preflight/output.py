"""Human and JSON output of a preflight.

Text: a header naming the profile and the cluster, one line per check (`status  subject: detail`),
a `fix:` line under each FAIL and warn, and a count.
JSON (schemaVersion 1): {"schemaVersion", "values", "release", "namespace",
  "cluster": {"context", "server", "kubernetesVersion"}, "summary": {status: count},
  "checks": [{"id", "status", "subject", "detail", "fix"}]}
"""

from __future__ import annotations

import json

from .checks import CheckResult, Status, summary, to_json
from .cluster import ClusterSnapshot
from .needs import ProfileNeeds

SCHEMA_VERSION = 1


def as_text(needs: ProfileNeeds, snapshot: ClusterSnapshot, results: list[CheckResult], values: str) -> str:
    context = f"context {snapshot.context}" if snapshot.context else "in-cluster"
    lines = [f"preflight of {values} (release {needs.release}, namespace {needs.namespace}) on {context}, "
             f"{snapshot.server} (Kubernetes {snapshot.kubernetes_version})"]
    for result in results:
        lines.append(f"{result.status.value:<5} {result.subject}: {result.detail}")
        if result.fix and result.status in (Status.FAIL, Status.WARN):
            lines.append(f"      fix: {result.fix}")
    counts = summary(results)
    lines.append(f"{len(results)} checks: " + ", ".join(f"{counts[s.value]} {s.value}" for s in Status))
    return "\n".join(lines)


def as_json(needs: ProfileNeeds, snapshot: ClusterSnapshot, results: list[CheckResult], values: str) -> str:
    return json.dumps({
        "schemaVersion": SCHEMA_VERSION,
        "values": values,
        "release": needs.release,
        "namespace": needs.namespace,
        "cluster": {"context": snapshot.context, "server": snapshot.server,
                    "kubernetesVersion": snapshot.kubernetes_version},
        "summary": summary(results),
        "checks": [to_json(r) for r in results],
    }, indent=2)
