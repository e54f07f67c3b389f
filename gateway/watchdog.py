"""Ending streams from outside: one that went quiet for longer than its backend's
streamIdleTimeoutSeconds, one that ran past requestTimeoutSeconds, and every stream still
running when the shutdown grace runs out.

A single task looks at every open stream a few times a second, instead of a timer per chunk:
a relay only notes when it starts and stops waiting for its upstream. To end a stream the
watchdog fails the upstream body with a `StreamCut`, which the relay turns into an SSE error
event for the client.
"""

from __future__ import annotations

import asyncio

from aiohttp import StreamReader


class StreamCut(Exception):
    def __init__(self, code: str, message: str, backend_failed: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.backend_failed = backend_failed  # counts against the backend's circuit


class Watched:
    __slots__ = ("content", "backend", "idle", "deadline", "waiting_since")

    def __init__(self, content: StreamReader, backend: str, idle: float, deadline: float) -> None:
        self.content = content
        self.backend = backend
        self.idle = idle
        self.deadline = deadline  # loop time
        self.waiting_since = 0.0  # loop time a read began; 0 while not reading


class StreamWatchdog:
    def __init__(self, tick_seconds: float) -> None:
        self._tick = tick_seconds
        self._streams: set[Watched] = set()
        self._closing: tuple[str, str] | None = None  # after cut_all: streams that start now end at once

    def watch(self, content: StreamReader, backend: str, idle: float, deadline: float) -> Watched:
        watched = Watched(content, backend, idle, deadline)
        if self._closing is not None:
            content.set_exception(StreamCut(*self._closing, backend_failed=False))
        else:
            self._streams.add(watched)
        return watched

    def forget(self, watched: Watched) -> None:
        self._streams.discard(watched)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._tick)
            self.check(loop.time())

    def check(self, now: float) -> None:
        for watched in list(self._streams):
            if watched.waiting_since and now - watched.waiting_since > watched.idle:
                self._cut(watched, StreamCut(
                    "stream_idle_timeout",
                    f"backend {watched.backend} sent nothing for {watched.idle:g} s mid-stream", True))
            elif now > watched.deadline:
                self._cut(watched, StreamCut(
                    "request_timeout", f"the stream from backend {watched.backend} ran past its request timeout", False))

    def cut_all(self, code: str, message: str) -> None:
        self._closing = (code, message)
        for watched in list(self._streams):
            self._cut(watched, StreamCut(code, message, False))

    def _cut(self, watched: Watched, cut: StreamCut) -> None:
        self._streams.discard(watched)
        watched.content.set_exception(cut)
