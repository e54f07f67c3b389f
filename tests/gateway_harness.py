"""Running the real gateway (uvicorn, FastAPI, aiohttp) on 127.0.0.1 for tests, against stub
upstreams that are real servers too."""

from __future__ import annotations

import copy
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import uvicorn
import yaml

from gateway.app import Gateway, create_app
from gateway.config import GatewayConfig
from gateway.keys import digest
from hybridllm.layout import REPO_ROOT
from hybridllm.stub_upstream import StubUpstream

EXAMPLE = REPO_ROOT / "gateway" / "examples" / "local.yaml"
DEMO_KEY = "sk-local-demo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def example_config(**ports: int) -> dict[str, Any]:
    """The shipped example config with its backends pointed at the given ports."""
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config["auth"]["keysFile"] = str(REPO_ROOT / config["auth"]["keysFile"])
    for name, port in ports.items():
        backend = config["backends"][name.replace("_", "-")]
        if backend["kind"] == "vllm":
            backend["baseURL"] = f"http://127.0.0.1:{port}/v1"
        else:
            backend["endpoint"] = f"http://127.0.0.1:{port}"
    return config


def write_keys(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    """entries: plaintext key -> permissions (name, classes, backends, backendOverride)."""
    keys = [{**perms, "sha256": digest(key)} for key, perms in entries.items()]
    path.write_text(yaml.safe_dump({"keys": keys}), encoding="utf-8")


class RunningGateway:
    def __init__(self, config: dict[str, Any], credentials: dict[str, Any] | None = None) -> None:
        self.config = copy.deepcopy(config)
        self.gateway = Gateway(GatewayConfig.model_validate(self.config), credentials)
        self.port = free_port()
        self._server = uvicorn.Server(uvicorn.Config(
            create_app(self.gateway), host="127.0.0.1", port=self.port, access_log=False, log_config=None,
            timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> "RunningGateway":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def upstream_stubs(customer: dict[str, Any] | None = None) -> Iterator[dict[str, StubUpstream]]:
    """The three upstreams of the example config as real servers: two vLLM paths and an
    Azure-flavoured one. `customer` passes options (token_delay, ...) to the customer stub."""
    started = {"vllm-customer": StubUpstream(**(customer or {})).start(), "vllm-batch": StubUpstream().start(),
               "azure-openai": StubUpstream(azure=True).start()}
    try:
        yield started
    finally:
        for stub in started.values():
            stub.stop()


def config_for(stubs: dict[str, StubUpstream]) -> dict[str, Any]:
    """The example config pointed at running stubs."""
    return example_config(**{name.replace("-", "_"): stub.port for name, stub in stubs.items()})


@contextmanager
def example_gateway(config: dict[str, Any]) -> Iterator[RunningGateway]:
    """A running gateway with the example's Azure OpenAI key variable set (module-scoped fixtures
    cannot use monkeypatch)."""
    previous = os.environ.get("AOAI_API_KEY")
    os.environ["AOAI_API_KEY"] = "aoai-test-key"
    try:
        with RunningGateway(config) as running:
            yield running
    finally:
        if previous is None:
            os.environ.pop("AOAI_API_KEY", None)
        else:
            os.environ["AOAI_API_KEY"] = previous
