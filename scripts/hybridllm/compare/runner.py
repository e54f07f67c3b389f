"""Sending the evaluation set through the gateway to each backend, streaming, and timing it.

Every request is pinned to one backend with `x-llm-backend` (the key needs backendOverride), asks
for usage in the stream, and is timed on the client: time to first token is from sending the
request to the first content token; streaming tokens/s is the completion tokens over the time
from that first token to the end of the stream. Each backend has its own `concurrency` requests
in flight, so one backend's speed does not change the load on another.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from ..errors import UserError
from .progress import Progress

CHAT = "/v1/chat/completions"
BACKEND_HEADER = "x-llm-backend"
EMPTY = "the answer was empty"
# Gateway refusals that say the run itself is misconfigured (not that a backend answered badly).
_FATAL = {
    "invalid_api_key": "give a gateway key with --key or HYBRID_LLM_GATEWAY_KEY",
    "override_not_allowed": "use a key with backendOverride: true (python -m gateway.keys new --backend-override)",
    "unknown_backend": "name backends of this gateway in --backends",
    "backend_not_allowed": "use a key whose `backends` include it",
}


@dataclass(frozen=True)
class Job:
    suite: str  # humaneval or schema
    item: str  # the problem's or task's id
    body: dict[str, Any]


@dataclass
class Sample:
    backend: str
    suite: str
    item: str
    text: str = ""
    error: str | None = None
    ttft: float | None = None  # seconds to the first content token
    decode_seconds: float | None = None  # first content token to the end of the stream
    prompt_tokens: int = 0  # uncached
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # the scorer's verdict

    @property
    def tokens_per_second(self) -> float | None:
        if self.error or not self.decode_seconds or self.completion_tokens <= 0:
            return None
        return self.completion_tokens / self.decode_seconds


class GatewayRefused(Exception):
    def __init__(self, backend: str, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.backend, self.status, self.code, self.message = backend, status, code, message


@dataclass(frozen=True)
class Target:
    gateway: str
    key: str
    model: str
    timeout: float  # seconds for one whole request
    max_tokens: int = 1024  # completion tokens per answer, the same for every backend
    temperature: float | None = 0.0  # None: the model's default (reasoning models accept no other)


def _error_of(status: int, body: bytes) -> tuple[str, str]:
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    return str(error.get("code") or error.get("type") or ""), str(error.get("message") or body[:200].decode(errors="replace"))


def _usage(sample: Sample, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    sample.cached_prompt_tokens = cached
    sample.prompt_tokens = max(0, int(usage.get("prompt_tokens") or 0) - cached)
    sample.completion_tokens = int(usage.get("completion_tokens") or 0)


async def send(client: httpx.AsyncClient, target: Target, backend: str, job: Job) -> Sample:
    """One streamed request, pinned to `backend`. Raises GatewayRefused when the gateway refuses
    the run's key or backend; any other failure is the sample's error."""
    sample = Sample(backend, job.suite, job.item)
    # max_completion_tokens, not the older max_tokens: Azure OpenAI's reasoning models accept only
    # the new name, and vLLM and the other models take it too.
    body = {"model": target.model, "stream": True, "stream_options": {"include_usage": True},
            "max_completion_tokens": target.max_tokens, **job.body}
    if target.temperature is not None:
        body["temperature"] = target.temperature
    headers = {"Authorization": f"Bearer {target.key}", BACKEND_HEADER: backend}
    parts: list[str] = []
    started = time.perf_counter()
    first = 0.0
    try:
        async with asyncio.timeout(target.timeout):
            async with client.stream("POST", CHAT, json=body, headers=headers) as response:
                if response.status_code != 200:
                    code, message = _error_of(response.status_code, await response.aread())
                    if code in _FATAL:
                        raise GatewayRefused(backend, response.status_code, code, message)
                    sample.error = f"HTTP {response.status_code}" + (f" {code}" if code else "") + f": {message[:200]}"
                    return sample
                answered_by = response.headers.get(BACKEND_HEADER)
                if answered_by and answered_by != backend:
                    sample.error = f"answered by {answered_by}, not the pinned {backend}"
                    return sample
                done = False
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        event = json.loads(data)
                    except ValueError:
                        sample.error = f"unreadable stream event {data[:80]!r}"
                        return sample
                    if not isinstance(event, dict):
                        continue
                    if event.get("error") is not None:
                        error = event["error"]
                        sample.error = "stream error: " + (str(error.get("code") or error.get("message"))
                                                           if isinstance(error, dict) else str(error))
                        return sample
                    for choice in event.get("choices") or ():
                        content = ((choice or {}).get("delta") or {}).get("content")
                        if content:
                            if not parts:
                                first = time.perf_counter()
                                sample.ttft = first - started
                            parts.append(content)
                    if event.get("usage"):
                        _usage(sample, event["usage"])
                if not done:
                    sample.error = "the stream ended before [DONE]"
                    return sample
    except TimeoutError:
        sample.error = f"no complete answer within {target.timeout:g} s"
        return sample
    except httpx.HTTPError as exc:
        sample.error = f"{type(exc).__name__}: {exc}"[:200]
        return sample
    sample.text = "".join(parts)
    if first:
        sample.decode_seconds = time.perf_counter() - first
    else:
        sample.error = EMPTY
    return sample


def _client(target: Target, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=target.gateway, timeout=httpx.Timeout(target.timeout, connect=10),
                             limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
                             trust_env=False)


def _refusal(exc: GatewayRefused) -> UserError:
    return UserError(f"--backends {exc.backend}", f"the gateway refused it: HTTP {exc.status} {exc.code}: {exc.message}",
                     _FATAL[exc.code])


async def preflight(target: Target, backends: list[str]) -> str:
    """Check the gateway, the key and each backend before the run; returns the model to send
    (target.model, else the first model the gateway lists)."""
    async with _client(target, 4) as client:
        try:
            response = await client.get("/v1/models", headers={"Authorization": f"Bearer {target.key}"})
        except httpx.HTTPError as exc:
            raise UserError(target.gateway, f"cannot reach the gateway ({type(exc).__name__}: {exc})",
                            "check --gateway: the gateway's base URL, e.g. http://127.0.0.1:8080") from None
        if response.status_code == 401:
            raise UserError("--key", "the gateway refused the key (401)",
                            "give a gateway key with --key or HYBRID_LLM_GATEWAY_KEY")
        try:
            models = [m["id"] for m in response.json()["data"]] if response.status_code == 200 else None
        except (ValueError, KeyError, TypeError):
            models = None
        if models is None:
            raise UserError(target.gateway, f"GET /v1/models answered HTTP {response.status_code}, not a model list",
                            "check that --gateway points at the hybrid-llm gateway")
        model = target.model or (models[0] if models else "")
        if not model:
            raise UserError(target.gateway, "the gateway lists no models", "pass --model")
        # Room for a reasoning model's hidden tokens; an empty reply still shows the backend answers.
        probe = Job("probe", "probe", {"messages": [{"role": "user", "content": "Reply with the word OK."}],
                                       "max_completion_tokens": 64})
        checked = replace(target, model=model)
        for backend in backends:
            try:
                sample = await send(client, checked, backend, probe)
            except GatewayRefused as exc:
                raise _refusal(exc) from None
            if sample.error and sample.error != EMPTY:
                raise UserError(f"--backends {backend}", f"the probe request failed: {sample.error}",
                                "check that the backend is up (the gateway's /metrics show its circuit)")
    return model


async def run(target: Target, backends: list[str], jobs: list[Job], concurrency: int,
              progress: Progress | None = None) -> list[Sample]:
    """Every job on every backend; samples in job order per backend."""
    results: dict[tuple[str, int], Sample] = {}

    async def worker(client: httpx.AsyncClient, backend: str, queue: asyncio.Queue[int]) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            results[(backend, index)] = await send(client, target, backend, jobs[index])
            if progress:
                progress.advance()

    async with _client(target, concurrency * len(backends)) as client:
        tasks = []
        for backend in backends:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for index in range(len(jobs)):
                queue.put_nowait(index)
            tasks += [asyncio.create_task(worker(client, backend, queue)) for _ in range(concurrency)]
        try:
            await asyncio.gather(*tasks)
        except GatewayRefused as exc:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise _refusal(exc) from None
    return [results[(backend, index)] for backend in backends for index in range(len(jobs))]
