"""The convergence loop: per path, bring up a node KAITO will admit, apply the InferenceSet, and hand
the node over from the anchor to a vLLM pod.

Why this order: with nodeProvisioner=byo, KAITO's webhook refuses an InferenceSet, on create and
on every update, while no node matches its label selector or any matching node lacks the GPU
labels (kaito api/v1beta1/workspace_validation.go validateCreateWithInference, run for
InferenceSets by pkg/utils/inferenceset/inferenceset.go ValidateWorkspaceForInferenceSet), and
KAITO never creates a Pending pod in byo mode (pkg/nodeprovision/byo-provisioner/byo_provisioner.go),
so nothing else would bring the node up. Per path:

0. when the live InferenceSet already is what the chart asks for (applier/drift.py), leave it: no
   anchor, no wait, no write. After a spot eviction its StatefulSet's Pending vLLM pod brings the
   node back by itself (KAITO keeps the StatefulSet; byo EnsureNodesReady only requeues,
   pkg/workspace/controllers/workspace_controller.go), so an upgrade that changes nothing there
   (a gateway-only one) must not wait for spot capacity. An anchor an interrupted run left is
   still handed over (3);
1. with no admissible node (at least one Ready matching node, and every matching node GPU-labelled)
   and replicas wanted, create the node anchor: a pause pod Pending on the path's labels and taints,
   so Karpenter or the cluster autoscaler adds a node;
2. once the node is admissible, server-side-apply the InferenceSet, retrying while the webhook
   refuses it for want of a node (and bringing one back if it went meanwhile); a refusal for any
   other reason fails at once, as no node can change it;
3. once a vLLM pod is bound to a node matching the selector, delete the anchor, so a later
   scale-down can release that node. Pods bound only to nodes that no longer match (a capacity
   flip) keep the anchor: KAITO does not move running replicas, and the roll is printed and
   recorded as a Warning Event on the InferenceSet (`kubectl describe inferenceset`).

When no admissible node comes within the node timeout, the run fails with a diagnosis and deletes
the anchors it waited on: an anchor left behind would make the autoscaler start a GPU node
whenever capacity comes back, hours later, with nothing to apply the InferenceSet then, and a node
holding only the pause pod is never empty for consolidation. The next helm upgrade creates it again.

A path parked at 0 replicas loses any anchor an earlier, failed run left; with no node it is left
as it is (the webhook would refuse any change; its template applies when it is unparked). Anchors
of paths no longer in the plan are deleted (their InferenceSets are the prune Job's:
applier/teardown.py). A request the API server did not answer is asked again at the next poll: it
is never taken as an answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, TypeVar

from applier.cluster import Cluster, node_can_cure
from applier.diagnose import anchor_pod_selector, diagnose
from applier.drift import already_applied, with_digest
from applier.kube import DEPLOYMENTS, INFERENCE_SETS, ApiError
from applier.log import log
from applier.plan import KNOWN_PATHS, PathPlan, require_owner

T = TypeVar("T")
CAPACITY_FLIP_REASON = "ReplicasOnUnselectedNodes"


class Stage(Enum):
    START = "start"  # not yet looked at, or the look failed
    WAIT_NODE = "wait-node"  # the anchor is in; waiting for an admissible node
    APPLY = "apply"  # an admissible node is up; the InferenceSet goes in
    WAIT_POD = "wait-pod"  # applied; the anchor waits for a vLLM pod to take the node
    DONE = "done"


NODE_STAGES = frozenset({Stage.START, Stage.WAIT_NODE, Stage.APPLY})


@dataclass(frozen=True)
class Settings:
    release: str
    node_timeout: float
    pod_timeout: float
    poll: float
    owner_config_map: str = ""
    owner_uid_placeholder: str = ""


class Failed(Exception):
    """The run cannot succeed. `lines` say what happened and how to fix it."""

    def __init__(self, *lines: str) -> None:
        super().__init__(lines[0])
        self.lines = lines


@dataclass
class PathState:
    plan: PathPlan
    stage: Stage = Stage.START
    pod_deadline: float = 0.0
    last_error: str = ""


def _seconds(value: float) -> str:
    return f"{value:g}s"


class Applier:
    def __init__(
        self,
        cluster: Cluster,
        plan: list[PathPlan],
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cluster, self.plan, self.settings = cluster, plan, settings
        self.clock, self.sleep = clock, sleep
        require_owner(plan, settings.owner_uid_placeholder, settings.owner_config_map)
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}

    # -- the run
    def run(self) -> None:
        started = self.clock()
        node_deadline = started + self.settings.node_timeout
        self._fill_in_owner(node_deadline)
        self._retrying(node_deadline, "deleting the node anchors of paths no longer in the plan", self._delete_stale_anchors)
        states = [PathState(path) for path in self.plan]
        while True:
            for state in states:
                self._advance(state)
            if all(s.stage is Stage.DONE for s in states):
                break
            now = self.clock()
            waiting_for_nodes = [s for s in states if s.stage in NODE_STAGES]
            if waiting_for_nodes and now >= node_deadline:
                self._node_timeout(waiting_for_nodes)
            late = [s for s in states if s.stage is Stage.WAIT_POD and now >= s.pod_deadline]
            if late:
                self._pod_timeout(late)
            self.sleep(self.settings.poll)
        log("all serving paths applied")

    def _advance(self, state: PathState) -> None:
        """Takes the path as far as it goes now. A request the API server did not answer leaves
        the path where it was, to be asked again at the next poll."""
        try:
            if state.stage is Stage.START:
                self._start(state)
            if state.stage is Stage.WAIT_NODE and self.cluster.node_check(state.plan.node_selector).admissible:
                log(f"{state.plan.name}: admissible GPU node is up")
                state.stage = Stage.APPLY
            if state.stage is Stage.APPLY:
                self._apply(state)
            if state.stage is Stage.WAIT_POD:
                self._hand_over(state)
        except ApiError as exc:
            if not exc.transient:
                raise Failed(
                    f"FAILED: {state.plan.name}: the API server refused a request: {exc}",
                    _fix_for_refusal(exc),
                ) from None
            state.last_error = str(exc)
            log(f"{state.plan.name}: no usable answer from the API server ({exc}); asking again in {_seconds(self.settings.poll)}")

    # -- the stages
    def _start(self, state: PathState) -> None:
        path = state.plan
        # A run that was killed, or gave up waiting for a vLLM pod, keeps its anchor; once the path is
        # parked, it would keep a GPU node for nothing.
        if not path.wants_replicas and self.cluster.delete_deployment(path.anchor):
            log(f"{path.name}: parked at 0 replicas; deleting the node anchor {path.anchor} an earlier run left")
        if already_applied(self._objects[("InferenceSet", path.name)], self.cluster.inference_set(path.inference_set)):
            log(f"{path.name}: InferenceSet {path.inference_set} already is what the chart asks for; nothing to apply")
            if self.cluster.deployment_exists(path.anchor):
                # An interrupted run left it: hand the node over as after an apply.
                state.stage = Stage.WAIT_POD
                state.pod_deadline = self.clock() + self.settings.pod_timeout
            else:
                state.stage = Stage.DONE
            return
        if self.cluster.node_check(path.node_selector).admissible:
            state.stage = Stage.APPLY
        elif path.wants_replicas:
            self._create_anchor(path)
            state.stage = Stage.WAIT_NODE
        else:
            self._leave_parked(state)

    def _leave_parked(self, state: PathState) -> None:
        log(f"{state.plan.name}: parked at 0 replicas with no GPU node: KAITO's webhook refuses any change until a node "
            "exists, so the InferenceSet is left as it is; its template applies when the path is unparked")
        state.stage = Stage.DONE

    def _apply(self, state: PathState) -> None:
        path = state.plan
        try:
            self.cluster.apply(INFERENCE_SETS, self._objects[("InferenceSet", path.name)])
        except ApiError as exc:
            if exc.transient:
                raise
            if not node_can_cure(exc.message):
                raise Failed(
                    f"FAILED: {path.name}: InferenceSet {path.inference_set} was refused for a reason no GPU node can "
                    f"change (HTTP {exc.status} {exc.reason}): {exc.message}",
                    f"Fix: correct what the message names in the chart values it comes from (the object is "
                    f"{path.inference_set_manifest.file.name} in the serving ConfigMap; `helm template` shows it), "
                    "then run helm upgrade again.",
                ) from None
            log(f"{path.name}: not admitted yet: {exc.message}")
            if not self.cluster.node_check(path.node_selector).admissible:
                # The node went between the check and the apply (a spot eviction): bring one back,
                # or leave a parked path alone, as when it has no node at the start.
                if path.wants_replicas:
                    self._create_anchor(path)
                    state.stage = Stage.WAIT_NODE
                else:
                    self._leave_parked(state)
            return
        log(f"{path.name}: InferenceSet {path.inference_set} applied")
        state.stage = Stage.WAIT_POD
        state.pod_deadline = self.clock() + self.settings.pod_timeout

    def _hand_over(self, state: PathState) -> None:
        path = state.plan
        if not self.cluster.deployment_exists(path.anchor):
            state.stage = Stage.DONE
            return
        placement = self.cluster.placement(path.inference_set, path.node_selector)
        if placement.on_matching:
            log(f"{path.name}: a vLLM pod holds a node labelled {path.node_selector}; deleting node anchor {path.anchor}")
            self.cluster.delete_deployment(path.anchor)
            state.stage = Stage.DONE
        elif placement.on_other:
            # The selector changed under running replicas. Keep the anchor, so a node of the new kind
            # stays up for them, and say how to roll: KAITO admits the new replicas only while it exists.
            ns = self.cluster.namespace
            warning = (f"{placement.on_other} running replica(s) of {path.inference_set} are on nodes that no longer "
                       f"match {path.node_selector}; KAITO does not move running replicas to a changed template.")
            roll = (f"Roll them one at a time: kubectl -n {ns} get workspaces -l inferenceset.kaito.sh/created-by={path.inference_set}, "
                    f"then kubectl -n {ns} delete workspace <name> and wait for the new one to turn Ready. The node anchor "
                    f"{path.anchor} keeps a new node up meanwhile; the next helm upgrade removes it.")
            log(f"WARNING: {path.name}: {warning}")
            log(roll)
            self._warn_on_inference_set(path, CAPACITY_FLIP_REASON, f"{warning} {roll}")
            state.stage = Stage.DONE

    def _warn_on_inference_set(self, path: PathPlan, reason: str, message: str) -> None:
        """Best effort: the log says it all already; the Event keeps it where the operator looks
        once the Job is gone."""
        try:
            live = self.cluster.inference_set(path.inference_set)
            if live is not None:
                self.cluster.warn_on(live, reason, message)
                log(f"{path.name}: recorded as Event {reason} on InferenceSet {path.inference_set} (kubectl describe inferenceset)")
        except ApiError as exc:
            log(f"{path.name}: could not record the warning as an Event on InferenceSet {path.inference_set}: {exc}")

    def _create_anchor(self, path: PathPlan) -> None:
        log(f"{path.name}: no admissible GPU node for {path.node_selector} yet; creating node anchor {path.anchor}")
        self.cluster.apply(DEPLOYMENTS, self._objects[("Deployment", path.name)])

    # -- once per run
    def _fill_in_owner(self, deadline: float) -> None:
        """The objects to apply, owned by the serving ConfigMap where the chart says so: Helm
        manages that ConfigMap, so `helm uninstall` removes what it owns through garbage collection."""
        uid = ""
        name = self.settings.owner_config_map
        if name:
            found = self._retrying(deadline, f"reading the UID of ConfigMap {name}", lambda: self.cluster.config_map_uid(name))
            if found is None:
                raise Failed(
                    f"FAILED: the serving ConfigMap {name} is not in namespace {self.cluster.namespace}, so the objects "
                    "it should own cannot name it",
                    "Fix: run the applier from the chart's hook Job (helm upgrade), which installs that ConfigMap first.")
            uid = found
        for path in self.plan:
            placeholder = self.settings.owner_uid_placeholder
            self._objects[("InferenceSet", path.name)] = with_digest(path.inference_set_manifest.owned_by(placeholder, uid))
            self._objects[("Deployment", path.name)] = path.anchor_manifest.owned_by(placeholder, uid)

    def _delete_stale_anchors(self) -> None:
        planned = {path.name for path in self.plan}
        for name in KNOWN_PATHS:
            if name in planned:
                continue
            for anchor in self.cluster.deployments(anchor_pod_selector(self.settings.release, name)):
                log(f"{name}: the path is no longer in the plan; deleting its node anchor {anchor}")
                self.cluster.delete_deployment(anchor)

    def _retrying(self, deadline: float, what: str, action: Callable[[], T]) -> T:
        while True:
            try:
                return action()
            except ApiError as exc:
                if not exc.transient:
                    raise Failed(f"FAILED: {what}: the API server refused: {exc}", _fix_for_refusal(exc)) from None
                if self.clock() >= deadline:
                    raise Failed(
                        f"FAILED: {what}: no usable answer from the API server before the deadline: {exc}",
                        "Fix: check the API server's health and the Job's NetworkPolicy egress "
                        "(serving.applier.apiServerCIDRs), then run helm upgrade again.") from None
                log(f"{what}: no usable answer from the API server ({exc}); asking again in {_seconds(self.settings.poll)}")
                self.sleep(self.settings.poll)

    # -- failures
    def _node_timeout(self, states: list[PathState]) -> None:
        for state in states:
            diagnose(self.cluster, state.plan, self.settings.release)
            if state.last_error:
                log(f"{state.plan.name}: the last request that failed: {state.last_error}")
        for state in states:
            remove_anchor(self.cluster, state.plan.name, state.plan.anchor)
        names = " ".join(s.plan.name for s in states)
        raise Failed(
            f"FAILED: no admissible GPU node within {_seconds(self.settings.node_timeout)} for: {names}",
            "Fix: check the events above (GPU quota, spot capacity, NodePool limits), that GPU feature discovery runs on "
            "the GPU nodes (python scripts/preflight.py), then run helm upgrade again. The node anchors were deleted, so "
            "no GPU node starts later with nothing to use it; the next helm upgrade creates them again.",
        )

    def _pod_timeout(self, states: list[PathState]) -> None:
        ns = self.cluster.namespace
        lines = []
        for state in states:
            path = state.plan
            lines += [
                f"FAILED: {path.name}: no vLLM pod of {path.inference_set} was bound to a node within "
                f"{_seconds(self.settings.pod_timeout)}; the anchor {path.anchor} stays so its node is kept.",
                f"Fix: kubectl -n {ns} describe inferenceset {path.inference_set}; "
                f"kubectl -n {ns} get workspaces -l inferenceset.kaito.sh/created-by={path.inference_set}",
            ]
        raise Failed(*lines)


def remove_anchor(cluster: Cluster, path: str, anchor: str) -> None:
    """Deletes a node anchor after the diagnosis has shown it; a failure is said, not raised, so
    the run's own failure stays the one reported."""
    try:
        if cluster.delete_deployment(anchor):
            log(f"{path}: deleted the node anchor {anchor}")
    except ApiError as exc:
        log(f"{path}: could not delete the node anchor {anchor} ({exc}); `helm uninstall` or the next helm upgrade removes it")


def _fix_for_refusal(exc: ApiError) -> str:
    if exc.status == 403:
        return ("Fix: the Job's ServiceAccount lacks this permission; its Role and ClusterRole are in "
                "charts/hybrid-llm/templates/kaito/serving-job.yaml. Run helm upgrade with the chart that matches this applier.")
    if exc.status == 404:
        return "Fix: the resource type is not served by this cluster: install KAITO as the README says (python scripts/preflight.py checks it)."
    return "Fix: correct what the message names, then run helm upgrade again."
