"""One upstream backend: where its endpoints are, which model name it serves, its credentials,
its in-flight limit and its circuit breaker. Everything is worked out once at start-up."""

from __future__ import annotations

from typing import Literal

import aiohttp

from .azure_auth import CredentialHeaders, credential_headers
from .circuit import CircuitBreaker
from .config import AzureOpenAIBackend, Backend, VllmBackend

Endpoint = Literal["chat", "completions"]
_PATHS = {"chat": "chat/completions", "completions": "completions"}


class UpstreamBackend:
    def __init__(self, name: str, config: Backend, credentials: CredentialHeaders | None = None) -> None:
        self.name = name
        self.kind = config.kind
        self.config = config
        self.max_in_flight = config.max_in_flight
        self.in_flight = 0
        self.circuit = CircuitBreaker(config.circuit.failure_threshold, config.circuit.open_seconds)
        self.first_byte_timeout = config.first_byte_timeout_seconds
        self.request_timeout = config.request_timeout_seconds
        self.timeout = aiohttp.ClientTimeout(
            total=config.request_timeout_seconds,
            sock_connect=config.connect_timeout_seconds,
            sock_read=config.stream_idle_timeout_seconds,
        )
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

    def try_acquire(self) -> bool:
        """Take an in-flight slot; False means full (overflow to the next backend)."""
        if self.in_flight >= self.max_in_flight:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1

    def cost(self, uncached_prompt: int, cached_prompt: int, completion: int) -> float:
        return uncached_prompt * self._input + cached_prompt * self._cached + completion * self._output

    async def close(self) -> None:
        await self.credentials.close()
