"""What the applier prints for a path (or an InferenceSet to delete) that got no admissible GPU node
in time: the nodes matching its selector (Ready? GPU-labelled?), its anchor pods and why the
scheduler left them Pending."""

from __future__ import annotations

from applier.cluster import GPU_LABELS, Cluster
from applier.kube import ApiError
from applier.log import log
from applier.plan import PathPlan


def anchor_pod_selector(release: str, path: str) -> str:
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/component=node-anchor-{path}"


def diagnose(cluster: Cluster, path: PathPlan, release: str) -> None:
    diagnose_nodes(cluster, path.name, path.node_selector, path.anchor, release, path.name)


def diagnose_nodes(cluster: Cluster, subject: str, node_selector: str, anchor: str, release: str, path: str) -> None:
    """`subject` starts each heading (a path, or an InferenceSet being deleted); `anchor` and
    `path` find the node anchor's pods and their events."""
    # Each part on its own: a failing request must not hide what the others can show.
    log(f"{subject}: nodes matching {node_selector} (name, Ready, {GPU_LABELS[0]}):")
    try:
        nodes = cluster.node_rows(node_selector)
    except ApiError as exc:
        log(f"  (could not list them: {exc})")
    else:
        for node in nodes:
            log(f"  {node.name} {node.ready} {node.gpu_product}")
        if not nodes:
            log("  (none)")
    if not anchor:
        return
    log(f"{subject}: anchor pods and their scheduling events:")
    try:
        pods = cluster.pod_rows(anchor_pod_selector(release, path))
    except ApiError as exc:
        log(f"  (could not list the pods: {exc})")
    else:
        for pod in pods:
            log(f"  pod {pod.name} {pod.phase} on {pod.node}")
        if not pods:
            log(f"  (no pod of {anchor})")
    try:
        failures = cluster.scheduling_failures(f"{anchor}-")
    except ApiError as exc:
        log(f"  (could not list the events: {exc})")
    else:
        for failure in failures:
            log(f"  FailedScheduling {failure}")
