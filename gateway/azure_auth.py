"""Credentials for Azure OpenAI: an api-key from an env var or a mounted file (a Secret or a Key
Vault CSI mount), or Entra ID bearer tokens through workload identity, refreshed before expiry.

The gateway never forwards a client's credentials: these headers are the only auth sent upstream.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Protocol

from .config import ApiKeyAuth, ConfigError, EntraAuth


class CredentialHeaders(Protocol):
    async def headers(self) -> dict[str, str]: ...

    async def close(self) -> None: ...


class NoCredentials:
    async def headers(self) -> dict[str, str]:
        return {}

    async def close(self) -> None:
        return None


class ApiKeyHeaders:
    """`api-key: <key>`. A key file is re-read when it changes (Key Vault rotation), at most
    every `recheck_seconds`, so the request path does not stat the file each time."""

    def __init__(self, auth: ApiKeyAuth, backend: str, recheck_seconds: float = 30.0) -> None:
        self._auth = auth
        self._backend = backend
        self._recheck_seconds = recheck_seconds
        self._checked_at = 0.0
        self._mtime = 0.0
        self._headers = {"api-key": self._read()}

    def _read(self) -> str:
        where = f"backends.{self._backend}.auth"
        if self._auth.api_key_env is not None:
            value = os.environ.get(self._auth.api_key_env, "").strip()
            if not value:
                raise ConfigError(f"{where}.apiKeyEnv: environment variable {self._auth.api_key_env} is empty or unset")
            return value
        path = Path(self._auth.api_key_file or "")
        try:
            self._mtime = path.stat().st_mtime
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{where}.apiKeyFile: cannot read {path}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{where}.apiKeyFile: {path} is empty")
        return value

    async def headers(self) -> dict[str, str]:
        if self._auth.api_key_file is not None:
            now = time.monotonic()
            if now - self._checked_at > self._recheck_seconds:
                self._checked_at = now
                try:
                    if Path(self._auth.api_key_file).stat().st_mtime != self._mtime:
                        self._headers = {"api-key": self._read()}
                except (OSError, ConfigError):
                    pass  # keep the last good key; the mount is being swapped
        return self._headers

    async def close(self) -> None:
        return None


class TokenCredential(Protocol):
    """What azure.identity.aio credentials provide."""

    async def get_token(self, *scopes: str) -> Any: ...

    async def close(self) -> None: ...


class EntraHeaders:
    """`Authorization: Bearer <token>` from Entra ID, refreshed `refresh_margin` before expiry.
    Concurrent requests share one refresh."""

    def __init__(self, auth: EntraAuth, credential: TokenCredential | None = None, clock=time.time) -> None:
        self._scope = auth.scope
        self._margin = auth.refresh_margin_seconds
        self._clock = clock
        if credential is None:
            from azure.identity.aio import DefaultAzureCredential  # only where Entra auth is configured

            credential = DefaultAzureCredential(
                workload_identity_client_id=auth.client_id, managed_identity_client_id=auth.client_id
            )
        self._credential = credential
        self._headers: dict[str, str] = {}
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        if self._clock() < self._refresh_at:
            return self._headers
        async with self._lock:
            if self._clock() >= self._refresh_at:  # another request may have refreshed meanwhile
                token = await self._credential.get_token(self._scope)
                self._headers = {"Authorization": f"Bearer {token.token}"}
                self._refresh_at = float(token.expires_on) - self._margin
        return self._headers

    async def close(self) -> None:
        await self._credential.close()


def credential_headers(auth: ApiKeyAuth | EntraAuth | None, backend: str) -> CredentialHeaders:
    if auth is None:
        return NoCredentials()
    if isinstance(auth, ApiKeyAuth):
        return ApiKeyHeaders(auth, backend)
    return EntraHeaders(auth)
