"""gateway/watchdog.py on its own: which streams it ends, when, and with what."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from aiohttp import StreamReader

from gateway.watchdog import StreamCut, StreamWatchdog


def reader(loop: asyncio.AbstractEventLoop) -> StreamReader:
    return StreamReader(mock.Mock(_reading_paused=False), 2 ** 16, loop=loop)


def test_it_ends_a_stream_only_while_it_waits_too_long_for_its_upstream() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        dog = StreamWatchdog(tick_seconds=0.05)
        content = reader(loop)
        watched = dog.watch(content, "vllm-x", idle=5, deadline=1000)
        dog.check(100)  # not reading: a slow client is not the upstream's silence
        watched.waiting_since = 100
        dog.check(104)
        content.feed_data(b"data: 1\n\n")
        assert await content.readany() == b"data: 1\n\n"
        dog.check(105.5)
        with pytest.raises(StreamCut) as cut:
            await content.readany()
        assert cut.value.code == "stream_idle_timeout" and cut.value.backend_failed
        assert "sent nothing for 5 s" in cut.value.message

    asyncio.run(scenario())


def test_it_ends_a_stream_past_its_request_deadline_without_blaming_the_backend() -> None:
    async def scenario() -> None:
        dog = StreamWatchdog(tick_seconds=0.05)
        content = reader(asyncio.get_running_loop())
        dog.watch(content, "vllm-x", idle=5, deadline=200)
        dog.check(200.5)
        with pytest.raises(StreamCut) as cut:
            await content.readany()
        assert cut.value.code == "request_timeout" and not cut.value.backend_failed

    asyncio.run(scenario())


def test_cut_all_ends_every_stream_and_those_that_start_after() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        dog = StreamWatchdog(tick_seconds=0.05)
        running = reader(loop)
        dog.watch(running, "a", idle=5, deadline=1e9)
        waiting = asyncio.ensure_future(running.readany())
        await asyncio.sleep(0)
        dog.cut_all("gateway_shutdown", "the gateway is shutting down")
        with pytest.raises(StreamCut):
            await waiting
        late = reader(loop)
        dog.watch(late, "b", idle=5, deadline=1e9)
        with pytest.raises(StreamCut) as cut:
            await late.readany()
        assert cut.value.code == "gateway_shutdown"

    asyncio.run(scenario())


def test_the_running_watchdog_checks_on_its_own() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        dog = StreamWatchdog(tick_seconds=0.02)
        content = reader(loop)
        watched = dog.watch(content, "vllm-x", idle=0.05, deadline=loop.time() + 100)
        task = asyncio.create_task(dog.run())
        watched.waiting_since = loop.time()
        with pytest.raises(StreamCut):
            await asyncio.wait_for(content.readany(), 2)
        task.cancel()

    asyncio.run(scenario())
