#!/usr/bin/env python3
"""`python scripts/chart_docs.py` in a checkout (make chart-docs): the code is hybridllm/cli/chart_docs.py
(`--help` says what it does)."""

import sys

from hybridllm.cli.chart_docs import main

if __name__ == "__main__":
    sys.exit(main())
