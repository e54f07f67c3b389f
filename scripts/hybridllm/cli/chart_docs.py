"""Regenerate the chart's README.md (values table from the `# --` comments of values.yaml) and the
artifacthub.io/images annotation of Chart.yaml; with --check, only report whether they drifted.

  python scripts/chart_docs.py           # write (make chart-docs)
  python scripts/chart_docs.py --check   # exit 1 when a generated file is out of date
  python scripts/chart_docs.py --chart <copy of the chart>   # a staged copy, for example while packaging
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybridllm import chart_docs
from hybridllm.errors import UserError
from hybridllm.layout import CHART_DIR, display_path, require_checkout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report drift instead of writing")
    parser.add_argument("--chart", type=Path, default=CHART_DIR, help="the chart directory (default: the repository's)")
    args = parser.parse_args(argv)
    try:
        require_checkout()
        if args.check:
            stale = chart_docs.drifted(args.chart)
            for path in stale:
                print(f"{display_path(path)} is out of date: run `make chart-docs`", file=sys.stderr)
            return 1 if stale else 0
        for path in chart_docs.write(args.chart):
            print(f"wrote {display_path(path)}")
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

