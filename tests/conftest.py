"""Shared fixtures: every render goes through the real Helm engine (helm binary or Helm's Go SDK)."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from hybridllm.crds import CrdCatalog
from hybridllm.layout import SHARED_CRDS_DIR
from hybridllm.profiles import load_profile, profile_names
from hybridllm.rendering import Rendering, render_profile

Render = Callable[..., Rendering]
PROFILES = profile_names()


@pytest.fixture(scope="session")
def render() -> Render:
    """render(profile, overrides=None) -> Rendering, cached for the session."""
    cache: dict[str, Rendering] = {}

    def _render(profile: str, overrides: dict[str, Any] | None = None) -> Rendering:
        key = json.dumps([profile, overrides], sort_keys=True)
        if key not in cache:
            cache[key] = render_profile(load_profile(profile), overrides)
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def crd_catalog() -> CrdCatalog:
    if not SHARED_CRDS_DIR.is_dir():
        pytest.fail(f"the upstream CRDs are expected in {SHARED_CRDS_DIR} (shared/crds beside the checkout, or set HYBRID_LLM_CRDS_DIR)")
    return CrdCatalog(SHARED_CRDS_DIR)


def paths_of(rendering: Rendering) -> dict[str, dict[str, Any]]:
    """InferenceSets by serving path name."""
    return {
        iset["metadata"]["labels"]["app.kubernetes.io/component"].removeprefix("vllm-"): iset
        for iset in rendering.of_kind("InferenceSet")
    }


def inference_config(rendering: Rendering, iset: dict[str, Any]) -> dict[str, Any]:
    import yaml

    config_map = rendering.find("ConfigMap", iset["spec"]["template"]["inference"]["config"])
    return yaml.safe_load(config_map["data"]["inference_config.yaml"])
