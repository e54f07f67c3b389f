#!/usr/bin/env python3
"""`python scripts/crossover.py` in a checkout: the same command as `hybrid-llm-crossover`, whose code is
hybridllm/cli/crossover.py (`--help` says what it does)."""

import sys

from hybridllm.cli.crossover import main

if __name__ == "__main__":
    sys.exit(main())
