#!/usr/bin/env python3
"""`python scripts/checkov_scan.py` in a checkout (make checkov): the code is hybridllm/cli/checkov.py
(`--help` says what it does)."""

import sys

from hybridllm.cli.checkov import main

if __name__ == "__main__":
    sys.exit(main())
