"""The FastAPI application: the OpenAI-compatible endpoints, health, readiness and metrics."""

from __future__ import annotations

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
from .config import GatewayConfig
from .errors import error_response
from .keys import KeyStore
from .metrics import GatewayMetrics
from .proxy import Proxy


class Gateway:
    """Everything built at start-up, so that the request path only looks things up."""

    def __init__(self, config: GatewayConfig, credentials: dict[str, CredentialHeaders] | None = None) -> None:
        credentials = credentials or {}
        self.config = config
        self.backends = {name: UpstreamBackend(name, backend, credentials.get(name))
                         for name, backend in config.backends.items()}
        keys = KeyStore.load(config.auth.keys_file, set(self.backends)) if config.auth.enabled else None
        self.metrics = GatewayMetrics(self.backends.values())
        self.proxy = Proxy(config, self.backends, keys, self.metrics)
        self.draining = False
        self.models_body = orjson.dumps({"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "hybrid-llm"} for name in config.models]})

    def ready(self) -> bool:
        """Config is loaded (we exist) and some backend could take a request now."""
        return not self.draining and any(b.circuit.would_allow() for b in self.backends.values())

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=30, enable_cleanup_closed=True)
        self.proxy.session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                  skip_auto_headers=("User-Agent",))

    async def stop(self) -> None:
        if self.proxy.session is not None:
            await self.proxy.session.close()
        for backend in self.backends.values():
            await backend.close()


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
