"""The gateway's config, keys and credentials: clear errors at start-up, tokens refreshed in time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from gateway import config as gateway_config
from gateway.app import Gateway
from gateway.azure_auth import ApiKeyHeaders, EntraHeaders
from gateway.config import ApiKeyAuth, ConfigError, EntraAuth
from gateway.keys import KeyStore, digest
from gateway_harness import EXAMPLE, example_config
from hybridllm import figures
from hybridllm.layout import REPO_ROOT


def write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_example_config_loads() -> None:
    config = gateway_config.load(EXAMPLE)
    assert set(config.backends) == {"vllm-customer", "vllm-batch", "azure-openai"}
    assert config.backends["vllm-customer"].base_url == "http://127.0.0.1:18001/v1"
    assert config.backends["vllm-batch"].base_url == "http://127.0.0.1:18002/v1"
    assert config.backends["azure-openai"].endpoint == "http://127.0.0.1:18003"
    assert config.backends["azure-openai"].auth.api_key_env == "AOAI_API_KEY"


def test_example_prices_come_from_the_figures_file() -> None:
    pricing = gateway_config.load(EXAMPLE).backends["azure-openai"].pricing
    source = figures.load()["azureOpenAI"]["gpt-4o-mini"]
    assert (pricing.input_per_1m, pricing.cached_input_per_1m, pricing.output_per_1m) == (
        source["inputPer1M"], source["cachedInputPer1M"], source["outputPer1M"])


@pytest.mark.parametrize("change,message", [
    (lambda c: c["routes"]["customer"].update(primary="vllm-nowhere"),
     "routes.customer names backend 'vllm-nowhere', which is not in backends"),
    (lambda c: c["routing"].update(defaultRoute="fastest"), "routing.defaultRoute names route 'fastest'"),
    (lambda c: c["models"].update(code={"route": "coding"}), "models.code.route names route 'coding'"),
    (lambda c: c["backends"]["vllm-batch"].update(maxInflight=4), "backends.vllm-batch.maxInflight: Extra inputs"),
    (lambda c: c["backends"]["vllm-batch"].update(maxInFlight=0), "backends.vllm-batch.maxInFlight: Input should be greater"),
    (lambda c: c["backends"]["vllm-batch"].update(kind="tgi"), "backends.vllm-batch: Input tag 'tgi'"),
    (lambda c: c["backends"]["azure-openai"]["auth"].update(apiKeyFile="/x"),
     "backends.azure-openai.auth: set exactly one of apiKeyEnv or apiKeyFile"),
    (lambda c: c["auth"].pop("keysFile"), "auth: auth.enabled is true but keysFile is not set"),
    (lambda c: c["routing"].update(order=["backendHeader", "geo"]), "routing.order.1"),
])
def test_bad_config_names_file_and_field(tmp_path: Path, change, message: str) -> None:
    config = example_config()
    change(config)
    path = write(tmp_path, config)
    with pytest.raises(ConfigError) as raised:
        gateway_config.load(path)
    assert f"{path}: " in str(raised.value)
    assert message in str(raised.value)


def test_missing_api_key_env_fails_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AOAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="backends.azure-openai.auth.apiKeyEnv: environment variable AOAI_API_KEY"):
        Gateway(gateway_config.load(write(tmp_path, example_config())))


def test_cli_reports_config_errors_without_a_traceback(tmp_path: Path) -> None:
    config = example_config()
    config["routes"]["batch"]["fallbacks"] = ["vllm-custmer"]
    done = subprocess.run([sys.executable, "-m", "gateway", "--config", str(write(tmp_path, config))],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=False)
    assert done.returncode == 2
    assert "routes.batch names backend 'vllm-custmer'" in done.stderr
    assert "Traceback" not in done.stderr


def test_keys_file_problems(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "a", "sha256": "abc"}]}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"keys.0.sha256: String should match pattern"):
        KeyStore.load(keys, {"vllm-customer"})
    keys.write_text(yaml.safe_dump({"keys": [{"name": "a", "sha256": digest("k"), "backends": ["vllm-x"]}]}))
    with pytest.raises(ConfigError, match=r"key 'a' names unknown backends \['vllm-x'\]"):
        KeyStore.load(keys, {"vllm-customer"})
    with pytest.raises(ConfigError, match="keys file not found"):
        KeyStore.load(tmp_path / "missing.yaml", set())


def test_keys_tool_makes_a_key_whose_hash_matches(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "gateway.keys", "new", "--name", "team-a", "--classes", "customer"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=True)
    key = done.stderr.strip().splitlines()[-1].removeprefix("# ")
    (entry,) = yaml.safe_load(done.stdout)
    assert entry["sha256"] == digest(key) and entry["classes"] == ["customer"]
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [entry]}), encoding="utf-8")
    found = KeyStore.load(keys, {"vllm-customer"}).find(key)
    assert found is not None and found.name == "team-a" and not found.may_use_class("batch")
    assert key not in done.stdout, "the plaintext key goes to stderr once, never into the keys file"


def test_api_key_file_is_reread_after_rotation(tmp_path: Path) -> None:
    secret = tmp_path / "api-key"
    secret.write_text("first\n", encoding="utf-8")
    headers = ApiKeyHeaders(ApiKeyAuth(type="apiKey", apiKeyFile=str(secret)), "azure-openai", recheck_seconds=0)
    assert asyncio.run(headers.headers()) == {"api-key": "first"}
    secret.write_text("second\n", encoding="utf-8")
    import os
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
