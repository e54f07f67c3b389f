"""The request path: authenticate, parse, route, then try each candidate backend in order.

It moves to the next backend on a connect error or a timeout before the first byte, on a 5xx, on
a 429, on an open circuit and on a full in-flight limit. Once the first byte has gone to the
client it never retries: a failure mid-stream ends the stream with an error event.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .backends import Endpoint, UpstreamBackend
from .config import GatewayConfig
from .errors import error_response
from .keys import UNRESTRICTED, ApiKey, KeyStore
from .metrics import GatewayMetrics
from .routing import Refusal, Router
from .sse import StreamRelay, error_event, model_renames

access_log = logging.getLogger("gateway.access")

_UPSTREAM_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
_STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@dataclass
class Attempts:
    """What happened on the way to an answer, for the error message, metrics and the log."""

    fallbacks: list[str] = field(default_factory=list)
    last_status: int | None = None
    retry_after: float | None = None
    none_attempted: bool = True  # every backend was skipped: full or circuit open


def _retry_after_seconds(headers: Any) -> float | None:
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            return None  # an HTTP date: too far ahead to wait for in a request
    return None


def _problem(payload: Any, endpoint: Endpoint) -> tuple[str, str] | None:
    """(message, param) for a request the upstreams would refuse, checked before routing."""
    if not isinstance(payload, dict):
        return "the request body must be a JSON object", ""
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        return "`model` is required and must be a string", "model"
    if endpoint == "chat":
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return "`messages` is required and must be a non-empty array", "messages"
    elif "prompt" not in payload:
        return "`prompt` is required", "prompt"
    if "stream" in payload and not isinstance(payload["stream"], bool):
        return "`stream` must be a boolean", "stream"
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        return "`stream_options` must be an object", "stream_options"
    return None


class Proxy:
    def __init__(self, config: GatewayConfig, backends: dict[str, UpstreamBackend], keys: KeyStore | None,
                 metrics: GatewayMetrics) -> None:
        self._backends = backends
        self._keys = keys
        self._router = Router(config, backends)
        self._metrics = metrics
        self._models = frozenset(config.models)
        # Per (public model, backend), worked out once: the name the backend serves (its own model,
        # or the public model's vllmModel, a LoRA adapter, on vLLM backends) and the byte renames
        # that turn it back into the public name in streamed chunks.
        self._served: dict[tuple[str, str], tuple[str, tuple[tuple[bytes, bytes], ...]]] = {}
        for public, model in config.models.items():
            for name, backend in backends.items():
                served = model.vllm_model if model.vllm_model and backend.kind == "vllm" else backend.model
                self._served[(public, name)] = (served, model_renames(served, public))
        self._max_body = config.server.max_body_bytes
        self._max_retry_after = config.routing.max_retry_after_seconds
        self.session: aiohttp.ClientSession | None = None

    # ---- request handling -------------------------------------------------------------------

    def authenticate(self, request: Request) -> ApiKey | None:
        if self._keys is None:
            return UNRESTRICTED
        header = request.headers.get("authorization", "")
        presented = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("api-key", "")
        return self._keys.find(presented) if presented else None

    async def _body(self, request: Request) -> bytes | Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._max_body:
            return error_response(413, f"request body over {self._max_body} bytes", code="body_too_large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self._max_body:
                return error_response(413, f"request body over {self._max_body} bytes", code="body_too_large")
        return bytes(body)

    async def handle(self, request: Request, endpoint: Endpoint) -> Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        ids = {"x-request-id": request_id}
        key = self.authenticate(request)
        if key is None:
            return error_response(401, "missing or unknown API key (Authorization: Bearer <key>)",
                                  code="invalid_api_key", headers=ids)
        body = await self._body(request)
        if isinstance(body, Response):
            body.headers.update(ids)
            return body
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return error_response(400, f"the request body is not valid JSON: {exc}", headers=ids)
        problem = _problem(payload, endpoint)
        if problem:
            return error_response(400, problem[0], param=problem[1] or None, headers=ids)
        public_model = payload["model"]
        if public_model not in self._models:
            return error_response(404, f"model {public_model!r} does not exist; GET /v1/models lists the models",
                                  code="model_not_found", param="model", headers=ids)
        decision = self._router.decide(request.headers, payload, public_model, key)
        if isinstance(decision, Refusal):
            return error_response(decision.status, decision.message, code=decision.code, headers=ids)

        streaming = payload.get("stream") is True
        client_wants_usage = False
        if streaming:
            options = payload.get("stream_options") or {}
            client_wants_usage = options.get("include_usage") is True
            # Ask every backend for usage so tokens are counted; the extra chunk is dropped
            # again unless the client asked for it.
            payload["stream_options"] = {**options, "include_usage": True}

        attempts = Attempts()
        candidates = decision.candidates
        queue_until = started + decision.queue_seconds
        index = 0
        retried_same = False
        while index < len(candidates):
            backend = candidates[index]
            following = candidates[index + 1].name if index + 1 < len(candidates) else "none"
            if not backend.try_acquire():
                if index == 0 and await self._wait_for_primary(queue_until):
                    continue
                self._fallback(attempts, backend.name, following, "overflow")
                index += 1
                continue
            if not backend.circuit.allow():
                backend.release()
                if index == 0 and await self._wait_for_primary(queue_until):
                    continue
                self._fallback(attempts, backend.name, following, "circuit_open")
                index += 1
                continue
            attempts.none_attempted = False
            outcome = await self._attempt(backend, endpoint, payload, public_model, streaming,
                                          client_wants_usage, decision.route, request_id, started, attempts)
            if isinstance(outcome, Response):
                return outcome
            if (outcome == "rate_limited" and following == "none" and not retried_same
                    and attempts.retry_after is not None and attempts.retry_after <= self._max_retry_after):
                # Honour retry-after when the only next try is this same backend.
                retried_same = True
                await asyncio.sleep(attempts.retry_after)
                continue
            if index == 0 and outcome in ("connect_error", "status_5xx", "empty_stream") and \
                    await self._wait_for_primary(queue_until):
                continue
            self._fallback(attempts, backend.name, following, outcome)
            index += 1
        return self._exhausted(attempts, decision.route, request_id)

    async def _attempt(self, backend: UpstreamBackend, endpoint: Endpoint, payload: dict[str, Any],
                       public_model: str, streaming: bool, client_wants_usage: bool, route: str,
                       request_id: str, started: float, attempts: Attempts) -> Response | str:
        """Response when this backend answers (or the client erred), else the reason to move on.
        Owns the backend's in-flight slot: releases it unless a stream takes it over."""
        served, renames = self._served[(public_model, backend.name)]
        payload["model"] = served
        data = orjson.dumps(payload)
        headers = {"content-type": "application/json", "x-request-id": request_id,
                   **(await backend.credentials.headers())}
        sent = time.perf_counter()
        assert self.session is not None
        # A non-streaming answer's first byte is the whole answer (vLLM sends headers when it has
        # finished), so only streams are held to the first-byte timeout.
        wait = backend.first_byte_timeout if streaming else backend.request_timeout
        try:
            # asyncio.timeout rather than wait_for: no extra task per request.
            async with asyncio.timeout(wait):
                upstream = await self.session.post(backend.urls[endpoint], data=data, headers=headers,
                                                   timeout=backend.timeout)
        except asyncio.TimeoutError:
            return self._failed(backend, "timeout")
        except _UPSTREAM_ERRORS:
            return self._failed(backend, "connect_error")

        status = upstream.status
        attempts.last_status = status
        if status >= 500 or status == 429:
            attempts.retry_after = _retry_after_seconds(upstream.headers) if status == 429 else None
            upstream.release()
            if status == 429:
                # Busy, not broken: the circuit stays as it is.
                backend.circuit.release_probe()
                backend.release()
                return "rate_limited"
            return self._failed(backend, "status_5xx")

        response_headers = {"x-request-id": request_id, "x-llm-backend": backend.name, "x-llm-route": route}
        if streaming and status == 200:
            try:
                async with asyncio.timeout(backend.first_byte_timeout):
                    first = await upstream.content.readany()
            except asyncio.TimeoutError:
                upstream.close()
                return self._failed(backend, "timeout")
            except _UPSTREAM_ERRORS:
                upstream.close()
                return self._failed(backend, "connect_error")
            if not first:
                upstream.close()
                return self._failed(backend, "empty_stream")
            relay = StreamRelay(renames, client_wants_usage)
            return StreamingResponse(
                self._relay(upstream, first, relay, backend, route, request_id, started, sent),
                status_code=200, media_type="text/event-stream",
                headers={**_STREAM_HEADERS, **response_headers},
            )

        try:
            body = await upstream.read()
        except _UPSTREAM_ERRORS:
            upstream.close()
            return self._failed(backend, "connect_error")
        received = time.perf_counter()
        upstream.release()
        backend.release()
        if status != 200:
            # The client's mistake (4xx): the backend is healthy and another would refuse it too.
            backend.circuit.release_probe()
            self._finish(route, backend, str(status), None, started, sent, received, request_id)
            return Response(body, status_code=status, media_type=upstream.content_type, headers=response_headers)
        backend.circuit.record_success()
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        usage = None
        if isinstance(answer, dict):
            usage = answer.get("usage")
            if "model" in answer:
                answer["model"] = public_model
                body = orjson.dumps(answer)
        self._finish(route, backend, "200", usage, started, sent, received, request_id)
        return Response(body, status_code=200, media_type="application/json", headers=response_headers)

    async def _relay(self, upstream: aiohttp.ClientResponse, first: bytes, relay: StreamRelay,
                     backend: UpstreamBackend, route: str, request_id: str, started: float,
                     sent: float) -> AsyncIterator[bytes]:
        status = "200"
        first_out = 0.0
        try:
            chunk = relay.feed(first)
            first_out = time.perf_counter()
            self._metrics.ttft_of(backend.name).observe(first_out - started)
            if chunk:
                yield chunk
            async for piece in upstream.content.iter_any():
                chunk = relay.feed(piece)
                if chunk:
                    yield chunk
            tail = relay.finish()
            if tail:
                yield tail
            if relay.saw_done:
                backend.circuit.record_success()
            else:
                status = "stream_truncated"
                backend.circuit.record_failure()
                yield error_event(f"backend {backend.name} closed the stream before it finished", "stream_truncated")
        except _UPSTREAM_ERRORS as exc:
            status = "stream_error"
            backend.circuit.record_failure()
            yield error_event(f"backend {backend.name} failed mid-stream: {type(exc).__name__}", "stream_error")
        except asyncio.CancelledError:
            status = "client_closed"
            backend.circuit.release_probe()
            raise
        finally:
            upstream.close()
            backend.release()
            self._finish(route, backend, status, relay.usage, started, sent, first_out or sent, request_id,
                         streamed=True)

    @staticmethod
    async def _wait_for_primary(queue_until: float) -> bool:
        """Bounded queue: while the route's queue time lasts, wait a moment and try the primary
        again (it may be scaling up from zero or coming back after an eviction)."""
        remaining = queue_until - time.perf_counter()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(0.5, remaining))
        return True

    # ---- bookkeeping ---------------------------------------------------------------------------

    def _failed(self, backend: UpstreamBackend, reason: str) -> str:
        backend.circuit.record_failure()
        backend.release()
        return reason

    def _fallback(self, attempts: Attempts, source: str, target: str, reason: str) -> None:
        attempts.fallbacks.append(f"{source}:{reason}")
        self._metrics.fallbacks.labels(source, target, reason).inc()

    def _finish(self, route: str, backend: UpstreamBackend, status: str, usage: dict[str, Any] | None,
                started: float, sent: float, received: float, request_id: str, streamed: bool = False) -> None:
        now = time.perf_counter()
        prompt, completion = self._metrics.usage(backend, usage)
        self._metrics.request(route, backend.name, status)
        self._metrics.duration_of(backend.name).observe(now - started)
        # Before the upstream call, plus (non-streaming) the work after its answer arrived.
        added = (sent - started) + (0.0 if streamed else now - received)
        self._metrics.added.observe(added)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("request", extra={"fields": {
                "request_id": request_id, "route": route, "backend": backend.name, "status": status,
                "prompt_tokens": prompt, "completion_tokens": completion, "stream": streamed,
                "duration_ms": round((now - started) * 1000, 2),
            }})

    def _exhausted(self, attempts: Attempts, route: str, request_id: str) -> Response:
        headers = {"x-request-id": request_id, "x-llm-backend": "none", "x-llm-route": route}
        tried = "; ".join(attempts.fallbacks)
        self._metrics.request(route, "none", "exhausted")
        access_log.warning("no backend could serve", extra={"fields": {
            "request_id": request_id, "route": route, "attempts": tried}})
        if attempts.last_status == 429:
            if attempts.retry_after is not None:
                headers["retry-after"] = str(max(1, round(attempts.retry_after)))
            return error_response(429, f"every backend of route {route!r} is rate limited ({tried})",
                                  code="rate_limited", headers=headers)
        if attempts.none_attempted:
            headers["retry-after"] = "1"
            return error_response(503, f"every backend of route {route!r} is at its in-flight limit or has an "
                                  f"open circuit ({tried})", code="overloaded", headers=headers)
        return error_response(502, f"no backend of route {route!r} could serve ({tried})",
                              code="upstream_unavailable", headers=headers)
