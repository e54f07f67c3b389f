"""Spot and on-demand placement: which node pools each workload can land on, judged from the
NodePools in the render and the workloads' required node labels and tolerations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .findings import Document, Finding
from .policy import Rule
from .workloads import NodeSelection, as_dict, as_list, dig, node_selections

CAPACITY = "karpenter.sh/capacity-type"

RULES = {rule.id: rule for rule in [
    Rule("customer-on-spot", "the customer path can be scheduled onto spot nodes, which are evicted with 30 s notice",
         "require on-demand nodes (karpenter.sh/capacity-type: on-demand) and keep the customer pool on-demand"),
    Rule("nodepool-unselected", "no workload in the render selects this node pool's labels, so its GPU nodes serve nothing",
         "make the path's label selector match the pool's labels, or drop the pool"),
]}


@dataclass(frozen=True)
class Pool:
    """A node pool: the labels its nodes can have and the taints they carry."""

    document: Document
    labels: dict[str, frozenset[str]]  # label -> values its nodes can have
    taints: set[tuple[str, str | None, str]]
    name: str = ""  # how findings name it; the document's name when empty
    os_disk_gb: int | None = None  # its nodes' OS disk, where the render says
    node_class: str | None = None  # the AKSNodeClass a Karpenter NodePool uses

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.document.name)


def nodepools(documents: list[Document]) -> list[Pool]:
    """The Karpenter NodePools in the render."""
    # AKSNodeClass spec.osDiskSizeGB defaults to 128 (karpenter-provider-azure CRD).
    disks = {d.name: as_dict(d.obj.get("spec")).get("osDiskSizeGB", 128) for d in documents
             if d.kind == "AKSNodeClass" and isinstance(d.obj, dict)}
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
        node_class = as_dict(spec.get("nodeClassRef")).get("name")
        disk = disks.get(str(node_class))
        pools.append(Pool(document, labels, taints, os_disk_gb=disk if isinstance(disk, int) else None,
                          node_class=str(node_class) if node_class else None))
    return pools


def _can_land(selection: NodeSelection, pool: Pool) -> bool:
    return all(key in pool.labels and values & pool.labels[key] for key, values in selection.required.items())


def tolerates(tolerations: list[Any], taint: tuple[str, str | None, str]) -> bool:
    """The scheduler's rule: an empty key with Exists tolerates everything, Exists matches any
    value, and an empty effect matches every effect."""
    key, value, effect = taint
    for toleration in tolerations:
        if not isinstance(toleration, dict):
            continue
        if toleration.get("effect") not in (None, "", effect):
            continue
        if toleration.get("operator") == "Exists" and toleration.get("key") in (None, "", key):
            return True
        if (toleration.get("operator") in (None, "", "Equal") and toleration.get("key") == key
                and (toleration.get("value") or None) == (value or None)):
            return True
    return False


def _finding(document: Document, rule: str, message: str, path: str) -> Finding:
    return Finding.about(document, rule, message, RULES[rule].fix, path)


def check(documents: list[Document]) -> Iterator[Finding]:
    # Whether workloads tolerate their pools' taints is the convergence rules' business
    # (converge-pod-tolerations); here only which pools they can land on.
    pools = nodepools(documents)
    selections = list(node_selections(documents))
    for selection in selections:
        landing = [pool for pool in pools if _can_land(selection, pool)]
        spot_pools = [pool for pool in landing if "spot" in pool.labels[CAPACITY]]
        if selection.path_name == "customer" and spot_pools:
            names = ", ".join(p.document.name for p in spot_pools)
            yield _finding(selection.document, "customer-on-spot",
                           f"the customer path can land on spot capacity of NodePool {names}", "node selection")
    for pool in pools:
        if not any(_can_land(selection, pool) for selection in selections if selection.required):
            labels = ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in sorted(pool.labels.items()))
            yield _finding(pool.document, "nodepool-unselected", f"no workload selects nodes labelled {labels}",
                           "spec.template.metadata.labels")
