"""Spot and on-demand placement: which node pools each workload can land on, judged from the
NodePools in the render and the workloads' required node labels and tolerations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .findings import Document, Finding
from .policy import Rule
from .workloads import NodeSelection, as_dict, as_list, dig, node_selections

CAPACITY = "karpenter.sh/capacity-type"
SPOT_TAINT = ("kubernetes.azure.com/scalesetpriority", "spot", "NoSchedule")

RULES = {rule.id: rule for rule in [
    Rule("customer-on-spot", "the customer path can be scheduled onto spot nodes, which are evicted with 30 s notice",
         "require on-demand nodes (karpenter.sh/capacity-type: on-demand) and keep the customer pool on-demand"),
    Rule("spot-toleration", "a workload meant for a spot pool does not tolerate its spot taint, so it never schedules",
         "add the toleration kubernetes.azure.com/scalesetpriority=spot:NoSchedule"),
    Rule("nodepool-unselected", "no workload in the render selects this node pool's labels, so its GPU nodes serve nothing",
         "make the path's label selector match the pool's labels, or drop the pool"),
]}


@dataclass(frozen=True)
class Pool:
    document: Document
    labels: dict[str, frozenset[str]]  # label -> values its nodes can have
    taints: set[tuple[str, str | None, str]]


def _pools(documents: list[Document]) -> list[Pool]:
    pools = []
    for document in documents:
        if document.kind != "NodePool" or not isinstance(document.obj, dict):
            continue
        template = as_dict(dig(document.obj, "spec", "template"))
        spec = as_dict(template.get("spec"))
        labels = {str(k): frozenset([str(v)]) for k, v in as_dict(dig(template, "metadata", "labels")).items()}
        for requirement in as_list(spec.get("requirements")):
            if isinstance(requirement, dict) and requirement.get("operator") == "In":
                labels[str(requirement.get("key"))] = frozenset(map(str, as_list(requirement.get("values"))))
        # Karpenter's default capacity type is on-demand when a pool does not say.
        labels.setdefault(CAPACITY, frozenset(["on-demand"]))
        taints = {(t.get("key"), t.get("value"), t.get("effect")) for t in as_list(spec.get("taints")) if isinstance(t, dict)}
        pools.append(Pool(document, labels, taints))
    return pools


def _can_land(selection: NodeSelection, pool: Pool) -> bool:
    return all(key in pool.labels and values & pool.labels[key] for key, values in selection.required.items())


def _tolerates(tolerations: list[dict[str, Any]], taint: tuple[str, str | None, str]) -> bool:
    key, value, effect = taint
    for toleration in tolerations:
        if not isinstance(toleration, dict):
            continue
        if toleration.get("effect") not in (None, "", effect):
            continue
        if toleration.get("operator") == "Exists" and toleration.get("key") in (None, "", key):
            return True
        if toleration.get("key") == key and toleration.get("value") == value:
            return True
    return False


def _finding(document: Document, rule: str, message: str, path: str) -> Finding:
    return Finding.about(document, rule, message, RULES[rule].fix, path)


def check(documents: list[Document]) -> Iterator[Finding]:
    pools = _pools(documents)
    selections = list(node_selections(documents))
    for selection in selections:
        landing = [pool for pool in pools if _can_land(selection, pool)]
        spot_pools = [pool for pool in landing if "spot" in pool.labels[CAPACITY]]
        if selection.path_name == "customer" and spot_pools:
            names = ", ".join(p.document.name for p in spot_pools)
            yield _finding(selection.document, "customer-on-spot",
                           f"the customer path can land on spot capacity of NodePool {names}", "node selection")
        if selection.tolerations is not None:  # KAITO adds its own tolerations to InferenceSet pods
            for pool in landing:
                if SPOT_TAINT in pool.taints and not _tolerates(selection.tolerations, SPOT_TAINT):
                    yield _finding(selection.document, "spot-toleration",
                                   f"meant for spot NodePool {pool.document.name} but does not tolerate its spot taint",
                                   "spec.template.spec.tolerations")
    for pool in pools:
        if not any(_can_land(selection, pool) for selection in selections if selection.required):
            labels = ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in sorted(pool.labels.items()))
            yield _finding(pool.document, "nodepool-unselected", f"no workload selects nodes labelled {labels}",
                           "spec.template.metadata.labels")
