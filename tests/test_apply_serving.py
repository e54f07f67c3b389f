"""Issue 9 item 1 (and 3): the serving applier hook Job brings a byo install from zero GPU nodes to
serving. The applier runs as the rendered Job runs it (`python -m applier` with the Job's args and
the serving ConfigMap's keys as files) against the simulated cluster of kube_sim (KAITO's webhook
and controllers, Karpenter, GPU feature discovery, the garbage collector), and the cluster's
timeline shows what happened in which order. No kubectl, bash or jq: the Job's image has none.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from applier.kube import EVENTS, INFERENCE_SETS, ApiError, KubeClient, Resource
from kube_sim import GPU_LABELS, SimulatedCluster, Timings

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILE = "hybrid"
SERVING_CONFIGMAP = "hybrid-llm-serving"
OWNER_UID_PLACEHOLDER = "SERVING-CONFIGMAP-UID"
RELEASE_LABELS = {"app.kubernetes.io/instance": "hybrid-llm", "app.kubernetes.io/part-of": "hybrid-llm"}
PATHS = ("batch", "customer")
NODE_POOLS = Resource("karpenter.sh", "v1", "nodepools", False)
# KAITO's GPU feature discovery as installed without the README's --set-json: it tolerates only
# CriticalAddonsOnly, nvidia.com/gpu and master taints (issue 9 item 2), not sku=gpu.
KAITO_DEFAULT_GFD_TOLERATIONS = [
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
]
FAST = Timings(node_launch=0.6, gpu_labels=0.4, vllm_pod=0.3)
RUN_BUDGET = {"poll-seconds": "0.2", "node-timeout-seconds": "20", "pod-timeout-seconds": "10"}
APPLY_JOB, PRUNE_JOB, TEARDOWN_JOB = "hybrid-llm-serving-applier", "hybrid-llm-serving-prune", "hybrid-llm-serving-teardown"
# No KUBERNETES_SERVICE_HOST and no ServiceAccount: only --api-server can reach a cluster.
JOB_ENV = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
_RUNS = itertools.count(1)


# ---- the release as rendered ------------------------------------------------------------------


@dataclass
class Release:
    """What the hook Job gets from the chart: the serving ConfigMap's files, its command and args."""

    rendering: Any

    @property
    def serving(self) -> dict[str, Any]:
        return self.rendering.find("ConfigMap", SERVING_CONFIGMAP)

    def file(self, key: str) -> dict[str, Any]:
        return yaml.safe_load(self.serving["data"][key])

    def node_pool(self, path: str) -> str:
        return next(
            pool["metadata"]["name"]
            for pool in self.rendering.of_kind("NodePool")
            if pool["spec"]["template"]["metadata"]["labels"].get("hybrid-llm.io/path") == path
        )

    def gfd_tolerations(self) -> tuple[list[dict], list[dict]]:
        """The GPU feature discovery tolerations of the KAITO install this release declares."""
        values = yaml.safe_load(self.rendering.find("ConfigMap", "hybrid-llm-kaito-install")["data"]["values.yaml"])
        gfd = values["gpu-feature-discovery"]
        return gfd["tolerations"], gfd["nfd"]["worker"]["tolerations"]

    def cluster(self, timings: Timings = FAST, gfd_tolerations: list[dict] | None = None, installed: bool = True) -> SimulatedCluster:
        """A cluster with no GPU node. `installed`: as `helm install` leaves it when the
        post-install hook starts, with the release's NodePools and serving ConfigMap.
        `gfd_tolerations`: GPU feature discovery's, instead of those the release declares."""
        gfd, nfd = self.gfd_tolerations() if gfd_tolerations is None else (gfd_tolerations, gfd_tolerations)
        cluster = SimulatedCluster(timings, gfd_tolerations=gfd, nfd_worker_tolerations=nfd)
        if installed:
            for pool in self.rendering.of_kind("NodePool"):
                cluster.seed(pool)
            cluster.seed(self.serving)
        return cluster

    def job(self, name: str = APPLY_JOB) -> dict[str, Any]:
        return self.rendering.find("Job", name)

    def container(self, job: str = APPLY_JOB) -> dict[str, Any]:
        if job == APPLY_JOB:
            jobs = [j for j in self.rendering.of_kind("Job") if j["metadata"]["labels"].get("app.kubernetes.io/component") == "serving-applier"]
            assert len(jobs) == 1, "the chart renders one serving applier Job in byo modes"
        return self.job(job)["spec"]["template"]["spec"]["containers"][0]

    def job_invocation(self, manifests: Path, job: str = APPLY_JOB) -> list[str]:
        """The Job's command and args, run by this interpreter, with the serving ConfigMap's mount
        path moved to `manifests`."""
        pod = self.job(job)["spec"]["template"]["spec"]
        volume = next(v["name"] for v in pod["volumes"] if v.get("configMap", {}).get("name") == SERVING_CONFIGMAP)
        container = self.container(job)
        mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume)
        assert container["command"] == ["python", "-m", "applier"]
        return [sys.executable, "-m", "applier", *(arg.replace(mount, str(manifests)) for arg in container["args"])]

    def command(self, cluster: SimulatedCluster, workdir: Path, job: str = APPLY_JOB,
                mounted: dict[str, str] | None = None, **options: str) -> list[str]:
        """The Job's invocation against the simulated API server, with the serving ConfigMap's
        keys as files (`mounted`: the data of the ConfigMap in the cluster when the hook runs, if
        not this revision's, as before an upgrade). `options` override the Job's
        (node_timeout_seconds="3" -> --node-timeout-seconds=3)."""
        manifests = workdir / f"serving-{next(_RUNS)}"
        manifests.mkdir()
        for key, text in (self.serving["data"] if mounted is None else mounted).items():
            (manifests / key).write_text(text)
        command = self.job_invocation(manifests, job)
        overrides = {**RUN_BUDGET, **{k.replace("_", "-"): v for k, v in options.items()}}
        # argparse keeps the last of a repeated option, so these override the Job's.
        return command + [f"--{k}={v}" for k, v in overrides.items()] + [f"--api-server={cluster.url}"]

    def run(self, cluster: SimulatedCluster, workdir: Path, job: str = APPLY_JOB,
            mounted: dict[str, str] | None = None, **options: str) -> subprocess.CompletedProcess:
        """Run the applier as the Job does, against the simulated API server."""
        return subprocess.run(self.command(cluster, workdir, job, mounted, **options), cwd=REPO_ROOT, env=JOB_ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)

    def start(self, cluster: SimulatedCluster, workdir: Path, **options: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(cluster, workdir, **options), cwd=REPO_ROOT, env=JOB_ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def release(render):
    def _release(overrides: dict[str, Any] | None = None) -> Release:
        return Release(render(PROFILE, overrides))

    return _release


def owned(obj: dict[str, Any], cluster: SimulatedCluster) -> dict[str, Any]:
    """An embedded object as an earlier run of the applier applied it: owned by the serving
    ConfigMap's real UID (with the placeholder, the garbage collector would delete it at once)."""
    uid = cluster.get("ConfigMap", SERVING_CONFIGMAP)["metadata"]["uid"]
    for owner in obj["metadata"].get("ownerReferences", []):
        if owner["uid"] == OWNER_UID_PLACEHOLDER:
            owner["uid"] = uid
    return obj


# ---- reading the timeline ---------------------------------------------------------------------


def at(cluster: SimulatedCluster, what: str, subject: str = "", detail: str = "", nth: int = 0) -> float:
    hits = [h for h in cluster.happenings(what, subject or None) if detail in h.detail]
    assert len(hits) > nth, f"expected {what} {subject} {detail} (#{nth + 1}) in the timeline:\n{cluster.timeline_text()}"
    return hits[nth].at


def explain(cluster: SimulatedCluster, result: subprocess.CompletedProcess) -> str:
    return f"applier output:\n{result.stdout}\ntimeline:\n{cluster.timeline_text()}"


def bring_up_serving(release: Release, cluster: SimulatedCluster) -> dict[str, str]:
    """A release that was serving: one labelled node per path, its InferenceSet (admitted back
    then, by an earlier chart: without the applied-manifest digest, so a run applies it again), a
    vLLM pod on the node. Returns the node of each path."""
    nodes = {path: cluster.launch_node(release.node_pool(path)) for path in PATHS}
    for path in PATHS:
        cluster.seed(owned(release.file(f"{path}.inferenceset.yaml"), cluster))
    cluster.wait_until(lambda: all(cluster.list("Pod", f"inferenceset.kaito.sh/created-by=hybrid-llm-{p}") for p in PATHS))
    return nodes


def assert_path_came_up(cluster: SimulatedCluster, path: str, nth_node: int = 0) -> None:
    """anchor -> node -> GPU labels -> InferenceSet written and vLLM pod bound -> anchor gone.
    A vLLM pod may come before the write when the InferenceSet was already there (an upgrade)."""
    anchor, inference_set, pool = f"Deployment/hybrid-llm-{path}-node-anchor", f"InferenceSet/hybrid-llm-{path}", f"NodePool/hybrid-llm-{path}"
    node_ready = [h for h in cluster.happenings("node-ready") if h.detail == pool][nth_node]
    node = node_ready.subject
    labelled = at(cluster, "node-gpu-labelled", node)
    written = min(h.at for h in cluster.happenings(None, inference_set) if h.what in ("created", "updated") and h.at > node_ready.at)
    serving = at(cluster, "vllm-pod-bound", detail=f"{inference_set} on {node}")
    released = at(cluster, "deleted", anchor)
    steps = [at(cluster, "created", anchor), node_ready.at, labelled, written, released]
    assert steps == sorted(steps) and labelled <= serving <= released, f"{path}: out of order:\n{cluster.timeline_text()}"


# ---- the Job as rendered ----------------------------------------------------------------------


@pytest.mark.parametrize("gateway_enabled", [True, False])
def test_the_job_runs_the_applier_from_the_gateway_image(render, gateway_enabled):
    """registry.k8s.io/kubectl images are distroless (no shell, no jq): the Job runs the Python
    applier from the gateway image, which the chart references by its values even when the
    gateway itself is off."""
    rendering = render(PROFILE, {"gateway": {"enabled": gateway_enabled, "image": {"tag": "0.2.0", "pullPolicy": "Always"}}})
    chart = Release(rendering)
    container = chart.container()
    assert container["image"] == "ghcr.io/hybrid-llm/gateway:0.2.0" and container["imagePullPolicy"] == "Always"
    assert bool(rendering.of_kind("Deployment") and any(d["metadata"]["name"] == "hybrid-llm-gateway" for d in rendering.of_kind("Deployment"))) is gateway_enabled
    assert container["command"] == ["python", "-m", "applier"]
    assert "--release=hybrid-llm" in container["args"] and "--namespace=llm" in container["args"]
    assert not any("kubectl" in str(v) for v in (container["image"], container["command"], container["args"]))
    assert set(chart.serving["data"]) == {"plan.tsv", *(f"{p}.{k}.yaml" for p in PATHS for k in ("inferenceset", "node-anchor"))}
    assert not (REPO_ROOT / "charts" / "hybrid-llm" / "files" / "apply-serving.sh").exists()
    # The applier writes nothing, so the root filesystem stays read-only with no scratch volume.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/etc/hybrid-llm/serving"]
    assert "env" not in container


def test_rbac_is_what_the_applier_calls(render):
    rendering = render(PROFILE, {"paths": {"batch": {"enabled": False}}})
    rules = rendering.find("Role", "hybrid-llm-serving-applier")["rules"]
    by_resource = {(tuple(r["resources"]), tuple(r.get("resourceNames", ()))): set(r["verbs"]) for r in rules}
    # list finds the release's InferenceSets; create (server-side apply creates with create+patch)
    # cannot be limited by name. Everything else names both paths' InferenceSets, the disabled
    # path's too: the prune Job deletes it.
    assert by_resource[(("inferencesets",), ())] == {"list", "create"}
    assert by_resource[(("inferencesets",), ("hybrid-llm-batch", "hybrid-llm-customer"))] == {"get", "patch", "delete"}
    assert by_resource[(("deployments",), ())] == {"create", "list"}
    # Both anchors, the disabled path's too: the applier deletes the anchor a path left behind.
    assert by_resource[(("deployments",), ("hybrid-llm-batch-node-anchor", "hybrid-llm-customer-node-anchor"))] == {"get", "patch", "delete"}
    assert by_resource[(("pods", "events"), ())] == {"get", "list"}
    assert by_resource[(("events",), ())] == {"create"}, "the capacity-flip warning, as an Event on the InferenceSet"
    assert by_resource[(("configmaps",), (SERVING_CONFIGMAP,))] == {"get"}
    assert len(rules) == 7
    (cluster_rule,) = rendering.find("ClusterRole", "llm-hybrid-llm-serving-applier")["rules"]
    assert cluster_rule["resources"] == ["nodes"] and set(cluster_rule["verbs"]) == {"get", "list"}


def test_the_hook_jobs_ride_out_node_disruption_and_keep_their_log(render):
    """Review #4 and #8: the Jobs wait up to an hour on a CPU node that NAP or the cluster
    autoscaler may drain. Their pods opt out of that; if one is evicted all the same, the
    failure is ignored and the Job starts another pod (the applier takes up where the cluster
    is), while the applier's own failures (exit 1 and 2) fail the Job at once. Helm prints the
    pod's log (the advice, the warnings) before hook-succeeded deletes the Job."""
    rendering = render(PROFILE, {"serving": {"keepOnUninstall": False}})
    hooks = {APPLY_JOB: "post-install,post-upgrade,post-rollback", PRUNE_JOB: "pre-upgrade,pre-rollback", TEARDOWN_JOB: "pre-delete"}
    for name, hook in hooks.items():
        job = rendering.find("Job", name)
        annotations, spec = job["metadata"]["annotations"], job["spec"]
        assert annotations["helm.sh/hook"] == hook
        assert annotations["helm.sh/hook-output-log-policy"] == "hook-succeeded,hook-failed"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        pod = spec["template"]
        assert pod["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
        assert pod["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
        # Its pods are the applier's: its NetworkPolicy and ServiceAccount cover them.
        assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "serving-applier"
        assert pod["spec"]["serviceAccountName"] == "hybrid-llm-serving-applier"
        # podFailurePolicy needs restartPolicy Never; the FailJob rule names the applier's container.
        assert pod["spec"]["restartPolicy"] == "Never"
        (container,) = pod["spec"]["containers"]
        assert spec["podFailurePolicy"]["rules"] == [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": container["name"], "operator": "In", "values": [1, 2]}},
        ]
        assert spec["backoffLimit"] >= 1, "a pod lost some other way (a node gone without eviction) is tried again"
    assert "optional" not in rendering.find("Job", APPLY_JOB)["spec"]["template"]["spec"]["volumes"][0]["configMap"]
    # Before an upgrade the mounted ConfigMap is the previous revision's, which may not exist.
    assert rendering.find("Job", PRUNE_JOB)["spec"]["template"]["spec"]["volumes"][0]["configMap"]["optional"] is True
    kept = render(PROFILE)
    assert [j["metadata"]["name"] for j in kept.of_kind("Job") if "serving" in j["metadata"]["name"]] == [APPLY_JOB], \
        "with serving.keepOnUninstall (the default) nothing deletes InferenceSets"


def test_both_paths_anchors_are_in_the_serving_configmap_and_the_prune_keeps_the_enabled_paths(render):
    """A disabled path's InferenceSet needs a node for its deletion: its anchor stays in the
    ConfigMap (not listed for validators: its pool is the previous revision's)."""
    rendering = render(PROFILE, {"serving": {"keepOnUninstall": False}, "paths": {"batch": {"enabled": False}}})
    chart = Release(rendering)
    assert set(chart.serving["data"]) == {"plan.tsv", "customer.inferenceset.yaml", "customer.node-anchor.yaml", "batch.node-anchor.yaml"}
    assert chart.serving["metadata"]["annotations"]["hybrid-llm.io/embedded-manifests"] == "customer.inferenceset.yaml,customer.node-anchor.yaml"
    assert chart.file("batch.node-anchor.yaml")["metadata"]["name"] == "hybrid-llm-batch-node-anchor"
    args = chart.container(PRUNE_JOB)["args"]
    assert "--teardown" in args and "--keep-inference-set=hybrid-llm-customer" in args
    assert "--prune-selector=app.kubernetes.io/instance=hybrid-llm,app.kubernetes.io/part-of=hybrid-llm" in args
    assert not any(a.startswith("--keep-inference-set") for a in chart.container(TEARDOWN_JOB)["args"])
    assert not any(a.startswith(("--prune-selector", "--teardown")) for a in chart.container(APPLY_JOB)["args"])
    # The anchors' NetworkPolicy covers the disabled path's anchor too.
    policy = rendering.find("NetworkPolicy", "hybrid-llm-node-anchors")
    components = next(e for e in policy["spec"]["podSelector"]["matchExpressions"] if e["key"] == "app.kubernetes.io/component")
    assert sorted(components["values"]) == ["node-anchor-batch", "node-anchor-customer"]


# ---- the applier against the simulated cluster ------------------------------------------------


def test_old_chart_install_is_refused_by_kaito_webhook_and_nothing_brings_a_node(release):
    """The bug the Job exists for: created in the same apply as the NodePools (as `helm install`
    of the old chart did), the batch InferenceSet is refused, and with no Pending pod nothing
    ever brings the node it waits for."""
    chart = release()
    with chart.cluster(installed=False) as cluster:
        helm = KubeClient.for_server(cluster.url)
        for pool in chart.rendering.of_kind("NodePool"):
            helm.apply(NODE_POOLS, pool, "helm")
        with pytest.raises(ApiError) as refused:
            helm.apply(INFERENCE_SETS, chart.file("batch.inferenceset.yaml"), "helm")
        assert refused.value.status == 400 and not refused.value.transient
        assert 'admission webhook "validation.inferenceset.kaito.sh" denied the request' in refused.value.message
        assert "No nodes found matching the specified label selector" in refused.value.message
        assert len(cluster.list("NodePool")) == 2, "the NodePools in the same apply were created"
        assert cluster.get("InferenceSet", "hybrid-llm-batch") is None
        time.sleep(3 * (FAST.node_launch + FAST.gpu_labels))
        assert cluster.list("Node") == [] and cluster.list("Pod") == [], cluster.timeline_text()


def test_fresh_install_from_zero_gpu_nodes_converges(release, tmp_path):
    chart = release()
    with chart.cluster() as cluster:
        result = chart.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        assert "all serving paths applied" in result.stdout
        for path in PATHS:
            assert_path_came_up(cluster, path)
        # The applier never tried an InferenceSet KAITO would refuse.
        assert cluster.happenings("admission-refused") == [], explain(cluster, result)
        # One node per path: the anchor and the vLLM pod shared it.
        pools = sorted(n["metadata"]["labels"]["karpenter.sh/nodepool"] for n in cluster.list("Node"))
        assert pools == ["hybrid-llm-batch", "hybrid-llm-customer"]
        assert cluster.list("Deployment") == []
        # Every line is a UTC-timestamped plain line.
        assert all(line[:4].isdigit() and line[19:21] == "Z " for line in result.stdout.splitlines()), result.stdout


def test_upgrade_after_spot_eviction_of_the_only_batch_node(release, tmp_path):
    chart = release()
    # A node takes minutes on AKS; here long enough that "customer first" does not hang on load.
    with chart.cluster(Timings(node_launch=2.0, gpu_labels=0.4, vllm_pod=0.3)) as cluster:
        nodes = bring_up_serving(chart, cluster)
        cluster.evict_node(nodes["batch"])
        # What `helm upgrade` of the old chart would have sent now: refused, the upgrade fails.
        with pytest.raises(ApiError) as refused:
            KubeClient.for_server(cluster.url).apply(INFERENCE_SETS, chart.file("batch.inferenceset.yaml"), "helm")
        assert "No nodes found matching the specified label selector" in refused.value.message
        started = cluster.happenings()[-1].at

        result = chart.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        # The customer path still has its node: applied at once, before the batch node is back.
        customer_applied = at(cluster, "updated", "InferenceSet/hybrid-llm-customer")
        batch_node_back = at(cluster, "node-ready", detail="NodePool/hybrid-llm-batch", nth=1)
        assert started < customer_applied < batch_node_back, explain(cluster, result)
        assert cluster.happenings("created", "Deployment/hybrid-llm-customer-node-anchor") == []
        assert_path_came_up(cluster, "batch", nth_node=1)
        refused_after = [h for h in cluster.happenings("admission-refused") if h.at > started]
        assert refused_after == [], explain(cluster, result)
        assert cluster.list("Deployment") == []


def test_gpu_labels_that_never_come_time_out_with_a_diagnosis_and_the_anchors_deleted(release, tmp_path):
    """GPU feature discovery as KAITO installs it by default does not tolerate the pools' sku=gpu
    taint: nodes come, labels never do, KAITO would refuse the InferenceSets. The diagnosis shows
    the anchors; then they are deleted (review #3b), so nothing holds a GPU node for a path the
    run gave up on."""
    chart = release()
    with chart.cluster(gfd_tolerations=KAITO_DEFAULT_GFD_TOLERATIONS) as cluster:
        result = chart.run(cluster, tmp_path, node_timeout_seconds="3")
        assert result.returncode == 1, explain(cluster, result)
        output = result.stdout
        assert "FAILED: no admissible GPU node within 3s for: batch customer" in output, output
        for path in PATHS:
            selector = chart.serving["data"]["plan.tsv"].split(f"{path}\t", 1)[1].split("\t")[2]
            assert f"{path}: nodes matching {selector}" in output, output
            node = next(n["metadata"]["name"] for n in cluster.list("Node") if n["metadata"]["labels"]["karpenter.sh/nodepool"] == f"hybrid-llm-{path}")
            assert f"  {node} True <none>" in output, "the node is listed: Ready, no GPU label"
            assert f"pod hybrid-llm-{path}-node-anchor-" in output, "the anchor pods are listed"
            assert cluster.get("Deployment", f"hybrid-llm-{path}-node-anchor") is None, "the anchor is deleted"
            assert output.index(f"pod hybrid-llm-{path}-node-anchor-") < output.index(f"{path}: deleted the node anchor hybrid-llm-{path}-node-anchor")
        assert "FailedScheduling hybrid-llm-batch-node-anchor-" in output, "the anchor pods' scheduling events are shown"
        assert "The node anchors were deleted" in output and "Fix: check the events above" in output
        assert len(cluster.list("Node")) == 2, "the anchors did bring the nodes"
        assert cluster.list("InferenceSet") == [], "nothing KAITO would refuse was applied"


def test_helm_uninstall_removes_the_anchors_an_interrupted_run_left(release, tmp_path):
    """(a) The anchors are owned by the Helm-managed serving ConfigMap, with its real UID filled in
    by the applier (whatever serving.keepOnUninstall says), so after a run that was killed while
    it waited (the Job's activeDeadlineSeconds) `helm uninstall` takes them, their pods and so
    their GPU nodes' reason to exist, through garbage collection."""
    chart = release()
    assert chart.file("batch.node-anchor.yaml")["metadata"]["ownerReferences"][0]["uid"] == OWNER_UID_PLACEHOLDER
    with chart.cluster(gfd_tolerations=KAITO_DEFAULT_GFD_TOLERATIONS) as cluster:
        job = chart.start(cluster, tmp_path, node_timeout_seconds="60")
        try:
            cluster.wait_until(lambda: all(cluster.get("Deployment", f"hybrid-llm-{p}-node-anchor") for p in PATHS), timeout=30)
        finally:
            job.kill()
            output, _ = job.communicate()
        uid = cluster.get("ConfigMap", SERVING_CONFIGMAP)["metadata"]["uid"]
        for path in PATHS:
            anchor = cluster.get("Deployment", f"hybrid-llm-{path}-node-anchor")
            assert anchor["metadata"]["ownerReferences"] == [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": SERVING_CONFIGMAP, "uid": uid}], output
        assert cluster.happenings("garbage-collected") == [], "a filled-in owner keeps the anchors while the release exists"
        cluster.wait_until(lambda: len(cluster.list("Pod", "app.kubernetes.io/instance=hybrid-llm")) == 2)

        cluster.remove("ConfigMap", SERVING_CONFIGMAP)  # helm uninstall
        cluster.wait_until(lambda: cluster.list("Deployment") == [] and cluster.list("Pod") == [])
        collected = {h.subject for h in cluster.happenings("garbage-collected")}
        assert {"Deployment/hybrid-llm-batch-node-anchor", "Deployment/hybrid-llm-customer-node-anchor"} <= collected


def test_parked_path_without_a_node_is_left_alone(release, tmp_path):
    chart = release({"paths": {"batch": {"replicas": 0}}})
    assert "batch\thybrid-llm-batch\t0\t" in chart.serving["data"]["plan.tsv"]
    with chart.cluster() as cluster:
        # The batch path ran before; its spot node is gone.
        earlier = cluster.seed(release().file("batch.inferenceset.yaml"))
        result = chart.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        assert "batch: parked at 0 replicas with no GPU node" in result.stdout
        assert cluster.happenings(None, "Deployment/hybrid-llm-batch-node-anchor") == []
        assert [h for h in cluster.happenings("node-ready") if "batch" in h.detail] == []
        assert cluster.happenings(None, "InferenceSet/hybrid-llm-batch") == [
            h for h in cluster.happenings("seeded", "InferenceSet/hybrid-llm-batch")
        ], "no write and no admission attempt on the parked path"
        assert cluster.get("InferenceSet", "hybrid-llm-batch")["metadata"]["resourceVersion"] == earlier["metadata"]["resourceVersion"]
        assert_path_came_up(cluster, "customer")


def test_keep_on_uninstall_false_owns_inferencesets_by_the_configmap(release, tmp_path):
    """With serving.keepOnUninstall=false the InferenceSets go with the release: owned by the
    Helm-managed serving ConfigMap (the applier fills in its UID). The apply Job deletes nothing:
    the prune Job does, before the upgrade (below)."""
    chart = release({"serving": {"keepOnUninstall": False}})
    with chart.cluster() as cluster:
        result = chart.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        uid = cluster.get("ConfigMap", SERVING_CONFIGMAP)["metadata"]["uid"]
        for path in PATHS:
            owners = cluster.get("InferenceSet", f"hybrid-llm-{path}")["metadata"]["ownerReferences"]
            assert owners == [{"apiVersion": "v1", "kind": "ConfigMap", "name": SERVING_CONFIGMAP, "uid": uid}]
        assert cluster.happenings("deleted", "InferenceSet/") == [] and cluster.happenings("terminating") == []


def test_upgrade_while_a_new_node_waits_for_gpu_labels_applies_after_them(release, tmp_path):
    """KAITO refuses while ANY matching node lacks the GPU labels: a batch node that is still
    coming up (a scale-out) holds the write back until GPU feature discovery has labelled it."""
    chart = release()
    with chart.cluster(Timings(node_launch=0.6, gpu_labels=1.5, vllm_pod=0.3)) as cluster:
        bring_up_serving(chart, cluster)
        joining = cluster.launch_node(chart.node_pool("batch"), gpu_labelled=False)
        result = chart.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        assert cluster.happenings("admission-refused") == [], explain(cluster, result)
        assert at(cluster, "node-gpu-labelled", f"Node/{joining}") < at(cluster, "updated", "InferenceSet/hybrid-llm-batch")
        assert len(cluster.list("Node")) == 3, "no node beyond the joining one"
        assert cluster.list("Deployment") == []


def test_node_lost_between_the_check_and_the_apply_is_brought_back(release, tmp_path):
    """A spot eviction that lands after the applier saw the batch node and before it applied."""
    chart = release()
    with chart.cluster() as cluster:
        nodes = bring_up_serving(chart, cluster)

        def eviction_lands(inference_set: dict) -> None:
            if inference_set["metadata"]["name"] == "hybrid-llm-batch" and cluster.get("Node", nodes["batch"]):
                cluster.evict_node(nodes["batch"])

        cluster.webhook.before_review = eviction_lands
        result = chart.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        assert "batch: not admitted yet:" in result.stdout
        assert_path_came_up(cluster, "batch", nth_node=1)
        assert cluster.list("Deployment") == []


def test_node_lost_before_the_apply_of_a_parked_path_leaves_it_parked(release, tmp_path):
    """The same eviction on a path parked at 0 replicas: no anchor (it wants no node), no wait
    for the node timeout; it is left as a parked path with no node is."""
    chart = release({"paths": {"batch": {"replicas": 0}}})
    with chart.cluster() as cluster:
        nodes = bring_up_serving(release(), cluster)

        def eviction_lands(inference_set: dict) -> None:
            if inference_set["metadata"]["name"] == "hybrid-llm-batch" and cluster.get("Node", nodes["batch"]):
                cluster.evict_node(nodes["batch"])

        cluster.webhook.before_review = eviction_lands
        result = chart.run(cluster, tmp_path, node_timeout_seconds="8")
        assert result.returncode == 0, explain(cluster, result)
        assert "batch: parked at 0 replicas with no GPU node" in result.stdout
        assert cluster.happenings(None, "Deployment/hybrid-llm-batch-node-anchor") == []
        assert cluster.get("InferenceSet", "hybrid-llm-batch")["spec"]["replicas"] == 1, "left as it was"


# GPU feature discovery that tolerates the GPU taint but not the spot one: the batch node is never labelled.
NO_SPOT_GFD_TOLERATIONS = [*KAITO_DEFAULT_GFD_TOLERATIONS, {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]


@pytest.mark.parametrize("gfd_tolerations", [None, NO_SPOT_GFD_TOLERATIONS], ids=["its-node-is-up", "its-node-never-labelled"])
def test_parking_a_path_removes_the_anchor_an_earlier_run_left(release, tmp_path, gfd_tolerations):
    """An earlier run timed out and kept the batch anchor; the operator then parks the batch
    path. The anchor must go, or it keeps a spot GPU node up for a path that wants none."""
    chart = release({"paths": {"batch": {"replicas": 0}}})
    with chart.cluster(gfd_tolerations=gfd_tolerations) as cluster:
        cluster.seed(owned(release().file("batch.node-anchor.yaml"), cluster))
        cluster.wait_until(lambda: any(p["spec"].get("nodeName") for p in cluster.list("Pod", "app.kubernetes.io/component=node-anchor-batch")))
        if gfd_tolerations is None:
            cluster.wait_until(lambda: cluster.happenings("node-gpu-labelled"))
        result = chart.run(cluster, tmp_path, pod_timeout_seconds="3")
        assert result.returncode == 0, explain(cluster, result)
        assert cluster.get("Deployment", "hybrid-llm-batch-node-anchor") is None, explain(cluster, result)
        assert "batch: parked at 0 replicas; deleting the node anchor hybrid-llm-batch-node-anchor" in result.stdout
        assert cluster.list("Pod", "inferenceset.kaito.sh/created-by=hybrid-llm-batch") == []
        assert_path_came_up(cluster, "customer")


def test_the_anchor_of_a_path_no_longer_in_the_plan_is_deleted(release, tmp_path):
    """(b) An earlier run timed out and kept the batch anchor; the operator then disables the
    batch path, so the plan no longer names it. Its anchor goes (another release's stays)."""
    chart = release({"paths": {"batch": {"enabled": False}}})
    assert "batch" not in chart.serving["data"]["plan.tsv"]
    with chart.cluster() as cluster:
        # The batch NodePool carries helm.sh/resource-policy: keep, so disabling the path left it.
        cluster.seed(release().rendering.find("NodePool", "hybrid-llm-batch"))
        cluster.seed(owned(release().file("batch.node-anchor.yaml"), cluster))
        other = release().file("batch.node-anchor.yaml")
        other["metadata"].update(name="other-batch-node-anchor", labels={**other["metadata"]["labels"], "app.kubernetes.io/instance": "other"})
        del other["metadata"]["ownerReferences"]
        other["spec"]["replicas"] = 0
        cluster.seed(other)
        cluster.wait_until(lambda: any(p["spec"].get("nodeName") for p in cluster.list("Pod", "app.kubernetes.io/component=node-anchor-batch")))

        result = chart.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        assert "batch: the path is no longer in the plan; deleting its node anchor hybrid-llm-batch-node-anchor" in result.stdout
        assert cluster.get("Deployment", "hybrid-llm-batch-node-anchor") is None, explain(cluster, result)
        assert at(cluster, "deleted", "Deployment/hybrid-llm-batch-node-anchor")
        assert cluster.get("Deployment", "other-batch-node-anchor") is not None, "another release's anchor stays"
        cluster.wait_until(lambda: cluster.list("Pod", "app.kubernetes.io/instance=hybrid-llm,app.kubernetes.io/component=node-anchor-batch") == [])
        assert_path_came_up(cluster, "customer")


def test_a_refusal_no_node_can_change_fails_at_once_with_the_webhooks_message(release, tmp_path):
    """(c) A typo in kaito.preset renders fine, and KAITO refuses it whatever the nodes. Waiting
    for the node timeout (40 minutes by default) would help nobody: the applier fails on the
    first refusal, with KAITO's own words."""
    chart = release({"kaito": {"preset": "llama-3.3-70b-instuct"}})
    with chart.cluster() as cluster:
        for path in PATHS:
            cluster.launch_node(chart.node_pool(path))
        started = time.monotonic()
        result = chart.run(cluster, tmp_path, node_timeout_seconds="60")
        elapsed = time.monotonic() - started
        assert result.returncode == 1, explain(cluster, result)
        assert elapsed < 15, f"failed after {elapsed:.1f}s, not at once:\n{explain(cluster, result)}"
        assert "FAILED: batch: InferenceSet hybrid-llm-batch was refused for a reason no GPU node can change" in result.stdout
        assert "Unsupported inference preset name llama-3.3-70b-instuct" in result.stdout
        assert "Fix: correct what the message names" in result.stdout
        refused = cluster.happenings("admission-refused")
        assert len(refused) == 1 and "Unsupported inference preset name" in refused[0].detail, explain(cluster, result)
        assert "all serving paths applied" not in result.stdout


ANCHOR_GET = "/apis/apps/v1/namespaces/llm/deployments/hybrid-llm-customer-node-anchor"
NODE_LIST = "/api/v1/nodes"
POD_LIST = "/api/v1/namespaces/llm/pods"


@pytest.mark.parametrize("failing", [ANCHOR_GET, POD_LIST], ids=["anchor-check", "pod-check"])
def test_a_failed_check_while_handing_over_is_asked_again_not_taken_as_done(release, tmp_path, failing):
    """(d) The API server answers 503 to the first checks of the hand-over (does the anchor
    exist? where are the vLLM pods?). Taking that for "no anchor" would leave the anchor holding
    a GPU node for good; the applier asks again and still deletes it."""
    chart = release()
    with chart.cluster() as cluster:
        fault = cluster.api.fail("GET", failing, times=3)
        result = chart.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        assert fault.served == 3, "the faults were met"
        assert "no usable answer from the API server" in result.stdout and "asking again" in result.stdout
        assert cluster.list("Deployment") == [], explain(cluster, result)
        for path in PATHS:
            assert_path_came_up(cluster, path)


def test_a_failed_node_check_of_a_parked_path_is_asked_again_not_taken_as_no_node(release, tmp_path):
    """(d) A parked batch path whose node is still up gets its InferenceSet applied (replicas 0).
    A 503 to the node list must not pass for "no node", which would leave the path untouched."""
    chart = release({"paths": {"batch": {"replicas": 0}}})
    with chart.cluster() as cluster:
        bring_up_serving(release(), cluster)
        fault = cluster.api.fail("GET", NODE_LIST, times=4)
        result = chart.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        assert fault.served == 4
        assert "parked at 0 replicas with no GPU node" not in result.stdout, explain(cluster, result)
        assert cluster.get("InferenceSet", "hybrid-llm-batch")["spec"]["replicas"] == 0, explain(cluster, result)


def test_a_capacity_flip_keeps_the_anchor_and_says_how_to_roll(release, tmp_path):
    """Batch flips from spot to on-demand under a running replica. The new selector matches no
    node, so the anchor brings an on-demand node, and the InferenceSet is applied. KAITO does not
    move the running replica (website/docs/inference.md), so no vLLM pod lands on the new node:
    the applier keeps the anchor (KAITO admits the rolled replicas only while such a node
    exists), prints the roll, records it as a Warning Event on the InferenceSet (review #8: the
    Job and its log go once it succeeds), and succeeds."""
    spot = release()
    flipped = release({"paths": {"batch": {"capacityType": "on-demand"}}})
    with spot.cluster() as cluster:
        nodes = bring_up_serving(spot, cluster)
        for pool in flipped.rendering.of_kind("NodePool"):
            cluster.upgrade(pool)  # helm upgrade
        cluster.upgrade(flipped.serving)

        result = flipped.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        assert ("WARNING: batch: 1 running replica(s) of hybrid-llm-batch are on nodes that no longer match "
                "hybrid-llm.io/path=batch,karpenter.sh/capacity-type=on-demand,") in result.stdout, result.stdout
        assert "Roll them one at a time: kubectl -n llm get workspaces -l inferenceset.kaito.sh/created-by=hybrid-llm-batch" in result.stdout
        assert cluster.get("Deployment", "hybrid-llm-batch-node-anchor") is not None, "the anchor stays for the roll"
        new_node = at(cluster, "node-ready", detail="NodePool/hybrid-llm-batch", nth=1)
        assert new_node < at(cluster, "updated", "InferenceSet/hybrid-llm-batch")
        on_demand = [n for n in cluster.list("Node", "karpenter.sh/capacity-type=on-demand,hybrid-llm.io/path=batch")]
        assert len(on_demand) == 1, explain(cluster, result)
        (vllm,) = cluster.list("Pod", "inferenceset.kaito.sh/created-by=hybrid-llm-batch")
        assert vllm["spec"]["nodeName"] == nodes["batch"], "the running replica stayed on its spot node"
        selector = cluster.get("InferenceSet", "hybrid-llm-batch")["spec"]["labelSelector"]["matchLabels"]
        assert selector["karpenter.sh/capacity-type"] == "on-demand"
        assert cluster.happenings("created", "Deployment/hybrid-llm-customer-node-anchor") == []
        assert "all serving paths applied" in result.stdout
        # What `kubectl describe inferenceset hybrid-llm-batch` lists: the Events whose
        # involvedObject is it (k8s.io/kubectl pkg/describe describe.go searchEvents).
        live = cluster.get("InferenceSet", "hybrid-llm-batch")["metadata"]
        (event,) = KubeClient.for_server(cluster.url).list(EVENTS, "llm", field_selector=(
            f"involvedObject.kind=InferenceSet,involvedObject.name=hybrid-llm-batch,involvedObject.namespace=llm,involvedObject.uid={live['uid']}"))
        assert event["type"] == "Warning" and event["reason"] == "ReplicasOnUnselectedNodes"
        assert "1 running replica(s) of hybrid-llm-batch are on nodes that no longer match" in event["message"]
        assert "Roll them one at a time: kubectl -n llm get workspaces" in event["message"]
        assert "recorded as Event ReplicasOnUnselectedNodes on InferenceSet hybrid-llm-batch" in result.stdout


# ---- upgrades that change nothing, and node timeouts (review #3) -----------------------------


def test_an_upgrade_that_changes_nothing_on_a_path_whose_node_is_gone_returns_at_once(release, tmp_path):
    """A gateway-only `helm upgrade` after the batch node's spot eviction, with spot capacity for
    it gone: the batch InferenceSet already is what the chart asks for, so there is nothing to
    apply and nothing to wait for (its StatefulSet's Pending pod brings the node back when
    capacity returns). Waiting would block the upgrade for the node timeout and fail it."""
    chart = release()
    with chart.cluster() as cluster:
        installed = chart.run(cluster, tmp_path)
        assert installed.returncode == 0, explain(cluster, installed)
        (batch_node,) = [n["metadata"]["name"] for n in cluster.list("Node", "hybrid-llm.io/path=batch")]
        cluster.karpenter.insufficient_capacity.add(chart.node_pool("batch"))
        cluster.evict_node(batch_node)
        mark = len(cluster.happenings())

        started = time.monotonic()
        result = chart.run(cluster, tmp_path, node_timeout_seconds="60")
        elapsed = time.monotonic() - started
        assert result.returncode == 0, explain(cluster, result)
        assert elapsed < 5, f"took {elapsed:.1f}s; the poll is 0.2s:\n{explain(cluster, result)}"
        for path in PATHS:
            assert f"{path}: InferenceSet hybrid-llm-{path} already is what the chart asks for; nothing to apply" in result.stdout
        after = [h for h in cluster.happenings()[mark:] if h.what in ("created", "updated", "admission-refused")]
        assert after == [], explain(cluster, result)


def test_an_anchor_an_interrupted_run_left_on_an_unchanged_path_is_still_handed_over(release, tmp_path):
    """Nothing to apply, but an anchor from a run that was killed: once a vLLM pod holds a node
    of the path, it goes, as after an apply."""
    chart = release()
    with chart.cluster() as cluster:
        assert chart.run(cluster, tmp_path).returncode == 0
        cluster.seed(owned(chart.file("batch.node-anchor.yaml"), cluster))
        mark = len(cluster.happenings())
        result = chart.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        assert "batch: InferenceSet hybrid-llm-batch already is what the chart asks for; nothing to apply" in result.stdout
        assert "batch: a vLLM pod holds a node labelled" in result.stdout
        assert cluster.get("Deployment", "hybrid-llm-batch-node-anchor") is None, explain(cluster, result)
        assert [h for h in cluster.happenings()[mark:] if h.what in ("updated", "admission-refused")] == []


def test_a_field_the_chart_no_longer_sets_is_still_applied(release, tmp_path):
    """"Desired is a subset of live" alone would call an InferenceSet unchanged when a values
    change drops a field (here the disable-benchmark annotations); the digest of the applied
    manifest, itself one of the desired annotations, tells them apart, and the apply removes them."""
    chart = release()
    changed = release({"kaito": {"disableBenchmark": False}})
    with chart.cluster() as cluster:
        assert chart.run(cluster, tmp_path).returncode == 0
        live = cluster.get("InferenceSet", "hybrid-llm-batch")
        assert live["metadata"]["annotations"]["kaito.sh/disable-benchmark"] == "true"
        assert live["metadata"]["annotations"]["hybrid-llm.io/applied-manifest-sha256"]
        cluster.upgrade(changed.serving)
        mark = len(cluster.happenings())
        result = changed.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        updated = {h.subject for h in cluster.happenings()[mark:] if h.what == "updated"}
        assert {"InferenceSet/hybrid-llm-batch", "InferenceSet/hybrid-llm-customer"} <= updated, explain(cluster, result)
        live = cluster.get("InferenceSet", "hybrid-llm-batch")
        assert "kaito.sh/disable-benchmark" not in live["metadata"]["annotations"]
        assert "kaito.sh/disable-benchmark" not in live["spec"]["template"]["metadata"]["annotations"]


def test_a_node_timeout_deletes_the_anchor_so_returning_capacity_starts_no_idle_node(release, tmp_path):
    """Spot capacity for batch is gone for longer than the node timeout. The run fails with its
    diagnosis and deletes the batch anchor: when capacity returns, hours later, no pause pod is
    Pending for it, so no NC96ads_A100_v4 starts with nothing to apply the InferenceSet on it."""
    chart = release()
    with chart.cluster() as cluster:
        cluster.karpenter.insufficient_capacity.add(chart.node_pool("batch"))
        result = chart.run(cluster, tmp_path, node_timeout_seconds="3")
        assert result.returncode == 1, explain(cluster, result)
        assert "FAILED: no admissible GPU node within 3s for: batch" in result.stdout
        assert "batch: nodes matching" in result.stdout and "  (none)" in result.stdout, "the diagnosis is kept"
        assert at(cluster, "launch-failed", "NodePool/hybrid-llm-batch") < at(cluster, "deleted", "Deployment/hybrid-llm-batch-node-anchor")
        assert cluster.get("Deployment", "hybrid-llm-batch-node-anchor") is None
        assert_path_came_up(cluster, "customer")

        cluster.karpenter.insufficient_capacity.clear()  # capacity is back
        time.sleep(3 * FAST.node_launch)
        assert cluster.list("Node", "hybrid-llm.io/path=batch") == [], explain(cluster, result)


# ---- deleting InferenceSets (review #2) -------------------------------------------------------


def test_deleting_a_byo_inferenceset_without_a_matching_node_hangs_until_a_node_is_back(release):
    """The upstream behaviour: KAITO's deletion writes the Deleting condition to /status and then
    removes its finalizer, and its webhook refuses both while no node matches, so `kubectl delete`
    (or garbage collection) of a parked path's InferenceSet leaves it Terminating. Once a
    matching node is up, KAITO finishes."""
    chart = release()
    with chart.cluster() as cluster:
        cluster.seed(chart.file("batch.inferenceset.yaml"))
        KubeClient.for_server(cluster.url).delete(INFERENCE_SETS, "hybrid-llm-batch", "llm")
        cluster.wait_until(lambda: cluster.happenings("kaito-write-refused", "InferenceSet/hybrid-llm-batch"))
        time.sleep(0.5)
        live = cluster.get("InferenceSet", "hybrid-llm-batch")
        assert live["metadata"]["deletionTimestamp"] and live["metadata"]["finalizers"] == ["inferenceset.finalizer.kaito.sh"]
        (refused,) = cluster.happenings("kaito-write-refused")
        assert refused.detail.startswith("status: condition Deleting: ")
        assert "No nodes found matching the specified label selector" in refused.detail

        cluster.launch_node(chart.node_pool("batch"))
        cluster.wait_until(lambda: cluster.get("InferenceSet", "hybrid-llm-batch") is None)
        timeline = [(h.what, h.detail.split(":")[0]) for h in cluster.happenings(subject="InferenceSet/hybrid-llm-batch")]
        assert timeline.index(("kaito-wrote", "status")) < timeline.index(("kaito-wrote", "remove the finalizer")) < timeline.index(
            ("finalized", "its last finalizer was removed")), cluster.timeline_text()


def _serving_before(cluster: SimulatedCluster, before: Release, parked_batch: bool) -> None:
    """The previous revision serving: the customer node and pod, the batch InferenceSet (parked:
    its node long consolidated away), both owned by the serving ConfigMap."""
    cluster.launch_node(before.node_pool("customer"))
    for path in PATHS:
        cluster.seed(owned(before.file(f"{path}.inferenceset.yaml"), cluster))
    cluster.wait_until(lambda: cluster.list("Pod", "inferenceset.kaito.sh/created-by=hybrid-llm-customer"))
    assert parked_batch and before.file("batch.inferenceset.yaml")["spec"]["replicas"] == 0


def test_disabling_a_path_deletes_its_inferenceset_before_the_upgrade_with_a_node_brought_up_for_it(release, tmp_path):
    """serving.keepOnUninstall=false, and the operator disables the parked batch path. Before the
    upgrade (in it Helm deletes the batch NodePool, and Karpenter its nodes), the prune Job,
    with the previous revision's serving ConfigMap mounted, brings a batch node up with the
    anchor, deletes the InferenceSet, waits until KAITO has removed its finalizer, and deletes
    the anchor. The customer InferenceSet and another release's stay."""
    before = release({"serving": {"keepOnUninstall": False}, "paths": {"batch": {"replicas": 0}}})
    after = release({"serving": {"keepOnUninstall": False}, "paths": {"batch": {"enabled": False}}})
    with before.cluster() as cluster:
        _serving_before(cluster, before, parked_batch=True)
        other = before.file("batch.inferenceset.yaml")
        other["metadata"].update(name="other-batch", labels={**other["metadata"]["labels"], "app.kubernetes.io/instance": "other"})
        del other["metadata"]["ownerReferences"]
        cluster.seed(other)

        result = after.run(cluster, tmp_path, job=PRUNE_JOB, mounted=before.serving["data"])
        assert result.returncode == 0, explain(cluster, result)
        assert cluster.get("InferenceSet", "hybrid-llm-batch") is None, explain(cluster, result)
        assert cluster.get("InferenceSet", "hybrid-llm-customer") is not None
        assert cluster.get("InferenceSet", "other-batch") is not None, "another release's InferenceSet stays"
        anchor, inference_set = "Deployment/hybrid-llm-batch-node-anchor", "InferenceSet/hybrid-llm-batch"
        steps = [
            at(cluster, "created", anchor),
            at(cluster, "node-ready", detail="NodePool/hybrid-llm-batch"),
            at(cluster, "node-gpu-labelled", "Node/hybrid-llm-batch"),
            at(cluster, "terminating", inference_set),
            at(cluster, "kaito-wrote", inference_set, "status"),
            at(cluster, "finalized", inference_set),
            at(cluster, "deleted", anchor),
        ]
        assert steps == sorted(steps), explain(cluster, result)
        assert cluster.happenings("kaito-write-refused") == [], "nothing was deleted before its node was up"
        assert cluster.list("Deployment") == []
        assert "hybrid-llm-batch: gone" in result.stdout


def test_a_prune_without_capacity_fails_clearly_and_deletes_nothing(release, tmp_path):
    """The same, with spot capacity for batch gone: after the node timeout the Job fails, says
    why, and leaves the InferenceSet as it was (a Terminating one could not be taken back);
    the anchor goes, so no node comes later for nothing."""
    before = release({"serving": {"keepOnUninstall": False}, "paths": {"batch": {"replicas": 0}}})
    after = release({"serving": {"keepOnUninstall": False}, "paths": {"batch": {"enabled": False}}})
    with before.cluster() as cluster:
        _serving_before(cluster, before, parked_batch=True)
        cluster.karpenter.insufficient_capacity.add(before.node_pool("batch"))
        result = after.run(cluster, tmp_path, job=PRUNE_JOB, mounted=before.serving["data"], node_timeout_seconds="3")
        assert result.returncode == 1, explain(cluster, result)
        assert ("FAILED: no admissible GPU node within 3s to delete: InferenceSet hybrid-llm-batch (batch path). "
                "It was NOT deleted") in result.stdout
        assert "hybrid-llm-batch: nodes matching hybrid-llm.io/path=batch," in result.stdout
        live = cluster.get("InferenceSet", "hybrid-llm-batch")
        assert live is not None and "deletionTimestamp" not in live["metadata"]
        assert cluster.get("Deployment", "hybrid-llm-batch-node-anchor") is None
        assert at(cluster, "created", "Deployment/hybrid-llm-batch-node-anchor") < at(cluster, "deleted", "Deployment/hybrid-llm-batch-node-anchor")


def test_helm_uninstall_runs_the_teardown_first_and_leaves_nothing_terminating(release, tmp_path):
    """serving.keepOnUninstall=false and a parked batch path with no node. Without the pre-delete
    Job, `helm uninstall` deletes the serving ConfigMap, garbage collection deletes the batch
    InferenceSet, and it stays Terminating. With it, both InferenceSets are gone before Helm
    deletes anything, the batch one after a node was brought up for it."""
    chart = release({"serving": {"keepOnUninstall": False}, "paths": {"batch": {"replicas": 0}}})

    with chart.cluster() as cluster:  # the old chart: no teardown
        _serving_before(cluster, chart, parked_batch=True)
        cluster.remove("ConfigMap", SERVING_CONFIGMAP)
        cluster.wait_until(lambda: cluster.happenings("kaito-write-refused", "InferenceSet/hybrid-llm-batch"))
        assert cluster.get("InferenceSet", "hybrid-llm-batch")["metadata"]["deletionTimestamp"]

    with chart.cluster() as cluster:
        _serving_before(cluster, chart, parked_batch=True)
        result = chart.run(cluster, tmp_path, job=TEARDOWN_JOB)
        assert result.returncode == 0, explain(cluster, result)
        assert cluster.list("InferenceSet") == [] and cluster.list("Deployment") == [], explain(cluster, result)
        assert at(cluster, "node-gpu-labelled", "Node/hybrid-llm-batch") < at(cluster, "terminating", "InferenceSet/hybrid-llm-batch")
        assert at(cluster, "finalized", "InferenceSet/hybrid-llm-customer") and at(cluster, "finalized", "InferenceSet/hybrid-llm-batch")
        for pool in chart.rendering.of_kind("NodePool"):  # then helm uninstall
            cluster.remove("NodePool", pool["metadata"]["name"])
        cluster.remove("ConfigMap", SERVING_CONFIGMAP)
        time.sleep(0.3)
        assert cluster.list("InferenceSet") == [] and cluster.happenings("kaito-write-refused") == [], explain(cluster, result)


# ---- refusals and the simulated GPU nodes -----------------------------------------------------


def test_a_refusal_that_names_the_node_provisioner_is_not_taken_for_a_missing_node(release, tmp_path):
    """Review #10: KAITO refuses an instanceType in byo mode ("instanceType must be empty when
    nodeProvisioner is byo"); no node changes that, so the applier fails at once with the
    webhook's words rather than waiting out the node timeout."""
    chart = release()
    batch = chart.file("batch.inferenceset.yaml")
    batch["spec"]["template"]["resource"] = {"instanceType": "Standard_NC96ads_A100_v4"}
    mounted = {**chart.serving["data"], "batch.inferenceset.yaml": yaml.safe_dump(batch)}
    with chart.cluster() as cluster:
        for path in PATHS:
            cluster.launch_node(chart.node_pool(path))
        started = time.monotonic()
        result = chart.run(cluster, tmp_path, mounted=mounted, node_timeout_seconds="60")
        elapsed = time.monotonic() - started
        assert result.returncode == 1, explain(cluster, result)
        assert elapsed < 15, f"failed after {elapsed:.1f}s, not at once:\n{explain(cluster, result)}"
        assert "FAILED: batch: InferenceSet hybrid-llm-batch was refused for a reason no GPU node can change" in result.stdout
        assert "instanceType must be empty when nodeProvisioner is byo" in result.stdout
        assert len(cluster.happenings("admission-refused")) == 1, explain(cluster, result)


def test_gpu_feature_discovery_in_the_simulator_labels_the_chart_sku_as_gfd_does(release):
    """Review #16: Standard_NC96ads_A100_v4 has 4 x NVIDIA A100 80GB PCIe (data/figures.yaml);
    GFD writes the NVML name with dashes, the count, and the memory of one GPU in MiB."""
    chart = release()
    with chart.cluster() as cluster:
        name = cluster.launch_node(chart.node_pool("batch"), gpu_labelled=False)
        cluster.wait_until(lambda: cluster.happenings("node-gpu-labelled", f"Node/{name}"))
        labels = cluster.get("Node", name)["metadata"]["labels"]
        assert labels["node.kubernetes.io/instance-type"] == "Standard_NC96ads_A100_v4"
        expected = {"nvidia.com/gpu.product": "NVIDIA-A100-80GB-PCIe", "nvidia.com/gpu.count": "4", "nvidia.com/gpu.memory": "81920"}
        assert {k: labels[k] for k in expected} == expected == GPU_LABELS
