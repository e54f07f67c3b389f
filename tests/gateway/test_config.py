"""gateway/config.py: the shipped example loads, and a bad config is refused at start-up with
the file and the field named, without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway import config as gateway_config
from gateway.app import Gateway
from gateway.config import ConfigError
from gateway_harness import EXAMPLE, example_config
from hybridllm import figures
from hybridllm.layout import REPO_ROOT


def split(*arms: tuple[str, float]) -> dict:
    return {"split": [{"backend": backend, "weight": weight} for backend, weight in arms]}


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
    server = config.server
    assert (server.max_header_bytes, server.max_body_bytes, server.upload_timeout_seconds,
            server.max_upstream_body_bytes, server.max_request_id_length) == (65536, 2097152, 30, 16777216, 128)


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
    (lambda c: c["auth"].update(reloadSeconds=0), "auth.reloadSeconds: Input should be greater than 0"),
    (lambda c: c["routing"].update(order=["backendHeader", "geo"]), "routing.order.1"),
    (lambda c: c["routes"]["code"].update(classes=["interactive"]),
     "routes.code.classes names class 'interactive', which is not in routing.classRoutes"),
    (lambda c: c["server"].update(maxHeaderBytes=100), "server.maxHeaderBytes: Input should be greater than or equal to 4096"),
    (lambda c: c["server"].update(uploadTimeoutSeconds=0), "server.uploadTimeoutSeconds: Input should be greater than 0"),
    (lambda c: c["server"].update(maxUpstreamBodyBytes=10), "server.maxUpstreamBodyBytes: Input should be greater"),
    (lambda c: c["server"].update(maxRequestIdLength=4096), "server.maxRequestIdLength: Input should be less"),
    # Splits: weights >= 0 and not all 0, arms that exist and do not repeat, primary or split.
    (lambda c: c["routes"].update(ab=split(("vllm-customer", -1), ("azure-openai", 1))),
     "routes.ab.split.0.weight: Input should be greater than or equal to 0"),
    (lambda c: c["routes"].update(ab=split(("vllm-customer", 0), ("azure-openai", 0))),
     "routes.ab: every split weight is 0, so no arm would get traffic"),
    (lambda c: c["routes"].update(ab=split(("vllm-customer", 1), ("vllm-custmer", 1))),
     "routes.ab names backend 'vllm-custmer', which is not in backends"),
    (lambda c: c["routes"].update(ab=split(("vllm-customer", 1), ("vllm-customer", 2))),
     "routes.ab: split names backend 'vllm-customer' more than once"),
    (lambda c: c["routes"].update(ab={**split(("vllm-customer", 1)), "primary": "vllm-batch"}),
     "routes.ab: set either primary (one backend) or split (weighted arms), not both"),
    (lambda c: c["routes"].update(ab={"fallbacks": ["vllm-batch"]}), "routes.ab: set either primary"),
    (lambda c: c["routes"].update(ab={"split": []}), "routes.ab.split: List should have at least 1 item"),
    (lambda c: c["routes"].update(ab={**split(("vllm-customer", 1)), "stickyBy": "cookie:session"}),
     "routes.ab.stickyBy: String should match pattern"),
    (lambda c: c["routes"].update(ab={"primary": "vllm-batch", "stickyBy": "key"}),
     "routes.ab: stickyBy only applies to a split"),
    (lambda c: c["routes"].update(ab={"split": [{"backend": "vllm-batch"}]}), "routes.ab.split.0.weight: Field required"),
    (lambda c: (c["auth"].update(enabled=False), c["routes"].update(ab={**split(("vllm-customer", 1)), "stickyBy": "key"})),
     "routes.ab.stickyBy is key, but auth.enabled is false"),
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
