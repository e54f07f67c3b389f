"""What the applier prints for a path that got no admissible GPU node in time: the nodes matching
its selector (Ready? GPU-labelled?), its anchor pods and why the scheduler left them Pending."""

from __future__ import annotations

from applier.cluster import GPU_LABELS, Cluster
from applier.kube import ApiError
from applier.log import log
from applier.plan import PathPlan


def anchor_pod_selector(release: str, path: str) -> str:
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/component=node-anchor-{path}"


def diagnose(cluster: Cluster, path: PathPlan, release: str) -> None:
    # Each part on its own: a failing request must not hide what the others can show.
    log(f"{path.name}: nodes matching {path.node_selector} (name, Ready, {GPU_LABELS[0]}):")
    try:
        nodes = cluster.node_rows(path.node_selector)
    except ApiError as exc:
        log(f"  (could not list them: {exc})")
    else:
        for node in nodes:
            log(f"  {node.name} {node.ready} {node.gpu_product}")
        if not nodes:
            log("  (none)")
    log(f"{path.name}: anchor pods and their scheduling events:")
    try:
        pods = cluster.pod_rows(anchor_pod_selector(release, path.name))
    except ApiError as exc:
        log(f"  (could not list the pods: {exc})")
    else:
        for pod in pods:
            log(f"  pod {pod.name} {pod.phase} on {pod.node}")
        if not pods:
            log(f"  (no pod of {path.anchor})")
    try:
        failures = cluster.scheduling_failures(f"{path.anchor}-")
    except ApiError as exc:
        log(f"  (could not list the events: {exc})")
    else:
        for failure in failures:
            log(f"  FailedScheduling {failure}")
