"""Running the real gateway (uvicorn, FastAPI, aiohttp) on 127.0.0.1 for tests, against upstreams
that are real servers too: a fault-injecting OpenAI-compatible upstream and an Entra token
endpoint of the kind azure-identity's ManagedIdentityCredential talks to.

Faults are chosen per request by a `fault` field in the request body, which the gateway passes
upstream untouched, keyed by the backend it should hit (or "*" for any):

    {"model": "llama-3.3-70b", "messages": [...],
     "fault": {"vllm-customer": {"status": 401}, "azure-openai": {"encoding": "gzip"}}}

or for a while on one upstream (`stub.fault = {...}`, `stub.fault_count = n`). A fault is a
`Fault`: any combination of its fields.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import json
import shutil
import urllib.parse
import urllib.request
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import orjson
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.keys import digest
from gateway.server import GatewayServer
from hybridllm.layout import REPO_ROOT
from hybridllm.stub_upstream import StubUpstream

EXAMPLE = REPO_ROOT / "gateway" / "examples" / "local.yaml"
DEMO_KEY = "sk-local-demo"
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
CHAT = "/v1/chat/completions"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A port where a TCP connect hangs, as towards a host that drops packets: a listener that
    never accepts, its accept queue already full, so the kernel ignores new SYNs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    try:
        yield port
    finally:
        filler.close()
        server.close()


# ---- the fault-injecting upstream ----------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """How one answer goes wrong. Every field is optional and they combine."""

    status: int | None = None               # answer with this status and an OpenAI-style error body
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (retry-after: inf, ...)
    delay: float = 0.0                      # seconds before the response headers
    body_delay: float = 0.0                 # non-streaming: headers at once, the body this much later
    first_chunk_delay: float = 0.0          # streaming: headers at once, the first event this much later
    gap: float = 0.0                        # streaming: a pause of this many seconds ...
    gap_before: int = 2                     # ... before this event
    cut_after: int | None = None            # streaming: drop the connection after this many events
    drop: bool = False                      # close the connection without answering
    encoding: str | None = None             # gzip or deflate the body whatever Accept-Encoding said
    usage: Any = "correct"                  # the usage object to report instead of the right one
    body: str | None = None                 # a 200 (or `status`) with exactly this body
    content_type: str | None = None         # the response's content type
    done: str | None = None                 # streaming: the last line instead of "data: [DONE]"
    no_done: bool = False                   # streaming: end the stream without [DONE]
    pad_bytes: int = 0                      # non-streaming: pad the answer to this size; streaming:
                                            # send one unterminated event this big, then close

    @classmethod
    def of(cls, spec: dict[str, Any]) -> "Fault":
        unknown = set(spec) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        return cls(**spec)


def _compressor(encoding: str) -> Any:
    if encoding == "gzip":
        return zlib.compressobj(wbits=31)
    if encoding == "deflate":
        return zlib.compressobj(wbits=15)
    raise ValueError(f"unknown encoding {encoding!r}")


@dataclass
class FaultyUpstream(StubUpstream):
    """The stub upstream with faults: chosen per request by the body's `fault` field, or standing
    (`fault`, for `fault_count` requests or until cleared)."""

    fault: dict[str, Any] | None = None
    fault_count: int | None = None

    def _fault_for(self, body: dict[str, Any]) -> Fault | None:
        chosen = body.get("fault")
        if isinstance(chosen, dict):
            spec = chosen.get(self.name, chosen.get("*"))
            return Fault.of(spec) if spec is not None else None
        if self.fault is None:
            return None
        spec = self.fault
        if self.fault_count is not None:
            self.fault_count -= 1
            if self.fault_count <= 0:
                self.fault, self.fault_count = None, None
        return Fault.of(spec)

    async def answer(self, request: web.Request, chat: bool) -> web.StreamResponse:
        body = await self.read(request)
        fault = self._fault_for(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        if fault is None:
            fault = Fault()
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            request.transport.close()  # type: ignore[union-attr]
            return web.Response()
        if fault.status is not None or fault.body is not None:
            status = fault.status or 200
            text = fault.body if fault.body is not None else orjson.dumps(
                {"error": {"message": f"upstream says {status}", "type": "upstream_fault", "code": str(status)}}).decode()
            return web.Response(status=status, body=text.encode(), headers=fault.headers,
                                content_type=fault.content_type or "application/json")
        if body.get("stream"):
            return await self._stream(request, body, chat, fault)
        answer = self.completion(body, chat, usage=None if fault.usage == "correct" else fault.usage)
        if fault.pad_bytes:
            answer["padding"] = "x" * fault.pad_bytes
        data = orjson.dumps(answer)
        headers = dict(fault.headers)
        if fault.encoding:
            compressor = _compressor(fault.encoding)
            data = compressor.compress(data) + compressor.flush()
            headers["content-encoding"] = fault.encoding
        response = web.StreamResponse(headers={"content-type": fault.content_type or "application/json",
                                               "content-length": str(len(data)), **headers})
        await response.prepare(request)
        if fault.body_delay:
            await asyncio.sleep(fault.body_delay)
        await response.write(data)
        await response.write_eof()
        return response

    async def _stream(self, request: web.Request, body: dict[str, Any], chat: bool, fault: Fault) -> web.StreamResponse:
        headers = {"content-type": fault.content_type or "text/event-stream", **fault.headers}
        compressor = None
        if fault.encoding:
            compressor = _compressor(fault.encoding)
            headers["content-encoding"] = fault.encoding
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        if fault.first_chunk_delay:
            await asyncio.sleep(fault.first_chunk_delay)
        done = (fault.done.encode() + b"\n\n") if fault.done is not None else b"data: [DONE]\n\n"
        events = self.events(body, chat, usage=None if fault.usage == "correct" else fault.usage, done=done)
        if fault.no_done:
            events = events[:-1]
        if fault.pad_bytes:
            events = [events[0], b"data: " + b"x" * fault.pad_bytes]
        for index, event in enumerate(events):
            if fault.cut_after is not None and index == fault.cut_after:
                # A crash after the first tokens went out: the connection drops without [DONE].
                await asyncio.sleep(0.2)
                request.transport.close()  # type: ignore[union-attr]
                return response
            if fault.gap and index == fault.gap_before:
                await asyncio.sleep(fault.gap)
            if compressor is not None:
                event = compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH)
            await response.write(event)
            if self.token_delay and index < len(self.words):
                await asyncio.sleep(self.token_delay)
        if fault.pad_bytes:
            request.transport.close()  # type: ignore[union-attr]
            return response
        if compressor is not None:
            await response.write(compressor.flush())
        await response.write_eof()
        return response


def with_fault(body: dict[str, Any], **per_backend: dict[str, Any]) -> dict[str, Any]:
    """A request body whose answer from each named backend (azure_openai=... for azure-openai)
    goes wrong as described."""
    return {**body, "fault": {name.replace("_", "-"): spec for name, spec in per_backend.items()}}


# ---- an Entra token endpoint ---------------------------------------------------------------


class TokenEndpoint:
    """An App Service-style managed identity endpoint on 127.0.0.1 (IDENTITY_ENDPOINT and
    IDENTITY_HEADER): the real azure-identity ManagedIdentityCredential gets tokens from it.
    While `failing` it refuses, as Entra does when a federated credential is broken."""

    SECRET = "identity-header-secret"

    def __init__(self) -> None:
        self.failing = False
        self.calls = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    async def _token(self, request: web.Request) -> web.Response:
        self.calls += 1
        if request.headers.get("X-IDENTITY-HEADER") != self.SECRET:
            return web.json_response({"error": "unauthorized"}, status=401)
        if self.failing:
            return web.json_response({"error": "invalid_request",
                                      "error_description": "AADSTS70021: no matching federated identity record"},
                                     status=400)
        return web.json_response({"access_token": f"entra-token-{self.calls}", "token_type": "Bearer",
                                  "expires_on": str(int(time.time()) + 3600),
                                  "resource": request.query.get("resource", "")})

    def start(self) -> "TokenEndpoint":
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_get("/msi/token", self._token)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True, name="token-endpoint")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("token endpoint did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread:
                self._thread.join(10)

    @property
    def environment(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{self.port}/msi/token", "IDENTITY_HEADER": self.SECRET}


# ---- the gateway -----------------------------------------------------------------------------


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
    """The gateway in a thread of this process, served exactly as `python -m gateway` serves it
    (the same uvicorn config, HTTP protocol and limits)."""

    def __init__(self, config: dict[str, Any], credentials: dict[str, Any] | None = None,
                 shutdown_grace: float = 2.0) -> None:
        self.config = copy.deepcopy(config)
        self.gateway = Gateway(GatewayConfig.model_validate(self.config), credentials)
        self.port = free_port()
        self._server = GatewayServer(self.gateway, "127.0.0.1", self.port, shutdown_grace)
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

    def post(self, body: Any, headers: dict[str, str] | None = None, path: str = CHAT,
             timeout: float = 15) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers={**AUTH, **(headers or {})}, timeout=timeout)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples that carry these labels, scraped from /metrics."""
        text = httpx.get(self.url + "/metrics").text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def fallbacks(self, reason: str, source: str = "vllm-customer", target: str = "azure-openai") -> float:
        return self.metric("llm_gateway_fallbacks_total", **{"from": source, "to": target, "reason": reason})


class GatewayProcess:
    """`python -m gateway` as its own process on 127.0.0.1, ready when entered. `hash_seed` sets
    PYTHONHASHSEED, so two processes can be made to differ in everything Python salts."""

    def __init__(self, config_path: Path, hash_seed: str = "random", env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = [sys.executable, "-m", "gateway", "--config", str(config_path),
                         "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "WARNING"]
        self._env = {"PATH": "/usr/bin:/bin", "AOAI_API_KEY": "aoai-test-key", "PYTHONHASHSEED": hash_seed,
                     **(env or {})}
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> "GatewayProcess":
        self.process = subprocess.Popen(self._command, cwd=REPO_ROOT, env=self._env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                output = self.process.stdout.read() if self.process.stdout else ""
                raise RuntimeError(f"gateway process did not become ready:\n{output}")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@contextmanager
def upstream_stubs(customer: dict[str, Any] | None = None) -> Iterator[dict[str, FaultyUpstream]]:
    """The three upstreams of the example config as real servers: two vLLM paths and an
    Azure-flavoured one. `customer` passes options (token_delay, ...) to the customer stub."""
    started = {"vllm-customer": FaultyUpstream(name="vllm-customer", **(customer or {})).start(),
               "vllm-batch": FaultyUpstream(name="vllm-batch").start(),
               "azure-openai": FaultyUpstream(name="azure-openai", azure=True).start()}
    try:
        yield started
    finally:
        for stub in started.values():
            stub.stop()


def config_for(stubs: dict[str, StubUpstream]) -> dict[str, Any]:
    """The example config pointed at running stubs."""
    return example_config(**{name.replace("-", "_"): stub.port for name, stub in stubs.items()})


@contextmanager
def example_gateway(config: dict[str, Any], **options: Any) -> Iterator[RunningGateway]:
    """A running gateway with the example's Azure OpenAI key variable set (module-scoped fixtures
    cannot use monkeypatch)."""
    previous = os.environ.get("AOAI_API_KEY")
    os.environ["AOAI_API_KEY"] = "aoai-test-key"
    try:
        with RunningGateway(config, **options) as running:
            yield running
    finally:
        if previous is None:
            os.environ.pop("AOAI_API_KEY", None)
        else:
            os.environ["AOAI_API_KEY"] = previous


def expected_arm(value: str, arms: list[tuple[str, float]]) -> str:
    """The arm a sticky value lands on by the documented rule (README, gateway/split.py), worked
    out independently of the gateway's code: BLAKE2b-64 of the UTF-8 value, as a fraction of
    2**64, against the cumulative weights in config order."""
    point = int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "big") / 2**64
    total = sum(weight for _, weight in arms)
    running = 0.0
    for name, weight in arms:
        running += weight / total
        if point < running:
            return name
    return arms[-1][0]


@contextmanager
def prometheus_scraping(jobs: list[dict[str, Any]], folder: Path) -> Iterator[str]:
    """A real Prometheus (Debian's package) scraping the given scrape_configs every second; yields
    its URL once it is ready."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("Debian's prometheus package is needed: `make test` installs it")
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs}
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen([binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("prometheus did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def prometheus_query(url: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector: [{"metric": {...}, "value": [time, "text"]}, ...]."""
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}", timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise AssertionError(f"prometheus refused {promql}: {body}")
    return body["data"]["result"]


def sse_data(text: str) -> list[Any]:
    """The data of each event in an SSE body: parsed JSON, or the raw string ([DONE])."""
    out: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out
