"""Run checkov's Kubernetes checks on the render of every profile in values/ and every scenario in
charts/hybrid-llm/ci/ (make checkov). checkov comes from its own virtualenv, created on first use
(HYBRID_LLM_CHECKOV_VENV, default /tmp/checkov-venv). Exits 1 when any check fails.

  python scripts/checkov_scan.py
  python scripts/checkov_scan.py --out build/checkov hybrid charts/hybrid-llm/ci/keda-values.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybridllm import checkov_scan
from hybridllm.errors import UserError
from hybridllm.layout import BUILD_DIR, require_checkout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", help="profile names or values files (default: every profile and ci/ scenario)")
    parser.add_argument("--out", type=Path, default=BUILD_DIR / "checkov", help="where the renders are written")
    parser.add_argument("--venv", type=Path, default=checkov_scan.DEFAULT_VENV, help="checkov's own virtualenv")
    args = parser.parse_args(argv)
    try:
        require_checkout()
        binary = checkov_scan.ensure_checkov(args.venv)
        files = checkov_scan.render_inputs(args.out, args.inputs or None)
        result = checkov_scan.scan(binary, files)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(checkov_scan.summary(result, files))
    return 0 if result.clean else 1

