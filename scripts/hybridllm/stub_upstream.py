"""A small real OpenAI-compatible server for tests and benchmarks, on 127.0.0.1.

It answers /v1/chat/completions and /v1/completions (and Azure's /openai/v1/... and
/openai/deployments/... paths), streaming or not, always correctly: it is the well-behaved
upstream the benchmark measures against. With `azure=True` it streams like Azure OpenAI: a first
chunk with empty `choices` and prompt-filter results. Misbehaviour (faults) is injected by the
test harness's subclass (tests/gateway_harness.py), so this hot loop stays as lean as a server
the gateway would really sit in front of.

  python -m hybridllm.stub_upstream --port 18001
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


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class StubUpstream:
    port: int = 0
    # The backend this stub stands in for (the harness uses it to aim faults at one backend).
    name: str = "stub"
    azure: bool = False
    words: tuple[str, ...] = ("Hello", " from", " the", " stub", ".")
    prompt_tokens: int = 11
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
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for prefix in ("/v1", "/openai/v1"):
            app.router.add_post(f"{prefix}/chat/completions", self._chat)
            app.router.add_post(f"{prefix}/completions", self._completions)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat)
        app.router.add_post("/openai/deployments/{deployment}/completions", self._completions)
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

        self._thread = threading.Thread(target=serve, daemon=True, name=f"stub-upstream-{self.name}")
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
        return await self.answer(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self.answer(request, chat=False)

    async def read(self, request: web.Request) -> dict[str, Any]:
        body = orjson.loads(await request.read())
        if self.record:
            self.seen.append(SeenRequest(request.path, {k.lower(): v for k, v in request.headers.items()}, body,
                                         dict(request.query)))
        return body

    async def answer(self, request: web.Request, chat: bool) -> web.StreamResponse:
        body = await self.read(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if body.get("stream"):
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            first_word = 1 if self.azure else 0
            for index, event in enumerate(self.events(body, chat)):
                await response.write(event)
                if self.token_delay and first_word <= index < first_word + len(self.words):
                    await asyncio.sleep(self.token_delay)
            await response.write_eof()
            return response
        return web.Response(body=orjson.dumps(self.completion(body, chat)), content_type="application/json")

    # ---- what a correct upstream sends ----------------------------------------------------

    def usage(self) -> dict[str, Any]:
        completion = len(self.words)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion,
                "prompt_tokens_details": {"cached_tokens": 0}}

    def completion(self, body: dict[str, Any], chat: bool, usage: Any = None) -> dict[str, Any]:
        text = "".join(self.words)
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                  if chat else {"index": 0, "text": text, "finish_reason": "stop"})
        return {"id": "cmpl-stub", "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()), "model": body.get("model", ""), "choices": [choice],
                "usage": self.usage() if usage is None else usage}

    def events(self, body: dict[str, Any], chat: bool, usage: Any = None,
               done: bytes = b"data: [DONE]\n\n") -> list[bytes]:
        """Every SSE event of a streamed answer: [Azure's filter chunk], one per word, the finish
        chunk, the usage chunk when asked for, and [DONE]."""
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True
        obj = "chat.completion.chunk" if chat else "text_completion"
        model, created = body.get("model", ""), int(time.time())

        def chunk(choices: list[Any], **extra: Any) -> bytes:
            data = {"id": "cmpl-stub", "object": obj, "created": created, "model": model, "choices": choices, **extra}
            return b"data: " + orjson.dumps(data) + b"\n\n"

        events = []
        if self.azure:
            events.append(b"data: " + orjson.dumps({"id": "", "object": "", "created": 0, "model": "", "choices": [],
                          "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}) + b"\n\n")
        for word in self.words:
            choice = ({"index": 0, "delta": {"content": word}, "finish_reason": None} if chat
                      else {"index": 0, "text": word, "finish_reason": None})
            events.append(chunk([choice], usage=None) if include_usage else chunk([choice]))
        final = ({"index": 0, "delta": {}, "finish_reason": "stop"} if chat
                 else {"index": 0, "text": "", "finish_reason": "stop"})
        events.append(chunk([final]))
        if include_usage:
            events.append(chunk([], usage=self.usage() if usage is None else usage))
        events.append(done)
        return events


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
