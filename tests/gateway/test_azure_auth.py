"""gateway/azure_auth.py: api keys re-read after rotation, Entra tokens cached and refreshed in
time, and a failing token fetch treated as the backend failure it is (real azure-identity
credential, real token endpoint on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import httpx
import openai
import pytest

from gateway.azure_auth import ApiKeyHeaders, EntraHeaders
from gateway.config import ApiKeyAuth, EntraAuth
from gateway_harness import DEMO_KEY, RunningGateway, TokenEndpoint, config_for, upstream_stubs

MESSAGES = [{"role": "user", "content": "hi"}]


def test_api_key_file_is_reread_after_rotation(tmp_path: Path) -> None:
    secret = tmp_path / "api-key"
    secret.write_text("first\n", encoding="utf-8")
    headers = ApiKeyHeaders(ApiKeyAuth(type="apiKey", apiKeyFile=str(secret)), "azure-openai", recheck_seconds=0)
    assert asyncio.run(headers.headers()) == {"api-key": "first"}
    secret.write_text("second\n", encoding="utf-8")
    os.utime(secret, (1, 1))
    assert asyncio.run(headers.headers()) == {"api-key": "second"}


class CountingCredential:
    """An azure.identity-style credential whose tokens expire when the test says."""

    def __init__(self) -> None:
        self.calls = 0
        self.expires_on = 0.0

    async def get_token(self, *scopes: str) -> SimpleNamespace:
        assert scopes == ("https://cognitiveservices.azure.com/.default",)
        self.calls += 1
        await asyncio.sleep(0.01)
        return SimpleNamespace(token=f"token-{self.calls}", expires_on=self.expires_on)

    async def close(self) -> None:
        return None


def test_entra_token_is_cached_and_refreshed_before_expiry() -> None:
    now = [1000.0]
    credential = CountingCredential()
    credential.expires_on = 1000.0 + 3600
    headers = EntraHeaders(EntraAuth(type="entra", refreshMarginSeconds=300), credential, clock=lambda: now[0])

    async def scenario() -> None:
        results = await asyncio.gather(*(headers.headers() for _ in range(20)))
        assert {r["Authorization"] for r in results} == {"Bearer token-1"}
        assert credential.calls == 1, "concurrent requests must share one token request"
        now[0] = 1000.0 + 3600 - 301  # not yet inside the refresh margin
        assert (await headers.headers())["Authorization"] == "Bearer token-1"
        now[0] = 1000.0 + 3600 - 299  # inside it: refresh before the token expires
        credential.expires_on = now[0] + 3600
        assert (await headers.headers())["Authorization"] == "Bearer token-2"
        assert credential.calls == 2

    asyncio.run(scenario())


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint().start()
    yield endpoint
    endpoint.stop()


def entra_credentials(endpoint: TokenEndpoint, monkeypatch: pytest.MonkeyPatch) -> dict[str, EntraHeaders]:
    """The real azure-identity ManagedIdentityCredential (App Service flavour) against the endpoint."""
    from azure.identity.aio import ManagedIdentityCredential

    for name, value in endpoint.environment.items():
        monkeypatch.setenv(name, value)
    return {"azure-openai": EntraHeaders(EntraAuth(type="entra"), ManagedIdentityCredential())}


def test_a_failing_token_fetch_is_a_backend_failure_that_heals(token_endpoint: TokenEndpoint,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 1: a failing Entra token fetch gave a plain-text 500, kept the in-flight slot for
    ever and, during a half-open probe, left the circuit half-open for good: after the token
    endpoint recovered every Azure request got 503."""
    monkeypatch.setenv("AOAI_API_KEY", "unused")
    with upstream_stubs() as stubs:
        config = config_for(stubs)
        config["backends"]["azure-openai"]["circuit"] = {"failureThreshold": 1, "openSeconds": 1.5}
        config["routes"]["azure"] = {"primary": "azure-openai", "fallbacks": ["vllm-customer"]}
        with RunningGateway(config, credentials=entra_credentials(token_endpoint, monkeypatch)) as gateway:
            client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=DEMO_KEY, max_retries=0)
            token_endpoint.failing = True

            # With a fallback: served by it, counted as a credentials failure.
            raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
            assert raw.headers["x-llm-backend"] == "vllm-customer"
            assert gateway.fallbacks("credentials", "azure-openai", "vllm-customer") == 1
            assert gateway.metric("llm_gateway_circuit_state", backend="azure-openai") == 1

            # Without one: a JSON 502 that says what failed, and the slot is given back.
            time.sleep(1.6)
            with pytest.raises(openai.APIStatusError) as raised:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                               extra_headers={"x-llm-backend": "azure-openai"})
            assert raised.value.status_code == 502
            assert "azure-openai:credentials" in raised.value.body["message"]
            assert "AADSTS" not in raised.value.body["message"], "identity details stay in the log"
            assert gateway.metric("llm_gateway_in_flight_requests", backend="azure-openai") == 0
            # That was the half-open probe: it failed, so the circuit is open again, not stuck.
            assert gateway.metric("llm_gateway_circuit_state", backend="azure-openai") == 1

            token_endpoint.failing = False
            time.sleep(1.6)
            raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
            assert raw.headers["x-llm-backend"] == "azure-openai"
            assert stubs["azure-openai"].seen[-1].headers["authorization"].startswith("Bearer entra-token-")
            assert gateway.metric("llm_gateway_circuit_state", backend="azure-openai") == 0
            assert gateway.metric("llm_gateway_in_flight_requests", backend="azure-openai") == 0
            assert httpx.get(gateway.url + "/readyz").status_code == 200


class HangingCredential:
    """A token request that never returns (a token endpoint that accepts and stalls)."""

    async def get_token(self, *scopes: str) -> SimpleNamespace:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        return None


def test_a_hanging_token_fetch_is_bounded_by_the_attempt_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOAI_API_KEY", "unused")
    with upstream_stubs() as stubs:
        config = config_for(stubs)
        config["backends"]["azure-openai"]["requestTimeoutSeconds"] = 0.5
        config["routes"]["azure"] = {"primary": "azure-openai", "fallbacks": ["vllm-customer"]}
        credentials = {"azure-openai": EntraHeaders(EntraAuth(type="entra"), HangingCredential())}
        with RunningGateway(config, credentials=credentials) as gateway:
            started = time.monotonic()
            response = gateway.post({"model": "gpt-4o-mini", "messages": MESSAGES})
            assert response.headers["x-llm-backend"] == "vllm-customer"
            assert time.monotonic() - started < 2
            assert gateway.fallbacks("credentials", "azure-openai", "vllm-customer") == 1
            assert gateway.metric("llm_gateway_in_flight_requests", backend="azure-openai") == 0
