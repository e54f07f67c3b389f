"""Switching a path between spot and on-demand is a one-line change, and it changes exactly the
fields that depend on the capacity type: nothing else moves."""

from __future__ import annotations

from typing import Any

import yaml

from conftest import Render
from hybridllm.nodepools import pool_commands
from hybridllm.profiles import Profile, load_profile
from hybridllm.rendering import Rendering
from hybridllm.yamlfiles import merge_values


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    if isinstance(value, str) and "\n" in value:  # embedded YAML files: compare their content
        try:
            return flatten(yaml.safe_load(value), prefix + "|")
        except yaml.YAMLError:
            pass
    return {prefix: value}


def changes(before: Rendering, after: Rendering) -> set[str]:
    def index(rendering: Rendering) -> dict[str, Any]:
        # Objects embedded for the apply-serving Job are indexed as objects of their own, so their
        # carrier ConfigMap's copy of them is left out.
        carried = {o.embedded_in.split(" data.", 1)[1] for o in rendering.objects if o.embedded_in}
        return {f"{o.kind}/{o.name}": {field: value for field, value in flatten(o.obj).items()
                                       if not (o.kind == "ConfigMap" and field.split("|")[0].removeprefix("data.") in carried)}
                for o in rendering.objects}

    old, new = index(before), index(after)
    assert old.keys() == new.keys(), "flipping the capacity type must not add or remove objects"
    changed = set()
    for obj in old:
        for field in old[obj].keys() | new[obj].keys():
            if old[obj].get(field) != new[obj].get(field):
                changed.add(f"{obj}:{field}")
    return changed


def test_flipping_batch_to_on_demand_in_nap_mode(render: Render) -> None:
    flipped = render("hybrid", {"paths": {"batch": {"capacityType": "on-demand"}}})
    assert changes(render("hybrid"), flipped) == {
        "InferenceSet/hybrid-llm-batch:metadata.labels.hybrid-llm.io/capacity-type",
        "InferenceSet/hybrid-llm-batch:spec.labelSelector.matchLabels.karpenter.sh/capacity-type",
        "NodePool/hybrid-llm-batch:spec.template.spec.requirements[1].values[0]",
        # the spot taint goes away
        "NodePool/hybrid-llm-batch:spec.template.spec.taints[1].key",
        "NodePool/hybrid-llm-batch:spec.template.spec.taints[1].value",
        "NodePool/hybrid-llm-batch:spec.template.spec.taints[1].effect",
        # the node anchor the apply-serving Job uses asks for an on-demand node, and no longer
        # tolerates the spot taint; the Job's plan carries the new node label selector
        "Deployment/hybrid-llm-batch-node-anchor:spec.template.spec.nodeSelector.karpenter.sh/capacity-type",
        "Deployment/hybrid-llm-batch-node-anchor:spec.template.spec.tolerations[1].key",
        "Deployment/hybrid-llm-batch-node-anchor:spec.template.spec.tolerations[1].operator",
        "Deployment/hybrid-llm-batch-node-anchor:spec.template.spec.tolerations[1].value",
        "Deployment/hybrid-llm-batch-node-anchor:spec.template.spec.tolerations[1].effect",
        "ConfigMap/hybrid-llm-serving:data.plan.tsv",
    }
    pool = flipped.find("NodePool", "hybrid-llm-batch")
    assert pool["spec"]["template"]["spec"]["requirements"][1] == {
        "key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}


def test_flipping_batch_to_on_demand_in_aks_mode(render: Render) -> None:
    overrides = {"paths": {"batch": {"capacityType": "on-demand"}}}
    assert changes(render("spot-batch-aks"), render("spot-batch-aks", overrides)) == {
        "InferenceSet/hybrid-llm-batch:metadata.labels.hybrid-llm.io/capacity-type",
        "InferenceSet/hybrid-llm-batch:spec.labelSelector.matchLabels.kubernetes.azure.com/scalesetpriority",
        # AKS marks spot nodes but not regular ones: the pools carry hybrid-llm.io/capacity-type, so
        # after the flip the old spot pool's nodes no longer match the batch selector
        "InferenceSet/hybrid-llm-batch:spec.labelSelector.matchLabels.hybrid-llm.io/capacity-type",
        "Deployment/hybrid-llm-batch-node-anchor:spec.template.spec.nodeSelector.hybrid-llm.io/capacity-type",
        # the AKS pool the anchor declares (for validators) loses the spot label and taint
        "Deployment/hybrid-llm-batch-node-anchor:metadata.annotations.hybrid-llm.io/external-node-pool",
        "Deployment/hybrid-llm-batch-node-anchor:spec.template.spec.nodeSelector.kubernetes.azure.com/scalesetpriority",
        "Deployment/hybrid-llm-batch-node-anchor:spec.template.spec.tolerations[1].key",
        "Deployment/hybrid-llm-batch-node-anchor:spec.template.spec.tolerations[1].operator",
        "Deployment/hybrid-llm-batch-node-anchor:spec.template.spec.tolerations[1].value",
        "Deployment/hybrid-llm-batch-node-anchor:spec.template.spec.tolerations[1].effect",
        "ConfigMap/hybrid-llm-serving:data.plan.tsv",
    }
    base = load_profile("spot-batch-aks")
    flipped = Profile(base.name, base.path, merge_values(base.values, overrides))
    before = {c.path: c.args for c in pool_commands(base)}
    after = {c.path: c.args for c in pool_commands(flipped)}
    assert after["customer"] == before["customer"]
    assert before["batch"][-6:] == ["--priority", "Spot", "--eviction-policy", "Delete", "--spot-max-price", "-1"]
    changed = [(old, new) for old, new in zip(before["batch"][:-6], after["batch"]) if old != new]
    assert changed == [("hybrid-llm.io/capacity-type=spot", "hybrid-llm.io/capacity-type=on-demand")]
    assert len(after["batch"]) == len(before["batch"]) - 6
