#!/usr/bin/env python3
"""`python scripts/validate.py` in a checkout: the same command as `hybrid-llm-validate`, whose code is
hybridllm/cli/validate.py (`--help` says what it does)."""

import sys

from hybridllm.cli.validate import main

if __name__ == "__main__":
    sys.exit(main())
