"""The figures data file (data/figures.yaml): prices, throughput and the SKU table, each with
its source and date. The chart gets a generated copy of the SKU table and the Azure OpenAI
prices (charts/hybrid-llm/files/figures.yaml)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import yaml

from .errors import UserError
from .layout import CHART_FIGURES_FILE, FIGURES_FILE, display_path
from .yamlfiles import load_mapping

_CHART_SKU_FIELDS = ("gpus", "gpuMemoryGiB", "gpuModel")
_CHART_PRICE_FIELDS = ("inputPer1M", "cachedInputPer1M", "outputPer1M")
_GENERATED_HEADER = (
    "# Generated from data/figures.yaml by `make render` (scripts/render.py). Do not edit:\n"
    "# change data/figures.yaml, where each figure has its source and date.\n"
)


@lru_cache(maxsize=1)
def load() -> dict[str, Any]:
    figures = load_mapping(FIGURES_FILE)
    skus = figures.get("skus")
    if not isinstance(skus, dict) or not skus:
        raise UserError(display_path(FIGURES_FILE), "`skus:` is missing or empty",
                        "list each GPU VM size with its gpus, source and retrieved date")
    for name, sku in skus.items():
        missing = [f for f in ("gpus", "source", "retrieved") if f not in (sku or {})]
        if missing:
            raise UserError(display_path(FIGURES_FILE), f"skus.{name} lacks {', '.join(missing)}",
                            "every figure needs its value, its source and the date it was read")
    return figures


def skus() -> dict[str, dict[str, Any]]:
    return load()["skus"]


def gpus_per_node(instance_type: str) -> int:
    try:
        return int(skus()[instance_type]["gpus"])
    except KeyError:
        raise UserError(display_path(FIGURES_FILE), f"no SKU {instance_type!r} in `skus:`",
                        "add it with its GPU count and source") from None


GIB_IN_GB = 1.073741824


def model_weights_gb() -> dict[str, float]:
    """Preset name (lower case) -> size of its weights in GB, from `models:` (weightsGiBBF16)."""
    models = load().get("models") or {}
    return {name.lower(): float(model["weightsGiBBF16"]) * GIB_IN_GB for name, model in models.items()
            if isinstance(model, dict) and isinstance(model.get("weightsGiBBF16"), (int, float))}


def min_os_disk_gb() -> dict[str, int]:
    """Preset -> the smallest OS disk in GB that holds its weights in byo mode: weights plus the
    system (`nodeDisk.systemGB`), with the kubelet's eviction headroom left free."""
    disk = load().get("nodeDisk") or {}
    system, free_share = float(disk.get("systemGB", 0)), float(disk.get("kubeletEvictionFreeShare", 0))
    return {name: math.ceil((gb + system) / (1 - free_share)) for name, gb in model_weights_gb().items()}


def chart_figures() -> str:
    """The text of charts/hybrid-llm/files/figures.yaml for the current figures."""
    table = {
        name: {field: sku[field] for field in _CHART_SKU_FIELDS if field in sku}
        for name, sku in sorted(skus().items())
    }
    prices = {
        name: {field: model[field] for field in _CHART_PRICE_FIELDS if field in model}
        for name, model in sorted(load().get("azureOpenAI", {}).items())
    }
    vm_prices = {
        sku: {kind: entry[kind]["perHourUSD"] for kind in ("onDemand", "spot") if kind in entry}
        for sku, entry in sorted(load().get("vmPrices", {}).items())
    }
    # Whole GB, rounded up: the chart compares them with OS disk sizes.
    floors = min_os_disk_gb()
    weights = {name: {"weightsGB": math.ceil(gb), "minOsDiskGB": floors[name]}
               for name, gb in sorted(model_weights_gb().items())}
    return _GENERATED_HEADER + yaml.safe_dump({"skus": table, "azureOpenAIPrices": prices, "vmPrices": vm_prices,
                                               "models": weights}, sort_keys=True)


def write_chart_figures() -> bool:
    """Regenerate the chart's copy of the figures; True when the file changed."""
    text = chart_figures()
    if CHART_FIGURES_FILE.exists() and CHART_FIGURES_FILE.read_text(encoding="utf-8") == text:
        return False
    CHART_FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    CHART_FIGURES_FILE.write_text(text, encoding="utf-8")
    return True
