"""Deleting the release's InferenceSets in the byo node pool modes (`python -m applier --teardown`),
so that none is left Terminating.

Why a node first: KAITO's controller deletes an InferenceSet by writing its status (condition
Deleting) and then removing its finalizer with an update (kaito
pkg/inferenceset/inferenceset_controller.go deleteInferenceSet, garbageCollectInferenceSet;
pkg/utils/inferenceset/inferenceset.go UpdateStatusConditionIfNotMatch). KAITO's webhook validates
both writes like any update (knative.dev/pkg webhook/resourcesemantics/validation/reconcile_config.go
registers `inferencesets` and `inferencesets/status`; api/v1beta1/inferenceset_validation.go
Validate does not look at deletionTimestamp), and in byo mode refuses them while no admissible node
matches the selector. Deleted then, the InferenceSet stays Terminating for good, and the garbage
collector never removes its Workspaces. So, for each InferenceSet of the release not to be kept:

1. with no admissible node for its live label selector, create its path's node anchor (from the
   serving ConfigMap, which carries both paths' anchors) and wait for the node;
2. delete it, or, when it is already Terminating, touch it so KAITO reconciles it now;
3. wait until it is gone (its finalizer removed), then delete the anchor.

No node within the node timeout: the InferenceSet is not deleted (a Terminating one cannot be
taken back), the anchor is deleted, and the run fails saying so.

The chart runs this from two hooks, both only with serving.keepOnUninstall=false: pre-upgrade and
pre-rollback, for the paths the new revision disables (`--keep-inference-set` names the others),
because Helm deletes a disabled path's NodePool during the upgrade, and Karpenter's NodeClaims are
owned by their NodePool (karpenter v1.14.0 pkg/controllers/provisioning/scheduling/nodeclaimtemplate.go
ToNodeClaim), so after it no node of that pool can come; and pre-delete, for all of them, before
`helm uninstall` deletes the NodePools.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from applier.cluster import Cluster, node_can_cure
from applier.converge import Failed, remove_anchor
from applier.diagnose import diagnose_nodes
from applier.kube import DEPLOYMENTS, ApiError
from applier.log import log
from applier.plan import Manifest


class Step(Enum):
    START = "start"  # not yet looked at, or the look failed
    WAIT_NODE = "wait-node"  # the anchor is in; waiting for an admissible node
    DELETE = "delete"  # an admissible node is up; delete it
    WAIT_GONE = "wait-gone"  # deleted; waiting for KAITO to remove its finalizer
    DONE = "done"


@dataclass(frozen=True)
class TeardownSettings:
    release: str
    selector: str  # the release's InferenceSets
    keep: frozenset[str]  # ...but not these
    node_timeout: float
    gone_timeout: float
    poll: float
    owner_config_map: str = ""
    owner_uid_placeholder: str = ""


@dataclass
class Doomed:
    """One InferenceSet to delete, and what its deletion needs."""

    name: str
    path: str  # the serving path, "" when its labels do not say
    node_selector: str  # its live labelSelector.matchLabels, as k=v,k=v
    anchor: dict[str, Any] | None  # its path's node anchor, selecting exactly those labels
    step: Step = Step.START
    gone_deadline: float = 0.0
    last_error: str = ""

    @property
    def label(self) -> str:
        return f"InferenceSet {self.name}" + (f" ({self.path} path)" if self.path else "")

    @property
    def anchor_name(self) -> str:
        return self.anchor["metadata"]["name"] if self.anchor else ""


class Teardown:
    def __init__(
        self,
        cluster: Cluster,
        anchors: dict[str, Manifest],
        settings: TeardownSettings,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cluster, self.anchors, self.settings = cluster, anchors, settings
        self.clock, self.sleep = clock, sleep

    def run(self) -> None:
        node_deadline = self.clock() + self.settings.node_timeout
        owner_uid = self._owner_uid(node_deadline)
        live = self._retrying(node_deadline, "listing the release's InferenceSets",
                              lambda: self.cluster.inference_sets(self.settings.selector))
        doomed = [self._doomed(obj, owner_uid) for obj in live if obj["metadata"]["name"] not in self.settings.keep]
        if not doomed:
            log(f"no InferenceSet of release {self.settings.release} to delete")
            return
        log(f"deleting: {', '.join(d.label for d in doomed)}")
        while True:
            for item in doomed:
                self._advance(item)
            if all(d.step is Step.DONE for d in doomed):
                break
            now = self.clock()
            waiting = [d for d in doomed if d.step in (Step.START, Step.WAIT_NODE)]
            if waiting and now >= node_deadline:
                self._node_timeout(waiting)
            late = [d for d in doomed if d.step is Step.WAIT_GONE and now >= d.gone_deadline]
            if late:
                self._gone_timeout(late)
            self.sleep(self.settings.poll)
        log(f"deleted: {', '.join(d.name for d in doomed)}")

    # -- one InferenceSet
    def _doomed(self, obj: dict[str, Any], owner_uid: str | None) -> Doomed:
        meta = obj["metadata"]
        component = (meta.get("labels") or {}).get("app.kubernetes.io/component", "")
        path = component.removeprefix("vllm-") if component.startswith("vllm-") else ""
        match_labels = ((obj.get("spec") or {}).get("labelSelector") or {}).get("matchLabels") or {}
        if path not in self.anchors:
            # Labels from elsewhere: the chart names a path's anchor after its InferenceSet.
            path = next((p for p, m in self.anchors.items() if m.name == f"{meta['name']}-node-anchor"), path)
        manifest = self.anchors.get(path)
        anchor = None
        if manifest is not None:
            anchor = (manifest.owned_by(self.settings.owner_uid_placeholder, owner_uid) if owner_uid
                      else _without_placeholder_owner(manifest, self.settings.owner_uid_placeholder))
            # The webhook checks the live selector, which an earlier revision may have written:
            # the anchor asks for exactly that.
            anchor["spec"]["template"]["spec"]["nodeSelector"] = dict(match_labels)
        selector = ",".join(f"{k}={v}" for k, v in match_labels.items())
        return Doomed(meta["name"], path, selector, anchor)

    def _advance(self, item: Doomed) -> None:
        try:
            if item.step is Step.START:
                self._start(item)
            if item.step is Step.WAIT_NODE and self._admissible(item):
                log(f"{item.name}: admissible GPU node is up")
                item.step = Step.DELETE
            if item.step is Step.DELETE:
                self._delete(item)
            if item.step is Step.WAIT_GONE:
                self._wait_gone(item)
        except ApiError as exc:
            if not exc.transient:
                raise Failed(f"FAILED: {item.label}: the API server refused a request: {exc}",
                             "Fix: correct what the message names, then run the same helm command again.") from None
            item.last_error = str(exc)
            log(f"{item.name}: no usable answer from the API server ({exc}); asking again in {self.settings.poll:g}s")

    def _admissible(self, item: Doomed) -> bool:
        return bool(item.node_selector) and self.cluster.node_check(item.node_selector).admissible

    def _start(self, item: Doomed) -> None:
        if self.cluster.inference_set(item.name) is None:
            item.step = Step.DONE
        elif self._admissible(item):
            item.step = Step.DELETE
        else:
            self._bring_node(item)
            item.step = Step.WAIT_NODE

    def _bring_node(self, item: Doomed) -> None:
        if item.anchor is None:
            raise Failed(
                f"FAILED: {item.label}: no admissible GPU node matches its selector {item.node_selector or '(none)'}, and the "
                "serving ConfigMap has no node anchor for it, so nothing can bring one up. Deleting it now would leave it "
                "Terminating: KAITO's webhook refuses the status write and finalizer removal of its deletion while no node matches.",
                "Fix: bring up a GPU node with those labels (scale its node pool), then run the same helm command again; "
                "the README's 'Two upstream limits remain' says how.")
        log(f"{item.name}: no admissible GPU node for {item.node_selector}; creating node anchor {item.anchor_name} "
            "so its deletion can go through")
        self.cluster.apply(DEPLOYMENTS, item.anchor)

    def _delete(self, item: Doomed) -> None:
        live = self.cluster.inference_set(item.name)
        if live is None:
            self._finish(item)
            return
        try:
            if live["metadata"].get("deletionTimestamp"):
                log(f"{item.name}: already Terminating; touching it so KAITO finishes its deletion now that a node is up")
                self.cluster.touch_inference_set(item.name, "a node is up for the deletion")
            else:
                log(f"{item.name}: deleting InferenceSet {item.name}")
                self.cluster.delete_inference_set(item.name)
        except ApiError as exc:
            if exc.transient or not node_can_cure(exc.message):
                raise
            # The node went between the check and the write (a spot eviction).
            log(f"{item.name}: the node went before the write: {exc.message}")
            item.step = Step.START
            return
        item.step = Step.WAIT_GONE
        item.gone_deadline = self.clock() + self.settings.gone_timeout

    def _wait_gone(self, item: Doomed) -> None:
        if self.cluster.inference_set(item.name) is None:
            self._finish(item)
        elif item.anchor is not None and not self._admissible(item) and not self.cluster.deployment_exists(item.anchor_name):
            # Its node went before KAITO was done: bring one back, or the finalizer stays.
            self._bring_node(item)

    def _finish(self, item: Doomed) -> None:
        log(f"{item.name}: gone")
        if item.anchor is not None and self.cluster.delete_deployment(item.anchor_name):
            log(f"{item.name}: deleted the node anchor {item.anchor_name}")
        item.step = Step.DONE

    # -- once per run
    def _owner_uid(self, deadline: float) -> str | None:
        name = self.settings.owner_config_map
        if not name or not self.anchors:
            return None
        return self._retrying(deadline, f"reading the UID of ConfigMap {name}", lambda: self.cluster.config_map_uid(name))

    def _retrying(self, deadline: float, what: str, action: Callable[[], Any]) -> Any:
        while True:
            try:
                return action()
            except ApiError as exc:
                if not exc.transient:
                    raise Failed(f"FAILED: {what}: the API server refused: {exc}",
                                 "Fix: correct what the message names, then run the same helm command again.") from None
                if self.clock() >= deadline:
                    raise Failed(f"FAILED: {what}: no usable answer from the API server before the deadline: {exc}",
                                 "Fix: check the API server's health and the Job's NetworkPolicy egress "
                                 "(serving.applier.apiServerCIDRs), then run the same helm command again.") from None
                log(f"{what}: no usable answer from the API server ({exc}); asking again in {self.settings.poll:g}s")
                self.sleep(self.settings.poll)

    # -- failures
    def _node_timeout(self, items: list[Doomed]) -> None:
        for item in items:
            diagnose_nodes(self.cluster, item.name, item.node_selector, item.anchor_name, self.settings.release, item.path)
            if item.last_error:
                log(f"{item.name}: the last request that failed: {item.last_error}")
            if item.anchor is not None:
                remove_anchor(self.cluster, item.name, item.anchor_name)
        raise Failed(
            f"FAILED: no admissible GPU node within {self.settings.node_timeout:g}s to delete: "
            f"{', '.join(i.label for i in items)}. It was NOT deleted: KAITO's webhook refuses the status write and the "
            "finalizer removal of a deletion while no node matches its selector, so it would stay Terminating.",
            "Fix: check the events above (GPU quota, spot capacity, NodePool limits), then run the same helm command again. "
            "The node anchors were deleted, so no GPU node starts later with nothing to use it.")

    def _gone_timeout(self, items: list[Doomed]) -> None:
        ns = self.cluster.namespace
        for item in items:
            if item.anchor is not None:
                remove_anchor(self.cluster, item.name, item.anchor_name)
        raise Failed(
            f"FAILED: still there {self.settings.gone_timeout:g}s after their deletion, with KAITO's finalizer: "
            f"{', '.join(i.label for i in items)}.",
            f"Fix: kubectl -n {ns} describe inferenceset <name>, and KAITO's controller log (kaito-workspace) for the "
            "refused writes; then run the same helm command again, which brings the node up and touches it again.")


def _without_placeholder_owner(manifest: Manifest, placeholder: str) -> dict[str, Any]:
    """With no serving ConfigMap to own it, an anchor must not name the placeholder UID: the garbage
    collector would delete it at once."""
    obj = manifest.owned_by(placeholder, "")
    owners = [o for o in obj["metadata"].get("ownerReferences") or [] if o.get("uid")]
    if owners:
        obj["metadata"]["ownerReferences"] = owners
    else:
        obj["metadata"].pop("ownerReferences", None)
    return obj
