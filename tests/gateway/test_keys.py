"""gateway/keys.py: the keys file's errors, the key-making tool, and re-reading the file when the
Secret behind it changes (a revoked key stops working without a restart)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.config import ConfigError
from gateway.keys import KeyStore, digest
from gateway_harness import CHAT, RunningGateway, config_for, upstream_stubs, write_keys
from hybridllm.layout import REPO_ROOT

BODY = {"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}]}


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
    keys.write_text("keys: [", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        KeyStore.load(keys, set())


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


def test_refresh_picks_up_a_changed_file_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    write_keys(keys, {"sk-old": {"name": "old"}})
    store = KeyStore.load(keys, {"vllm-customer"})
    assert store.refresh() is False, "nothing changed"
    write_keys(keys, {"sk-new": {"name": "new"}})
    os.utime(keys, (1, 1))  # a different mtime even on coarse clocks
    assert store.refresh() is True
    assert store.find("sk-old") is None and store.find("sk-new").name == "new"
    keys.write_text("keys: [", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        store.refresh()
    assert store.find("sk-new") is not None, "a broken file keeps the keys that were loaded"


def test_a_kubernetes_style_secret_swap_is_noticed(tmp_path: Path) -> None:
    """The kubelet updates a mounted Secret by pointing the ..data symlink at a new directory."""
    for version, key in (("v1", "sk-one"), ("v2", "sk-two")):
        (tmp_path / version).mkdir()
        write_keys(tmp_path / version / "keys.yaml", {key: {"name": version}})
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "keys.yaml").symlink_to("..data/keys.yaml")
    store = KeyStore.load(tmp_path / "keys.yaml", set())
    assert store.find("sk-one") is not None
    (tmp_path / "..data_tmp").symlink_to("v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert store.refresh() is True
    assert store.find("sk-one") is None and store.find("sk-two") is not None


def test_revoked_keys_stop_working_without_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 9: the keys file was read once, so revoked keys stayed valid until a restart."""
    monkeypatch.setenv("AOAI_API_KEY", "aoai-test-key")
    keys = tmp_path / "keys.yaml"
    write_keys(keys, {"sk-leaked": {"name": "leaked"}})
    with upstream_stubs() as stubs:
        config = config_for(stubs)
        config["auth"].update(keysFile=str(keys), reloadSeconds=0.2)
        with RunningGateway(config) as gateway:
            assert gateway.post(BODY, {"Authorization": "Bearer sk-leaked"}).status_code == 200
            write_keys(keys, {"sk-rotated": {"name": "rotated"}})
            os.utime(keys, (1, 1))
            deadline = time.monotonic() + 5
            while httpx.post(gateway.url + CHAT, json=BODY, headers={"Authorization": "Bearer sk-leaked"}).status_code != 401:
                assert time.monotonic() < deadline, "the revoked key still works"
                time.sleep(0.1)
            assert gateway.post(BODY, {"Authorization": "Bearer sk-rotated"}).status_code == 200
            assert gateway.metric("llm_gateway_keys_reloads_total", result="ok") >= 1
            # A half-written file is reported and the keys in force stay.
            keys.write_text("keys: [", encoding="utf-8")
            os.utime(keys, (2, 2))
            deadline = time.monotonic() + 5
            while gateway.metric("llm_gateway_keys_reloads_total", result="error") < 1:
                assert time.monotonic() < deadline, "a broken keys file was not reported"
                time.sleep(0.1)
            assert gateway.post(BODY, {"Authorization": "Bearer sk-rotated"}).status_code == 200
