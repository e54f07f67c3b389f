"""One upstream backend: where its endpoints are, which model name it serves, its credentials,
its in-flight limit, its timeouts and its circuit breaker. Everything is worked out once at
start-up.

Each attempt on a backend goes through a `Lease`: the one owner of its in-flight slot, its
circuit ticket (maybe the half-open probe) and the upstream response, which gives all three
back on every way out of the attempt, unless a stream takes the lease over and closes it when
the stream ends.
"""

from __future__ import annotations

from typing import Literal

import aiohttp

from .azure_auth import CredentialHeaders, credential_headers
from .circuit import CircuitBreaker, Ticket, Verdict
from .config import AzureOpenAIBackend, Backend, VllmBackend

Endpoint = Literal["chat", "completions"]
Skip = Literal["overflow", "circuit_open"]
_PATHS = {"chat": "chat/completions", "completions": "completions"}


class Lease:
    """One attempt's hold on a backend. `with lease:` gives everything back on exit with the
    `verdict` the attempt reached (none, when it ended without one: cancelled, or an error in
    the gateway itself); `keep()` hands the lease to a stream, which calls `close()`."""

    __slots__ = ("backend", "ticket", "verdict", "response", "_kept", "_closed")

    def __init__(self, backend: "UpstreamBackend", ticket: Ticket) -> None:
        self.backend = backend
        self.ticket = ticket
        self.verdict = Verdict.NONE
        self.response: aiohttp.ClientResponse | None = None
        self._kept = False
        self._closed = False

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._kept:
            self.close(self.verdict)

    def keep(self) -> "Lease":
        self._kept = True
        return self

    def close(self, verdict: Verdict) -> None:
        if self._closed:
            return
        self._closed = True
        if self.response is not None:
            # Unread body: the connection cannot go back to the pool, so this closes it.
            self.response.close()
            self.response = None
        self.backend.in_flight -= 1
        self.backend.circuit.settle(self.ticket, verdict)


class UpstreamBackend:
    def __init__(self, name: str, config: Backend, credentials: CredentialHeaders | None = None) -> None:
        self.name = name
        self.kind = config.kind
        self.config = config
        self.max_in_flight = config.max_in_flight
        self.in_flight = 0
        self.circuit = CircuitBreaker(config.circuit.failure_threshold, config.circuit.open_seconds)
        self.first_byte_timeout = config.first_byte_timeout_seconds
        self.stream_idle_timeout = config.stream_idle_timeout_seconds
        self.request_timeout = config.request_timeout_seconds
        # aiohttp enforces only the connect timeout (TCP and TLS). Its read timeout would also
        # cover the wait for a non-streaming answer's headers, so the proxy keeps the first-byte,
        # whole-request and stream-idle timeouts itself, each meaning what the config says.
        self.timeout = aiohttp.ClientTimeout(total=None, connect=config.connect_timeout_seconds,
                                             sock_connect=config.connect_timeout_seconds)
        if isinstance(config, VllmBackend):
            self.model = config.model
            base = config.base_url.rstrip("/")
            self.urls = {endpoint: f"{base}/{path}" for endpoint, path in _PATHS.items()}
            self.credentials = credentials or credential_headers(None, name)
        else:
            self.model = config.deployment
            self.urls = self._azure_urls(config)
            self.credentials = credentials or credential_headers(config.auth, name)
        pricing = config.pricing
        self._input = pricing.input_per_1m / 1e6
        self._cached = (pricing.cached_input_per_1m if pricing.cached_input_per_1m is not None
                        else pricing.input_per_1m) / 1e6
        self._output = pricing.output_per_1m / 1e6

    @staticmethod
    def _azure_urls(config: AzureOpenAIBackend) -> dict[str, str]:
        endpoint = config.endpoint.rstrip("/")
        if config.api_mode == "v1":
            return {e: f"{endpoint}/openai/v1/{p}" for e, p in _PATHS.items()}
        return {
            e: f"{endpoint}/openai/deployments/{config.deployment}/{p}?api-version={config.api_version}"
            for e, p in _PATHS.items()
        }

    def lease(self) -> Lease | Skip:
        """Take an in-flight slot and a circuit ticket, or say why not: full (overflow to the next
        backend) or an open circuit."""
        if self.in_flight >= self.max_in_flight:
            return "overflow"
        ticket = self.circuit.admit()
        if ticket is None:
            return "circuit_open"
        self.in_flight += 1
        return Lease(self, ticket)

    def cost(self, uncached_prompt: int, cached_prompt: int, completion: int) -> float:
        return uncached_prompt * self._input + cached_prompt * self._cached + completion * self._output

    async def close(self) -> None:
        await self.credentials.close()
