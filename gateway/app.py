"""The FastAPI application: the OpenAI-compatible endpoints, health, readiness and metrics, and
the gateway's background work (the stream watchdog, re-reading the keys file, draining)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

import aiohttp
import orjson
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from .azure_auth import CredentialHeaders
from .backends import UpstreamBackend
from .config import ConfigError, GatewayConfig
from .errors import error_response
from .keys import KeyStore
from .metrics import GatewayMetrics
from .proxy import Proxy

log = logging.getLogger("gateway")


class Gateway:
    """Everything built at start-up, so that the request path only looks things up."""

    def __init__(self, config: GatewayConfig, credentials: dict[str, CredentialHeaders] | None = None) -> None:
        credentials = credentials or {}
        self.config = config
        self.backends = {name: UpstreamBackend(name, backend, credentials.get(name))
                         for name, backend in config.backends.items()}
        self.keys = KeyStore.load(config.auth.keys_file, set(self.backends)) if config.auth.enabled else None
        self.metrics = GatewayMetrics(self.backends.values())
        self.proxy = Proxy(config, self.backends, self.keys, self.metrics)
        self.metrics.prepare(self.proxy.router)
        self.draining = False
        self.models_body = orjson.dumps({"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "hybrid-llm"} for name in config.models]})
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def ready(self) -> bool:
        """Ready to take requests: started and not draining. Upstream health is not part of it:
        with every circuit open clients still get a JSON 503 with retry-after from a ready
        replica, and backend health shows in metrics and alerts."""
        return self.proxy.session is not None and not self.draining

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=30, enable_cleanup_closed=True)
        # auto_decompress: an upstream that compresses although asked not to is still decoded.
        self.proxy.session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                                  skip_auto_headers=("User-Agent",))
        self._tasks.append(asyncio.create_task(self.proxy.watchdog.run()))
        if self.keys is not None:
            self._tasks.append(asyncio.create_task(self._reload_keys(self.config.auth.reload_seconds)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.proxy.session is not None:
            await self.proxy.session.close()
        for backend in self.backends.values():
            await backend.close()

    def begin_drain(self, grace_seconds: float) -> None:
        """Turn not-ready now; end the streams still running when the grace is over, each with an
        error event. Safe to call from a signal handler or another thread."""
        self.draining = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.call_later, grace_seconds, self.proxy.cut_streams)

    async def _reload_keys(self, every_seconds: float) -> None:
        assert self.keys is not None
        while True:
            await asyncio.sleep(every_seconds)
            try:
                changed = await asyncio.to_thread(self.keys.refresh)
            except ConfigError as exc:
                self.metrics.keys_reloads["error"].inc()
                log.error("keys file changed but is not valid; the keys loaded before stay in force",
                          extra={"fields": {"error": str(exc)}})
                continue
            if changed:
                self.metrics.keys_reloads["ok"].inc()
                log.info("keys file reloaded")


def create_app(gateway: Gateway) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(title="hybrid-llm gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gateway
    proxy = gateway.proxy

    async def chat_completions(request: Request) -> Response:
        return await proxy.handle(request, "chat")

    async def completions(request: Request) -> Response:
        return await proxy.handle(request, "completions")

    # Plain routes for the hot path: the handlers take the raw request, so FastAPI's
    # per-request dependency resolution has nothing to do and is skipped.
    app.add_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_route("/v1/completions", completions, methods=["POST"])

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        if proxy.authenticate(request) is None:
            return error_response(401, "missing or unknown API key (Authorization: Bearer <key>)", code="invalid_api_key")
        return Response(gateway.models_body, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b"ok", media_type="text/plain")

    @app.get("/readyz")
    async def readyz() -> Response:
        if gateway.ready():
            return Response(b"ready", media_type="text/plain")
        return Response(b"not ready", status_code=503, media_type="text/plain")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
