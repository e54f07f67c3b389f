"""The request path: authenticate, read and check the request, route, then try each candidate
backend in order. What each attempt's outcome means, and what happens next, is decided by the
table in outcomes.py; each attempt's slot and circuit ticket are owned by a backends.Lease.

Once the first byte has gone to the client there is no retry: a failure mid-stream ends the
stream with an error event.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .backends import Endpoint, Lease, UpstreamBackend
from .circuit import Verdict
from .config import GatewayConfig
from .errors import error_response
from .keys import UNRESTRICTED, ApiKey, KeyStore
from .metrics import GatewayMetrics
from .outcomes import POLICIES, Outcome, Step, classify_status, exhausted, next_step, retry_after_seconds
from .routing import Decision, Refusal, Router
from .sse import EventTooLarge, StreamRelay, error_event, model_renames
from .watchdog import StreamCut, StreamWatchdog

access_log = logging.getLogger("gateway.access")
log = logging.getLogger("gateway")

_STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
# Content codings aiohttp decodes; anything else would reach the client as undecodable bytes.
_DECODABLE = frozenset({"identity", "gzip", "x-gzip", "deflate"})


@dataclass
class Attempts:
    """What happened on the way to an answer, for the error message, metrics and the log."""

    fallbacks: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    status: int | None = None        # the HTTP status of the last failed attempt, if it got that far
    retry_after: float | None = None
    none_attempted: bool = True      # every backend was skipped: full or circuit open
    wait_hint: float | None = None   # seconds until the first skipped circuit admits a probe


class _UpstreamStream(StreamingResponse):
    """A streamed answer that owns its lease: whatever becomes of the relay (a client that went
    away before the first chunk was even asked for), the slot and ticket are given back."""

    def __init__(self, content: AsyncIterator[bytes], lease: Lease, headers: dict[str, str]) -> None:
        super().__init__(content, status_code=200, media_type="text/event-stream", headers=headers)
        self._lease = lease

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._lease.close(Verdict.NONE)  # a no-op when the relay closed it with its verdict


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
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return "`stream` must be a boolean", "stream"
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        return "`stream_options` must be an object", "stream_options"
    return None


def _error_outcome(exc: BaseException) -> Outcome:
    if isinstance(exc, asyncio.TimeoutError):  # also aiohttp's connect timeouts
        return Outcome.TIMEOUT
    if isinstance(exc, aiohttp.ClientPayloadError) and "content-encoding" in str(exc).lower():
        return Outcome.MALFORMED
    return Outcome.CONNECT_ERROR


def _is_answer(answer: Any) -> bool:
    return isinstance(answer, dict) and isinstance(answer.get("choices"), list)


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
        server = config.server
        self._max_body = server.max_body_bytes
        self._max_upstream = server.max_upstream_body_bytes
        self._max_request_id = server.max_request_id_length
        self._max_retry_after = config.routing.max_retry_after_seconds
        # Uncompressed answers: compressing on a cluster network costs both ends CPU for nothing,
        # and an upstream that compresses anyway is decoded (the session decompresses).
        self._upstream_headers = {"content-type": "application/json", "accept-encoding": "identity"}
        idle = min(b.stream_idle_timeout for b in backends.values())
        self.watchdog = StreamWatchdog(tick_seconds=min(1.0, max(0.05, idle / 4)))
        self.session: aiohttp.ClientSession | None = None

    @property
    def router(self) -> Router:
        return self._router

    # ---- request handling -------------------------------------------------------------------

    def authenticate(self, request: Request) -> ApiKey | None:
        if self._keys is None:
            return UNRESTRICTED
        header = request.headers.get("authorization", "")
        presented = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("api-key", "")
        return self._keys.find(presented) if presented else None

    def cut_streams(self) -> None:
        """The shutdown grace is over: end every stream still running with an error event."""
        self.watchdog.cut_all("gateway_shutdown", "the gateway is shutting down; send the request again")

    def _too_large(self) -> Response:
        self._metrics.rejected["body_too_large"].inc()
        return error_response(413, f"the request body is over {self._max_body} bytes (server.maxBodyBytes)",
                              code="body_too_large", headers={"connection": "close"})

    async def _body(self, request: Request) -> bytes | Response | None:
        """The request body, a 413, or None when the client went away (or took longer than
        server.uploadTimeoutSeconds, which the HTTP layer answers itself)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._max_body:
            return self._too_large()
        receive = request.receive
        message = await receive()
        if message["type"] != "http.request":
            return None
        body = message.get("body", b"")
        if not message.get("more_body", False):
            # The usual case: the whole body came with the headers.
            return body if len(body) <= self._max_body else self._too_large()
        buffer = bytearray(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] != "http.request":
                return None
            buffer += message.get("body", b"")
            if len(buffer) > self._max_body:
                return self._too_large()
        return bytes(buffer)

    def _request_id(self, request: Request) -> str | Response:
        request_id = request.headers.get("x-request-id")
        if request_id is None:
            return uuid.uuid4().hex
        if len(request_id) <= self._max_request_id and request_id.isascii() and request_id.isprintable():
            return request_id
        self._metrics.rejected["invalid_request_id"].inc()
        return error_response(400, f"x-request-id must be at most {self._max_request_id} printable ASCII "
                              "characters (server.maxRequestIdLength); send a shorter id or none",
                              code="invalid_request_id", headers={"x-request-id": uuid.uuid4().hex})

    async def handle(self, request: Request, endpoint: Endpoint) -> Response:
        started = time.perf_counter()
        request_id = self._request_id(request)
        if isinstance(request_id, Response):
            return request_id
        ids = {"x-request-id": request_id}
        key = self.authenticate(request)
        if key is None:
            return error_response(401, "missing or unknown API key (Authorization: Bearer <key>)",
                                  code="invalid_api_key", headers=ids)
        body = await self._body(request)
        if body is None:
            return Response(status_code=400)  # the client is gone; nobody reads this
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
        elif "stream" in payload:
            del payload["stream"]  # false or null: the upstream's default either way
        return await self._serve(decision, endpoint, payload, public_model, streaming, client_wants_usage,
                                 request_id, started)

    async def _serve(self, decision: Decision, endpoint: Endpoint, payload: dict[str, Any], public_model: str,
                     streaming: bool, client_wants_usage: bool, request_id: str, started: float) -> Response:
        """Try the route's backends in order, as the outcome table says, until one answers."""
        attempts = Attempts()
        candidates = decision.candidates
        queue_until = started + decision.queue_seconds
        index = 0
        retried_same = False
        while index < len(candidates):
            backend = candidates[index]
            last = index + 1 == len(candidates)
            following = "none" if last else candidates[index + 1].name
            lease = backend.lease()
            if isinstance(lease, str):  # overflow, or an open circuit
                if index == 0 and await self._wait_for_primary(queue_until):
                    continue
                if lease == "circuit_open":
                    wait = backend.circuit.seconds_until_probe()
                    attempts.wait_hint = wait if attempts.wait_hint is None else min(wait, attempts.wait_hint)
                self._fallback(attempts, backend.name, following, lease)
                index += 1
                continue
            attempts.none_attempted = False
            with lease:
                outcome, response = await self._attempt(lease, endpoint, payload, public_model, streaming,
                                                        client_wants_usage, decision.route, request_id, started,
                                                        attempts)
                lease.verdict = POLICIES[outcome].verdict
            step = next_step(outcome, last=last, primary=index == 0, queue_left=time.perf_counter() < queue_until,
                             retry_after=attempts.retry_after, max_retry_after=self._max_retry_after,
                             retried_same=retried_same)
            if step is Step.ANSWER:
                assert response is not None
                return response
            if step is Step.RETRY_SAME:
                retried_same = True
                await asyncio.sleep(attempts.retry_after or 0.0)
                continue
            if step is Step.WAIT_FOR_PRIMARY and await self._wait_for_primary(queue_until):
                continue
            self._fallback(attempts, backend.name, following, outcome)
            index += 1
        return self._exhausted(attempts, decision.route, request_id)

    async def _attempt(self, lease: Lease, endpoint: Endpoint, payload: dict[str, Any], public_model: str,
                       streaming: bool, client_wants_usage: bool, route: str, request_id: str, started: float,
                       attempts: Attempts) -> tuple[Outcome, Response | None]:
        """One try on one backend: its outcome, and the response when the client is to get it."""
        backend = lease.backend
        served, renames = self._served[(public_model, backend.name)]
        payload["model"] = served
        data = orjson.dumps(payload)
        assert self.session is not None
        credentials: dict[str, str] | None = None
        # Streams: the first event must arrive within firstByteTimeoutSeconds. A non-streaming
        # answer arrives whole (vLLM sends its headers when it has finished), so the whole
        # request gets requestTimeoutSeconds. Either budget starts before the credentials.
        try:
            async with asyncio.timeout(backend.first_byte_timeout if streaming else backend.request_timeout):
                try:
                    credentials = await backend.credentials.headers()
                except Exception as exc:  # azure-identity raises its own errors, and network ones
                    log.warning("could not get credentials for the backend", extra={"fields": {
                        "request_id": request_id, "backend": backend.name, "error": f"{type(exc).__name__}: {exc}"}})
                    return self._failed(attempts, backend, Outcome.CREDENTIALS)
                headers = {**self._upstream_headers, "x-request-id": request_id, **credentials}
                sent = time.perf_counter()
                upstream = await self.session.post(backend.urls[endpoint], data=data, headers=headers,
                                                   timeout=backend.timeout, allow_redirects=False)
                lease.response = upstream
                status = upstream.status
                outcome = classify_status(status)
                encoding = upstream.headers.get("content-encoding")
                if encoding is not None and encoding.lower() not in _DECODABLE and outcome is Outcome.OK:
                    return self._failed(attempts, backend, Outcome.MALFORMED, status)
                if streaming and outcome is Outcome.OK:
                    if not upstream.content_type.startswith("text/event-stream"):
                        return self._failed(attempts, backend, Outcome.MALFORMED, status)
                    first = await upstream.content.readany()
                    if not first:
                        return self._failed(attempts, backend, Outcome.EMPTY_STREAM, status)
                elif outcome in (Outcome.OK, Outcome.CLIENT_ERROR):
                    body = await self._read_whole(upstream)
                    lease.response = None if body is not None else upstream
                else:
                    if outcome is Outcome.RATE_LIMITED:
                        attempts.retry_after = retry_after_seconds(upstream.headers)
                    return self._failed(attempts, backend, outcome, status)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            if credentials is None:  # the token request itself hung
                log.warning("credentials for the backend took too long", extra={"fields": {
                    "request_id": request_id, "backend": backend.name}})
                return self._failed(attempts, backend, Outcome.CREDENTIALS)
            return self._failed(attempts, backend, _error_outcome(exc))

        response_headers = {"x-request-id": request_id, "x-llm-backend": backend.name, "x-llm-route": route}
        if streaming and outcome is Outcome.OK:
            relay = StreamRelay(renames, client_wants_usage, self._max_upstream)
            stream = self._relay(lease.keep(), upstream, first, relay, route, request_id, started, sent)
            return Outcome.OK, _UpstreamStream(stream, lease, {**_STREAM_HEADERS, **response_headers})

        received = time.perf_counter()
        if body is None:
            self._finish(route, backend, "upstream_too_large", None, started, sent, received, request_id)
            return Outcome.TOO_LARGE, error_response(
                502, f"backend {backend.name} answered with more than {self._max_upstream} bytes "
                "(server.maxUpstreamBodyBytes); ask for less (max_tokens, n, logprobs)",
                code="upstream_response_too_large", headers=response_headers)
        if outcome is Outcome.CLIENT_ERROR:
            # The client's mistake: the backend is healthy and another would refuse it too.
            self._finish(route, backend, str(status), None, started, sent, received, request_id)
            return outcome, Response(body, status_code=status, media_type=upstream.content_type,
                                     headers=response_headers)
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if not _is_answer(answer):
            return self._failed(attempts, backend, Outcome.MALFORMED, status)
        answer["model"] = public_model
        self._finish(route, backend, "200", answer.get("usage"), started, sent, received, request_id)
        return Outcome.OK, Response(orjson.dumps(answer), status_code=200, media_type="application/json",
                                    headers=response_headers)

    async def _read_whole(self, upstream: aiohttp.ClientResponse) -> bytes | None:
        """The upstream's body, or None when it is over the limit (not read past it)."""
        length = upstream.content_length
        if length is not None and length > self._max_upstream:
            return None
        if length is not None and "content-encoding" not in upstream.headers:
            return await upstream.read()
        # Chunked, or compressed (the length says nothing about the decoded size): read in steps.
        buffer = bytearray()
        while True:
            chunk = await upstream.content.readany()
            if not chunk:
                return bytes(buffer)
            buffer += chunk
            if len(buffer) > self._max_upstream:
                return None

    async def _relay(self, lease: Lease, upstream: aiohttp.ClientResponse, first: bytes, relay: StreamRelay,
                     route: str, request_id: str, started: float, sent: float) -> AsyncIterator[bytes]:
        backend = lease.backend
        status = "200"
        verdict = Verdict.NONE
        first_out = 0.0
        loop = asyncio.get_running_loop()
        watched = self.watchdog.watch(upstream.content, backend.name, backend.stream_idle_timeout,
                                      loop.time() + backend.request_timeout - (time.perf_counter() - sent))
        content = upstream.content
        try:
            chunk = relay.feed(first)
            first_out = time.perf_counter()
            self._metrics.series(route, backend.name).ttft.observe(first_out - started)
            if chunk:
                yield chunk
            while True:
                watched.waiting_since = loop.time()
                piece = await content.readany()
                watched.waiting_since = 0.0
                if not piece:
                    break
                chunk = relay.feed(piece)
                if chunk:
                    yield chunk
            tail = relay.finish()
            if tail:
                yield tail
            if relay.saw_done:
                verdict = Verdict.SUCCESS
            else:
                status, verdict = "stream_truncated", Verdict.FAILURE
                yield error_event(f"backend {backend.name} closed the stream before it finished", "stream_truncated")
        except StreamCut as cut:
            status = "shutdown" if cut.code == "gateway_shutdown" else "stream_timeout"
            verdict = Verdict.FAILURE if cut.backend_failed else Verdict.NONE
            yield error_event(cut.message, cut.code)
        except EventTooLarge:
            status, verdict = "upstream_too_large", Verdict.FAILURE
            yield error_event(f"backend {backend.name} sent an event over {self._max_upstream} bytes "
                              "(server.maxUpstreamBodyBytes)", "upstream_event_too_large")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            status, verdict = "stream_error", Verdict.FAILURE
            yield error_event(f"backend {backend.name} failed mid-stream: {type(exc).__name__}", "stream_error")
        except (asyncio.CancelledError, GeneratorExit):
            status = "client_closed"
            raise
        finally:
            self.watchdog.forget(watched)
            lease.close(verdict)
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

    @staticmethod
    def _failed(attempts: Attempts, backend: UpstreamBackend, outcome: Outcome,
                status: int | None = None) -> tuple[Outcome, None]:
        attempts.status = status
        if status is not None and outcome is not Outcome.RATE_LIMITED:
            log.warning("upstream attempt failed", extra={"fields": {
                "backend": backend.name, "outcome": str(outcome), "upstream_status": status}})
        return outcome, None

    def _fallback(self, attempts: Attempts, source: str, target: str, reason: Outcome | str) -> None:
        """Moving on from `source`: for the metrics, and for the message if no backend serves."""
        if isinstance(reason, Outcome):
            attempts.outcomes.append(reason)
            where = f" (HTTP {attempts.status})" if attempts.status is not None else ""
            attempts.fallbacks.append(f"{source}:{reason}{where}: {source} {POLICIES[reason].meaning}")
        else:
            attempts.fallbacks.append(f"{source}:{reason}")
        self._metrics.fallbacks.labels(source, target, str(reason)).inc()

    def _finish(self, route: str, backend: UpstreamBackend, status: str, usage: Any, started: float, sent: float,
                received: float, request_id: str, streamed: bool = False) -> None:
        now = time.perf_counter()
        series = self._metrics.series(route, backend.name)
        prompt, completion = self._metrics.usage(series, backend, usage)
        self._metrics.request(route, backend.name, status)
        series.duration.observe(now - started)
        if streamed and status == "200" and completion and now > received:
            # `received` is when the first token went out: this is decode speed, not queueing.
            series.tokens_per_second.observe(completion / (now - received))
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
        status, code = exhausted(attempts.outcomes, attempts.none_attempted)
        if status == 429:
            if attempts.retry_after is not None:
                headers["retry-after"] = str(max(1, round(attempts.retry_after)))
            return error_response(429, f"every backend of route {route!r} is rate limited ({tried})",
                                  code=code, headers=headers)
        if status == 503:
            headers["retry-after"] = str(max(1, math.ceil(attempts.wait_hint or 0)))
            return error_response(503, f"every backend of route {route!r} is at its in-flight limit or has an "
                                  f"open circuit ({tried})", code=code, headers=headers)
        return error_response(502, f"no backend of route {route!r} could serve ({tried})", code=code,
                              headers=headers)
