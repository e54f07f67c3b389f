"""A small real OpenAI-compatible server for tests and benchmarks, on 127.0.0.1.

It answers /v1/chat/completions and /v1/completions (and Azure's /openai/v1/... paths), streaming
or not, and can be told to misbehave: fail with a 5xx, answer 429 with retry-after, stall before
the first byte, or cut a stream midway. With `azure=True` it streams like Azure OpenAI: a first
chunk with empty `choices` and prompt-filter results.

  python -m hybridllm.stub_upstream --port 18001          # from scripts/
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

MODES = ("ok", "error500", "error503", "rate_limit", "stall", "stall_body", "cut", "bad_request")


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class StubUpstream:
    port: int = 0
    mode: str = "ok"
    # Misbehave for this many requests, then answer normally again (None: until told otherwise).
    mode_count: int | None = None
    azure: bool = False
    words: tuple[str, ...] = ("Hello", " from", " the", " stub", ".")
    prompt_tokens: int = 11
    stall_seconds: float = 5.0
    retry_after_ms: int | None = 50
    token_delay: float = 0.0
    # Seconds before any answer (stands in for prefill time); streams wait before the first token.
    delay: float = 0.0
    record: bool = True
    seen: list[SeenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        for prefix in ("/v1", "/openai/v1"):
            app.router.add_post(f"{prefix}/chat/completions", self._chat)
            app.router.add_post(f"{prefix}/completions", self._completions)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat)
        return app

    def start(self) -> "StubUpstream":
        """Serve from a background thread; returns once the port is bound."""
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True, name=f"stub-upstream-{self.port}")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("stub upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        async def shutdown() -> None:
            assert self._runner is not None
            await self._runner.cleanup()
            # Keep-alive connections leave handler tasks behind; end them before the loop stops.
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- handlers -------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, chat=False)

    async def _answer(self, request: web.Request, chat: bool) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if self.record:
            self.seen.append(SeenRequest(request.path, {k.lower(): v for k, v in request.headers.items()}, body,
                                         dict(request.query)))
        if self.delay:
            await asyncio.sleep(self.delay)
        mode = self.mode
        if self.mode_count is not None:
            self.mode_count -= 1
            if self.mode_count <= 0:
                self.mode, self.mode_count = "ok", None
        if mode == "stall":
            await asyncio.sleep(self.stall_seconds)
        if mode in ("error500", "error503"):
            return web.json_response({"error": {"message": "stub failure", "type": "server_error"}},
                                     status=int(mode[-3:]))
        if mode == "rate_limit":
            headers = {"retry-after-ms": str(self.retry_after_ms)} if self.retry_after_ms is not None else {}
            return web.json_response({"error": {"message": "rate limited", "type": "rate_limit"}},
                                     status=429, headers=headers)
        if mode == "bad_request":
            return web.json_response({"error": {"message": "stub says no", "type": "invalid_request_error"}},
                                     status=400)
        model = body.get("model", "")
        created = int(time.time())
        if body.get("stream"):
            return await self._stream(request, body, model, created, chat, mode)
        text = "".join(self.words)
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                  if chat else {"index": 0, "text": text, "finish_reason": "stop"})
        return web.Response(body=orjson.dumps({
            "id": "cmpl-stub", "object": "chat.completion" if chat else "text_completion", "created": created,
            "model": model, "choices": [choice], "usage": self._usage()}), content_type="application/json")

    def _usage(self) -> dict[str, Any]:
        completion = len(self.words)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion,
                "prompt_tokens_details": {"cached_tokens": 0}}

    async def _stream(self, request: web.Request, body: dict[str, Any], model: str, created: int,
                      chat: bool, mode: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        if mode == "stall_body":
            await asyncio.sleep(self.stall_seconds)
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices: list[Any], **extra: Any) -> bytes:
            data = {"id": "cmpl-stub", "object": obj, "created": created, "model": model, "choices": choices, **extra}
            return b"data: " + orjson.dumps(data) + b"\n\n"

        if self.azure:
            await response.write(b"data: " + orjson.dumps({"id": "", "object": "", "created": 0, "model": "",
                                 "choices": [], "prompt_filter_results": [{"prompt_index": 0,
                                 "content_filter_results": {}}]}) + b"\n\n")
        for index, word in enumerate(self.words):
            if mode == "cut" and index == 2:
                # Crash after the first tokens have been delivered: drop the connection without [DONE].
                await asyncio.sleep(0.2)
                request.transport.close()  # type: ignore[union-attr]
                return response
            delta = {"content": word} if chat else None
            choice = ({"index": 0, "delta": delta, "finish_reason": None} if chat
                      else {"index": 0, "text": word, "finish_reason": None})
            await response.write(chunk([choice], usage=None) if include_usage else chunk([choice]))
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
        final = ({"index": 0, "delta": {}, "finish_reason": "stop"} if chat
                 else {"index": 0, "text": "", "finish_reason": "stop"})
        await response.write(chunk([final]))
        if include_usage:
            await response.write(chunk([], usage=self._usage()))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--azure", action="store_true", help="stream like Azure OpenAI")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed tokens")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    stub = StubUpstream(port=args.port, azure=args.azure, token_delay=args.token_delay, delay=args.delay, record=False)
    try:
        import uvloop  # the fastest loop available, so the stub is never the bottleneck

        uvloop.install()
    except ImportError:
        pass
    web.run_app(stub.app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
