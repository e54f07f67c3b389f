"""`az aks nodepool add` commands for the aks node pool mode, built from the same values file
the chart renders, so the pools carry exactly the labels and taints the InferenceSets select."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from .errors import UserError
from .layout import display_path
from .profiles import Profile
from .rendering import effective_values, render_profile

# Labels AKS itself puts on every node of a pool (Microsoft Learn, use-labels).
AKS_INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
AKS_SPOT_LABEL = "kubernetes.azure.com/scalesetpriority"
# Set by the pool commands (the chart's hybrid-llm.nodePool.capacityLabelKey).
CAPACITY_LABEL = "hybrid-llm.io/capacity-type"


@dataclass(frozen=True)
class PoolCommand:
    path: str
    capacity_type: str
    args: list[str]
    labels: dict[str, str]  # labels set with --labels
    aks_labels: dict[str, str]  # labels AKS adds by itself

    def node_labels(self) -> dict[str, str]:
        return {**self.aks_labels, **self.labels}

    def shell(self) -> str:
        lines = [shlex.join(self.args[:4])]
        rest = self.args[4:]
        while rest:
            take = 2 if len(rest) > 1 and not rest[1].startswith("--") else 1
            lines.append(shlex.join(rest[:take]))
            rest = rest[take:]
        return " \\\n    ".join(lines)


def pool_commands(profile: Profile) -> list[PoolCommand]:
    render_profile(profile)  # the chart's schema and guardrails apply before any command is printed
    values = effective_values(profile.values)
    pools = values["nodePools"]
    if pools["mode"] != "aks":
        raise UserError(
            display_path(profile.path),
            f"nodePools.mode is {pools['mode']}: az aks nodepool commands are only for aks mode"
            + (" (nap mode renders Karpenter NodePools instead)" if pools["mode"] == "nap" else ""),
            "use a values file with nodePools.mode: aks, such as values/spot-batch-aks.yaml",
        )
    aks = pools["aks"]
    commands = []
    for name, path in sorted(values["paths"].items()):
        if not path.get("enabled", True):
            continue
        node_pool = path["nodePool"]
        # AKS labels spot nodes kubernetes.azure.com/scalesetpriority=spot but writes nothing on regular
        # ones, so the pools carry their capacity type themselves: the InferenceSet requires it, and
        # after a flip an on-demand path cannot land on the old spot pool.
        labels = {pools["pathLabelKey"]: name, CAPACITY_LABEL: path["capacityType"]}
        aks_labels = {AKS_INSTANCE_TYPE_LABEL: path["instanceType"]}
        # Start at the pool's minimum: the chart's node anchor makes the autoscaler add the node the
        # path needs when `helm install` runs, so nothing idles (or is scaled away) before then.
        initial = node_pool["minNodes"]
        args = [
            "az", "aks", "nodepool", "add",
            "--resource-group", aks["resourceGroup"],
            "--cluster-name", aks["clusterName"],
            "--name", node_pool["aksPoolName"],
            "--mode", "User",
            "--node-vm-size", path["instanceType"],
            "--os-sku", aks["osSku"],
            # byo: KAITO keeps the weights in an emptyDir on the OS disk (no NVMe for an unknown SKU).
            "--node-osdisk-size", str(aks["osDiskSizeGB"]),
            "--gpu-driver", aks["gpuDriver"],
            # KAITO's vLLM pods tolerate sku=gpu:NoSchedule; everything else stays off the GPUs.
            "--node-taints", "sku=gpu:NoSchedule",
            # az takes the labels as separate key=value words (a single quoted word would be one label).
            "--labels", *(f"{k}={v}" for k, v in labels.items()),
            "--enable-cluster-autoscaler",
            "--min-count", str(node_pool["minNodes"]),
            "--max-count", str(node_pool["maxNodes"]),
            "--node-count", str(initial),
        ]
        if path["capacityType"] == "spot":
            # AKS adds the label and taint kubernetes.azure.com/scalesetpriority=spot itself.
            args += ["--priority", "Spot", "--eviction-policy", "Delete", "--spot-max-price", "-1"]
            aks_labels[AKS_SPOT_LABEL] = "spot"
        commands.append(PoolCommand(name, path["capacityType"], args, labels, aks_labels))
    return commands
