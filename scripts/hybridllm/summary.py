"""The short per-profile summary `make render` prints."""

from __future__ import annotations

from collections import Counter

from . import figures
from .rendering import Rendering


def summarize(rendering: Rendering) -> str:
    values = rendering.values
    mode = values.get("nodePools", {}).get("mode", "nap")
    kinds = Counter(o.kind for o in rendering.objects)
    lines = [f"{rendering.profile.name}: {len(rendering.objects)} objects, node pools {mode}"]
    lines.append("  objects: " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())))
    total_gpus = 0
    inference_sets = rendering.of_kind("InferenceSet")
    for iset in inference_sets:
        labels = iset["metadata"].get("labels", {})
        path = labels.get("app.kubernetes.io/component", "").removeprefix("vllm-")
        capacity = labels.get("hybrid-llm.io/capacity-type", "?")
        replicas = int(iset["spec"].get("replicas", 1))
        instance_type = _instance_type(iset)
        per_node = figures.gpus_per_node(instance_type)
        total_gpus += replicas * per_node
        lines.append(
            f"  path {path}: {capacity}, {replicas} replica(s) x {instance_type} "
            f"({per_node} GPUs per node)"
        )
    if not inference_sets:
        lines.append("  no GPU paths: Azure OpenAI only")
    lines.append(f"  GPUs at the configured replicas: {total_gpus}")
    return "\n".join(lines)


def _instance_type(iset: dict) -> str:
    rendered = iset["spec"]["template"].get("resource", {}).get("instanceType")
    if rendered:
        return rendered
    # byo modes pin the SKU through the node label the path requires.
    return iset["spec"]["labelSelector"]["matchLabels"]["node.kubernetes.io/instance-type"]
