"""The serving applier's own edges: its API client in a Pod (HTTPS to KUBERNETES_SERVICE_HOST with
the ServiceAccount token and the cluster CA, against a real TLS server on 127.0.0.1), and the
clear errors, with exit code 2, for an invocation or a manifests directory that is wrong.
The convergence itself is tests/test_apply_serving.py."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from applier.cluster import node_can_cure
from applier.kube import NODES, ApiError, ConfigError, KubeClient

REPO_ROOT = Path(__file__).resolve().parents[1]


def self_signed(directory: Path, stem: str) -> tuple[Path, Path]:
    """A CA-flagged certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kube-apiserver-{stem}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_file, key_file


class TlsApiServer:
    """An API server that lists one node to a request bearing the expected token, and answers 401
    otherwise, as the real one does."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.token = ""
        self.seen: list[tuple[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                authorization = self.headers.get("Authorization", "")
                outer.seen.append((self.path, authorization))
                if authorization != f"Bearer {outer.token}":
                    self._send(401, {"kind": "Status", "status": "Failure", "reason": "Unauthorized", "message": "Unauthorized", "code": 401})
                else:
                    self._send(200, {"kind": "NodeList", "apiVersion": "v1", "items": [{"metadata": {"name": "gpu-1"}}]})

            def _send(self, status: int, body: dict) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "TlsApiServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[TlsApiServer]:
    cert, key = self_signed(tmp_path, "apiserver")
    with TlsApiServer(cert, key) as server:
        yield server


def service_account(directory: Path, ca: Path, token: str) -> Path:
    account = directory / "serviceaccount"
    account.mkdir()
    (account / "ca.crt").write_bytes(ca.read_bytes())
    (account / "token").write_text(token + "\n")
    return account


def test_in_cluster_client_uses_the_service_account_token_and_ca(api_server: TlsApiServer, tmp_path: Path) -> None:
    account = service_account(tmp_path, tmp_path / "apiserver.crt", "first-token")
    api_server.token = "first-token"
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api_server.port)}
    client = KubeClient.in_cluster(env, account)
    assert client.server == f"https://127.0.0.1:{api_server.port}"
    assert [n["metadata"]["name"] for n in client.list(NODES, label_selector="hybrid-llm.io/path=batch")] == ["gpu-1"]
    assert api_server.seen[-1] == ("/api/v1/nodes?labelSelector=hybrid-llm.io%2Fpath%3Dbatch", "Bearer first-token")
    # The kubelet rotates a projected token in place: the next request carries the new one.
    (account / "token").write_text("rotated-token")
    api_server.token = "rotated-token"
    assert client.list(NODES)
    assert api_server.seen[-1][1] == "Bearer rotated-token"
    # A token the server no longer takes is a refusal, not something to ask again.
    api_server.token = "something-else"
    with pytest.raises(ApiError) as refused:
        client.list(NODES)
    assert refused.value.status == 401 and not refused.value.transient


def test_a_server_the_cluster_ca_does_not_vouch_for_is_a_config_error(api_server: TlsApiServer, tmp_path: Path) -> None:
    other_ca, _ = self_signed(tmp_path, "other")
    client = KubeClient.for_server(f"https://127.0.0.1:{api_server.port}", service_account(tmp_path, other_ca, "t"))
    with pytest.raises(ConfigError, match="does not verify against the cluster CA"):
        client.list(NODES)
    assert api_server.seen == [], "no token was sent to it"


def test_no_answer_is_transient(tmp_path: Path) -> None:
    # A port nothing listens on: bind one, note it, close it.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ApiError) as no_answer:
        KubeClient.for_server(f"http://127.0.0.1:{port}").list(NODES)
    assert no_answer.value.status == 0 and no_answer.value.transient


@pytest.mark.parametrize("url, message", [
    ("http://10.0.0.1:443", "plain http is accepted only for a test API server at http://127.0.0.1:<port>"),
    ("http://localhost:8080", "plain http is accepted only"),
    ("ftp://127.0.0.1:21", "expected https://<host>[:<port>]"),
])
def test_api_server_urls_that_are_refused(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--api-server") as refused:
        KubeClient.for_server(url, tmp_path)
    assert message in str(refused.value)


def test_outside_a_pod_without_api_server_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST is not set.*--api-server"):
        KubeClient.in_cluster({}, tmp_path)
    with pytest.raises(ConfigError, match=r"no ServiceAccount token at .*token.*automountServiceAccountToken"):
        KubeClient.in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path)


# ---- the CLI's refusals -----------------------------------------------------------------------


def run_applier(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "applier", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})


def manifests(tmp_path: Path, plan: str, anchor_name: str = "r-batch-node-anchor") -> Path:
    directory = tmp_path / "serving"
    directory.mkdir()
    (directory / "plan.tsv").write_text(plan)
    (directory / "batch.inferenceset.yaml").write_text(
        "apiVersion: kaito.sh/v1beta1\nkind: InferenceSet\nmetadata: {name: r-batch}\nspec: {}\n")
    (directory / "batch.node-anchor.yaml").write_text(
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {anchor_name}\n"
        "  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: r-serving, uid: SERVING-CONFIGMAP-UID}]\nspec: {}\n")
    return directory


GOOD_LINE = "batch\tr-batch\t1\thybrid-llm.io/path=batch\tr-batch-node-anchor\n"


@pytest.mark.parametrize("plan, anchor_name, extra, message", [
    ("batch\tr-batch\t1\n", "r-batch-node-anchor", [],
     "plan.tsv line 1: expected 5 tab-separated fields (path, InferenceSet, replicas, node label selector, anchor Deployment), found 3"),
    ("batch\tr-batch\tmany\thybrid-llm.io/path=batch\tr-batch-node-anchor\n", "r-batch-node-anchor", [],
     "plan.tsv line 1: replicas 'many' is not a whole number >= 0"),
    ("gpu\tr-gpu\t1\thybrid-llm.io/path=gpu\tr-gpu-node-anchor\n", "r-batch-node-anchor", [],
     "plan.tsv line 1: unknown path 'gpu'; the chart's paths are customer, batch"),
    (GOOD_LINE, "someone-else", [],
     "batch.node-anchor.yaml: the Deployment is named 'someone-else', but plan.tsv says 'r-batch-node-anchor'"),
    (GOOD_LINE, "r-batch-node-anchor", ["--owner-uid-placeholder=SERVING-CONFIGMAP-UID"],
     "batch.node-anchor.yaml: its ownerReferences carry the placeholder UID SERVING-CONFIGMAP-UID, but --owner-configmap is not set"),
    (GOOD_LINE, "r-batch-node-anchor", ["--owner-configmap=r-serving", "--api-server=http://10.0.0.1:80"],
     "--api-server http://10.0.0.1:80: plain http is accepted only for a test API server"),
])
def test_wrong_manifests_or_options_exit_2_naming_the_file_or_option(tmp_path, plan, anchor_name, extra, message) -> None:
    directory = manifests(tmp_path, plan, anchor_name)
    result = run_applier(f"--manifests={directory}", "--namespace=llm", "--release=r", *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("args, message", [
    (["--teardown"], "--teardown needs --prune-selector"),
    (["--prune-selector=app.kubernetes.io/instance=r"], "--prune-selector and --keep-inference-set go with --teardown"),
    (["--keep-inference-set=r-batch"], "--prune-selector and --keep-inference-set go with --teardown"),
])
def test_teardown_options_out_of_place_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_applier(f"--manifests={tmp_path}", "--namespace=llm", "--release=r", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_teardown_anchor_that_is_not_a_deployment_exits_2(tmp_path: Path) -> None:
    (tmp_path / "batch.node-anchor.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
    result = run_applier(f"--manifests={tmp_path}", "--namespace=llm", "--release=r", "--teardown", "--prune-selector=a=b",
                         "--api-server=http://127.0.0.1:9")
    assert result.returncode == 2 and "batch.node-anchor.yaml: expected a Deployment, found v1/Pod" in result.stdout, result.stdout


# KAITO's refusals as its webhook sends them (knative's "validation failed: " and one error per
# line, details on the next), from api/v1beta1/workspace_validation.go and inferenceset_validation.go.
_DENIED = 'admission webhook "validation.inferenceset.kaito.sh" denied the request: validation failed: '


@pytest.mark.parametrize("errors, curable", [
    ("No nodes found matching the specified label selector: ", True),
    ("Failed to get GPU config from nvidia labels on node gpu-1: missing required nvidia.com labels on node gpu-1: ", True),
    ("Non-uniform GPU count: node gpu-2 has 8 GPUs, but previous node has 4 GPUs: ", True),
    ("Failed to determine GPU configuration from existing nodes, ensure nodes have appropriate NVIDIA GPU labels: ", True),
    ("invalid value: Standard_NC96ads_A100_v4: spec.template.resource.instanceType\n"
     "instanceType must be empty when nodeProvisioner is byo", False),
    ("invalid value: matchLabels must contain at least one non-reserved label: spec.template.labelSelector.matchLabels", False),
    ("Failed to list nodes with labelSelector: nodes is forbidden: User cannot list resource nodes: ", False),
    ("No nodes found matching the specified label selector: \n"
     "invalid value: Standard_NC96ads_A100_v4: spec.template.resource.instanceType\n"
     "instanceType must be empty when nodeProvisioner is byo", False),
    ("invalid value: Unsupported inference preset name llama-3.3-70b-instuct: spec.template.inference.presetName", False),
])
def test_only_kaitos_node_refusals_are_worth_waiting_for(errors: str, curable: bool) -> None:
    assert node_can_cure(_DENIED + errors) is curable


def test_a_missing_manifests_directory_exits_2(tmp_path: Path) -> None:
    result = run_applier(f"--manifests={tmp_path / 'nowhere'}", "--namespace=llm", "--release=r")
    assert result.returncode == 2
    assert f"{tmp_path / 'nowhere' / 'plan.tsv'}: cannot read it" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
