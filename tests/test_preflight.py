"""scripts/preflight.py against recorded Kubernetes API responses, served over real HTTP on
127.0.0.1 to the official `kubernetes` client through a real kubeconfig. Each scenario in
tests/fixtures/cluster/ is a cluster (see make_fixtures.py there): healthy/ in full, every other
scenario only the responses that differ from it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from hybridllm import helm
from hybridllm.cli import preflight as preflight_cli
from hybridllm.layout import REPO_ROOT
from hybridllm.preflight.checks import Status, run_checks
from hybridllm.preflight.cluster import ClusterSnapshot
from hybridllm.preflight.kaito import KaitoController, image_tag, parse_version, set_flags
from hybridllm.preflight.needs import profile_needs
from hybridllm.preflight.tolerations import covers, tolerates_taint
from hybridllm.profiles import Profile
from hybridllm.rendering import Rendering

FIXTURES = Path(__file__).parent / "fixtures" / "cluster"
TOKEN = "fixture-bearer-token"
HF_TOKEN_FIXTURE = "hf_FIXTUREnotARealToken0123456789abcd"


class FakeApiServer:
    """Serves a scenario's recorded responses at the exact paths the client GETs. Like the API
    server, a namespaced list is the cluster-wide list filtered by namespace, an unknown path is a
    404 Status, a request without the bearer token is a 401, and a recorded Status is served with
    its code."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                server.requests.append(("GET", self.path))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._reply(401, _status(401, "Unauthorized", "Unauthorized"))
                    return
                body = server.response(urlsplit(self.path).path.rstrip("/") or "/")
                self._reply(int(body.get("code", 200)) if body.get("kind") == "Status" else 200, body)

            def _refuse(self) -> None:
                server.requests.append((self.command, self.path))
                self._reply(405, _status(405, "MethodNotAllowed", "the preflight must only read"))

            do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _recorded(self, path: str) -> Any | None:
        for scenario in (self.scenario, "healthy"):
            file = FIXTURES / scenario / f"{path.lstrip('/')}.json"
            if file.is_file():
                return json.loads(file.read_text())
        return None

    def response(self, path: str) -> Any:
        recorded = self._recorded(path)
        if recorded is not None:
            return recorded
        parts = path.strip("/").split("/")
        # /apis/apps/v1/namespaces/<ns>/<resource>: the cluster-wide list, filtered.
        if len(parts) == 6 and parts[0] == "apis" and parts[3] == "namespaces":
            listing = self._recorded("/" + "/".join(parts[:3] + parts[5:]))
            if listing is not None:
                listing["items"] = [i for i in listing["items"] if i["metadata"].get("namespace") == parts[4]]
                return listing
        return _status(404, "NotFound", "the server could not find the requested resource")

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def write_kubeconfig(path: Path, port: int, token: str = TOKEN) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "aks-llm-prod", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "clusterUser_rg-llm_aks-llm-prod", "user": {"token": token}}],
        "contexts": [{"name": "aks-llm-prod", "context": {"cluster": "aks-llm-prod", "user": "clusterUser_rg-llm_aks-llm-prod"}}],
        "current-context": "aks-llm-prod",
    }), encoding="utf-8")
    return path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Any]:
    """cluster(scenario) -> (server, kubeconfig path); servers stop after the test."""
    started: list[FakeApiServer] = []

    def start(scenario: str) -> tuple[FakeApiServer, Path]:
        assert (FIXTURES / scenario).is_dir(), scenario
        server = FakeApiServer(scenario).__enter__()
        started.append(server)
        return server, write_kubeconfig(tmp_path / f"{scenario}.kubeconfig", server.port)

    yield start
    for server in started:
        server.__exit__(None, None, None)


def preflight(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = preflight_cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def lines(out: str, status: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(f"{status} ")]


def fix_after(out: str, prefix: str) -> str:
    """The `fix:` line under the first check line starting with `prefix`."""
    rows = out.splitlines()
    for index, row in enumerate(rows):
        if row.startswith(prefix):
            assert rows[index + 1].strip().startswith("fix: "), rows[index + 1]
            return rows[index + 1].strip().removeprefix("fix: ")
    raise AssertionError(f"no line starts with {prefix!r} in:\n{out}")


def run_scenario(cluster: Any, capsys: pytest.CaptureFixture[str], scenario: str, *values: str,
                 extra: tuple[str, ...] = ()) -> tuple[int, str, FakeApiServer]:
    server, kubeconfig = cluster(scenario)
    args = ["--kubeconfig", str(kubeconfig), *extra]
    for file in values or ("values/hybrid.yaml",):
        args += ["-f", file]
    code, out, err = preflight(capsys, *args)
    assert "Traceback" not in err
    assert HF_TOKEN_FIXTURE not in out + err
    return code, out, server


# --- healthy and the states a correct cluster is in -------------------------------------------

def test_healthy_cluster_passes_every_check(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, server = run_scenario(cluster, capsys, "healthy")
    assert code == 0, out
    assert not lines(out, "FAIL") and not lines(out, "warn"), out
    assert out.splitlines()[0].startswith("preflight of values/hybrid.yaml (release hybrid-llm, namespace llm) "
                                          "on context aks-llm-prod, http://127.0.0.1:")
    for expected in (
        "ok    KAITO installed: controller kaito-workspace/kaito-workspace is available",
        "ok    KAITO version >= 0.12.0: kaito-workspace/kaito-workspace runs 0.12.0",
        "ok    KAITO nodeProvisioner: --node-provisioner=byo",
        "ok    KAITO featureGates: disableNodeAutoProvisioning=true, enableInferenceSetController=true",
        "ok    KAITO spotInstance (device plugin tolerates spot): kaito-workspace/nvidia-device-plugin-daemonset",
        "ok    GPU feature discovery tolerations: kaito-workspace/kaito-workspace-gpu-feature-discovery-gpu-feature-discovery tolerates",
        "ok    NFD worker tolerations: kaito-workspace/kaito-workspace-node-feature-discovery-worker tolerates",
        "ok    node auto-provisioning (NAP): karpenter.azure.com/v1beta1 AKSNodeClass, karpenter.sh/v1 NodePool served",
        "ok    CRD for kaito.sh/v1beta1 InferenceSet: served",
        "ok    Secret llm/hf-token with key HF_TOKEN: present (keys: HF_TOKEN; values not shown)",
        "ok    GPU nodes of hybrid-llm-batch (hybrid-llm.io/path=batch,karpenter.sh/capacity-type=spot,"
        "node.kubernetes.io/instance-type=Standard_NC96ads_A100_v4): hybrid-llm-batch-q9d4m (NVIDIA-A100-80GB-PCIe x4, 81920 MiB)",
        "ok    GPU nodes of hybrid-llm-customer",
        "ok    namespace llm: exists",
    ):
        assert any(line.startswith(expected) for line in out.splitlines()), f"{expected!r} not in:\n{out}"
    assert out.splitlines()[-1].endswith("0 FAIL, 0 warn, 0 skip")
    # Read-only, and only the reads it needs.
    assert {method for method, _ in server.requests} == {"GET"}
    paths = {urlsplit(p).path.rstrip("/") for _, p in server.requests}
    assert {"/version", "/api", "/apis", "/apis/apps/v1/deployments", "/apis/apps/v1/daemonsets", "/api/v1/nodes",
            "/api/v1/namespaces/llm", "/api/v1/namespaces/llm/secrets/hf-token", "/apis/kaito.sh/v1beta1"} <= paths


def test_no_gpu_node_yet_warns_that_the_node_anchor_brings_one(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "no-gpu-nodes")
    assert code == 0, out
    warned = lines(out, "warn")
    assert len(warned) == 2 and all("no node yet: the path's node anchor makes its Karpenter NodePool bring one up" in w
                                    for w in warned), out


def test_aks_mode_without_pools_warns_with_the_nodepool_commands(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "no-gpu-nodes", "values/spot-batch-aks.yaml")
    assert code == 0, out
    assert "skip  node auto-provisioning (NAP): node pool mode aks" in out
    assert fix_after(out, "warn  GPU nodes of hybrid-llm-batch").startswith(
        "create the path's AKS pool with the commands of `python scripts/nodepools.py values/spot-batch-aks.yaml`")


def test_aks_mode_on_labelled_nodes_passes(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "healthy", "values/spot-batch-aks.yaml")
    assert code == 0, out
    assert "ok    GPU nodes of hybrid-llm-batch (hybrid-llm.io/capacity-type=spot,hybrid-llm.io/path=batch,kubernetes.azure.com/scalesetpriority=spot," in out


def test_profile_without_paths_skips_kaito(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "healthy", "values/aoai-only.yaml")
    assert code == 0, out
    assert "skip  KAITO: the profile serves no path through KAITO" in out
    assert "skip  model-access Secret: the profile serves no path" in out
    assert "GPU nodes of" not in out


def test_kaito_namespace_restricts_the_search(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, server = run_scenario(cluster, capsys, "healthy", extra=("--kaito-namespace", "kaito-workspace"))
    assert code == 0, out
    paths = {urlsplit(p).path.rstrip("/") for _, p in server.requests}
    assert "/apis/apps/v1/namespaces/kaito-workspace/deployments" in paths
    assert "/apis/apps/v1/deployments" not in paths
    code, out, _ = run_scenario(cluster, capsys, "healthy", extra=("--kaito-namespace", "kube-system"))
    assert code == 1
    assert "FAIL  KAITO installed: no KAITO workspace controller Deployment in namespace kube-system" in out


def test_json_output(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "kaito-too-old", extra=("--format", "json"))
    assert code == 1
    report = json.loads(out)
    assert report["schemaVersion"] == 1 and report["cluster"]["kubernetesVersion"] == "v1.33.2"
    failed = [c for c in report["checks"] if c["status"] == "FAIL"]
    assert [c["id"] for c in failed] == ["kaito-version"]
    assert report["summary"]["FAIL"] == 1


# --- broken clusters: each gives its own FAIL line and its fix ---------------------------------

def failed_subjects(out: str) -> list[str]:
    return [line[6:].split(":")[0] for line in lines(out, "FAIL")]


def test_kaito_too_old(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "kaito-too-old")
    assert code == 1
    assert failed_subjects(out) == ["KAITO version >= 0.12.0"], out
    assert ("FAIL  KAITO version >= 0.12.0: kaito-workspace/kaito-workspace runs 0.11.2; the chart needs >= 0.12.0 "
            "(ConfigMap hybrid-llm-kaito-install data.minimumVersion)") in out
    assert fix_after(out, "FAIL  KAITO version") == \
        "helm upgrade kaito-workspace kaito/workspace -n kaito-workspace --reuse-values --version 0.12.0"


def test_kaito_node_provisioner_mismatch(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "kaito-node-provisioner-default")
    assert code == 1
    assert failed_subjects(out) == ["KAITO nodeProvisioner"], out
    assert "FAIL  KAITO nodeProvisioner: KAITO runs --node-provisioner=azure-gpu-provisioner; the profile needs byo" in out
    assert fix_after(out, "FAIL  KAITO nodeProvisioner") == (
        "helm upgrade kaito-workspace kaito/workspace -n kaito-workspace --reuse-values --version 0.12.0 "
        "--set nodeProvisioner=byo")


def test_kaito_mode_profile_on_a_byo_cluster(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The declared install comes from the render: on-demand-kaito declares karpenter and NAP on."""
    code, out, _ = run_scenario(cluster, capsys, "healthy", "values/on-demand-kaito.yaml")
    assert code == 1
    assert failed_subjects(out) == ["KAITO nodeProvisioner", "KAITO featureGates"], out
    assert "KAITO runs disableNodeAutoProvisioning=true (needs false)" in out
    assert fix_after(out, "FAIL  KAITO featureGates").endswith("--set featureGates.disableNodeAutoProvisioning=false")
    assert "skip  GPU nodes of hybrid-llm-customer" in out


def test_gfd_without_sku_toleration(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "gfd-without-sku-toleration")
    assert code == 1
    assert failed_subjects(out) == ["GPU feature discovery tolerations", "NFD worker tolerations",
                                    "GPU nodes of hybrid-llm-batch (hybrid-llm.io/path=batch,karpenter.sh/capacity-type=spot,"
                                    "node.kubernetes.io/instance-type=Standard_NC96ads_A100_v4)",
                                    "GPU nodes of hybrid-llm-customer (hybrid-llm.io/path=customer,karpenter.sh/capacity-type="
                                    "on-demand,node.kubernetes.io/instance-type=Standard_NC96ads_A100_v4)"], out
    assert ("FAIL  GPU feature discovery tolerations: kaito-workspace/kaito-workspace-gpu-feature-discovery-gpu-feature-discovery "
            "does not tolerate sku=gpu:NoSchedule, kubernetes.azure.com/scalesetpriority=spot:NoSchedule") in out
    gfd_fix = fix_after(out, "FAIL  GPU feature discovery")
    assert gfd_fix.startswith("helm upgrade kaito-workspace kaito/workspace -n kaito-workspace --reuse-values --version 0.12.0 "
                              "--set-json 'gpu-feature-discovery.tolerations=[")
    tolerations = json.loads(gfd_fix.split("gpu-feature-discovery.tolerations=", 1)[1].rstrip("'"))
    assert {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in tolerations
    assert "gpu-feature-discovery.nfd.worker.tolerations=[" in fix_after(out, "FAIL  NFD worker")
    # The unlabelled nodes point at the taint GFD does not tolerate.
    assert "node hybrid-llm-customer-7xk2p lacks nvidia.com/gpu.product, nvidia.com/gpu.count, nvidia.com/gpu.memory" in out
    assert fix_after(out, "FAIL  GPU nodes of hybrid-llm-batch") == (
        "kaito-workspace/kaito-workspace-gpu-feature-discovery-gpu-feature-discovery does not tolerate sku=gpu:NoSchedule, "
        "kubernetes.azure.com/scalesetpriority=spot:NoSchedule; kaito-workspace/kaito-workspace-node-feature-discovery-worker "
        "does not tolerate sku=gpu:NoSchedule, kubernetes.azure.com/scalesetpriority=spot:NoSchedule: give them the "
        "tolerations of the GPU feature discovery line's fix")


def test_spot_profile_with_device_plugin_lacking_spot_toleration(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "device-plugin-without-spot-toleration")
    assert code == 1
    assert failed_subjects(out)[0] == "KAITO spotInstance (device plugin tolerates spot)", out
    assert ("FAIL  KAITO spotInstance (device plugin tolerates spot): kaito-workspace/nvidia-device-plugin-daemonset does "
            "not tolerate kubernetes.azure.com/scalesetpriority=spot:NoSchedule") in out
    assert fix_after(out, "FAIL  KAITO spotInstance").endswith("--reuse-values --version 0.12.0 --set spotInstance.enabled=true")
    # The spot node it left without GPUs, and only that path.
    assert "node hybrid-llm-batch-q9d4m has no allocatable nvidia.com/gpu, so no vLLM pod can start there" in out
    assert fix_after(out, "FAIL  GPU nodes of hybrid-llm-batch") == (
        "kaito-workspace/nvidia-device-plugin-daemonset does not tolerate kubernetes.azure.com/scalesetpriority=spot:NoSchedule: "
        "see the KAITO spotInstance line's fix")
    assert "ok    GPU nodes of hybrid-llm-customer" in out
    # The same cluster is fine for a profile that runs no spot path.
    code, out, _ = run_scenario(cluster, capsys, "device-plugin-without-spot-toleration", "values/on-demand.yaml")
    assert code == 0, out
    assert "skip  KAITO spotInstance (device plugin tolerates spot): no path of the profile runs on spot" in out


def test_missing_crd_for_a_rendered_kind(cluster: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monitoring = tmp_path / "monitoring.yaml"
    monitoring.write_text("monitoring:\n  serviceMonitor: true\n", encoding="utf-8")
    code, out, _ = run_scenario(cluster, capsys, "no-prometheus-operator", "values/hybrid.yaml", str(monitoring))
    assert code == 1
    assert failed_subjects(out) == ["CRD for monitoring.coreos.com/v1 ServiceMonitor"], out
    assert "FAIL  CRD for monitoring.coreos.com/v1 ServiceMonitor: API group monitoring.coreos.com is not served (no CRD)" in out
    fix = fix_after(out, "FAIL  CRD for monitoring.coreos.com/v1 ServiceMonitor")
    assert "helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack" in fix
    assert fix.endswith("; or set monitoring.serviceMonitor=false in the values")
    assert out.startswith(f"preflight of values/hybrid.yaml -f {monitoring} (release hybrid-llm")
    # The kinds come from the render: without monitoring the same cluster passes.
    code, out, _ = run_scenario(cluster, capsys, "no-prometheus-operator")
    assert code == 0, out
    assert "ServiceMonitor" not in out
    # ...and with monitoring on, a cluster that has the operator passes.
    code, out, _ = run_scenario(cluster, capsys, "healthy", "values/hybrid.yaml", str(monitoring))
    assert code == 0, out
    assert "ok    CRD for monitoring.coreos.com/v1 ServiceMonitor: served" in out


def test_nap_not_enabled(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "nap-disabled")
    assert code == 1
    assert failed_subjects(out) == ["node auto-provisioning (NAP)"], out
    assert ("FAIL  node auto-provisioning (NAP): karpenter.azure.com/v1beta1 AKSNodeClass: API group karpenter.azure.com "
            "is not served (no CRD); karpenter.sh/v1 NodePool: karpenter.sh/v1 has no kind NodePool") in out
    assert fix_after(out, "FAIL  node auto-provisioning").startswith(
        "az aks update -g <resource-group> -n <cluster> --node-provisioning-mode Auto")


def test_hf_token_secret_missing(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "hf-token-missing")
    assert code == 1
    assert failed_subjects(out) == ["Secret llm/hf-token with key HF_TOKEN"], out
    assert "FAIL  Secret llm/hf-token with key HF_TOKEN: the Secret does not exist" in out
    assert fix_after(out, "FAIL  Secret") == (
        "kubectl -n llm create secret generic hf-token --from-literal=HF_TOKEN=<Hugging Face token with access to the model>")


def test_hf_token_secret_with_wrong_key(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "hf-token-wrong-key")
    assert code == 1
    assert failed_subjects(out) == ["Secret llm/hf-token with key HF_TOKEN"], out
    assert "FAIL  Secret llm/hf-token with key HF_TOKEN: the Secret has no key HF_TOKEN (its keys: token); KAITO reads HF_TOKEN" in out
    assert fix_after(out, "FAIL  Secret").endswith("--dry-run=client -o yaml | kubectl apply -f -")


def test_hf_token_secret_unreadable_is_a_warning(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "hf-token-forbidden")
    assert code == 0, out
    assert "warn  Secret llm/hf-token with key HF_TOKEN: not checked: forbidden to read secret llm/hf-token" in out


def test_key_vault_profile_does_not_need_the_secret(cluster: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key_vault = tmp_path / "kv.yaml"
    key_vault.write_text("modelAccess:\n  source: keyVault\n  keyVault:\n    vaultName: kv-llm\n"
                         "    tenantId: 00000000-0000-0000-0000-000000000001\n    clientId: 00000000-0000-0000-0000-000000000002\n",
                         encoding="utf-8")
    code, out, server = run_scenario(cluster, capsys, "hf-token-missing", "values/hybrid.yaml", str(key_vault))
    assert code == 0, out
    assert "skip  Secret llm/" in out and "synced from Azure Key Vault by SecretProviderClass" in out
    assert "ok    CRD for secrets-store.csi.x-k8s.io/v1 SecretProviderClass: served" in out
    assert not any("/secrets/" in p for _, p in server.requests)


def test_gpu_node_without_nvidia_labels(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "gpu-node-unlabelled")
    assert code == 1
    assert len(lines(out, "FAIL")) == 1 and lines(out, "FAIL")[0].startswith("FAIL  GPU nodes of hybrid-llm-batch"), out
    assert ("node hybrid-llm-batch-w2c8r lacks nvidia.com/gpu.product, nvidia.com/gpu.count, nvidia.com/gpu.memory, "
            "so KAITO's byo webhook refuses the InferenceSet") in out
    assert "hybrid-llm-batch-q9d4m" not in lines(out, "FAIL")[0]
    assert fix_after(out, "FAIL  GPU nodes of hybrid-llm-batch") == (
        "check the GFD and NFD worker pods on it (kubectl get pods -A -o wide --field-selector spec.nodeName=hybrid-llm-batch-w2c8r)")


def test_fresh_cluster(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_scenario(cluster, capsys, "fresh-cluster")
    assert code == 1
    assert "warn  namespace llm: does not exist yet" in out
    assert fix_after(out, "FAIL  Secret llm/hf-token").startswith("kubectl create namespace llm && kubectl -n llm create secret")


# --- the cluster cannot be used: exit 2, one line --------------------------------------------

def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "preflight.py"), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False, env=env)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_exits_2_with_one_line(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", free_port())
    done = run_cli("--kubeconfig", str(kubeconfig), "-f", "values/hybrid.yaml")
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: cannot reach the API server http://127.0.0.1:")
    assert "(context aks-llm-prod): connection refused; fix: check that the cluster is running" in done.stderr


def test_the_cli_end_to_end(cluster: Any) -> None:
    """The script as a user runs it, in a process of its own, against a broken cluster."""
    _, kubeconfig = cluster("hf-token-wrong-key")
    done = run_cli("--kubeconfig", str(kubeconfig), "-f", "values/hybrid.yaml")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL  Secret llm/hf-token with key HF_TOKEN" in done.stdout
    assert HF_TOKEN_FIXTURE not in done.stdout + done.stderr


@pytest.mark.parametrize("args, message", [
    (["--context", "staging"], "error: kubeconfig {kubeconfig} has no context 'staging'; fix: use one of: aks-llm-prod"),
    (["--kubeconfig", "{missing}"], "error: kubeconfig {missing} does not exist; fix: pass an existing file to --kubeconfig"),
])
def test_usage_errors_exit_2(cluster: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                             args: list[str], message: str) -> None:
    _, kubeconfig = cluster("healthy")
    missing = tmp_path / "nope" / "config"
    names = {"kubeconfig": kubeconfig, "missing": missing}
    argv = ["--kubeconfig", str(kubeconfig)] + [a.format(**names) for a in args] + ["-f", "values/hybrid.yaml"]
    code, out, err = preflight(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith(message.format(**names)), err
    assert len(err.strip().splitlines()) == 1


def test_no_kubeconfig_at_all(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = run_cli("-f", "values/hybrid.yaml", env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: no kubeconfig: ~/.kube/config does not exist and KUBECONFIG is not set; "
                                   "fix: az aks get-credentials -g <resource-group> -n <cluster>, or pass --kubeconfig PATH")


def test_rejected_credentials(cluster: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    server, _ = cluster("healthy")
    kubeconfig = write_kubeconfig(tmp_path / "expired", server.port, token="expired-token")
    code, out, err = preflight(capsys, "--kubeconfig", str(kubeconfig), "-f", "values/hybrid.yaml")
    assert code == 2 and out == ""
    assert err.startswith(f"error: the API server http://127.0.0.1:{server.port} rejected the credentials (401)")


def test_values_error_is_reported_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = preflight(capsys, "--kubeconfig", "/nonexistent", "-f", "values/typo.yaml")
    assert code == 2
    assert err.startswith("error: values/typo.yaml: file not found")


# --- the pieces, on inputs the scenarios do not reach -----------------------------------------

def test_profile_needs_reads_embedded_and_top_level_inference_sets(render: Any) -> None:
    byo = render("hybrid")
    needs = profile_needs(byo, "hybrid-llm", "llm")
    assert needs.node_pool_mode == "nap"
    assert [p.inference_set for p in needs.paths] == ["hybrid-llm-batch", "hybrid-llm-customer"]
    assert all(p.carried_by and p.carried_by.startswith("ConfigMap/") for p in needs.paths)
    assert needs.model_access_secrets == ["hf-token"]
    # The same objects when the render lists only the carrying ConfigMap (not its documents).
    carriers_only = Rendering(byo.profile, byo.values, [o for o in byo.objects if o.embedded_in is None])
    assert profile_needs(carriers_only, "hybrid-llm", "llm").paths == needs.paths
    kaito_mode = profile_needs(render("on-demand-kaito"), "hybrid-llm", "llm")
    assert kaito_mode.node_pool_mode == "kaito"
    assert all(p.carried_by is None for p in kaito_mode.paths) and len(kaito_mode.paths) == 2
    assert kaito_mode.kaito and kaito_mode.kaito.gfd_tolerations is None


def test_profile_needs_refuses_an_unreadable_declaration(render: Any) -> None:
    from hybridllm.errors import UserError

    base = render("hybrid")
    objects = []
    for rendered in base.objects:
        obj = rendered.obj
        if rendered.kind == "ConfigMap" and rendered.name == "hybrid-llm-kaito-install":
            obj = {**obj, "data": {**obj["data"], "values.yaml": "nodeProvisioner: [byo"}}
        objects.append(helm.RenderedObject(rendered.template, obj, rendered.embedded_in))
    with pytest.raises(UserError, match='ConfigMap hybrid-llm-kaito-install data."values.yaml" is not valid YAML'):
        profile_needs(Rendering(Profile("x", base.profile.path, {}), base.values, objects), "hybrid-llm", "llm")


def test_toleration_coverage() -> None:
    sku = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    assert covers([sku], sku)
    assert covers([{"operator": "Exists"}], sku)
    assert covers([{"key": "sku", "operator": "Exists"}], sku)
    assert not covers([{"key": "sku", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"}], sku)
    assert not covers([{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoExecute"}], sku)
    gpu_any = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert not covers([{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}], gpu_any)
    assert covers([{"key": "nvidia.com/gpu", "operator": "Exists"}], gpu_any)
    no_effect = {"key": "CriticalAddonsOnly", "operator": "Exists"}
    assert not covers([{"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}], no_effect)
    assert tolerates_taint([{"key": "sku", "value": "gpu"}], {"key": "sku", "value": "gpu", "effect": "NoExecute"})


def test_versions_and_flags() -> None:
    assert image_tag("mcr.microsoft.com/aks/kaito/workspace:0.12.0") == "0.12.0"
    assert image_tag("myregistry:5000/kaito/workspace:v0.13.1@sha256:abc") == "v0.13.1"
    assert image_tag("myregistry:5000/kaito/workspace@sha256:abc") is None
    assert parse_version("v0.12") == (0, 12, 0) and parse_version("0.10.0-20260609") == (0, 10, 0)
    assert parse_version("nightly-latest") is None
    deployment = {"metadata": {"namespace": "kaito", "labels": {"app.kubernetes.io/version": "0.12.1"}},
                  "spec": {"template": {"spec": {"containers": []}}}}
    controller = KaitoController(deployment, {"image": "mcr.microsoft.com/aks/kaito/workspace@sha256:abc",
                                              "args": ["--feature-gates=vLLM=true", "--node-provisioner", "byo"]})
    assert controller.version == (0, 12, 1)
    assert controller.node_provisioner == "byo"
    # Gates the flag leaves out keep the controller's defaults (pkg/featuregates/featuregates.go).
    assert controller.feature_gates == {"vLLM": True, "disableNodeAutoProvisioning": False, "enableInferenceSetController": True}
    assert set_flags({"a": {"b": True, "c": [{"k": "v"}]}, "d": "x y"}) == [
        "--set a.b=true", "--set-json 'a.c=[{\"k\":\"v\"}]'", "--set 'd=x y'"]


def test_checks_warn_when_reads_are_denied(render: Any) -> None:
    needs = profile_needs(render("hybrid"), "hybrid-llm", "llm")
    snapshot = ClusterSnapshot(server="https://x", context="c", kubernetes_version="v1.33.2", api_versions={}, kinds={},
                               deployments=None, daemonsets=None, nodes=None, namespace_exists=None,
                               denied={"deployments": "forbidden to read deployments", "nodes": "forbidden to read nodes"})
    results = {r.id: r for r in run_checks(needs, snapshot)}
    assert results["kaito-installed"].status is Status.WARN
    assert results["kaito-installed"].detail == "not checked: forbidden to read deployments"
    assert results["gpu-nodes/hybrid-llm-batch"].status is Status.WARN
