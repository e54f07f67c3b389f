"""A simulated AKS cluster for running the serving applier against: the API server of kube_sim_api
on 127.0.0.1 (plain HTTP) over the store of kube_sim_store, with the controllers of
kube_sim_controllers (KAITO's webhook, serving and InferenceSet finalizer, Karpenter, GPU feature
discovery, the scheduler, the Deployment controller and the garbage collector) ticking on the
server's event loop.

    with SimulatedCluster(Timings(node_launch=0.5)) as cluster:
        cluster.seed(node_pool)                       # as `helm install` would have created it
        subprocess.run([sys.executable, "-m", "applier", f"--api-server={cluster.url}", ...])
        cluster.happenings("node-ready")
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from pathlib import Path
from typing import Any, Callable

import yaml
from aiohttp import web

from kube_sim_api import ApiServer
from kube_sim_controllers import (
    GPU_LABELS,
    INFERENCE_SET_FINALIZER,
    NODE,
    POD,
    DeploymentController,
    GarbageCollector,
    GpuFeatureDiscovery,
    KaitoInferenceSetLifecycle,
    KaitoServing,
    KaitoWebhook,
    Karpenter,
    Scheduler,
    Timings,
    node_gfd_labels,
)
from kube_sim_store import BY_KIND, Happening, LabelSelector, Obj, ObjectStore

__all__ = ["GPU_LABELS", "SimulatedCluster", "Timings"]


class SimulatedCluster:
    def __init__(
        self,
        timings: Timings = Timings(),
        gfd_tolerations: list[dict[str, Any]] | None = None,
        nfd_worker_tolerations: list[dict[str, Any]] | None = None,
        namespace: str = "llm",
    ) -> None:
        """`gfd_tolerations` / `nfd_worker_tolerations`: those of KAITO's GPU feature discovery
        install; None tolerates every taint."""
        everything = [{"operator": "Exists"}]
        self.namespace = namespace
        self.timings = timings
        self.store = ObjectStore()
        self.webhook = KaitoWebhook(self.store)
        self.api = ApiServer(self.store, self.webhook)
        self.karpenter = Karpenter(self.store, timings.node_launch)
        self.controllers = [
            GarbageCollector(self.store),
            DeploymentController(self.store),
            Scheduler(self.store),
            self.karpenter,
            GpuFeatureDiscovery(
                self.store,
                timings.gpu_labels,
                everything if gfd_tolerations is None else gfd_tolerations,
                everything if nfd_worker_tolerations is None else nfd_worker_tolerations,
            ),
            KaitoServing(self.store, timings.vllm_pod),
            KaitoInferenceSetLifecycle(self.store, self.webhook),
        ]
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._controller_task: asyncio.Task | None = None
        self.controller_errors: list[BaseException] = []
        self.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

    # -- lifecycle
    def __enter__(self) -> "SimulatedCluster":
        return self.start()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop()
        if exc_type is None and self.controller_errors:
            raise RuntimeError(f"a simulated controller failed: {self.controller_errors[0]!r}") from self.controller_errors[0]

    def start(self) -> "SimulatedCluster":
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(self.api.app(), access_log=None, shutdown_timeout=0.2)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._controller_task = self._loop.create_task(self._run_controllers())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True, name="simulated-cluster")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the simulated API server did not start within 10s")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._controller_task:
                self._controller_task.cancel()
            if self._runner:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None

    async def _run_controllers(self) -> None:
        while True:
            now = time.monotonic()
            for controller in self.controllers:
                try:
                    with self.store.lock:
                        controller.tick(now)
                except Exception as exc:  # noqa: BLE001 - kept for the test to report, the loop goes on
                    self.controller_errors.append(exc)
            await asyncio.sleep(self.timings.tick)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "simulated", "cluster": {"server": self.url}}],
            "users": [{"name": "simulated", "user": {}}],
            "contexts": [{"name": "simulated", "context": {"cluster": "simulated", "user": "simulated", "namespace": self.namespace}}],
            "current-context": "simulated",
        }))
        return path

    # -- arranging a scene
    def seed(self, obj: Obj) -> Obj:
        """Store an object as if it had been created earlier (no admission): what `helm install`
        created before its post-install hook, or what an earlier release left. An InferenceSet
        carries KAITO's finalizer, as KAITO's controller left it."""
        rt = BY_KIND[obj["kind"]]
        obj = copy.deepcopy(obj)
        if rt.namespaced:
            obj["metadata"].setdefault("namespace", self.namespace)
        if rt.kind == "InferenceSet" and INFERENCE_SET_FINALIZER not in obj["metadata"].get("finalizers", []):
            obj["metadata"]["finalizers"] = [*obj["metadata"].get("finalizers", []), INFERENCE_SET_FINALIZER]
        created = self.store.create(rt, obj)
        self.store.record("seeded", f"{rt.kind}/{created['metadata']['name']}")
        return created

    def upgrade(self, obj: Obj) -> Obj:
        """What `helm upgrade` does to an object it manages: new content, the same object (its UID
        stays, so what it owns stays owned)."""
        rt = BY_KIND[obj["kind"]]
        namespace = obj["metadata"].get("namespace", self.namespace) if rt.namespaced else ""
        with self.store.lock:
            old = self.store.get(rt, namespace, obj["metadata"]["name"])
            if old is None:
                raise KeyError(f"{rt.kind}/{obj['metadata']['name']} is not in the cluster")
            new = copy.deepcopy(obj)
            if rt.namespaced:
                new["metadata"]["namespace"] = namespace
            for key in ("uid", "creationTimestamp", "generation"):
                new["metadata"][key] = old["metadata"][key]
            stored = self.store.replace(rt, new)
            self.store.record("upgraded", f"{rt.kind}/{obj['metadata']['name']}")
            return stored

    def remove(self, kind: str, name: str) -> None:
        """What `helm uninstall` does to an object it manages: deleted; the garbage collector
        deletes what it owns."""
        rt = BY_KIND[kind]
        deleted = self.store.delete(rt, self.namespace if rt.namespaced else "", name)
        if deleted is None:
            raise KeyError(f"{kind}/{name} is not in the cluster")
        held = " (held by its finalizers)" if deleted["metadata"].get("deletionTimestamp") else ""
        self.store.record("uninstalled", f"{kind}/{name}", held.strip())

    def launch_node(self, pool_name: str, gpu_labelled: bool = True) -> str:
        """A node of the pool that is already there (an earlier scale-up), optionally labelled."""
        with self.store.lock:
            pool = self.store.get(BY_KIND["NodePool"], "", pool_name)
            if pool is None:
                raise KeyError(f"NodePool/{pool_name} is not in the cluster")
            node = self.karpenter.launch(pool)
            if gpu_labelled:
                node["metadata"]["labels"].update(node_gfd_labels(node))
                self.store.replace(NODE, node)
            return node["metadata"]["name"]

    def evict_node(self, name: str) -> None:
        """A spot eviction: the node goes, and every pod on it (karpenter's interruption handling
        deletes the node; its pods go with it)."""
        with self.store.lock:
            if self.store.delete(NODE, "", name) is None:
                raise KeyError(f"Node/{name} is not in the cluster")
            for pod in self.store.list(POD):
                if pod["spec"].get("nodeName") == name:
                    self.store.delete(POD, pod["metadata"]["namespace"], pod["metadata"]["name"])
            self.store.record("node-evicted", f"Node/{name}")

    # -- looking at it
    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return self.store.get(BY_KIND[kind], namespace or self.namespace, name)

    def list(self, kind: str, selector: str = "") -> list[Obj]:
        return self.store.list(BY_KIND[kind], None, LabelSelector(selector))

    def happenings(self, what: str | None = None, subject: str | None = None) -> list[Happening]:
        return self.store.happenings(what, subject)

    def timeline_text(self) -> str:
        return "\n".join(str(h) for h in self.store.happenings())

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the simulated cluster did not get there in {timeout}s:\n{self.timeline_text()}")
            time.sleep(self.timings.tick)
