#!/usr/bin/env python3
"""`python scripts/nodepools.py` in a checkout: the same command as `hybrid-llm-nodepools`, whose code is
hybridllm/cli/nodepools.py (`--help` says what it does)."""

import sys

from hybridllm.cli.nodepools import main

if __name__ == "__main__":
    sys.exit(main())
