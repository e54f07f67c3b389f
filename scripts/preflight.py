#!/usr/bin/env python3
"""`python scripts/preflight.py` in a checkout: the same command as `hybrid-llm-preflight`, whose code is
hybridllm/cli/preflight.py (`--help` says what it does)."""

import sys

from hybridllm.cli.preflight import main

if __name__ == "__main__":
    sys.exit(main())
