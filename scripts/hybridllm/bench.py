"""Measuring the latency the gateway adds: the same requests sent straight to a stub upstream
and through the gateway, in one run, on 127.0.0.1 only. Request counts and time are bounded."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from .layout import REPO_ROOT

KEY = "sk-bench"
BODY = {"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}


@dataclass
class Sample:
    latencies: list[float]  # seconds, one per request
    errors: int
    elapsed: float

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, timeout: float = 30) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # the server answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Servers:
    """A stub upstream and a gateway in their own processes, so the load generator does not
    share their interpreter."""

    def __init__(self, upstream_delay: float = 0.0, pin_cpus: bool = False) -> None:
        self.upstream_delay = upstream_delay
        # With two or more CPUs: the gateway alone on CPU 0, the stub (and this load generator) on
        # the others, so the gateway's figures are not its fight for CPU with the load generator.
        self.pin = pin_cpus and len(os.sched_getaffinity(0)) >= 2
        self.stub_port, self.gateway_port = _free_port(), _free_port()
        self._dir = tempfile.TemporaryDirectory()
        self._processes: list[subprocess.Popen] = []

    def __enter__(self) -> "Servers":
        folder = Path(self._dir.name)
        (folder / "keys.yaml").write_text(yaml.safe_dump({"keys": [{"name": "bench", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}]}))
        config = {
            "auth": {"enabled": True, "keysFile": str(folder / "keys.yaml")},
            "backends": {"vllm-customer": {"kind": "vllm", "baseURL": f"http://127.0.0.1:{self.stub_port}/v1",
                                           "model": "bench-model", "maxInFlight": 10000}},
            "routes": {"customer": {"primary": "vllm-customer"}},
            "routing": {"defaultRoute": "customer"},
            "models": {"llama-3.3-70b": {}},
        }
        (folder / "gateway.yaml").write_text(yaml.safe_dump(config))
        cpus = sorted(os.sched_getaffinity(0))
        gateway_cpus, other_cpus = ({cpus[0]}, set(cpus[1:])) if self.pin else (set(cpus), set(cpus))
        if self.pin:
            os.sched_setaffinity(0, other_cpus)
        self._processes.append(subprocess.Popen(
            [sys.executable, "-m", "hybridllm.stub_upstream", "--port", str(self.stub_port),
             "--delay", str(self.upstream_delay)], cwd=REPO_ROOT,
            preexec_fn=lambda: os.sched_setaffinity(0, other_cpus)))
        self._processes.append(subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(folder / "gateway.yaml"), "--host", "127.0.0.1",
             "--port", str(self.gateway_port), "--log-level", "WARNING"], cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, gateway_cpus)))
        _wait_for(f"http://127.0.0.1:{self.stub_port}/v1/chat/completions")
        _wait_for(f"http://127.0.0.1:{self.gateway_port}/healthz")
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self._processes:
            process.send_signal(signal.SIGTERM)
        for process in self._processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        self._dir.cleanup()

    @property
    def direct(self) -> str:
        return f"http://127.0.0.1:{self.stub_port}/v1/chat/completions"

    @property
    def via_gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}/v1/chat/completions"


async def _one(session: aiohttp.ClientSession, url: str, stream: bool) -> float:
    body = {**BODY, "stream": True} if stream else BODY
    started = time.perf_counter()
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        if stream:
            async for line in response.content:
                if line.startswith(b"data: ") and b'"content"' in line:
                    first = time.perf_counter() - started
                    await response.read()
                    return first
            raise RuntimeError("no content chunk")
        await response.read()
    return time.perf_counter() - started


async def run_load(url: str, concurrency: int, requests: int, stream: bool = False) -> Sample:
    """`requests` requests, at most `concurrency` in flight. Stream: time to first content chunk."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    latencies: list[float] = []
    errors = 0
    queue = iter(range(requests))

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                try:
                    latencies.append(await _one(session, url, stream))
                except (aiohttp.ClientError, RuntimeError, asyncio.TimeoutError):
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Sample(latencies, errors, elapsed)


def median_of_rounds(samples: list[Sample], q: float) -> float:
    return statistics.median(s.percentile(q) for s in samples)


def added_latency_buckets(gateway_port: int) -> dict[float, float]:
    """Cumulative counts of the gateway's own llm_gateway_added_latency_seconds histogram."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{gateway_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    buckets = {}
    for line in text.splitlines():
        if line.startswith("llm_gateway_added_latency_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Upper bound of the bucket holding quantile q of the observations between two scrapes."""
    deltas = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = deltas[-1][1]
    for bound, cumulative in deltas:
        if total and cumulative >= q * total:
            return bound
    return float("nan")
