"""Where things live in the repository."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError

_CHART_FILE = Path("charts", "hybrid-llm", "Chart.yaml")


def _checkout_root() -> Path:
    """The checkout the tools work on: $HYBRID_LLM_ROOT; else the one this package sits in (an
    editable install, or `python scripts/<tool>.py`); else, for an installed wheel, the nearest
    directory at or above the current one that holds the chart. Without one, the current directory:
    `require_checkout` then says what to do."""
    if os.environ.get("HYBRID_LLM_ROOT"):
        return Path(os.environ["HYBRID_LLM_ROOT"]).resolve()
    source = Path(__file__).resolve().parents[2]
    if (source / _CHART_FILE).is_file():
        return source
    here = Path.cwd().resolve()
    return next((folder for folder in (here, *here.parents) if (folder / _CHART_FILE).is_file()), here)


REPO_ROOT = _checkout_root()
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


def require_checkout() -> None:
    """Raise UserError unless REPO_ROOT is a hybrid-llm checkout (the tools read its chart, values and data)."""
    if not (REPO_ROOT / _CHART_FILE).is_file():
        raise UserError(str(REPO_ROOT), f"not a hybrid-llm checkout: there is no {_CHART_FILE}",
                        "run the command inside a checkout of the repository, or set HYBRID_LLM_ROOT to one")
