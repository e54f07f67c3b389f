"""Issue 9 item 1 (and 3): the serving applier hook Job brings a byo install from zero GPU nodes to
serving. The applier runs as the rendered Job runs it (`python -m applier` with the Job's args and
the serving ConfigMap's keys as files) against the simulated cluster of kube_sim (KAITO's webhook
and controllers, Karpenter, GPU feature discovery, the garbage collector), and the cluster's
timeline shows what happened in which order. No kubectl, bash or jq: the Job's image has none.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from applier.kube import INFERENCE_SETS, ApiError, KubeClient, Resource
from kube_sim import SimulatedCluster, Timings

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

    def container(self) -> dict[str, Any]:
        jobs = [j for j in self.rendering.of_kind("Job") if j["metadata"]["labels"].get("app.kubernetes.io/component") == "serving-applier"]
        assert len(jobs) == 1, "the chart renders one serving applier Job in byo modes"
        return jobs[0]["spec"]["template"]["spec"]["containers"][0]

    def job_invocation(self, manifests: Path) -> list[str]:
        """The Job's command and args, run by this interpreter, with the serving ConfigMap's mount
        path moved to `manifests`."""
        job = next(j for j in self.rendering.of_kind("Job") if j["metadata"]["labels"].get("app.kubernetes.io/component") == "serving-applier")
        pod = job["spec"]["template"]["spec"]
        volume = next(v["name"] for v in pod["volumes"] if v.get("configMap", {}).get("name") == SERVING_CONFIGMAP)
        container = self.container()
        mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume)
        assert container["command"] == ["python", "-m", "applier"]
        return [sys.executable, "-m", "applier", *(arg.replace(mount, str(manifests)) for arg in container["args"])]

    def run(self, cluster: SimulatedCluster, workdir: Path, **options: str) -> subprocess.CompletedProcess:
        """Run the applier as the Job does, against the simulated API server. `options` override
        the Job's (node_timeout_seconds="3" -> --node-timeout-seconds=3)."""
        manifests = workdir / "serving"
        manifests.mkdir(exist_ok=True)
        for key, text in self.serving["data"].items():
            (manifests / key).write_text(text)
        command = self.job_invocation(manifests)
        overrides = {**RUN_BUDGET, **{k.replace("_", "-"): v for k, v in options.items()}}
        # argparse keeps the last of a repeated option, so these override the Job's.
        command += [f"--{k}={v}" for k, v in overrides.items()] + [f"--api-server={cluster.url}"]
        # No KUBERNETES_SERVICE_HOST and no ServiceAccount: only --api-server can reach a cluster.
        env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)


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
    then), a vLLM pod on the node. Returns the node of each path."""
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
    assert by_resource[(("deployments",), ())] == {"create", "list"}
    # Both anchors, the disabled path's too: the applier deletes the anchor a path left behind.
    assert by_resource[(("deployments",), ("hybrid-llm-batch-node-anchor", "hybrid-llm-customer-node-anchor"))] == {"get", "patch", "delete"}
    assert by_resource[(("inferencesets",), ())] == {"get", "list", "create", "patch", "delete"}
    assert by_resource[(("pods", "events"), ())] == {"get", "list"}
    assert by_resource[(("configmaps",), (SERVING_CONFIGMAP,))] == {"get"}
    assert len(rules) == 5
    (cluster_rule,) = rendering.find("ClusterRole", "llm-hybrid-llm-serving-applier")["rules"]
    assert cluster_rule["resources"] == ["nodes"] and set(cluster_rule["verbs"]) == {"get", "list"}


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


def test_gpu_labels_that_never_come_time_out_with_a_diagnosis_and_anchors_kept(release, tmp_path):
    """GPU feature discovery as KAITO installs it by default does not tolerate the pools' sku=gpu
    taint: nodes come, labels never do, KAITO would refuse the InferenceSets."""
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
            assert cluster.get("Deployment", f"hybrid-llm-{path}-node-anchor") is not None, "the anchor stays"
        assert "FailedScheduling hybrid-llm-batch-node-anchor-" in output, "the anchor pods' scheduling events are shown"
        assert "the anchors stay" in output and "Fix: check the events above" in output
        assert len(cluster.list("Node")) == 2, "the anchors did bring the nodes"
        assert cluster.list("InferenceSet") == [], "nothing KAITO would refuse was applied"


def test_helm_uninstall_removes_the_anchors_a_failed_run_left(release, tmp_path):
    """(a) The anchors are owned by the Helm-managed serving ConfigMap, with its real UID filled in
    by the applier (whatever serving.keepOnUninstall says), so after a failed run `helm uninstall`
    takes them, their pods and so their GPU nodes' reason to exist, through garbage collection."""
    chart = release()
    assert chart.file("batch.node-anchor.yaml")["metadata"]["ownerReferences"][0]["uid"] == OWNER_UID_PLACEHOLDER
    with chart.cluster(gfd_tolerations=KAITO_DEFAULT_GFD_TOLERATIONS) as cluster:
        result = chart.run(cluster, tmp_path, node_timeout_seconds="2")
        assert result.returncode == 1, explain(cluster, result)
        uid = cluster.get("ConfigMap", SERVING_CONFIGMAP)["metadata"]["uid"]
        for path in PATHS:
            anchor = cluster.get("Deployment", f"hybrid-llm-{path}-node-anchor")
            assert anchor["metadata"]["ownerReferences"] == [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": SERVING_CONFIGMAP, "uid": uid}], explain(cluster, result)
        assert cluster.happenings("garbage-collected") == [], "a filled-in owner keeps the anchors while the release exists"
        assert len(cluster.list("Pod", "app.kubernetes.io/instance=hybrid-llm")) == 2

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


def test_keep_on_uninstall_false_owns_inferencesets_by_the_configmap_and_prunes_disabled_paths(release, tmp_path):
    chart = release({"serving": {"keepOnUninstall": False}, "paths": {"batch": {"enabled": False}}})
    before = release({"serving": {"keepOnUninstall": False}})
    with chart.cluster() as cluster:
        cluster.launch_node(chart.node_pool("customer"))
        # The batch path of an earlier revision of this release, and another release's.
        left_over = owned(before.file("batch.inferenceset.yaml"), cluster)
        assert RELEASE_LABELS.items() <= left_over["metadata"]["labels"].items()
        cluster.seed(left_over)
        other = before.file("batch.inferenceset.yaml")
        other["metadata"].update(name="other-batch", labels={**other["metadata"]["labels"], "app.kubernetes.io/instance": "other"})
        del other["metadata"]["ownerReferences"]
        cluster.seed(other)

        result = chart.run(cluster, tmp_path)
        assert result.returncode == 0, explain(cluster, result)
        uid = cluster.get("ConfigMap", SERVING_CONFIGMAP)["metadata"]["uid"]
        owners = cluster.get("InferenceSet", "hybrid-llm-customer")["metadata"]["ownerReferences"]
        assert owners == [{"apiVersion": "v1", "kind": "ConfigMap", "name": SERVING_CONFIGMAP, "uid": uid}]
        assert cluster.get("InferenceSet", "hybrid-llm-batch") is None, explain(cluster, result)
        assert cluster.get("InferenceSet", "other-batch") is not None, "another release's InferenceSet stays"
        assert "deleting InferenceSet hybrid-llm-batch" in result.stdout
        assert at(cluster, "deleted", "InferenceSet/hybrid-llm-batch"), "the applier pruned it, not the garbage collector"


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
    exists), prints the roll, and succeeds."""
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
