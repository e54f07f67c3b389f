"""Where things live in the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "hybrid-llm"
CHART_FIGURES_FILE = CHART_DIR / "files" / "figures.yaml"
PROFILES_DIR = REPO_ROOT / "values"
KAITO_EXPORT_DIR = REPO_ROOT / "kaito"
BUILD_DIR = REPO_ROOT / "build"
RENDERED_DIR = BUILD_DIR / "rendered"
FIGURES_FILE = REPO_ROOT / "data" / "figures.yaml"
# The upstream CRDs live beside the checkout, never inside it; HYBRID_LLM_CRDS_DIR points elsewhere.
SHARED_CRDS_DIR = Path(os.environ.get("HYBRID_LLM_CRDS_DIR") or REPO_ROOT.parent / "shared" / "crds")

DEFAULT_RELEASE = "hybrid-llm"
DEFAULT_NAMESPACE = "llm"


def display_path(path: Path) -> str:
    """A path as a user would type it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
